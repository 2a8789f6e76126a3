"""The C side beyond the book levels: ITCH state messages surfaced as instrument
state and events, the feed's gap events, refused replaces leaving the book
alone, and the latency histogram's buckets."""

from __future__ import annotations

import dataclasses
import random

import pytest

from appliance.protocols import binaryfile, itch, moldudp64
from common import paths
from dpdk import native
from dpdk.books import Books, Feed

SESSION = "TWTEST0001"


def msg(t: str, locate: int = 1, **fields) -> bytes:
    return itch.encode(dataclasses.replace(itch.example(t, 0), stock_locate=locate, **fields))


def add(ref: int, side: str = "B", shares: int = 100, price: int = 1_000_000, locate: int = 1) -> bytes:
    return msg("A", locate, order_reference_number=ref, side=side, shares=shares, price=price)


def test_state_messages_become_instrument_state_and_events():
    b = Books(max_locate=10, max_orders=100)
    b.record_events()
    assert b.system_event is None
    b.apply(msg("S", 0, event_code="O"))
    b.apply(msg("R", 3, stock="ZVZZT", market_category="Q", round_lot_size=100))
    b.apply(msg("H", 3, stock="ZVZZT", trading_state="H"))
    b.apply(msg("h", 3, stock="ZVZZT", market_code="Q", operational_halt_action="H"))
    b.apply(msg("Y", 3, stock="ZVZZT", reg_sho_action="1"))
    b.apply(msg("W", 0, breached_level="2"))
    b.apply(msg("S", 0, event_code="Q"))
    assert b.system_event == "Q"
    assert b.instrument(3) == {"locate": 3, "symbol": "ZVZZT", "trading_state": "H", "operational_halt": True,
                               "reg_sho": "1", "market_category": "Q", "round_lot": 100, "last_trade": 0}
    events = [(e["event"], e.get("code"), e.get("symbol")) for e in b.events()]
    assert events == [("system", "O", None), ("trading_action", "H", "ZVZZT"), ("operational_halt", "H", "ZVZZT"),
                      ("reg_sho", "1", "ZVZZT"), ("mwcb", "2", None), ("system", "Q", None)]
    b.apply(msg("H", 3, stock="ZVZZT", trading_state="T"))
    b.apply(msg("h", 3, stock="ZVZZT", market_code="Q", operational_halt_action="T"))
    assert b.instrument(3)["trading_state"] == "T" and b.instrument(3)["operational_halt"] is False
    assert b.stats()["state"] == 9 and b.stats()["applied"] == 0
    assert b.active() == [3]
    with pytest.raises(ValueError, match="above max_locate"):
        b.instrument(11)


def test_the_last_trade_comes_from_executions_and_trades():
    b = Books(max_locate=10, max_orders=100)
    assert b.instrument(1)["last_trade"] == 0
    b.apply(add(1, "S", 100, 1_000_300))
    b.apply(msg("E", order_reference_number=1, executed_shares=10))
    assert b.instrument(1)["last_trade"] == 1_000_300  # at the resting order's price
    b.apply(msg("C", order_reference_number=1, executed_shares=10, execution_price=1_000_200))
    assert b.instrument(1)["last_trade"] == 1_000_200
    b.apply(msg("P", 1, price=999_900, shares=5))
    assert b.instrument(1)["last_trade"] == 999_900
    b.apply(msg("E", order_reference_number=99, executed_shares=1))  # unknown: refused, nothing moves
    assert b.instrument(1)["last_trade"] == 999_900 and b.depth(1, "S") == [(1_000_300, 80, 1)]


def test_state_messages_of_the_wrong_length_or_locate_are_not_taken():
    b = Books(max_locate=2, max_orders=10)
    b.apply(msg("H", 3, stock="FAR", trading_state="H"))  # locate above max_locate
    b.apply(msg("H", 1, stock="OK", trading_state="H")[:-1])  # one byte short
    assert b.stats()["state"] == 0 and b.instrument(1)["trading_state"] is None


def test_the_report_lists_active_instruments_with_their_levels():
    b = Books(max_locate=10, max_orders=100)
    b.apply(msg("R", 2, stock="AAA"))
    b.apply(add(1, "B", 100, 1_000_000, locate=2))
    b.apply(add(2, "B", 50, 1_000_000, locate=2))
    b.apply(add(3, "S", 70, 1_000_300, locate=2))
    b.apply(add(4, "S", 10, 900, locate=7))  # no directory message: still listed
    rep = {r["locate"]: r for r in b.report(top=1)}
    assert sorted(rep) == [2, 7]
    assert rep[2]["symbol"] == "AAA" and rep[2]["bids"] == [[1_000_000, 150, 2]] and rep[2]["asks"] == [
        [1_000_300, 70, 1]]
    assert rep[7]["symbol"] is None and rep[7]["micro_price"] is None


