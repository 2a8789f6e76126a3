"""tickwire exchange gen: a deterministic, consistent, realistically shaped day."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from itch.parser import MessageParser

from appliance.lab.exchange import gen
from appliance.protocols import binaryfile, itch
from appliance.protocols.itchbook import ItchBook


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    path = tmp_path_factory.mktemp("day") / "day.itch"
    report = gen.generate(path, symbols=8, messages=60_000, seed=11)
    return path, report, [itch.decode(m) for m in binaryfile.iter_messages(path.read_bytes())]


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path, day):
    path, report, _ = day
    again = gen.generate(tmp_path / "again.itch", symbols=8, messages=60_000, seed=11)
    other = gen.generate(tmp_path / "other.itch", symbols=8, messages=60_000, seed=12)
    assert again.sha256 == report.sha256 and (tmp_path / "again.itch").read_bytes() == path.read_bytes()
    assert other.sha256 != report.sha256


def test_the_day_opens_and_closes_as_nasdaq_does(day):
    _, report, recs = day
    events = [r.event_code for r in recs if r.TYPE == "S"]
    assert events == ["O", "S", "Q", "M", "E", "C"]
    assert [r.TYPE for r in recs[:9]] == ["S"] + ["R"] * 8
    assert {r.stock for r in recs if r.TYPE == "R"} == set(gen.symbol_names(8))
    assert all(r.trading_state == "T" for r in recs if r.TYPE == "H")
    crosses = [r.cross_type for r in recs if r.TYPE == "Q"]
    assert crosses.count("O") == 8 and crosses.count("C") == 8


def test_every_book_message_type_appears_in_realistic_proportions(day):
    _, report, _ = day
    c = report.by_type
    flow = sum(c.get(t, 0) for t in "AFECXDUPQ")
    assert report.book_messages == flow >= 60_000
    assert set("AFECXDUP") <= set(c)
    share = {t: c.get(t, 0) / flow for t in "AFECXDUP"}
    assert 0.35 < share["A"] + share["F"] < 0.60        # adds
    assert share["D"] + share["X"] > 5 * (share["E"] + share["C"] + share["P"])  # far more cancels than fills
    assert 0.01 < share["E"] < 0.08 and 0.02 < share["U"] < 0.15


def test_the_stream_is_consistent_and_never_crosses(day):
    _, _, recs = day
    book = ItchBook()
    for r in recs:
        book.apply(r)  # raises on an unknown reference or an overfill
    for locate in range(1, 9):
        bid, ask = book.bbo(locate)
        assert bid and ask and bid[0] < ask[0]


def test_timestamps_never_go_back_and_sizes_are_heavy_tailed(day):
    _, _, recs = day
    ts = [r.timestamp for r in recs]
    assert ts == sorted(ts)
    sizes = sorted(r.shares for r in recs if r.TYPE == "A")
    median, p99 = sizes[len(sizes) // 2], sizes[int(len(sizes) * 0.99)]
    assert p99 >= 10 * median  # a long tail, not a bell


def test_itchfeed_reads_the_generated_day_as_we_wrote_it(day):
    path, _, recs = day
    theirs = list(MessageParser().parse_file(io.BytesIO(path.read_bytes())))
    assert len(theirs) == len(recs)
    for mine, other in zip(recs, theirs, strict=True):
        assert other.message_type.decode() == mine.TYPE
        assert (other.stock_locate, other.timestamp) == (mine.stock_locate, mine.timestamp)
        if mine.TYPE in "AF":
            assert (other.order_reference_number, other.shares, other.price) == (
                mine.order_reference_number, mine.shares, mine.price)
        elif mine.TYPE == "U":
            assert (other.new_order_reference_number, other.shares, other.price) == (
                mine.new_order_reference_number, mine.shares, mine.price)


def test_the_cli_reports_the_day(tmp_path):
    out = tmp_path / "cli.itch"
    res = subprocess.run([sys.executable, "-m", "appliance.cli", "exchange", "gen", "--symbols", "3",
                          "--messages", "2000", "--seed", "5", "--out", str(out), "--json"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["path"] == str(out) and report["bytes"] == out.stat().st_size and report["book_messages"] >= 2000
    bad = subprocess.run([sys.executable, "-m", "appliance.cli", "exchange", "gen", "--symbols", "0", "--out",
                          str(out)], capture_output=True, text=True)
    assert bad.returncode == 2 and "--symbols 0: must be within 1..17576" in bad.stderr
