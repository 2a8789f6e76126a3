"""The C order book equals the Python reference book after every message; bad
messages are refused with their reason and never crash it."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.lab.exchange import gen
from appliance.protocols import binaryfile, capture, itch, moldudp64
from appliance.protocols.itchbook import BookError, ItchBook
from common import paths
from dpdk.books import Books


def at(t: str, locate: int, **fields) -> bytes:
    return itch.encode(dataclasses.replace(itch.example(t, 0), stock_locate=locate, **fields))


def agree(c: Books, ref: ItchBook, locate: int) -> None:
    for side in "BS":
        assert [(p, s) for p, s, _ in c.depth(locate, side)] == ref.levels(locate, side), (locate, side)


def test_the_c_book_equals_the_reference_after_every_message_of_a_generated_day(tmp_path):
    day = tmp_path / "day.itch"
    gen.generate(day, symbols=6, messages=40_000, seed=21)
    c, ref = Books(max_locate=10, max_orders=100_000), ItchBook()
    for raw in binaryfile.iter_messages(day.read_bytes()):
        rec = itch.decode(raw)
        ref.apply(rec)
        assert c.apply(raw) == 0, rec
        if rec.TYPE in "AFECXDU":
            agree(c, ref, rec.stock_locate)
    for locate in range(1, 7):
        agree(c, ref, locate)
    assert c.live_orders == len(ref.orders)
    stats = c.stats()
    assert stats["errors"] == {} and stats["applied"] > 35_000 and stats["ignored"] > 0


def test_order_counts_per_level_follow_the_orders(tmp_path):
    day = tmp_path / "day.itch"
    gen.generate(day, symbols=3, messages=5_000, seed=3)
    c, ref = Books(max_locate=5, max_orders=20_000), ItchBook()
    c.apply_binaryfile(day.read_bytes())
    for raw in binaryfile.iter_messages(day.read_bytes()):
        ref.apply(itch.decode(raw))
    for locate in (1, 2, 3):
        for side in "BS":
            counts = {}
            for o in ref.orders.values():
                if o.locate == locate and o.side == side:
                    counts[o.price] = counts.get(o.price, 0) + 1
            assert {p: n for p, _, n in c.depth(locate, side)} == counts


def add(ref: int, side: str = "B", shares: int = 100, price: int = 1_000_000, locate: int = 1) -> bytes:
    return itch.encode(dataclasses.replace(itch.example("A", 0), stock_locate=locate, order_reference_number=ref,
                                           side=side, shares=shares, price=price))


def msg(t: str, **fields) -> bytes:
    return itch.encode(dataclasses.replace(itch.example(t, 0), stock_locate=1, **fields))


def test_each_refusal_names_its_reason_and_leaves_the_book_alone():
    c = Books(max_locate=4, max_orders=3, levels_per_side=2)
    assert c.apply(add(1)) == 0
    before = c.depth(1, "B")
    lib = c.lib
    cases = [
        (add(1), lib.TW_BOOK_EDUPLICATE),
        (msg("E", order_reference_number=9, executed_shares=1), lib.TW_BOOK_EUNKNOWN),
        (msg("X", order_reference_number=1, canceled_shares=101), lib.TW_BOOK_EOVERFILL),
        (add(2, locate=5), lib.TW_BOOK_EBADLOCATE),
        (add(3, side="Q"), lib.TW_BOOK_EBADFIELD),
        (add(4)[:-1], lib.TW_BOOK_EBADLENGTH),
        (b"", lib.TW_BOOK_EBADLENGTH),
    ]
    for raw, code in cases:
        assert c.apply(raw) == code
        assert c.depth(1, "B") == before
    assert c.apply(add(5, price=1_000_100)) == 0
    assert c.apply(add(6, price=1_000_200)) == lib.TW_BOOK_ELEVELS  # two levels a side
    assert c.apply(add(7, side="S", price=2_000_000)) == 0
    assert c.apply(add(8, side="S", price=2_000_100)) == lib.TW_BOOK_EFULL  # three orders in all
    assert c.stats()["errors"] == {"duplicate": 1, "unknown order": 1, "overfill": 1, "bad locate": 1,
                                   "bad field": 1, "bad length": 2, "levels full": 1, "orders full": 1}


def test_replace_keeps_side_and_instrument_and_partial_fills_count():
    c = Books(max_locate=4, max_orders=10)
    c.apply(add(1, side="S", shares=300, price=1_500_000))
    c.apply(msg("E", order_reference_number=1, executed_shares=100))
    c.apply(msg("C", order_reference_number=1, executed_shares=50, execution_price=1_499_900))
    assert c.depth(1, "S") == [(1_500_000, 150, 1)]
    c.apply(msg("U", original_order_reference_number=1, new_order_reference_number=2, shares=80,
                price=1_499_800))
    assert c.depth(1, "S") == [(1_499_800, 80, 1)] and c.live_orders == 1
    c.apply(msg("D", order_reference_number=2))
    assert c.depth(1, "S") == [] and c.live_orders == 0


def test_micro_price_weighs_each_side_by_the_other_sides_size():
    c = Books(max_locate=4, max_orders=10)
    assert c.micro_price(1) is None
    c.apply(add(1, side="B", shares=300, price=1_000_000))
    c.apply(add(2, side="S", shares=100, price=1_000_100))
    assert c.micro_price(1) == (1_000_000 * 100 + 1_000_100 * 300) // 400  # leans to the thin ask


def test_genuine_captures_are_treated_as_the_reference_treats_them():
    data = paths.shared_data()
    if data is None:
        pytest.skip("../shared/data is absent (set TICKWIRE_SHARED_DATA)")
    for f in sorted((data / "nasdaq").glob("*Itch*/*.pcap")):
        c, ref = Books(levels_per_side=64), ItchBook()
        for frame in capture.read_frames(f):
            for raw in moldudp64.unpack(frame.payload).messages:
                try:
                    ref.apply(itch.decode(raw))
                    ok = True
                except BookError:  # an execute or delete of an order these one-message captures never added
                    ok = False
                assert (c.apply(raw) == 0) == ok, f
                rec = itch.decode(raw)
                agree(c, ref, rec.stock_locate)


@given(st.lists(st.binary(min_size=0, max_size=48), max_size=60))
@settings(max_examples=300, deadline=None)
def test_random_bytes_never_crash_the_c_book(blobs):
    c = Books(max_locate=100, max_orders=1000, levels_per_side=16)
    for blob in blobs:
        assert c.apply(blob) <= 0
    for locate in (0, 1, 7):
        for side in "BS":
            levels = c.depth(locate, side)
            assert all(shares > 0 and orders > 0 for _, shares, orders in levels)


def test_a_watched_instruments_change_is_listed_once_in_the_order_it_came():
    b = Books(max_locate=8, max_orders=100, levels_per_side=8)
    b.watch(3)
    b.watch(1)
    add = lambda loc, ref: b.apply(at("A", loc, order_reference_number=ref, side="B", shares=10, price=100))  # noqa: E731
    add(2, 1)
    assert b.take_touched() == []  # not watched
    add(3, 2)
    add(1, 3)
    add(3, 4)
    assert b.take_touched() == [3, 1] and b.take_touched() == []
    b.apply(at("D", 3, order_reference_number=2))
    b.watch(3, False)
    assert b.take_touched() == []  # an instrument no longer watched leaves the list too
    with pytest.raises(ValueError, match="out of range"):
        b.watch(9)
    for loc in range(1, 9):
        b.watch(loc)
    big = Books(max_locate=100, max_orders=10, levels_per_side=2)
    for loc in range(1, 65):
        big.watch(loc)
    with pytest.raises(ValueError, match="64 instruments are watched already"):
        big.watch(65)
