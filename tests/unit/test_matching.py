"""The matching engine: price-time priority, and an ITCH stream that rebuilds its book."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.lab.exchange.book import BUY, SELL, Engine, OrderError
from appliance.protocols import itch
from appliance.protocols.itchbook import ItchBook


def engine(*symbols: str) -> Engine:
    clock = itertools.count(34_200_000_000_000, 1000)
    return Engine(symbols or ("AAPL",), lambda: next(clock))


def types(e: Engine) -> list[str]:
    return [r.TYPE for r in e.events]


def test_a_resting_order_is_published_as_add():
    e = engine()
    r = e.add("AAPL", BUY, 1_500_000, 100)
    assert (r.ref, r.rested, r.fills) == (1, 100, [])
    (add,) = e.events
    assert (add.TYPE, add.order_reference_number, add.side, add.shares, add.stock, add.price, add.stock_locate) == (
        "A", 1, "B", 100, "AAPL", 1_500_000, 1)


def test_an_mpid_makes_it_an_add_with_attribution():
    e = engine()
    e.add("AAPL", SELL, 1_500_100, 100, mpid="TWLB")
    assert e.events[0].TYPE == "F" and e.events[0].attribution == "TWLB"


def test_best_price_fills_first_then_oldest_first():
    e = engine()
    a = e.add("AAPL", SELL, 1_500_200, 100).ref
    b = e.add("AAPL", SELL, 1_500_100, 100).ref  # better price, later
    c = e.add("AAPL", SELL, 1_500_100, 100).ref  # same price, later still
    r = e.add("AAPL", BUY, 1_500_200, 250)
    assert [(f.resting_ref, f.qty, f.price) for f in r.fills] == [(b, 100, 1_500_100), (c, 100, 1_500_100),
                                                                  (a, 50, 1_500_200)]
    assert r.ref is None and r.rested == 0
    execs = [ev for ev in e.events if ev.TYPE == "E"]
    assert [(x.order_reference_number, x.executed_shares) for x in execs] == [(b, 100), (c, 100), (a, 50)]
    assert len({x.match_number for x in execs}) == 3


def test_the_remainder_of_a_marketable_order_rests_unless_ioc():
    e = engine()
    e.add("AAPL", SELL, 1_500_000, 100)
    r = e.add("AAPL", BUY, 1_500_000, 300)
    assert r.rested == 200 and e.books["AAPL"].best(BUY) == 1_500_000
    r2 = e.add("AAPL", SELL, 1_499_000, 500, ioc=True)
    assert r2.canceled == 300 and r2.ref is None and e.books["AAPL"].best(SELL) is None


def test_partial_and_full_cancels():
    e = engine()
    ref = e.add("AAPL", BUY, 1_000_000, 500).ref
    assert e.cancel(ref, 200) == 200
    assert e.cancel(ref) == 300
    assert types(e) == ["A", "X", "D"]
    with pytest.raises(OrderError, match="order 1 is not open"):
        e.cancel(ref)


def test_replace_gets_a_new_reference_and_loses_priority():
    e = engine()
    first = e.add("AAPL", BUY, 1_000_000, 100).ref
    second = e.add("AAPL", BUY, 1_000_000, 100).ref
    new = e.replace(first, 100, 1_000_000).ref
    assert types(e)[-1] == "U" and e.events[-1].original_order_reference_number == first
    fills = e.add("AAPL", SELL, 1_000_000, 100).fills
    assert fills[0].resting_ref == second  # the replaced order went to the back
    assert new in e.orders


def test_a_replace_that_crosses_becomes_a_delete_and_a_marketable_order():
    e = engine()
    e.add("AAPL", SELL, 1_000_100, 100)
    bid = e.add("AAPL", BUY, 1_000_000, 100).ref
    r = e.replace(bid, 100, 1_000_100)
    assert types(e)[-2:] == ["D", "E"] and r.fills[0].qty == 100


def test_hidden_orders_trade_as_p_and_are_never_published():
    e = engine()
    e.add("AAPL", SELL, 1_000_000, 100, display=False)
    assert e.events == []
    e.add("AAPL", BUY, 1_000_000, 40)
    (p,) = [ev for ev in e.events if ev.TYPE == "P"]
    assert (p.order_reference_number, p.shares, p.price, p.side) == (0, 40, 1_000_000, "S")


@pytest.mark.parametrize("call, message", [
    (lambda e: e.add("MSFT", BUY, 1, 1), "unknown symbol 'MSFT'"),
    (lambda e: e.add("AAPL", "X", 1, 1), "side 'X' must be B or S"),
    (lambda e: e.add("AAPL", BUY, 1, 0), "must be positive"),
    (lambda e: e.replace(99, 1, 1), "order 99 is not open"),
])
def test_bad_requests_are_order_errors(call, message):
    with pytest.raises(OrderError, match=message):
        call(engine())


OPS = st.lists(st.tuples(st.sampled_from(["add", "add", "add", "cancel", "partial", "replace", "ioc", "hidden"]),
                         st.sampled_from(["AAA", "BBB"]), st.sampled_from([BUY, SELL]),
                         st.integers(990, 1010), st.integers(1, 500), st.integers(0, 10_000)), max_size=200)


@given(OPS)
@settings(max_examples=200, deadline=None)
def test_the_itch_stream_rebuilds_the_engines_book_exactly(ops):
    e = engine("AAA", "BBB")
    for op, sym, side, tick, qty, pick in ops:
        price = tick * 100
        try:
            if op in ("add", "ioc", "hidden"):
                e.add(sym, side, price, qty, ioc=op == "ioc", display=op != "hidden")
            elif e.orders:
                ref = sorted(e.orders)[pick % len(e.orders)]
                if op == "cancel":
                    e.cancel(ref)
                elif op == "partial":
                    e.cancel(ref, max(1, e.orders[ref].qty // 2))
                else:
                    e.replace(ref, qty, price)
        except OrderError:
            pass
    rebuilt = ItchBook()
    for ev in e.events:
        rebuilt.apply(itch.decode(itch.encode(ev)))  # through the wire format
    for book in e.books.values():
        for side in (BUY, SELL):
            assert rebuilt.levels(book.locate, side) == book.depth(side, 10_000)
        bid, ask = book.best(BUY), book.best(SELL)
        if bid is not None and ask is not None:
            assert bid < ask  # never crossed
