"""The OMS (appliance/oms.py): the transition table, every legal path through it,
the illegal ones flagged and left alone, positions and P&L from fills, rebuilt
from the journal, and reconciled with the venue's replay."""

from __future__ import annotations

import json
import time

import pytest

from appliance import journal
from appliance.oms import STATES, TERMINAL, TRANSITIONS, Oms, Position, reconcile


def ev(kind: str, ref: int, qty: int = 0, **kw) -> dict:
    return {"event": "order", "type": kind, "user_ref": ref, "qty": qty, **kw}


def sent(oms: Oms, ref: int, side: str = "B", qty: int = 100, price: int = 1_000_000, symbol: str = "TAAA") -> None:
    oms.on_event(ev("O", ref, qty, side=side, price=price, symbol=symbol))


PATHS = [
    (["A"], "accepted"),
    (["A", ("E", 40)], "partially_filled"),
    (["A", ("E", 40), ("E", 60)], "filled"),
    (["A", ("E", 100)], "filled"),
    (["A", ("E", 30), ("C", 70)], "canceled"),        # an IOC: some filled, the rest canceled
    (["A", "X", ("C", 100)], "canceled"),
    (["X", "A", ("C", 100)], "canceled"),             # our cancel overtook the ack
    (["A", "X", ("E", 100)], "filled"),               # the fill won the race
    (["A", ("E", 10), "X", ("E", 20), ("C", 70)], "canceled"),
    (["A", ("C", 30)], "accepted"),                   # the venue took 30 off: 70 still work
    (["A", ("C", 30), ("E", 20), ("C", 50)], "canceled"),
    (["A", ("C", 30), ("E", 70)], "filled"),          # the rest traded
    (["J"], "rejected"),
    (["N"], "not_sent"),
    (["A", "U"], "replaced"),
    ([], "pending_new"),
]


@pytest.mark.parametrize("steps,state", PATHS, ids=[" ".join(str(s) for s in p) or "sent" for p, _ in PATHS])
def test_every_legal_path_ends_where_it_should(steps, state):
    oms = Oms()
    sent(oms, 7)
    for s in steps:
        kind, qty = (s, 0) if isinstance(s, str) else s
        oms.on_event(ev(kind, 7, qty, price=1_000_100))
    o = oms.orders[7]
    assert o.state == state and oms.anomalies == [] and o.open == (state not in TERMINAL)
    assert [h[1] for h in o.history][-1] == state


def test_the_table_only_names_known_states():
    for (before, _event), after in TRANSITIONS.items():
        assert before is None or before in STATES
        assert after in STATES or after == "<fill>"
    assert not any(before in TERMINAL for before, _ in TRANSITIONS)  # nothing leaves a final state


ILLEGAL = [
    (["A", ("E", 100), "A"], "illegal: accepted in state filled"),
    (["A", ("C", 100), ("E", 10)], "illegal: executed in state canceled"),
    ([("E", 10)], "illegal: executed in state pending_new"),
    (["J", "A"], "illegal: accepted in state rejected"),
    (["N", "A"], "illegal: accepted in state not_sent"),
]


@pytest.mark.parametrize("steps,why", ILLEGAL, ids=[w for _, w in ILLEGAL])
def test_an_illegal_transition_is_flagged_and_the_order_keeps_its_state(steps, why):
    oms = Oms()
    sent(oms, 3)
    for s in steps:
        kind, qty = (s, 0) if isinstance(s, str) else s
        before = oms.orders[3].state
        oms.on_event(ev(kind, 3, qty, price=1_000_000), where=len(oms.orders[3].history))
    (a,) = oms.anomalies
    assert a["why"] == why and oms.orders[3].state == before


def test_a_canceled_takes_its_decrement_and_the_order_works_on_with_the_rest():
    oms = Oms()
    sent(oms, 5, qty=100)
    oms.on_event(ev("A", 5, 100))
    oms.on_event(ev("C", 5, 30))
    o = oms.orders[5]
    assert (o.state, o.open, o.leaves, o.canceled) == ("accepted", True, 70, 30) and oms.anomalies == []
    assert [x.user_ref for x in oms.open_orders()] == [5]  # a restart seeds it with its 70 shares


