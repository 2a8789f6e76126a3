"""tickwire decode: messages as JSON lines, malformed input reported with its place
and counted, and decoding goes on."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from appliance import decode
from appliance.protocols import binaryfile, capture, itch, moldudp64, ouch, soupbintcp
from common import paths

TICKWIRE = [sys.executable, "-m", "appliance.cli"]
GOOD = [itch.encode(itch.example(t, i)) for i, t in enumerate("SAFEDUXP")]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*TICKWIRE, "decode", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def bad_itch(tmp_path):
    path = tmp_path / "bad.itch"
    records = [GOOD[0], GOOD[1], b"Z" + bytes(10), GOOD[2][:-1], GOOD[3]]
    path.write_bytes(binaryfile.encode(records) + b"\x00\x40" + GOOD[4][:5])
    return path


def test_a_binaryfile_decodes_to_one_json_object_per_message(tmp_path):
    path = tmp_path / "day.itch"
    path.write_bytes(binaryfile.encode(GOOD))
    res = run(str(path))
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [x["type"] for x in lines] == list("SAFEDUXP")
    assert lines[1]["offset"] == 2 + len(GOOD[0])
    assert lines[1] == {"offset": 14, **itch.to_json(itch.decode(GOOD[1]))}


def test_malformed_records_are_reported_with_offsets_and_decoding_goes_on(bad_itch):
    res = run(str(bad_itch))
    assert res.returncode == 1  # something was malformed
    assert [json.loads(x)["type"] for x in res.stdout.splitlines()] == ["S", "A", "E"]
    errors = res.stderr.splitlines()
    assert errors[0].endswith("offset 52: unknown type: unknown ITCH message type 'Z' (0x5a)")
    assert "offset 65: length mismatch: ITCH 'F' add_order_mpid is 40 bytes, got 39" in errors[1]
    assert "offset 139: truncated: record of 64 bytes runs past the end (5 left)" in errors[2]


def test_stats_count_types_and_problems(bad_itch):
    res = run(str(bad_itch), "--stats", "--json")
    report = json.loads(res.stdout)
    assert report["by_type"] == {"A": 1, "E": 1, "S": 1}
    assert report["malformed_by_kind"] == {"unknown type": 1, "length mismatch": 1, "truncated": 1}
    human = run(str(bad_itch), "--stats")
    assert "malformed: 3" in human.stdout


def test_a_capture_carries_mold_session_and_sequence(tmp_path):
    path = tmp_path / "feed.pcapng"
    with capture.CaptureWriter(path, clock=lambda: 7) as w:
        w.udp(moldudp64.pack("SESS01", 100, GOOD[:3]), ("198.18.1.1", 5000), ("239.198.1.1", 26400))
        w.udp(moldudp64.pack("SESS01", 103, GOOD[3:5])[:-3], ("198.18.1.1", 5000), ("239.198.1.1", 26400))
        w.udp(moldudp64.request("SESS01", 103, 2), ("198.18.1.11", 4000), ("198.18.1.1", 26401))
        w.udp(moldudp64.heartbeat("SESS01", 105), ("198.18.1.1", 5000), ("239.198.1.1", 26400))
        w.udp(moldudp64.end_of_session("SESS01", 105), ("198.18.1.1", 5000), ("239.198.1.1", 26400))
    stats = decode.Stats()
    items = list(decode.decode_file(path, stats))
    msgs = [i for i in items if isinstance(i, dict) and "type" in i]
    assert [(m["session"], m["sequence"], m["type"]) for m in msgs] == [
        ("SESS01    ", 100, "S"), ("SESS01    ", 101, "A"), ("SESS01    ", 102, "F"), ("SESS01    ", 103, "E")]
    problems = [i for i in items if isinstance(i, decode.Problem)]
    assert [(p.kind, p.where.split(" (")[0]) for p in problems] == [("overrun", "frame 2")]
    assert [i["mold"] for i in items if isinstance(i, dict) and "mold" in i] == [
        "request", "heartbeat", "end_of_session"]
    assert stats.packets["retransmission request"] == 1


def test_a_soupbintcp_capture_decodes_ouch_both_ways(tmp_path):
    path = tmp_path / "oe.pcap"
    enter = ouch.encode(ouch.example("inbound", "O", 3, ((2, b"FIRM"),)))
    accepted = ouch.encode(ouch.example("outbound", "A", 3))
    with capture.CaptureWriter(path, clock=lambda: 1) as w:
        c = w.tcp_connection(("198.18.3.11", 40000), ("198.18.3.1", 8000))
        c.send("client", soupbintcp.encode(soupbintcp.LoginRequest("USER", "PASS")))
        c.send("server", soupbintcp.encode(soupbintcp.LoginAccepted("S1", 1)))
        c.send("client", soupbintcp.encode(soupbintcp.UnsequencedData(enter))[:10])  # split across segments
        c.send("client", soupbintcp.encode(soupbintcp.UnsequencedData(enter))[10:])
        c.send("server", soupbintcp.encode(soupbintcp.SequencedData(accepted)))
        c.send("server", soupbintcp.encode(soupbintcp.SequencedData(b"Q" + bytes(5))))
    items = list(decode.decode_file(path))
    msgs = [i for i in items if isinstance(i, dict)]
    assert [(m["soupbintcp"], m.get("type") or m["packet"]) for m in msgs] == [
        ("L", "LoginRequest"), ("A", "LoginAccepted"), ("U", "O"), ("S", "A")]
    assert "password" not in msgs[0]  # credentials never printed
    assert msgs[2]["appendage"][0]["firm"] == "FIRM"
    (problem,) = [i for i in items if isinstance(i, decode.Problem)]
    assert problem.kind == "unknown type" and "stream byte" in problem.where


def test_every_genuine_capture_decodes_without_a_problem():
    data = paths.shared_data()
    if data is None:
        pytest.skip("../shared/data is absent (set TICKWIRE_SHARED_DATA)")
    files = sorted((data / "nasdaq").glob("*/*.pcap")) + [data / "nasdaq" / "sample-first-1000.itch"]
    total = 0
    for f in files:
        stats = decode.Stats()
        items = list(decode.decode_file(f, stats))
        assert not stats.problems, (f, [i for i in items if isinstance(i, decode.Problem)])
        total += sum(stats.by_type.values())
    assert total >= 1000 + 40


def test_limit_type_filter_and_a_missing_file(tmp_path):
    path = tmp_path / "day.itch"
    path.write_bytes(binaryfile.encode(GOOD * 3))
    res = run(str(path), "--type", "A,D", "--limit", "4")
    assert [json.loads(x)["type"] for x in res.stdout.splitlines()] == ["A", "D", "A", "D"]
    missing = run(str(tmp_path / "nope.itch"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
