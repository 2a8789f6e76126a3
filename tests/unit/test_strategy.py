"""The C strategies against real books: the market maker quotes around the
micro-price with inventory skew, throttles and pulls its quotes when the book is
stale or the instrument halts; the taker crosses on imbalance at its threshold,
then cools down. UserRefNums are never reused."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.protocols import itch
from dpdk.books import Books
from dpdk.strategy import Params, Strategy

MS = 1_000_000


def msg(t: str, locate: int = 1, **fields) -> bytes:
    return itch.encode(dataclasses.replace(itch.example(t, 0), stock_locate=locate, **fields))


def add(b: Books, ref: int, side: str, shares: int, price: int) -> None:
    assert b.apply(msg("A", order_reference_number=ref, side=side, shares=shares, price=price)) == 0


@pytest.fixture
def books() -> Books:
    b = Books(max_locate=8, max_orders=1000, levels_per_side=16)
    b.apply(msg("H", stock="T1", trading_state="T"))
    add(b, 1, "B", 300, 1_000_000)  # 100.00 x 300
    add(b, 2, "S", 300, 1_000_400)  # 100.04 x 300: micro-price 100.02
    return b


MM = Params(kind="market_maker", locate=1, tick=100, half_spread=100, quote_size=50, skew=0, min_move=100,
            refresh_ns=10 * MS, max_position=120)


def new(actions):
    return [a for a in actions if a["action"] == "new"]


def test_the_market_maker_quotes_around_the_micro_price(books):
    s = Strategy(MM, user_ref_base=1000)
    acts = s.on_book(books, 1, now_ns=1)
    assert [(a["side"], a["price"], a["qty"]) for a in acts] == [("B", 1_000_100, 50), ("S", 1_000_300, 50)]
    assert [a["user_ref"] for a in acts] == [1000, 1001] and not any(a["ioc"] for a in acts)
    assert s.on_book(books, 1, now_ns=2) == []  # nothing moved
    assert s.on_book(books, 2, now_ns=3) == []  # another instrument


def test_a_requote_waits_for_the_throttle_and_the_minimum_move(books):
    s = Strategy(MM)
    s.on_book(books, 1, now_ns=1)
    add(books, 3, "B", 1200, 1_000_200)  # bids deepen: micro-price 100.036
    assert s.on_book(books, 1, now_ns=1 + MS) == []  # throttled (10 ms)
    acts = s.on_book(books, 1, now_ns=1 + 10 * MS)
    assert [a["action"] for a in acts] == ["cancel", "new", "cancel", "new"]
    assert [a["price"] for a in new(acts)] == [1_000_200, 1_000_500]
    again = s.on_timer(books, now_ns=1 + 30 * MS)
    assert again == []  # moved less than min_move since
    refs = [a["user_ref"] for a in new(acts)]
    assert refs == sorted(set(refs)) and min(refs) > 2  # fresh references


def test_inventory_skews_the_quotes_and_caps_the_side(books):
    s = Strategy(dataclasses.replace(MM, skew=2000))  # 2 price units (0.0002) per share held
    bid, ask = new(s.on_book(books, 1, now_ns=1))
    s.on_order(bid["user_ref"], "executed", 50)  # long 50: fully executed, the bid is gone
    acts = s.on_book(books, 1, now_ns=20 * MS)
    # fair = 100.02 - 50 x 0.0002 = 100.01: bid 100.00, ask 100.02 (the old ask at 100.03 is replaced)
    assert [(a["side"], a["price"]) for a in new(acts)] == [("B", 1_000_000), ("S", 1_000_200)]
    assert [a["user_ref"] for a in acts if a["action"] == "cancel"] == [ask["user_ref"]]
    assert s.stats()["position"] == 50
    s.on_order(new(acts)[0]["user_ref"], "executed", 50)  # long 100: another 50 would pass 120
    acts = s.on_book(books, 1, now_ns=40 * MS)
    assert all(a["side"] == "S" for a in new(acts)) and s.stats()["position"] == 100


def test_quotes_are_pulled_when_the_books_are_stale_or_the_instrument_halts(books):
    s = Strategy(MM)
    quotes = new(s.on_book(books, 1, now_ns=1))
    pulled = s.on_book(books, 1, now_ns=2, stale=True)
    assert sorted(a["user_ref"] for a in pulled if a["action"] == "cancel") == sorted(q["user_ref"] for q in quotes)
    assert s.on_book(books, 1, now_ns=3, stale=True) == []  # nothing left to pull, nothing new
    books.apply(msg("H", stock="T1", trading_state="H"))
    assert s.on_book(books, 1, now_ns=20 * MS) == []
    assert s.stats()["skipped"] == 3 and s.stats()["book_updates"] == 1
    books.apply(msg("H", stock="T1", trading_state="T"))
    assert len(new(s.on_book(books, 1, now_ns=40 * MS))) == 2


def test_disabling_pulls_the_quotes_and_a_new_table_is_taken_whole(books):
    s = Strategy(MM)
    s.on_book(books, 1, now_ns=1)
    s.set_params(dataclasses.replace(MM, enabled=False))
    assert [a["action"] for a in s.on_book(books, 1, now_ns=2)] == ["cancel", "cancel"]
    s.set_params(dataclasses.replace(MM, half_spread=300))
    acts = s.on_book(books, 1, now_ns=20 * MS)
    assert [a["price"] for a in new(acts)] == [999_900, 1_000_500] and s.stats()["params_version"] == 3
    with pytest.raises(ValueError, match="kind 'arbitrage'"):
        s.set_params(dataclasses.replace(MM, kind="arbitrage"))


TAKER = Params(kind="taker", locate=1, imbalance_bps=5000, levels=2, take_size=30, cooldown_ns=5 * MS,
               max_position=100)


def test_the_taker_crosses_at_its_imbalance_threshold_then_cools_down(books):
    s = Strategy(TAKER)
    assert s.on_book(books, 1, now_ns=1) == []  # 300 against 300
    add(books, 3, "B", 600, 999_900)  # 900 bids against 300 offers: exactly 50.00 %
    (take,) = s.on_book(books, 1, now_ns=2)
    assert (take["side"], take["price"], take["qty"], take["ioc"]) == ("B", 1_000_400, 30, True)
    add(books, 4, "B", 600, 999_800)  # (outside the two levels summed)
    assert s.on_book(books, 1, now_ns=2 + 4 * MS) == []  # cooling down
    assert len(s.on_book(books, 1, now_ns=2 + 5 * MS)) == 1


def test_the_taker_stays_just_below_its_threshold_and_sells_the_other_way(books):
    s = Strategy(TAKER)
    add(books, 3, "B", 599, 999_900)  # 899 against 300: 49.96 %
    assert s.on_book(books, 1, now_ns=1) == []
    add(books, 4, "S", 1500, 1_000_500)  # 899 against 1800: -33 %
    add(books, 5, "S", 1000, 1_000_400)  # 899 against 3100 (two levels): -55 %
    (take,) = s.on_book(books, 1, now_ns=2)
    assert (take["side"], take["price"]) == ("S", 1_000_000)


@given(st.lists(st.tuples(st.sampled_from(["add", "del", "book", "stale", "exec", "done", "timer", "halt"]),
                          st.integers(0, 40), st.sampled_from("BS")), max_size=150),
       st.sampled_from(["market_maker", "taker"]))
@settings(max_examples=150, deadline=None)
def test_random_flow_never_reuses_a_reference_nor_trades_a_stale_or_halted_book(ops, kind):
    b = Books(max_locate=8, max_orders=1000, levels_per_side=64)
    b.apply(msg("H", stock="T1", trading_state="T"))
    s = Strategy(dataclasses.replace(MM if kind == "market_maker" else TAKER, refresh_ns=0, cooldown_ns=0))
    seen: set[int] = set()
    mine: list[int] = []
    ref, now, halted = 100, 0, False
    for op, x, side in ops:
        now += MS
        acts = []
        if op == "add":
            ref += 1
            b.apply(msg("A", order_reference_number=ref, side=side, shares=1 + x,
                        price=1_000_000 + (100 * x if side == "S" else -100 * x)))
        elif op == "del" and ref > 100:
            b.apply(msg("D", order_reference_number=101 + x % (ref - 100)))
        elif op in ("book", "stale"):
            acts = s.on_book(b, 1, now_ns=now, stale=op == "stale" or halted)
            if op == "stale" or halted:
                assert new(acts) == []
        elif op == "timer":
            acts = s.on_timer(b, now_ns=now, stale=halted)
        elif op == "halt":
            halted = not halted
        elif op in ("exec", "done") and mine:
            s.on_order(mine[x % len(mine)], "executed" if op == "exec" else "done", x)
        for a in new(acts):
            assert a["user_ref"] not in seen and a["qty"] > 0 and a["price"] > 0
            seen.add(a["user_ref"])
            mine.append(a["user_ref"])
    assert abs(s.stats()["position"]) <= 1000


def test_references_must_fit_ouch_and_a_market_maker_switched_off_pulls_its_quotes(books):
    with pytest.raises(ValueError, match="4 bytes"):
        Strategy(MM, user_ref_base=2**32)
    s = Strategy(MM)
    quotes = new(s.on_book(books, 1, now_ns=1))
    s.set_params(dataclasses.replace(MM, kind="taker"))
    pulled = s.on_timer(books, now_ns=2)
    assert sorted(a["user_ref"] for a in pulled if a["action"] == "cancel") == sorted(q["user_ref"] for q in quotes)


def test_the_market_maker_quotes_a_ladder_of_levels_a_tick_apart(books):
    s = Strategy(dataclasses.replace(MM, quote_levels=5, max_position=1000))
    first = s.on_book(books, 1, now_ns=1)
    assert len(first) == 8  # one answer holds 8 actions: the timer goes on with the rest
    quotes = new(first) + new(s.on_timer(books, now_ns=2))
    assert s.on_timer(books, now_ns=3) == []  # the whole ladder stands
    bids = sorted((a["price"] for a in quotes if a["side"] == "B"), reverse=True)
    asks = sorted(a["price"] for a in quotes if a["side"] == "S")
    assert bids == [1_000_100 - 100 * k for k in range(5)] and asks == [1_000_300 + 100 * k for k in range(5)]
    s.set_params(dataclasses.replace(MM, quote_levels=2, max_position=1000))  # a shorter ladder
    cancels = [a for a in s.on_timer(books, now_ns=4) if a["action"] == "cancel"]
    assert len(cancels) == 6  # the levels no longer wanted
    capped = Strategy(dataclasses.replace(MM, quote_levels=5, max_position=120))  # 50 a quote: two levels fit
    acts = new(capped.on_book(books, 1, now_ns=1)) + new(capped.on_timer(books, now_ns=2))
    assert sorted(a["price"] for a in acts if a["side"] == "B") == [999_100 + 900, 1_000_100]



def test_once_the_market_closes_the_strategy_sends_nothing_more(books):
    s = Strategy(MM)
    assert len(new(s.on_book(books, 1, now_ns=1))) == 2
    books.apply(msg("S", 0, event_code="M"))  # end of market hours: day orders end with the session
    add(books, 9, "B", 5000, 1_000_300)  # a book change that would move the quotes
    assert s.on_book(books, 1, now_ns=20 * MS) == [] and s.on_timer(books, now_ns=40 * MS) == []
    assert s.stats()["skipped"] == 2


def test_strategies_sharing_a_series_hand_out_one_increasing_run_of_references(books):
    a = Strategy(Params(kind="market_maker", locate=1, half_spread=200), user_ref_base=10)
    b = Strategy(Params(kind="market_maker", locate=2, half_spread=200), user_ref_base=1)
    b.share_refs(a)
    books.apply(msg("H", 2, stock="T2", trading_state="T"))
    books.apply(msg("A", 2, order_reference_number=7, side="B", shares=300, price=2_000_000))
    books.apply(msg("A", 2, order_reference_number=8, side="S", shares=300, price=2_000_400))
    got = []
    for _ in range(3):
        for s, loc in ((a, 1), (b, 2)):
            got += [x["user_ref"] for x in s.on_book(books, loc, now_ns=0) if x["action"] == "new"]
            for x in got:
                s.on_order(x, "done")
    assert len(got) == 12 and got == sorted(got) and len(got) == len(set(got)) and got[0] == 10
