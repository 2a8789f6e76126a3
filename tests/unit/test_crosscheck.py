"""Cross-checks against independent decoders: tshark's MoldUDP64 and SoupBinTCP
dissectors for framing, the PyPI ITCH 5.0 parser ``itchfeed`` for fields."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from itch.parser import MessageParser

from appliance.protocols import binaryfile, capture, itch, moldudp64, ouch, soupbintcp
from common import paths

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (make setup)")


def tshark(path, *args: str) -> list[list[str]]:
    res = subprocess.run(["tshark", "-r", str(path), *args], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return [line.split("\t") for line in res.stdout.splitlines()]


@needs_tshark
def test_tshark_reads_our_mold_framing(tmp_path):
    path = tmp_path / "feed.pcapng"
    packets = [moldudp64.pack("TW00000001", 1, [itch.encode(itch.example(t, 1)) for t in "SAF"]),
               moldudp64.pack("TW00000001", 4, [itch.encode(itch.example("D", 2))]),
               moldudp64.heartbeat("TW00000001", 5)]
    with capture.CaptureWriter(path, clock=lambda: 1_000_000_000_000_000_123) as w:
        for p in packets:
            w.udp(p, ("198.18.1.1", 5000), ("239.198.1.1", 26400))
    rows = tshark(path, "-d", "udp.port==26400,moldudp64", "-T", "fields", "-e", "frame.time_epoch", "-e",
                  "moldudp64.session", "-e", "moldudp64.sequence", "-e", "moldudp64.count", "-e", "moldudp64.msglen")
    assert rows == [["1000000000.000000123", "TW00000001", "1", "3", "12,36,40"],
                    ["1000000000.000000123", "TW00000001", "4", "1", "19"],
                    ["1000000000.000000123", "TW00000001", "5", "0", ""]]


@needs_tshark
def test_tshark_reads_our_soupbintcp_framing(tmp_path):
    path = tmp_path / "oe.pcap"
    enter = ouch.encode(ouch.example("inbound", "O", 1, ((2, b"FIRM"),)))
    with capture.CaptureWriter(path, clock=lambda: 1) as w:
        c = w.tcp_connection(("198.18.3.11", 40000), ("198.18.3.1", 8000))
        c.send("client", soupbintcp.encode(soupbintcp.LoginRequest("TRADER", "pw", "", 1)))
        c.send("server", soupbintcp.encode(soupbintcp.LoginAccepted("SESSION01", 1)))
        c.send("client", soupbintcp.encode(soupbintcp.UnsequencedData(enter)))
        c.send("server", soupbintcp.encode(soupbintcp.ServerHeartbeat()))
    rows = tshark(path, "-d", "tcp.port==8000,soupbintcp", "-Y", "soupbintcp", "-T", "fields", "-e",
                  "soupbintcp.packet_type", "-e", "soupbintcp.packet_length")
    assert [[r[0].strip("'"), r[1]] for r in rows] == [["L", "47"], ["A", "31"], ["U", str(1 + len(enter))],
                                                       ["H", "1"]]
    # the login fields from tshark's own dissection (its -T fields prints sequence numbers oddly)
    text = "\n".join(line[0].strip() for line in tshark(path, "-d", "tcp.port==8000,soupbintcp", "-V"))
    for line in ("User Name: TRADER", "Requested sequence number: 1", "Session: SESSION01",
                 "Next sequence number: 1"):
        assert line in text


@needs_tshark
def test_tshark_and_we_agree_on_every_genuine_itch_capture_it_can_read():
    data = paths.shared_data()
    if data is None:
        pytest.skip("../shared/data is absent")
    checked = 0
    for f in sorted((data / "nasdaq").glob("*Itch*/*.pcap")):
        port = next(capture.read_frames(f)).dport
        if port == 0:
            continue  # the anonymised captures zero the ports; tshark cannot decode-as port 0
        checked += 1
        ours = []
        for frame in capture.read_frames(f):
            p = moldudp64.unpack(frame.payload)
            ours.append([p.session.decode("latin-1").rstrip("\x00"), str(p.sequence), str(p.count),
                         ",".join(str(len(m)) for m in p.messages)])
        theirs = tshark(f, "-d", f"udp.port=={port},moldudp64", "-T", "fields", "-e", "moldudp64.session", "-e",
                        "moldudp64.sequence", "-e", "moldudp64.count", "-e", "moldudp64.msglen")
        assert [[r[0].rstrip("\x00")] + r[1:] for r in theirs] == ours, f
    assert checked >= 10


# itchfeed names some fields differently; everything else must match by name
ITCHFEED_NAMES = {"buy_sell_indicator": "side", "financial_status_indicator": "financial_status",
                  "luld_ref": "luld_reference_price_tier", "attribution": "attribution"}


def test_itchfeed_decodes_every_type_as_we_do():
    ours = [itch.example(s.type, n) for n in range(3) for s in itch.SPECS if s.type != "S"]
    ours.append(itch.example("S", 0))  # itchfeed stops after a system event: put it last
    data = binaryfile.encode(itch.encode(r) for r in ours)
    theirs = list(MessageParser().parse_file(io.BytesIO(data)))
    assert len(theirs) == len(ours)
    compared = 0
    for mine, other in zip(ours, theirs, strict=True):
        assert other.message_type.decode() == mine.TYPE
        fields = {f.name for f in mine.SPEC.fields}
        for name, value in vars(other).items():
            name = ITCHFEED_NAMES.get(name, name)
            if name not in fields:
                continue
            if isinstance(value, bytes):
                value = value.decode().rstrip(" ") if len(value) > 1 else value.decode()
            assert value == getattr(mine, name), (mine.TYPE, name)
            compared += 1
    assert compared > 250


def test_itchfeed_and_we_agree_on_the_genuine_sample():
    sample = paths.sample_itch()
    if sample is None:
        pytest.skip("../shared/data/nasdaq/sample-first-1000.itch is absent")
    data = sample.read_bytes()
    theirs = list(MessageParser().parse_file(io.BytesIO(data)))
    ours = [itch.decode(m) for m in binaryfile.iter_messages(data)]
    assert len(theirs) == len(ours) == 1000
    for mine, other in zip(ours, theirs, strict=True):
        assert (other.stock_locate, other.timestamp) == (mine.stock_locate, mine.timestamp)
        if mine.TYPE == "R":
            assert other.stock.decode().rstrip() == mine.stock and other.round_lot_size == mine.round_lot_size
