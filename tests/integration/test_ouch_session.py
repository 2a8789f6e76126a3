"""The worker's order-entry session in C (dpdk/src/session.c, ouch.c) against the lab
exchange's SoupBinTCP/OUCH server: login, orders, heartbeats, a dropped
connection resumed without a gap or a duplicate, a silent link timed out."""

from __future__ import annotations

import json
import time

from common.netns import in_netns
from dpdk.ouch import OuchSession
from labtools import ExchangeProcess, tw

OE = ("198.18.3.1", 15000)


def now() -> int:
    return time.monotonic_ns()


def pump(o: OuchSession, got: list, until, timeout: float = 5.0) -> None:
    """Poll the session (as the worker's loop does) until ``until()`` or timeout."""
    deadline = time.monotonic() + timeout
    while not until():
        got.extend(o.poll(now()))
        assert time.monotonic() < deadline, f"timed out: {o.stats()} after {got[-3:]}"
        time.sleep(0.001)


def wait_for_books(ex: ExchangeProcess, events: int = 500) -> None:
    """Until the exchange's flow has built books (so an IOC finds offers to take)."""
    deadline = time.monotonic() + 20
    while json.loads((ex.record / "status.json").read_text())["events"] < events:
        assert time.monotonic() < deadline, "the exchange's flow did not start"
        time.sleep(0.1)


def test_orders_go_out_and_a_dropped_connection_resumes_without_gap_or_duplicate(lab, tmp_path):
    ex = ExchangeProcess(lab, tmp_path, duration=30, rate=2000)
    wait_for_books(ex)
    got: list[dict] = []
    with in_netns(lab.ns("app")):
        o = OuchSession(OE, "TWAPP1", "lab-secret", heartbeat_s=0.2, reconnect_s=0.05)
        pump(o, got, lambda: o.state == "up")
        assert o.stats()["session"] == "TWOE000001"
        assert o.enter(1, "B", 100, "TAAA", 5_000_000, now(), tif="3")  # IOC through the asks
        assert o.enter(2, "S", 100, "TAAA", 1_500_000, now())           # rests far above the market
        pump(o, got, lambda: {("A", 1), ("A", 2)} <= {(m["type"], m["user_ref"]) for m in got})
        assert o.enter(3, "S", 50, "TAAA", 1_600_000, now())
        time.sleep(0.3)  # the exchange answers into our socket; we do not read it
        o.drop()
        assert o.state == "down"
        pump(o, got, lambda: o.state == "up")
        pump(o, got, lambda: any(m["type"] == "A" and m["user_ref"] == 3 for m in got))
        assert o.cancel(2, now())
        pump(o, got, lambda: any(m["type"] == "C" and m["user_ref"] == 2 for m in got))
        time.sleep(0.5)
        got.extend(o.poll(now()))
        st = o.stats()
        o.logout()
    report = ex.stop()
    seqs = [m["seq"] for m in got]
    assert seqs == list(range(1, len(seqs) + 1))  # no gap, no duplicate across the reconnect
    assert len(got) == st["next_seq"] - 1 and got[0]["type"] == "S"  # the start-of-day event, replayed first
    # the exchange sent what we got, plus the end-of-day event after we logged out
    assert report["order_entry"]["accounts"]["TWAPP1"]["sequenced"] == len(got) + 1
    assert sum(1 for m in got if m["type"] == "A" and m["user_ref"] == 3) == 1
    assert (st["logins"], st["disconnects"], st["orders_sent"], st["cancels_sent"]) == (2, 1, 3, 1)
    assert st["heartbeats_sent"] > 0 and st["protocol_errors"] == 0
    filled = sum(m["qty"] for m in got if m["type"] == "E" and m["user_ref"] == 1)
    canceled = sum(m["qty"] for m in got if m["type"] == "C" and m["user_ref"] == 1)
    assert filled > 0 and filled + canceled == 100 and all(m["price"] > 0 for m in got if m["type"] == "E")
    (accepted,) = [m for m in got if m["type"] == "A" and m["user_ref"] == 2]
    assert (accepted["side"], accepted["qty"], accepted["price"], accepted["state"]) == ("S", 100, 1_500_000, "L")


