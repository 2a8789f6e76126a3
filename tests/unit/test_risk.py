"""The inline risk chain (dpdk/src/risk.c): each check denies exactly at its
boundary and passes just inside it; the chain's order; positions and open
orders follow the exchange's answers; a new table is taken whole."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.protocols import itch
from dpdk import risk
from dpdk.books import Books
from dpdk.risk import Limits, Risk, denial_names

BID, ASK = 1_000_000, 1_000_100  # 100.0000 / 100.0100
WIDE = Limits(max_order_qty=10_000, max_order_notional=10**15, max_position=100_000, max_gross=1_000_000,
              max_open_orders=100)


def msg(t: str, locate: int = 1, **fields) -> bytes:
    return itch.encode(dataclasses.replace(itch.example(t, 0), stock_locate=locate, **fields))


@pytest.fixture
def books() -> Books:
    b = Books(max_locate=8, max_orders=1000, levels_per_side=16)
    b.record_events()
    for loc in (1, 2):
        b.apply(msg("H", loc, stock=f"T{loc}", trading_state="T"))
        b.apply(msg("A", loc, order_reference_number=10 * loc, side="B", shares=500, price=BID))
        b.apply(msg("A", loc, order_reference_number=10 * loc + 1, side="S", shares=500, price=ASK))
    b.apply(msg("E", 1, order_reference_number=10, executed_shares=100))  # last trade 100.0000
    return b


refs = itertools.count(1)


def risk_with(**changes) -> Risk:
    r = Risk(max_locate=8, max_own_orders=64)
    r.set_limits(dataclasses.replace(WIDE, **changes))
    return r


def check(r: Risk, books: Books, side: str = "B", qty: int = 100, price: int = BID, locate: int = 1,
          now: int = 1, **kw) -> str | None:
    return r.check(books, next(refs), locate, side, qty, price, now_ns=now, **kw)


def test_the_denial_codes_are_the_c_enum():
    # stable codes (journals, dashboards and scripts keep them): a new check takes the next number
    assert denial_names() == {0: "ok", 1: "bad_order", 2: "killed", 3: "halted", 4: "reduce_only",
                              5: "not_trading", 6: "max_qty", 7: "max_notional", 8: "max_position", 9: "max_gross",
                              10: "collar_bbo", 11: "collar_last", 12: "max_open_orders", 13: "order_rate",
                              14: "message_rate", 15: "self_match", 16: "odd_lot"}
    assert len(denial_names()) <= 32  # tw_risk_stats.denied has a counter for each


def test_nothing_trades_before_limits_are_published(books):
    r = Risk(max_locate=8)
    assert check(r, books) == "killed"


def test_bad_orders_are_refused_first(books):
    r = risk_with(kill=True)  # the kill flag would deny too: bad_order comes first
    assert check(r, books, qty=0) == "bad_order"
    assert check(r, books, price=0) == "bad_order"
    assert check(r, books, side="X") == "bad_order"
    assert check(r, books, locate=9) == "bad_order"
    r = risk_with()
    assert r.check(books, 77, 1, "B", 100, BID, now_ns=1) is None
    assert r.check(books, 77, 1, "B", 100, BID, now_ns=1) == "bad_order"  # a UserRefNum already open


def test_kill_flags_global_and_per_instrument(books):
    r = risk_with()
    r.kill_instrument(1)
    assert check(r, books, locate=1) == "killed" and check(r, books, locate=2) is None
    r.kill_instrument(1, False)
    assert check(r, books, locate=1) is None
    r.set_limits(dataclasses.replace(WIDE, kill=True))
    assert check(r, books, locate=2) == "killed"


def test_trading_states(books):
    assert check(risk_with(state="halted"), books) == "halted"
    r = risk_with(state="reduce_only")
    assert check(r, books, side="B") == "reduce_only" and check(r, books, side="S") == "reduce_only"  # flat
    r = risk_with()
    ref = next(refs)
    assert r.check(books, ref, 1, "B", 300, BID, now_ns=1) is None
    r.on_execution(ref, 300)  # long 300
    r.set_limits(dataclasses.replace(WIDE, state="reduce_only"))
    assert check(r, books, side="B", qty=1) == "reduce_only"
    assert check(r, books, side="S", qty=301) == "reduce_only"      # would turn short
    assert check(r, books, side="S", qty=300, price=ASK) is None    # back to flat: allowed
    assert check(r, books, side="S", qty=1, price=ASK) == "reduce_only"  # 300 already on the way out


def test_an_instrument_not_trading_or_stale_books_are_refused(books):
    r = risk_with()
    assert check(r, books, stale=True) == "not_trading"
    assert check(r, books, locate=3) == "not_trading"  # never told it trades
    books.apply(msg("H", 2, stock="T2", trading_state="H"))
    assert check(r, books, locate=2) == "not_trading"
    books.apply(msg("H", 2, stock="T2", trading_state="T"))
    books.apply(msg("h", 2, stock="T2", market_code="Q", operational_halt_action="H"))
    assert check(r, books, locate=2) == "not_trading"
    books.apply(msg("h", 2, stock="T2", market_code="Q", operational_halt_action="T"))
    assert check(r, books, locate=2) is None


@pytest.mark.parametrize("code", ["M", "E", "C"])
def test_nothing_trades_once_the_market_has_closed(books, code):
    r = risk_with()
    books.apply(msg("S", 0, event_code="Q"))  # market hours: trading
    assert check(r, books) is None
    books.apply(msg("S", 0, event_code=code))  # end of market hours, or later: the venue would refuse
    assert check(r, books) == "not_trading"


def test_max_quantity_and_notional_at_their_boundaries(books):
    r = risk_with(max_order_qty=500)
    assert check(r, books, qty=500) is None and check(r, books, qty=501) == "max_qty"
    r = risk_with(max_order_notional=BID * 200)
    assert check(r, books, qty=200) is None and check(r, books, qty=201) == "max_notional"


# One row a check with a limit: the limits, an order just inside it (passes), an order just past it
# (denied), and the reason its denial event gives (dpdk.risk.denial_reason). Adding a check: dpdk/README.md.
CHECKS = [
    ("killed", {"kill": True}, None, {}, "KILLED"),
    ("halted", {"state": "halted"}, None, {}, "HALTED: state=halted"),
    ("max_qty", {"max_order_qty": 500}, {"qty": 500}, {"qty": 501}, "MAX_QTY: max_order_qty=500, order=501"),
    ("max_notional", {"max_order_notional": BID * 200}, {"qty": 200}, {"qty": 201},
     "MAX_NOTIONAL: max_order_notional=20000, order=20100"),
    ("max_position", {"max_position": 300}, {"qty": 300}, {"qty": 301}, "MAX_POSITION: max_position=300, order=301"),
    ("max_gross", {"max_gross": 300}, {"qty": 300}, {"qty": 301}, "MAX_GROSS: max_gross=300, order=301"),
    ("collar_bbo", {"collar_bps": 10}, {"price": ASK + ASK * 10 // 10_000, "locate": 2},
     {"price": ASK + ASK * 10 // 10_000 + 1, "locate": 2}, "COLLAR_BBO: collar_bps=10, order=11"),
    ("max_open_orders", {"max_open_orders": 0}, None, {}, "MAX_OPEN_ORDERS: max_open_orders=0, order=1"),
    ("order_rate", {"order_rate": 1000, "order_burst": 0}, None, {}, "ORDER_RATE: order_rate=1000"),
    ("odd_lot", {"round_lot_qty": 100}, {"qty": 200}, {"qty": 150}, "ODD_LOT: round_lot_qty=100, order=150"),
]


@pytest.mark.parametrize("name,limits,inside,past,reason", CHECKS, ids=[c[0] for c in CHECKS])
def test_each_check_passes_inside_its_limit_and_denies_past_it_with_its_reason(books, name, limits, inside, past,
                                                                               reason):
    if inside is not None:
        assert check(risk_with(**limits), books, **inside) is None
    assert check(risk_with(**limits), books, **past) == name
    assert denial_reasons(books) == [reason]


def denial_reasons(books: Books) -> list[str]:
    """The reasons of the denials raised so far, rendered from the raw events' code, limit and value."""
    raised = (books._log_ev[i] for i in range(books._log.n))
    return [risk.denial_reason(e.code, e.limit, e.value) for e in raised if e.type == books.lib.TW_EV_RISK_DENIED]


