"""make demo's job, end to end: lab up, feed across both lines, impaired round, order books, the
appliance trading (checked against the exchange's records), lab down."""

from __future__ import annotations

import json

import pytest

from labtools import netns_list, tw, unique_prefix

pytestmark = pytest.mark.root


def test_demo_shows_the_feed_arriving_and_tears_the_lab_down():
    prefix = unique_prefix()
    before = netns_list()
    try:
        res = tw("demo", "--prefix", prefix, "--messages", "30000", "--trade-seconds", "8", "--json", timeout=300)
        assert res.returncode == 0, res.stderr
        report = json.loads(res.stdout)
        assert [c["ok"] for c in report["checks"]] == [True, True, True, True, True, True]
        t = report["trading"]  # the appliance's report against the exchange's own records
        assert t["orders_sent"] == t["exchange"]["orders_received"] > 0 and t["executed"] == t["exchange"]["filled"]
        assert set(t["strategies"]) == {"mm-taaa", "mm-taab", "mm-taac"}
        for sym in ("TAAA", "TAAB", "TAAC"):  # each instrument, one by one
            r = t["instruments"][sym]
            e = r["exchange"]
            assert r["orders_sent"] == e["orders_received"] > 0 and r["filled"] == e["filled"]
            assert r["position"] == e["position"] and e["open_at_end"] == 0 and r["pnl"] is not None
        assert sum(r["orders_sent"] for r in t["instruments"].values()) == t["orders_sent"]
        assert t["exchange"]["open_orders_at_end"] == 0
        assert t["stopped_by"] == "SIGTERM" and t["oms"]["anomalies"] == [] and t["tick_to_trade_us"]["p50"] > 0
        assert 0 < t["xdp"]["feed-a"]["rules"][0]["redirected"] <= t["feed"]["packets"]["A"]  # read before SIGTERM
        assert t["feed"]["messages"] > 0 and t["feed"]["gaps"] == 0
        assert t["market_data"]["frames"]["A"] == t["feed"]["packets"]["A"] and t["market_data"]["dropped"] == 0
        assert [f.split("-")[0] for f in t["market_data"]["files"]] == ["A", "B"]
        assert t["clock"]["verdict"] == "degraded" and t["clock"]["degraded"] == ["timestamping"]
        assert abs(t["clock"]["offset_ns"]) < 100_000 and t["clock"]["timestamping"] == "software"
        books = report["books"]
        assert books["books_equal"] and books["instruments"] == 4
        assert books["worker"]["feed"]["applied"] == books["exchange_messages"] > 0
        assert books["worker"]["feed"]["gaps"] > 0 and books["worker"]["retrans_requests"] > 0  # lossy lines
        first = report["rounds"][0]["received"]
        assert set(first) == {"app/feed-a", "app/feed-b", "standby/feed-a", "standby/feed-b"}
        assert all(r["messages"] == 30000 for r in first.values())
        assert netns_list() == before
    finally:
        tw("lab", "down", "--prefix", prefix)


def test_demo_human_output_names_each_receiver_and_the_checks():
    prefix = unique_prefix()
    try:
        res = tw("demo", "--prefix", prefix, "--messages", "10000", "--loss", "0", "--trade-seconds", "0",
                 timeout=300)
        assert res.returncode == 0, res.stderr
        assert "app/feed-a" in res.stdout and "standby/feed-b" in res.stdout
        assert "exch sent" in res.stdout
        assert "ok   round 1: every receiver got every message, no gaps" in res.stdout
        assert "ok   round 3: the worker's books equal the exchange's, every gap recovered" in res.stdout
        assert "feed worker" in res.stdout and "TAAA" in res.stdout
        assert f"lab {prefix} down" in res.stdout
    finally:
        tw("lab", "down", "--prefix", prefix)