def test_an_overfill_is_an_anomaly_and_counts_every_share_the_venue_says_traded():
    """As the worker's risk table counts it (dpdk/src/risk_orders.c), so a restart seeded from here agrees."""
    oms = Oms()
    sent(oms, 3, "B", 100)
    for step in (ev("A", 3, 100), ev("E", 3, 60, price=1_000_000), ev("E", 3, 60, price=1_000_000)):
        oms.on_event(step, where="j")
    assert oms.anomalies == [{"user_ref": 3, "event": "executed", "why": "overfill: 60 executed, 40 open of 100",
                              "where": "j"}]
    o = oms.orders[3]
    assert (o.state, o.filled, o.leaves) == ("filled", 120, 0) and oms.position("TAAA") == 120


def test_a_cancel_of_more_than_is_open_is_an_anomaly_and_closes_the_order():
    oms = Oms()
    sent(oms, 4, qty=100)
    oms.on_event(ev("A", 4, 100))
    oms.on_event(ev("C", 4, 150))
    assert [a["why"] for a in oms.anomalies] == ["cancel of 150, 100 open of 100"]
    assert oms.orders[4].state == "canceled" and oms.open_orders() == []


def test_unknown_orders_and_reused_references_are_flagged():
    oms = Oms()
    oms.on_event(ev("A", 99, 100))
    sent(oms, 1)
    sent(oms, 1)
    assert [a["why"] for a in oms.anomalies] == ["unknown order: an answer about an order never sent",
                                                 "a UserRefNum used twice"]
    oms.on_event({"event": "gap", "first": 1, "count": 2})  # not an order event: ignored
    assert oms.events == 3


def test_positions_and_pnl_from_fills():
    oms = Oms()
    sent(oms, 1, "B", 100, 1_000_000)
    sent(oms, 2, "S", 150, 1_010_000)
    sent(oms, 3, "B", 50, 990_000, symbol="TAAB")
    for ref in (1, 2, 3):
        oms.on_event(ev("A", ref))
    oms.on_event(ev("E", 1, 100, price=1_000_000))   # long 100 @ 100.00
    oms.on_event(ev("E", 2, 150, price=1_010_000))   # sell 150 @ 101.00: +100 realized, short 50
    oms.on_event(ev("E", 3, 50, price=990_000))
    assert oms.position("TAAA") == -50 and oms.position("TAAB") == 50
    pnl = oms.pnl({"TAAA": 100.5, "TAAB": 99.0})
    assert pnl["TAAA"] == {"position": -50, "bought": 100, "sold": 150, "avg_cost": 101.0, "realized": 100.0,
                           "unrealized": 25.0, "mark": 100.5}
    assert pnl["TAAB"]["realized"] == 0.0 and pnl["TAAB"]["unrealized"] == 0.0
    assert oms.orders[2].as_dict()["avg_price"] == 101.0


def test_a_position_through_zero_keeps_its_cost_right():
    p = Position()
    p.fill("B", 10, 1_000_000)
    p.fill("B", 10, 1_020_000)      # 20 @ 101.00
    p.fill("S", 30, 1_030_000)      # close 20 (+40), short 10 @ 103
    assert (p.shares, round(p.realized, 2), round(p.cost, 2)) == (-10, 40.0, -1030.0)
    p.fill("B", 10, 1_000_000)      # close the short: +30
    assert (p.shares, round(p.realized, 2), p.cost) == (0, 70.0, 0.0)