def test_the_readme_table_of_denial_codes_is_current():
    text = risk.README.read_text()
    assert risk.denial_table() in text, ("dpdk/README.md's table of denial codes is stale: run .venv/bin/python "
                                         "-c 'from dpdk import risk; risk.write_denial_table()'")


def test_max_position_counts_open_orders_on_the_side(books):
    r = risk_with(max_position=1000)
    assert check(r, books, qty=600) is None
    assert check(r, books, qty=401) == "max_position"  # 600 open + 401
    assert check(r, books, qty=400) is None             # exactly 1000
    assert check(r, books, side="S", qty=1000, price=ASK) is None  # the other side: exposure still 1000
    assert check(r, books, side="S", qty=1001, price=ASK) == "max_position"


def test_max_gross_sums_instruments(books):
    r = risk_with(max_gross=1000)
    assert check(r, books, qty=700, locate=1) is None
    assert check(r, books, qty=301, locate=2) == "max_gross"
    assert check(r, books, qty=300, locate=2) is None


def test_price_collar_against_the_touch_and_the_last_trade(books):
    r = risk_with(collar_bps=10)  # 0.10 %: 100.01 + 0.1000 = 100.1100 for a buy
    # instrument 2 has not traded yet: only the touch binds
    assert check(r, books, locate=2, price=ASK + ASK * 10 // 10_000) is None
    assert check(r, books, locate=2, price=ASK + ASK * 10 // 10_000 + 1) == "collar_bbo"
    r = risk_with(collar_bps=10)  # (the buy above rests: a sell would match it)
    assert check(r, books, locate=2, side="S", price=BID - BID * 10 // 10_000) is None
    assert check(r, books, locate=2, side="S", price=BID - BID * 10 // 10_000 - 1) == "collar_bbo"
    # the last trade (100.0000) binds when the touch is further away
    books.apply(msg("A", 1, order_reference_number=90, side="S", shares=10, price=1_000_050))
    books.apply(msg("D", 1, order_reference_number=11))
    books.apply(msg("A", 1, order_reference_number=91, side="S", shares=10, price=1_002_000))  # ask 100.05
    books.apply(msg("E", 1, order_reference_number=90, executed_shares=10))  # last 100.0050, ask 100.20
    last = 1_000_050
    r = risk_with(collar_bps=10)
    assert check(r, books, price=last + last * 10 // 10_000) is None
    assert check(r, books, price=last + last * 10 // 10_000 + 1) == "collar_last"
    # no touch at all: nothing to check against
    empty = Books(max_locate=8, max_orders=10, levels_per_side=4)
    empty.apply(msg("H", 1, stock="T1", trading_state="T"))
    assert check(r, empty) == "collar_bbo"


def test_max_open_orders(books):
    r = risk_with(max_open_orders=2)
    first = next(refs)
    assert r.check(books, first, 1, "B", 1, BID, now_ns=1) is None
    assert check(r, books) is None and check(r, books) == "max_open_orders"
    r.on_done(first)
    assert check(r, books) is None


def test_order_and_message_rates_are_token_buckets(books):
    r = risk_with(order_rate=1000, order_burst=3)  # one token a millisecond
    for _ in range(3):
        assert check(r, books, now=1_000_000) is None
    assert check(r, books, now=1_000_000) == "order_rate"
    assert check(r, books, now=1_000_000 + 999_999) == "order_rate"
    assert check(r, books, now=2_000_000) is None  # a millisecond brought one token
    r = risk_with(message_rate=1000, message_burst=2)
    assert check(r, books, now=5) is None
    assert r.message(now_ns=5) is None  # a cancel takes a message token too
    assert r.message(now_ns=5) == "message_rate" and check(r, books, now=5) == "message_rate"


def test_self_match_against_our_own_resting_orders(books):
    r = risk_with()
    sell = next(refs)
    assert r.check(books, sell, 1, "S", 10, ASK, now_ns=1) is None
    assert check(r, books, side="B", price=ASK) == "self_match"
    assert check(r, books, side="B", price=ASK - 1) is None
    r.on_done(sell)
    assert check(r, books, side="B", price=ASK) is None


def test_the_chain_runs_in_its_fixed_order(books):
    """A killed, oversized, collared order in a halted state is denied for the
    first reason in the enum's order."""
    r = risk_with(kill=True, state="halted", max_order_qty=1, collar_bps=1)
    assert check(r, books, qty=5, price=2 * ASK) == "killed"
    r.set_limits(dataclasses.replace(WIDE, state="halted", max_order_qty=1, collar_bps=1))
    assert check(r, books, qty=5, price=2 * ASK) == "halted"
    r.set_limits(dataclasses.replace(WIDE, max_order_qty=1, collar_bps=1))
    assert check(r, books, qty=5, price=2 * ASK) == "max_qty"
    r.set_limits(dataclasses.replace(WIDE, collar_bps=1))
    assert check(r, books, qty=5, price=2 * ASK) == "collar_bbo"


def test_positions_follow_executions_and_denials_are_counted_and_raised(books):
    r = risk_with(max_order_qty=100)
    buy, sell = next(refs), next(refs)
    assert r.check(books, buy, 1, "B", 100, BID, now_ns=1) is None
    assert r.check(books, sell, 2, "S", 50, ASK, now_ns=1) is None
    r.on_execution(buy, 40)
    r.on_execution(buy, 60)   # fully executed: closed
    r.on_execution(sell, 50)
    assert (r.position(1), r.position(2)) == (100, -50)
    with pytest.raises(KeyError):
        r.on_done(buy)
    assert check(r, books, qty=101) == "max_qty"
    st = r.stats()
    assert st["open_orders"] == 0 and st["gross"] == 150 and st["denied"] == {"max_qty": 1}
    assert st["checked"] == 3 and st["passed"] == 2
    denied = [e for e in books.events() if e["event"] == "risk_denied"]
    assert len(denied) == 1 and denied[0]["denial"] == "max_qty" and denied[0]["locate"] == 1
    assert denied[0]["qty"] == 101 and denied[0]["user_ref"] > 0


def test_a_new_limits_table_is_taken_whole_at_the_next_check(books):
    r = risk_with(max_order_qty=10)
    assert r.stats()["limits_version"] == 0  # not checked yet
    assert check(r, books, qty=10) is None
    v = r.stats()["limits_version"]
    r.set_limits(dataclasses.replace(WIDE, max_order_qty=20))
    assert check(r, books, qty=20) is None and r.stats()["limits_version"] == v + 1
    with pytest.raises(ValueError, match="state 'paused'"):
        r.set_limits(dataclasses.replace(WIDE, state="paused"))
    with pytest.raises(ValueError, match="max_gross -1"):
        r.set_limits(dataclasses.replace(WIDE, max_gross=-1))


@given(st.lists(st.tuples(st.sampled_from(["check", "fill", "done", "message"]), st.integers(1, 3),
                          st.sampled_from("BS"), st.integers(0, 400), st.integers(0, 3), st.integers(0, 50)),
                max_size=120))
@settings(max_examples=200, deadline=None)
def test_random_order_flow_keeps_positions_and_exposure_consistent(ops):
    """Against a plain model: open orders, positions and gross exposure agree
    after any sequence of checks, fills, cancels and messages."""
    b = Books(max_locate=8, max_orders=100, levels_per_side=8)
    for loc in (1, 2, 3):
        b.apply(msg("H", loc, stock=f"T{loc}", trading_state="T"))
    r = risk_with(max_open_orders=20, max_position=600, max_gross=1200, order_rate=0)
    model: dict[int, list] = {}  # ref -> [locate, side, open]
    pos = {1: 0, 2: 0, 3: 0}
    ref = 0
    for op, loc, side, qty, pick, step in ops:
        now = 1 + step
        if op == "check":
            ref += 1
            if r.check(b, ref, loc, side, qty, BID + 100 * (pick if side == "S" else -pick), now_ns=now) is None:
                model[ref] = [loc, side, qty]
        elif op in ("fill", "done") and model:
            k = sorted(model)[pick % len(model)]
            if op == "fill":
                n = min(qty, model[k][2])
                r.on_execution(k, qty)
                pos[model[k][0]] += n if model[k][1] == "B" else -n
                model[k][2] -= n
                if model[k][2] == 0:
                    del model[k]
            else:
                r.on_done(k)
                del model[k]
        elif op == "message":
            r.message(now_ns=now)
    assert r.stats()["open_orders"] == len(model)
    gross = 0
    for loc in (1, 2, 3):
        assert r.position(loc) == pos[loc]
        buys = sum(o[2] for o in model.values() if o[0] == loc and o[1] == "B")
        sells = sum(o[2] for o in model.values() if o[0] == loc and o[1] == "S")
        gross += max(abs(pos[loc] + buys), abs(pos[loc] - sells))
        assert max(abs(pos[loc] + buys), abs(pos[loc] - sells)) <= 600
    assert r.stats()["gross"] == gross <= 1200


def test_the_own_order_table_is_never_overfilled(books):
    r = Risk(max_locate=8, max_own_orders=2)
    r.set_limits(WIDE)  # max_open_orders 100: the table is the tighter bound
    assert check(r, books, price=BID - 100) is None and check(r, books, price=BID - 200) is None
    assert check(r, books, price=BID - 300) == "max_open_orders"  # refused, not a hang


def table_with(rows: list[dict], **global_changes) -> Risk:
    r = Risk(max_locate=8, max_own_orders=64)
    r.set_table(dataclasses.replace(WIDE, **global_changes), [dataclasses.replace(WIDE, **row) for row in rows])
    return r


def test_a_strategys_order_trades_under_the_stricter_of_global_and_its_row(books):
    r = table_with([{"max_order_qty": 200}, {}], max_order_qty=300)
    assert check(r, books, qty=201, strategy=0) == "max_qty" and check(r, books, qty=200, strategy=0) is None
    assert check(r, books, qty=301, strategy=1) == "max_qty" and check(r, books, qty=300, strategy=1) is None
    assert check(r, books, qty=301) == "max_qty"  # no strategy: global alone
    r = table_with([{"state": "halted"}, {"state": "active"}], state="reduce_only")
    assert check(r, books, strategy=0) == "halted" and check(r, books, strategy=1) == "reduce_only"
    r = table_with([{"collar_bps": 0}], collar_bps=5)  # 0 is "no collar": the global one applies
    assert check(r, books, price=BID + BID * 6 // 10000 + 200, strategy=0) == "collar_bbo"


def test_open_orders_and_rates_count_in_the_row_and_in_the_whole_worker(books):
    r = table_with([{"max_open_orders": 2}, {"max_open_orders": 5}], max_open_orders=4)
    assert [check(r, books, strategy=0) for _ in range(3)] == [None, None, "max_open_orders"]
    assert [check(r, books, strategy=1) for _ in range(3)] == [None, None, "max_open_orders"]  # 4 in all
    assert len(r.open_orders()) == 4 and len(r.open_orders(strategy=0)) == 2 and len(r.open_orders(strategy=1)) == 2
    r.on_done(r.open_orders(strategy=0)[0])
    assert check(r, books, strategy=1) is None and check(r, books, strategy=0) == "max_open_orders"
    r = table_with([{"order_rate": 1, "order_burst": 1}, {}], order_rate=10, order_burst=2)
    assert check(r, books, strategy=0, now=1) is None and check(r, books, strategy=0, now=2) == "order_rate"
    assert check(r, books, strategy=1, now=3) is None  # the global bucket had two
    assert check(r, books, strategy=1, now=4) == "order_rate"
    r = table_with([{"message_rate": 1, "message_burst": 1}, {}], message_rate=0)
    assert r.message(now_ns=5, strategy=0) is None and r.message(now_ns=6, strategy=0) == "message_rate"
    assert r.message(now_ns=7, strategy=1) is None  # its own row has no message limit


def test_a_killed_strategy_row_refuses_its_orders_and_its_open_orders_are_listed_by_owner(books):
    r = table_with([{}, {}])
    a, b = next(refs), next(refs)
    assert r.check(books, a, 1, "B", 100, BID, now_ns=1, strategy=0) is None
    assert r.check(books, b, 2, "B", 100, BID, now_ns=1, strategy=1) is None
    assert (r.order_strategy(a), r.order_strategy(b)) == (0, 1)
    r.kill_strategy(0)
    assert check(r, books, strategy=0) == "killed" and check(r, books, strategy=1) is None
    assert r.open_orders(strategy=0) == [a] and r.open_orders(locate=2, strategy=1) == [b]
    r.kill_strategy(0, False)
    assert check(r, books, strategy=0) is None
    r.on_done(a)
    with pytest.raises(KeyError):
        r.order_strategy(a)
    assert r.seed_order(next(refs), 1, "S", 10, ASK) and r.seed_order(c := next(refs), 1, "S", 10, ASK, strategy=1)
    assert r.order_strategy(c) == 1


def test_the_whole_table_global_and_rows_is_swapped_in_one_publish(books):
    r = table_with([{"max_order_qty": 100}], max_order_qty=1000)
    assert check(r, books, qty=101, strategy=0) == "max_qty"
    before = r.stats()["limits_version"]
    r.set_table(dataclasses.replace(WIDE, max_order_qty=50), [dataclasses.replace(WIDE, max_order_qty=5000)])
    assert check(r, books, qty=60, strategy=0) == "max_qty" and check(r, books, qty=50, strategy=0) is None
    assert r.stats()["limits_version"] == before + 1
    with pytest.raises(ValueError, match="at most 64"):
        r.set_table(WIDE, [WIDE] * 65)


def test_an_orders_strategy_is_kept_whatever_rows_the_table_has(books):
    r = Risk(max_locate=8, max_own_orders=64)
    r.set_table(WIDE, [WIDE, WIDE])
    seeded = next(refs)
    assert r.seed_order(seeded, 1, "B", 10, BID, strategy=1)  # right after the publish, before any check
    assert r.order_strategy(seeded) == 1 and r.open_orders(strategy=1) == [seeded]
    r.set_limits(WIDE)  # a table without rows: the strategy's orders are still its own
    ref = next(refs)
    assert r.check(books, ref, 1, "B", 100, BID, now_ns=1, strategy=3) is None
    assert r.order_strategy(ref) == 3 and r.open_orders(strategy=3) == [ref]
    r.kill_strategy(3)  # and its kill holds without a row of its own
    assert check(r, books, strategy=3) == "killed" and check(r, books, strategy=2) is None