def test_a_replace_that_cannot_be_placed_leaves_the_original_order():
    c = Books(max_locate=4, max_orders=10, levels_per_side=2)
    lib = c.lib
    c.apply(add(1, price=1_000_000))
    c.apply(add(2, price=1_000_100))
    c.apply(add(3, price=1_000_100))
    before = (c.depth(1, "B"), c.live_orders)
    # a third price level: the side holds two, and order 2's level does not empty
    assert c.apply(msg("U", original_order_reference_number=2, new_order_reference_number=9, shares=5,
                       price=1_000_200)) == lib.TW_BOOK_ELEVELS
    # a new reference that is already open
    assert c.apply(msg("U", original_order_reference_number=2, new_order_reference_number=3, shares=5,
                       price=1_000_100)) == lib.TW_BOOK_EDUPLICATE
    assert c.apply(msg("U", original_order_reference_number=2, new_order_reference_number=0, shares=5,
                       price=1_000_100)) == lib.TW_BOOK_EBADFIELD
    assert (c.depth(1, "B"), c.live_orders) == before
    # order 1 is alone on its level: moving it to a new price frees that level first
    assert c.apply(msg("U", original_order_reference_number=1, new_order_reference_number=10, shares=7,
                       price=1_000_200)) == 0
    assert c.depth(1, "B") == [(1_000_200, 7, 1), (1_000_100, 200, 2)]


def test_reference_zero_is_never_an_order():
    c = Books(max_locate=4, max_orders=10)
    lib = c.lib
    assert c.apply(add(0)) == lib.TW_BOOK_EBADFIELD
    assert c.apply(msg("E", order_reference_number=0, executed_shares=0)) == lib.TW_BOOK_EUNKNOWN
    assert c.apply(msg("D", order_reference_number=0)) == lib.TW_BOOK_EUNKNOWN
    assert c.live_orders == 0


def test_references_past_47_bits_are_refused_by_name():
    """An order packs its reference with side and locate in one word; NASDAQ's
    references stay far below 2^47 (about 1.4e14)."""
    c = Books(max_locate=4, max_orders=10)
    lib = c.lib
    assert c.apply(add(2**47 - 1)) == 0
    assert c.apply(add(2**47)) == lib.TW_BOOK_EBADFIELD
    assert c.apply(msg("D", order_reference_number=2**47)) == lib.TW_BOOK_EUNKNOWN
    assert c.apply(msg("U", original_order_reference_number=2**47 - 1, new_order_reference_number=2**47,
                       shares=1, price=1)) == lib.TW_BOOK_EBADFIELD
    assert c.depth(1, "B") == [(1_000_000, 100, 1)] and c.live_orders == 1


def packets(n: int) -> tuple[list[bytes], list[bytes]]:
    msgs = [add(i + 1, price=1_000_000 + 100 * (i % 5)) for i in range(n)]
    return msgs, list(moldudp64.packetize(SESSION, 1, msgs, max_payload=200))


def test_the_feed_raises_gap_recovered_and_end_of_session_events():
    msgs, pk = packets(60)
    b = Books(max_locate=4, max_orders=1000)
    b.record_events()
    f = Feed(b)
    f.packet("A", pk[0])
    f.packet("A", pk[2])  # pk[1] is missing
    first, count = f.missing()
    f.packet("B", pk[1])
    for p in pk[3:]:
        f.packet("A", p)
    f.packet("A", moldudp64.end_of_session(SESSION, len(msgs) + 1))
    f.packet("B", moldudp64.end_of_session(SESSION, len(msgs) + 1))  # raised once
    ev = b.events()
    assert [e["event"] for e in ev] == ["gap", "recovered", "end_of_session"]
    assert (ev[0]["first"], ev[0]["count"]) == (first, count) == (moldudp64.unpack(pk[1]).sequence,
                                                                    moldudp64.unpack(pk[1]).count)
    assert ev[1]["next_seq"] == moldudp64.unpack(pk[2]).sequence + moldudp64.unpack(pk[2]).count
    assert ev[2]["next_seq"] == len(msgs) + 1
    s = f.state()
    assert s["applied"] == len(msgs) and s["stale"] == 0
    assert sum(s["first_copy"].values()) == s["applied"]


def test_a_hole_given_up_is_skipped_and_the_books_stay_stale():
    msgs, pk = packets(60)
    b = Books(max_locate=4, max_orders=1000)
    b.record_events()
    f = Feed(b)
    for i, p in enumerate(pk):
        if i not in (1, 4):  # two holes, on both lines: two sources show the jump, so a give-up believes it
            f.packet("A", p)
            f.packet("B", p)
    hole1 = moldudp64.unpack(pk[1])
    assert f.skip_gap()
    s = f.state()
    assert s["in_gap"] == 1 and s["stale"] == 1 and s["unrecoverable"] == 1 and s["skipped"] == hole1.count
    assert f.skip_gap()  # the second hole
    s = f.state()
    assert s["in_gap"] == 0 and s["stale"] == 1 and s["recovered"] == 0
    assert s["applied"] == len(msgs) - hole1.count - moldudp64.unpack(pk[4]).count
    assert not f.skip_gap()
    kinds = [e["event"] for e in b.events()]
    assert kinds == ["gap", "unrecoverable", "unrecoverable"]