def test_rebuilt_from_the_journal_and_reconciled_with_the_venue(tmp_path):
    with journal.Journal(tmp_path, fsync="none") as j:
        for ref in (1, 2, 3):
            j.append("order", ev("O", ref, 100, side="B", price=1_000_000, symbol="TAAA"))
        j.append("ack", ev("A", 1, 100))
        j.append("ack", ev("A", 2, 100))
        j.append("fill", ev("E", 1, 40, price=1_000_000))
        j.append("event", {"event": "gap", "first": 5, "count": 1})
    oms = Oms.from_journal(tmp_path)
    assert oms.by_state() == {"partially_filled": 1, "accepted": 1, "pending_new": 1} and oms.anomalies == []
    # the venue's replay after a restart: the journal stopped before some answers
    venue = [{"seq": 1, "type": "S", "user_ref": 0},
             {"type": "A", "user_ref": 1, "qty": 100}, {"type": "A", "user_ref": 2, "qty": 100},
             {"type": "E", "user_ref": 1, "qty": 40, "price": 1_000_000},
             {"type": "E", "user_ref": 1, "qty": 60, "price": 1_000_100},
             {"type": "C", "user_ref": 2, "qty": 100},
             {"type": "A", "user_ref": 8, "qty": 100}]
    got = reconcile(oms, venue)
    assert got == {"applied": [{"user_ref": 1, "type": "E", "qty": 60}, {"user_ref": 2, "type": "C", "qty": 100}],
                   "orphans": [8], "unconfirmed": [3], "open": [3]}
    assert oms.orders[1].state == "filled" and oms.orders[2].state == "canceled" and oms.position("TAAA") == 100


def test_journal_orders_lists_what_the_oms_rebuilt(tmp_path, capsys):
    from appliance import cli

    with journal.Journal(tmp_path, fsync="none") as j:
        j.append("order", ev("O", 1, 100, side="B", price=1_000_000, symbol="TAAA"))
        j.append("order", ev("O", 2, 100, side="S", price=1_010_000, symbol="TAAA"))
        j.append("ack", ev("A", 1, 100))
        j.append("fill", ev("E", 1, 100, price=1_000_000))
        j.append("fill", ev("E", 2, 5, price=1_010_000))  # before its ack: illegal
    assert cli.main(["journal", "orders", "--dir", str(tmp_path), "--json"]) == 1
    r = json.loads(capsys.readouterr().out)
    assert (r["orders"], r["open"], r["by_state"]) == (2, 1, {"filled": 1, "pending_new": 1})
    assert [o["user_ref"] for o in r["listed"]] == [2]
    assert r["anomalies"] == [{"user_ref": 2, "event": "executed", "why": "illegal: executed in state pending_new",
                               "where": 5}]
    assert r["pnl"]["TAAA"]["position"] == 100


def test_a_restart_takes_over_todays_journal_only(tmp_path):
    from appliance.feed import restart_from_journal

    assert restart_from_journal(tmp_path, {"TAAA": 1}) is None  # no journal: a fresh start
    day = 86_400 * 10**9
    with journal.Journal(tmp_path, fsync="none") as j:
        j.append("order", ev("O", 5, 100, side="B", price=1_000_000, symbol="TAAA"), ts_ns=time.time_ns() - day)
        j.append("ack", ev("A", 5, 100, ouch_seq=3), ts_ns=time.time_ns() - day)
    assert restart_from_journal(tmp_path, {"TAAA": 1}) is None  # yesterday's session is not today's
    with journal.Journal(tmp_path, fsync="none") as j:
        j.append("order", ev("O", 9, 100, side="B", price=1_000_000, symbol="TAAA", strategy="mm-a"))
        j.append("order", ev("O", 10, 50, side="S", price=1_010_000, symbol="TAAA", strategy="mm-b"))
        j.append("ack", ev("A", 9, 100, ouch_seq=7))
        j.append("ack", ev("A", 10, 50, ouch_seq=8))
        j.append("fill", ev("E", 9, 100, price=1_000_000, ouch_seq=9))
    r = restart_from_journal(tmp_path, {"TAAA": 1})
    assert (r.next_user_ref, r.login_seq, r.positions) == (11, 10, {1: 100})
    assert r.open_orders == [{"user_ref": 10, "locate": 1, "side": "S", "qty": 50, "price": 1_010_000,
                              "strategy": "mm-b"}]
    assert r.strategy_positions == {"mm-a": 100}  # each strategy's own fills, the instrument's position shared