def test_a_silent_link_times_out_and_the_session_comes_back(lab, tmp_path):
    ex = ExchangeProcess(lab, tmp_path, duration=30, rate=500)
    got: list[dict] = []
    try:
        with in_netns(lab.ns("app")):
            o = OuchSession(OE, "TWAPP1", "lab-secret", heartbeat_s=0.2, timeout_s=1.0, reconnect_s=0.2)
            pump(o, got, lambda: o.state == "up")
            assert o.enter(1, "S", 10, "TAAB", 9_000_000, now())
            pump(o, got, lambda: any(m["type"] == "A" for m in got))
            res = tw("lab", "impair", "--prefix", lab.prefix, "order-app", "--loss", "100", "--direction", "both")
            assert res.returncode == 0, res.stderr
            pump(o, got, lambda: o.stats()["timeouts"] == 1, timeout=5)
            assert o.enter(2, "S", 10, "TAAB", 9_000_000, now()) is False  # not logged in: refused, counted
            tw("lab", "clear", "--prefix", lab.prefix, "order-app")
            pump(o, got, lambda: o.state == "up", timeout=20)
            assert o.enter(2, "S", 10, "TAAB", 9_000_000, now())
            pump(o, got, lambda: any(m["type"] == "A" and m["user_ref"] == 2 for m in got))
            st = o.stats()
    finally:
        tw("lab", "clear", "--prefix", lab.prefix, "order-app")
    ex.stop()
    assert [m["seq"] for m in got] == list(range(1, len(got) + 1))
    assert st["send_errors"] == 1 and st["logins"] == 2


def test_a_wrong_password_is_rejected_and_not_retried(lab, tmp_path):
    ex = ExchangeProcess(lab, tmp_path, duration=30, rate=100)
    with in_netns(lab.ns("app")):
        o = OuchSession(OE, "TWAPP1", "wrong", reconnect_s=0.05)
        pump(o, [], lambda: o.state == "rejected")
        time.sleep(0.2)
        o.poll(now())
        st = o.stats()
    ex.stop()
    assert st["reject_reason"] == "A" and st["connects"] == 1 and st["logins"] == 0


def test_orders_a_broken_link_takes_from_the_buffer_come_back_as_not_sent(lab, tmp_path):
    """Corked, the orders of one decision wait in the session's buffer and leave in one
    send(); if the link breaks first, each comes back from the poll as not sent (and
    the exchange never saw it), so risk and the strategy can close it."""
    ex = ExchangeProcess(lab, tmp_path, duration=30, rate=200)
    got: list[dict] = []
    with in_netns(lab.ns("app")):
        o = OuchSession(OE, "TWAPP1", "lab-secret", heartbeat_s=0.2, reconnect_s=0.05)
        pump(o, got, lambda: o.state == "up")
        o.cork()
        assert o.enter(1, "S", 10, "TAAB", 9_000_000, now()) and o.enter(2, "S", 10, "TAAB", 9_100_000, now())
        o.drop()  # the link breaks before the flush: nothing was written
        assert not o.flush(now())
        pump(o, got, lambda: sum(m["type"] == "not_sent" for m in got) == 2)
        assert [(m["type"], m["user_ref"], m["seq"]) for m in got if m["type"] == "not_sent"] == \
            [("not_sent", 1, 0), ("not_sent", 2, 0)]
        pump(o, got, lambda: o.state == "up")
        o.cork()  # two orders, one send()
        assert o.enter(3, "S", 10, "TAAB", 9_000_000, now()) and o.enter(4, "S", 10, "TAAB", 9_100_000, now())
        assert o.flush(now())
        pump(o, got, lambda: {3, 4} <= {m["user_ref"] for m in got if m["type"] == "A"})
        st = o.stats()
        o.logout()
    ex.stop()
    log = [json.loads(x) for x in (ex.record / "orders.jsonl").read_text().splitlines()]
    assert [m["user_ref_num"] for m in log if m.get("name") == "enter_order"] == [3, 4]
    assert (st["orders_sent"], st["orders_lost"], st["logins"]) == (4, 2, 2)
