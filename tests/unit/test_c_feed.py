"""MoldUDP64 sequencing and A/B arbitration in C: whatever the lines do, the book
ends identical to the reference, or the feed says it is stale."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.lab.exchange import gen
from appliance.protocols import binaryfile, itch, moldudp64
from appliance.protocols.itchbook import ItchBook
from dpdk.books import Books, Feed

SESSION = "TWTEST0001"


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    path = tmp_path_factory.mktemp("feed") / "day.itch"
    gen.generate(path, symbols=5, messages=20_000, seed=8)
    msgs = list(binaryfile.iter_messages(path.read_bytes()))
    packets = list(moldudp64.packetize(SESSION, 1, msgs, max_payload=400))
    ref = ItchBook()
    for m in msgs:
        ref.apply(itch.decode(m))
    return msgs, packets, ref


def same_book(books: Books, ref: ItchBook) -> None:
    for locate in range(1, 6):
        for side in "BS":
            assert [(p, s) for p, s, _ in books.depth(locate, side)] == ref.levels(locate, side)


def run(packets_by_line: list[tuple[str, bytes]], max_held: int = 65_536) -> tuple[Books, Feed]:
    books = Books(max_locate=10, max_orders=100_000)
    feed = Feed(books, max_held)
    for line, pkt in packets_by_line:
        assert feed.packet(line, pkt) == 0
    return books, feed


def test_two_clean_lines_build_the_book_once(day):
    msgs, packets, ref = day
    books, feed = run([(line, p) for p in packets for line in ("A", "B")])
    same_book(books, ref)
    s = feed.state()
    assert (s["applied"], s["duplicates"], s["gaps"], s["stale"]) == (len(msgs), len(msgs), 0, 0)
    assert s["first_copy"]["A"] == len(msgs) and s["first_copy"]["B"] == 0


def test_gaps_duplicates_and_reordering_on_a_with_b_clean_give_the_same_book(day):
    msgs, packets, ref = day
    rng = random.Random(4)
    a = []
    for p in packets:
        r = rng.random()
        if r < 0.05:
            continue                  # lost on A
        a.append(p)
        if r > 0.97:
            a.append(p)               # duplicated on A
    for i in range(0, len(a) - 1, 7):
        a[i], a[i + 1] = a[i + 1], a[i]  # reordered on A
    # B arrives a few packets behind A, as the slower line does
    lag, stream = 5, []
    for i in range(max(len(a), len(packets) + lag)):
        if i < len(a):
            stream.append(("A", a[i]))
        if 0 <= i - lag < len(packets):
            stream.append(("B", packets[i - lag]))
    books, feed = run(stream)
    same_book(books, ref)
    s = feed.state()
    assert s["applied"] == len(msgs) and s["gaps"] > 0 and s["recovered"] == s["gaps"]
    assert s["first_copy"]["B"] > 0 and s["stale"] == 0 and s["in_gap"] == 0


def test_both_lines_lossy_recover_through_retransmission(day):
    msgs, packets, ref = day
    lost = set(range(100, 110)) | {500}
    stream = [(line, p) for i, p in enumerate(packets) if i not in lost for line in ("A", "B")]
    books = Books(max_locate=10, max_orders=100_000)
    feed = Feed(books)
    for line, p in stream:
        feed.packet(line, p)
    s = feed.state()
    assert s["in_gap"] and s["stale"]
    asked = []
    while (gap := feed.missing()) is not None:  # ask, as the worker will, and answer from the exchange's history
        first, count = gap
        asked.append(gap)
        for pkt in moldudp64.packetize(SESSION, first, msgs[first - 1:first - 1 + count], 1400):
            feed.packet("retransmission", pkt)
    same_book(books, ref)
    s = feed.state()
    assert s["applied"] == len(msgs) and s["stale"] == 0 and len(asked) == 2
    assert s["first_copy"]["retransmission"] == sum(moldudp64.unpack(packets[i]).count for i in lost)


def test_a_gap_wider_than_the_ring_is_given_up_and_the_books_stay_stale(day):
    msgs, packets, ref = day
    stream = [(line, p) for i, p in enumerate(packets) if not 50 <= i < 400 for line in ("A", "B")]
    books, feed = run(stream, max_held=64)
    s = feed.state()
    assert s["unrecoverable"] >= 1 and s["skipped"] > 0 and s["stale"] == 1
    assert s["next_seq"] == len(msgs) + 1  # it went on with the newest messages


def test_a_heartbeat_past_what_we_saw_opens_a_gap():
    books = Books(max_locate=10, max_orders=100)
    feed = Feed(books)
    feed.packet("A", moldudp64.pack(SESSION, 1, [itch.encode(itch.example("S", 0))]))
    feed.packet("A", moldudp64.heartbeat(SESSION, 6))  # messages 2..5 went by unseen
    assert feed.missing() == (2, 4) and feed.state()["stale"] == 1
    feed.packet("A", moldudp64.end_of_session(SESSION, 6))
    assert feed.state()["end_of_session"] == 1


def test_foreign_and_malformed_packets_are_counted_not_applied():
    books = Books(max_locate=10, max_orders=100)
    feed = Feed(books)
    feed.packet("A", moldudp64.pack(SESSION, 1, [itch.encode(itch.example("S", 0))]))
    assert feed.packet("A", moldudp64.pack("OTHER", 2, [b"x"])) < 0
    assert feed.packet("B", b"short") < 0
    bad = moldudp64.pack(SESSION, 2, [itch.encode(itch.example("S", 1))]) + b"\x00\x40"  # a block running over
    assert feed.packet("B", moldudp64.HEADER.pack(moldudp64.session_bytes(SESSION), 2, 2) + bad[20:]) < 0
    s = feed.state()
    assert (s["other_session"], s["malformed"], s["applied"]) == (1, 2, 2)  # the good block before it stands


@given(st.lists(st.tuples(st.sampled_from(["A", "B", "retransmission"]), st.binary(max_size=120)), max_size=80))
@settings(max_examples=300, deadline=None)
def test_random_packets_never_crash_the_feed(packets):
    books = Books(max_locate=100, max_orders=1000, levels_per_side=16)
    feed = Feed(books, max_held=32)
    for line, data in packets:
        assert feed.packet(line, moldudp64.session_bytes(SESSION) + data) <= 0
    s = feed.state()
    # the accounting holds whatever came: every packet counted on its line, every sequence number
    # before the next expected one either applied or given up, no first copy lost
    assert sum(s["packets"].values()) == len(packets)
    assert s["applied"] + s["skipped"] == s["next_seq"] - 1
    assert sum(s["first_copy"].values()) >= s["applied"] >= s["book_errors"]


# ---- issue 16: nobody but the exchange speaks for the feed --------------------------------------

HUGE = 10**12
SPOOFS = {
    "heartbeat": lambda: moldudp64.heartbeat(SESSION, HUGE),
    "message past the ring": lambda: moldudp64.pack(SESSION, HUGE, [itch.encode(itch.example("S", 0))]),
}


def fake_add(ref: int = 999_999, price: int = 9_999_000) -> bytes:
    """An add order at a price the exchange never quoted (locate 1)."""
    import dataclasses

    return itch.encode(dataclasses.replace(itch.example("A", 0), stock_locate=1, order_reference_number=ref,
                                           side="B", shares=100, price=price))


@pytest.mark.parametrize("spoof", SPOOFS, ids=list(SPOOFS))
def test_a_jump_only_one_line_shows_is_dropped_at_give_up_and_the_real_packets_still_apply(day, spoof):
    msgs, packets, ref = day
    books = Books(max_locate=10, max_orders=100_000)
    books.record_events()
    feed = Feed(books, max_held=1024)
    half = len(packets) // 2
    for p in packets[:half]:
        feed.packet("A", p)
        feed.packet("B", p)
    feed.packet("A", SPOOFS[spoof]())  # one datagram on line A claims the day is at sequence 10**12
    assert feed.state()["next_seq"] < HUGE and feed.state()["in_gap"] == 1  # not believed at once
    for p in packets[half:half + 20]:  # the real packets go on
        feed.packet("A", p)
        feed.packet("B", p)
    assert feed.skip_gap()  # the give-up: only line A showed the jump, nobody confirms it
    s = feed.state()
    assert s["next_seq"] < HUGE and s["unrecoverable"] == 0 and s["skipped"] == 0
    assert s["refused"]["A"]["unconfirmed_jump"] == 1
    for p in packets[half + 20:]:
        feed.packet("A", p)
        feed.packet("B", p)
    same_book(books, ref)
    s = feed.state()
    assert (s["applied"], s["next_seq"], s["stale"], s["in_gap"]) == (len(msgs), len(msgs) + 1, 0, 0)
    refused = [e for e in books.events() if e["event"] == "feed_refused"]
    assert [(e["why"], e["line"], e["refused"]) for e in refused] == [("unconfirmed_jump", "A", 1)]
    assert refused[0]["seq"] >= HUGE - 1


def test_a_jump_both_lines_show_is_still_given_up_as_before(day):
    msgs, packets, ref = day
    books = Books(max_locate=10, max_orders=100_000)
    feed = Feed(books)
    lost = set(range(100, 110))
    for i, p in enumerate(packets):
        if i not in lost:
            feed.packet("A", p)
            feed.packet("B", p)
    assert feed.skip_gap()
    s = feed.state()
    gone = sum(moldudp64.unpack(packets[i]).count for i in lost)
    assert s["unrecoverable"] == 1 and s["skipped"] == gone and s["applied"] == len(msgs) - gone
    assert s["stale"] == 1 and s["refused"]["A"]["unconfirmed_jump"] == 0


def test_on_a_single_line_only_the_re_request_servers_answers_confirm_a_jump(day):
    msgs, packets, ref = day
    books = Books(max_locate=10, max_orders=100_000)
    feed = Feed(books)
    feed.answers_asked_only()
    for p in packets[:50]:
        feed.packet("A", p)
    feed.packet("A", moldudp64.heartbeat(SESSION, HUGE))  # spoofed
    first, count = feed.missing()
    feed.asked(first, min(count, 1000))
    for p in moldudp64.packetize(SESSION, first, msgs[first - 1:first - 1 + 40], 400):
        feed.packet("retransmission", p)  # the server has only what the exchange published
    assert feed.skip_gap()
    assert feed.state()["next_seq"] == first + 40 and feed.state()["refused"]["A"]["unconfirmed_jump"] == 1
    # a real hole the server's answers reach past: believed, given up as before
    start = feed.state()["next_seq"]
    feed.packet("A", moldudp64.pack(SESSION, start + 5, msgs[start + 4:start + 6]))  # start .. start+4 lost
    feed.asked(start, 10)
    feed.packet("retransmission", moldudp64.pack(SESSION, start + 5, msgs[start + 4:start + 6]))
    assert feed.skip_gap()
    s = feed.state()
    assert s["unrecoverable"] == 1 and s["skipped"] == 5 and s["next_seq"] == start + 7


def test_a_foreign_sessions_datagram_first_does_not_lock_the_real_session_out(day):
    msgs, packets, ref = day
    books = Books(max_locate=10, max_orders=100_000)
    books.record_events()
    feed = Feed(books)
    feed.expect_session(SESSION)
    # a foreign session's datagram first, with a message at sequence 1: it would have taken the feed
    assert feed.packet("A", moldudp64.pack("FOREIGN001", 1, [fake_add()])) < 0
    for p in packets:
        assert feed.packet("A", p) == 0
        feed.packet("B", p)
        if p is packets[10]:
            assert feed.packet("B", moldudp64.heartbeat("FOREIGN001", HUGE)) < 0
    same_book(books, ref)
    s = feed.state()
    assert s["applied"] == len(msgs) and s["stale"] == 0 and s["gaps"] == 0
    assert s["refused"]["A"]["wrong_session"] == 1 and s["refused"]["B"]["wrong_session"] == 1
    assert s["other_session"] == 2
    assert [(e["why"], e["line"]) for e in books.events() if e["event"] == "feed_refused"] == [
        ("wrong_session", "A"), ("wrong_session", "B")]


def test_a_retransmission_answer_outside_the_range_asked_is_dropped(day):
    msgs, packets, ref = day
    books = Books(max_locate=10, max_orders=100_000)
    feed = Feed(books)
    feed.answers_asked_only()
    stop = 60
    for i, p in enumerate(packets[:stop]):
        if i != 40:  # both lines lose packet 40
            feed.packet("A", p)
            feed.packet("B", p)
    first, count = feed.missing()
    assert feed.packet("retransmission", moldudp64.pack(SESSION, first, msgs[first - 1:first - 1 + count])) < 0
    feed.asked(first, count)
    nxt = moldudp64.unpack(packets[stop]).sequence  # not seen yet: a fake message there would be held and win
    for bad in (moldudp64.pack(SESSION, nxt, [fake_add()]),                             # never asked
                moldudp64.pack(SESSION, first, msgs[first - 1:first - 1 + count] + [fake_add()]),  # runs past
                moldudp64.heartbeat(SESSION, HUGE)):                                    # answers nothing
        assert feed.packet("retransmission", bad) < 0
    assert feed.packet("retransmission", moldudp64.pack(SESSION, first, msgs[first - 1:first - 1 + count])) == 0
    for p in packets[stop:]:
        feed.packet("A", p)
        feed.packet("B", p)
    same_book(books, ref)
    s = feed.state()
    assert s["applied"] == len(msgs) and s["stale"] == 0 and s["recovered"] == 1
    assert s["refused"]["retransmission"]["unasked_answer"] == 4  # the one before asking, and the three


def test_refusals_are_counted_each_and_raised_at_most_once_a_second_with_the_count(day):
    import time

    msgs, packets, ref = day
    books = Books(max_locate=10, max_orders=100_000)
    books.record_events()
    feed = Feed(books)
    for _ in range(10_000):  # a flood from a wrong source (the loop hands each refusal over)
        feed.refuse("A", "wrong_source")
    feed.packet("A", packets[0])
    assert feed.state()["refused"]["A"]["wrong_source"] == 10_000
    ev = [e for e in books.events() if e["event"] == "feed_refused"]
    assert [(e["why"], e["line"], e["refused"], e["total"]) for e in ev] == [("wrong_source", "A", 1, 1)]
    time.sleep(1.05)
    feed.packet("A", packets[1])  # the next datagram raises what the flood left, once its second is over
    ev = [e for e in books.events() if e["event"] == "feed_refused"]
    assert [(e["refused"], e["total"]) for e in ev] == [(1, 1), (9_999, 10_000)]