def test_first_copies_add_up_to_what_was_applied_under_loss_and_duplication():
    msgs, pk = packets(400)
    rng = random.Random(7)
    b = Books(max_locate=4, max_orders=1000)
    f = Feed(b)
    stream = [(line, p) for p in pk for line in "AB" if rng.random() > 0.2]
    rng.shuffle(stream)
    for line, p in stream + [(line, p) for p in pk for line in "AB"]:
        f.packet(line, p)
    s = f.state()
    assert s["applied"] == len(msgs) and sum(s["first_copy"].values()) == s["applied"]


def test_the_histogram_buckets_are_exact_below_32_and_about_six_percent_wide_above():
    ffi, lib = native()
    h = ffi.new("struct tw_hist *")
    n = lib.tw_hist_nbuckets()
    lows = [lib.tw_hist_bucket_low(i) for i in range(n)]
    assert lows[:32] == list(range(32))
    assert all(b > a for a, b in zip(lows, lows[1:], strict=False))
    assert all((b - a) / a <= 1 / 16 for a, b in zip(lows[32:], lows[33:], strict=False))
    for v in (0, 1, 31, 32, 33, 1000, 123_456, 10**9, 2**40 - 1):
        lib.tw_hist_record(h, v)
        i = max(k for k in range(n) if lows[k] <= v)  # the bucket holding v
        assert h.buckets[i] >= 1, v
    assert (h.count, h.min, h.max) == (9, 0, 2**40 - 1)


def test_genuine_capture_state_messages_are_taken():
    sample = paths.sample_itch()
    if sample is None:
        pytest.skip("../shared/data/nasdaq/sample-first-1000.itch is absent (../shared is not beside this checkout)")
    b = Books(max_locate=65535, max_orders=1000, levels_per_side=16)
    b.record_events()
    data = sample.read_bytes()
    assert b.apply_binaryfile(data) == 1000
    counts: dict[str, int] = {}
    for raw in binaryfile.iter_messages(data):
        counts[chr(raw[0])] = counts.get(chr(raw[0]), 0) + 1
    assert b.stats()["state"] == sum(counts.get(t, 0) for t in "SRHYWhP")
    assert len(b.active()) == counts["R"]
    assert b.instrument(1)["symbol"] == "A" and b.system_event == "O"
    assert sum(e["event"] == "trading_action" for e in b.events()) == counts["H"]


def test_zero_share_levels_have_no_micro_price():
    c = Books(max_locate=4, max_orders=10)
    c.apply(add(1, "B", 0, 1_000_000))
    c.apply(add(2, "S", 0, 1_000_100))
    assert c.micro_price(1) is None  # no weights: not a division by zero


def test_a_heartbeat_announced_hole_stays_open_until_every_message_came():
    msgs, pk = packets(30)
    b = Books(max_locate=4, max_orders=1000)
    f = Feed(b)
    f.packet("A", moldudp64.pack(SESSION, 1, msgs[:1]))
    f.packet("A", moldudp64.heartbeat(SESSION, 20))  # 2..19 went by
    f.packet("retransmission", moldudp64.pack(SESSION, 2, msgs[1:2]))  # only 2 comes back
    s = f.state()
    assert s["in_gap"] == 1 and s["stale"] == 1 and f.missing() == (3, 17)
    f.packet("A", moldudp64.heartbeat(SESSION, 25))  # and the hole grows to 24
    f.packet("retransmission", moldudp64.pack(SESSION, 3, msgs[2:24]))
    s = f.state()
    assert s["in_gap"] == 0 and s["stale"] == 0 and s["applied"] == 24 and s["recovered"] == 1


def test_a_stray_datagram_first_does_not_take_the_session():
    msgs, pk = packets(10)
    b = Books(max_locate=4, max_orders=1000)
    f = Feed(b)
    f.packet("A", moldudp64.heartbeat("STRAY00001", 7))
    for p in pk:
        assert f.packet("A", p) == 0
    s = f.state()
    assert s["applied"] == 10 and s["other_session"] == 1
    assert f.packet("A", moldudp64.heartbeat("STRAY00001", 7)) < 0  # now it is foreign


def test_a_gap_wider_than_the_ring_applies_what_was_held_first():
    msgs, pk = packets(40)
    b = Books(max_locate=4, max_orders=1000)
    f = Feed(b, max_held=4)
    f.packet("A", moldudp64.pack(SESSION, 1, msgs[:1]))
    f.packet("A", moldudp64.pack(SESSION, 3, msgs[2:4]))   # 3, 4 held; 2 missing
    f.packet("A", moldudp64.pack(SESSION, 10, msgs[9:10]))  # 10: past the ring, only line A shows it
    assert f.state()["applied"] == 1 and f.state()["next_seq"] == 2  # not believed yet
    f.packet("B", moldudp64.pack(SESSION, 10, msgs[9:10]))  # line B shows it too
    s = f.state()
    assert s["applied"] == 4 and s["skipped"] == 6 and s["unrecoverable"] == 1 and s["stale"] == 1
    assert s["next_seq"] == 11 and b.live_orders == 4
