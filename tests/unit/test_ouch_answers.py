"""The venue's answers checked as the worker's loop takes them (dpdk/src/session.c, risk_orders.c,
orders.c through tw_orders_feed_answers): an answer that cannot be, for the session or for the order
it names, throws the kill switch (kill = 1, kill_reason bad_answer), raises a bad_answer event saying
what was wrong, and keeps the message's bytes for the journal; a day of possible answers does none
of that. Positions and open orders follow the venue's word: a Canceled takes its decrement only, an
over-fill counts every share the venue says traded."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from appliance.protocols import itch, ouch
from appliance.protocols import soupbintcp as soup
from appliance.views import event_text
from dpdk import native
from dpdk.books import Books, event_dict
from dpdk.ouch import BAD_ANSWERS, OuchSession, bad_answer_bytes
from dpdk.risk import Limits, Risk

BID, ASK = 1_000_000, 1_000_100
WIDE = Limits(max_order_qty=10_000, max_order_notional=10**15, max_position=100_000, max_gross=1_000_000,
              max_open_orders=100)
SESSION = "TWOE000001"
refs = itertools.count(1)


def itch_msg(t: str, locate: int = 1, **fields) -> bytes:
    return itch.encode(dataclasses.replace(itch.example(t, 0), stock_locate=locate, **fields))


def seq(t: str, **fields) -> bytes:
    """One sequenced OUCH message as the venue sends it."""
    return soup.encode(soup.SequencedData(ouch.encode(dataclasses.replace(ouch.example("outbound", t, 1),
                                                                          **fields))))


class Rig:
    """A session logged in at sequence 1, the risk table with our open orders, the worker's stats and
    an event log: the order path's answers without a worker."""

    def __init__(self) -> None:
        self.ffi, self.lib = ffi, lib = native()
        self.books = Books(max_locate=8, max_orders=1000, levels_per_side=16)
        self.books.apply(itch_msg("R", 1, stock="TAAA"))
        self.books.apply(itch_msg("H", 1, stock="TAAA", trading_state="T"))
        self.books.apply(itch_msg("A", 1, order_reference_number=10, side="B", shares=500, price=BID))
        self.books.apply(itch_msg("A", 1, order_reference_number=11, side="S", shares=500, price=ASK))
        self.risk = Risk(max_locate=8, max_own_orders=64)
        self.risk.set_limits(WIDE)
        self.session = OuchSession(("127.0.0.1", 9), "TWAPP1", "secret")
        self.st = ffi.new("struct tw_worker_stats *")
        self._ev = ffi.new("struct tw_event[]", 256)
        self._log = ffi.new("struct tw_event_log *", {"ev": self._ev, "cap": 256})
        self._sink = ffi.new("struct tw_event_sink *")
        self._sink.fn, self._sink.ctx = ffi.addressof(lib, "tw_event_log_emit"), self._log
        self._seen = 0
        self.feed(soup.encode(soup.LoginAccepted(SESSION, 1)))

    def order(self, side: str = "B", qty: int = 100, price: int = BID) -> int:
        ref = next(refs)
        assert self.risk.check(self.books, ref, 1, side, qty, price, now_ns=1) is None
        return ref

    def accepted(self, side: str = "B", qty: int = 100, price: int = BID) -> int:
        ref = self.order(side, qty, price)
        assert self.feed(seq("A", user_ref_num=ref, side=side, quantity=qty, price=price, symbol="TAAA")) == [
            {"event": "order", "type": "A", "user_ref": ref}]
        return ref

    def feed(self, *packets: bytes) -> list[dict]:
        """The events the answers raised (order events cut to event, type and user_ref)."""
        data = b"".join(packets)
        self.lib.tw_orders_feed_answers(self.risk._r, self.session._o, self.st, self._sink, data, len(data), 1)
        out = []
        for i in range(self._seen, self._log.n):
            e = event_dict(self._ev[i])
            e.pop("ts_ns")
            if e["event"] == "order":
                e = {k: e[k] for k in ("event", "type", "user_ref")}
            else:
                e.update(bad_answer_bytes(self.st, e["number"]))
            out.append(e)
        self._seen = self._log.n
        return out

    @property
    def killed(self) -> tuple[int, int]:
        return self.st.kill, self.st.kill_reason

    def open(self, ref: int) -> int:
        return self.lib.tw_risk_order_open(self.risk._r, ref)


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_the_bad_answer_names_follow_the_c_enum():
    _, lib = native()
    assert len(BAD_ANSWERS) == lib.TW_BAD_NCODES
    assert [getattr(lib, f"TW_BAD_{n.upper()}") for n in BAD_ANSWERS[1:]] == list(range(1, lib.TW_BAD_NCODES))


def test_a_day_of_possible_answers_throws_nothing(rig):
    buy = rig.accepted()
    sell = rig.accepted("S", 200, ASK)
    got = rig.feed(seq("E", user_ref_num=buy, quantity=40, price=BID - 100),  # price improvement is fine
                   seq("C", user_ref_num=buy, quantity=60, reason="U"),
                   seq("E", user_ref_num=sell, quantity=200, price=ASK),
                   seq("S", event_code="E"),
                   seq("I", user_ref_num=sell))  # a cancel that came after the fill: nothing open, nothing wrong
    assert [e["type"] for e in got] == ["E", "C", "E", "I"]  # (a system event names no order: no event)
    assert rig.killed == (0, 0) and rig.st.bad_answers == 0
    assert rig.risk.position(1) == 40 - 200 and rig.risk.open_orders() == []


def test_a_login_accepted_mid_session_keeps_the_numbering_and_throws_the_kill_switch(rig):
    ref = rig.accepted()  # sequence 1
    again = soup.encode(soup.LoginAccepted(SESSION, 1))
    (bad,) = rig.feed(again)
    assert bad == {"event": "bad_answer", "why": "login_mid_session", "user_ref": 0, "number": 1,
                   "type": "session", "qty": 0, "ouch_seq": 2, "bytes": again.hex(), "length": len(again)}
    assert rig.killed == (1, rig.lib.TW_KILL_BAD_ANSWER)
    assert rig.session.stats()["next_seq"] == 2  # not renumbered from 1
    assert event_text(bad) == ("[red]impossible answer[/] from the venue, login mid session: a session packet; "
                               "kill switch thrown")
    got = rig.session.inject(seq("E", user_ref_num=ref, quantity=10, price=BID))
    assert got[0]["seq"] == 2


def test_a_login_answered_with_another_sequence_than_asked_is_impossible():
    rig = Rig.__new__(Rig)
    Rig.__init__(rig)  # logged in at 1 as asked: fine
    assert rig.killed == (0, 0)
    other = OuchSession(("127.0.0.1", 9), "TWAPP1", "secret", next_seq=5)  # a restart asks for 5
    rig.session = other
    answer = soup.encode(soup.LoginAccepted(SESSION, 9))  # the venue would skip 5..8
    (bad,) = rig.feed(answer)
    assert (bad["why"], bad["bytes"]) == ("login_sequence", answer.hex()) and rig.killed[0] == 1
    assert other.stats()["next_seq"] == 9  # numbered as the venue numbers what it sends


def test_a_canceled_takes_its_decrement_and_the_order_stays_open_with_the_rest(rig):
    ref = rig.accepted(qty=100)
    assert [e["type"] for e in rig.feed(seq("C", user_ref_num=ref, quantity=30, reason="U"))] == ["C"]
    assert rig.open(ref) == 70 and rig.risk.open_orders() == [ref] and rig.killed == (0, 0)
    rig.feed(seq("E", user_ref_num=ref, quantity=70, price=BID))  # the rest may still trade
    assert rig.risk.position(1) == 70 and rig.open(ref) == -1 and rig.killed == (0, 0)


def test_an_overfill_counts_in_full_and_throws_the_kill_switch_with_its_bytes(rig):
    ref = rig.accepted(qty=100)
    rig.feed(seq("E", user_ref_num=ref, quantity=60, price=BID))
    fill = seq("E", user_ref_num=ref, quantity=60, price=BID)
    order, bad = rig.feed(fill)
    assert order == {"event": "order", "type": "E", "user_ref": ref}
    assert {k: bad[k] for k in ("why", "user_ref", "type", "qty", "open", "bytes")} == {
        "why": "overfill", "user_ref": ref, "type": "E", "qty": 60, "open": 40, "bytes": fill.hex()}
    assert rig.risk.position(1) == 120  # what the venue says traded, as the OMS counts it
    assert rig.open(ref) == -1 and rig.killed == (1, rig.lib.TW_KILL_BAD_ANSWER)
    assert event_text(bad) == (f"[red]impossible answer[/] from the venue, overfill: executed 60 of order {ref} "
                               "(40 open); kill switch thrown")


@pytest.mark.parametrize("why, answers", [
    ("unknown_order", lambda ref: [seq("A", user_ref_num=999_999, side="B", quantity=100, price=BID)]),
    ("unknown_order", lambda ref: [seq("E", user_ref_num=999_999, quantity=1, price=BID)]),
    ("unknown_order", lambda ref: [seq("C", user_ref_num=999_999, quantity=1)]),
    ("accepted_twice", lambda ref: [seq("A", user_ref_num=ref, side="B", quantity=100, price=BID)] * 2),
    ("accept_mismatch", lambda ref: [seq("A", user_ref_num=ref, side="S", quantity=100, price=BID)]),
    ("accept_mismatch", lambda ref: [seq("A", user_ref_num=ref, side="B", quantity=100, price=BID + 100)]),
    ("accept_mismatch", lambda ref: [seq("A", user_ref_num=ref, side="B", quantity=101, price=BID)]),
    ("not_accepted", lambda ref: [seq("E", user_ref_num=ref, quantity=10, price=BID)]),
    ("fill_price", lambda ref: [seq("A", user_ref_num=ref, side="B", quantity=100, price=BID),
                                seq("E", user_ref_num=ref, quantity=10, price=BID + 100)]),  # a buy above its limit
    ("cancel_size", lambda ref: [seq("A", user_ref_num=ref, side="B", quantity=100, price=BID),
                                 seq("C", user_ref_num=ref, quantity=101)]),
    ("cancel_size", lambda ref: [seq("A", user_ref_num=ref, side="B", quantity=100, price=BID),
                                 seq("C", user_ref_num=ref, quantity=0)]),
    ("reject_accepted", lambda ref: [seq("A", user_ref_num=ref, side="B", quantity=100, price=BID),
                                     seq("J", user_ref_num=ref)]),
    ("unasked_change", lambda ref: [seq("U", orig_user_ref_num=ref, user_ref_num=ref + 1000, side="B")]),
    ("unasked_change", lambda ref: [seq("M", user_ref_num=ref, side="B", quantity=50)]),
    ("unaccounted", lambda ref: [seq("B", user_ref_num=ref)]),
])
def test_each_impossible_answer_is_named_with_its_bytes_and_throws_the_kill_switch(rig, why, answers):
    ref = rig.order(qty=100)
    packets = answers(ref)
    got = rig.feed(*packets)
    bad = [e for e in got if e["event"] == "bad_answer"]
    assert [e["why"] for e in bad] == [why]
    assert bad[0]["bytes"] == packets[-1].hex() and rig.st.bad_answers == 1
    assert rig.killed == (1, rig.lib.TW_KILL_BAD_ANSWER)


def test_a_sequenced_message_before_the_login_is_answered_is_not_applied():
    o = OuchSession(("127.0.0.1", 9), "TWAPP1", "secret")
    early = seq("E", user_ref_num=1, quantity=10, price=BID)
    (m,) = o.inject(early)
    assert m["type"] == "bad" and m["reason"] == native()[1].TW_BAD_BEFORE_LOGIN
    assert o.stats()["messages"] == 0 and o.stats()["bad_answers"] == 1


def test_bytes_later_bad_answers_overwrote_are_said_lost(rig):
    rig.order()
    for _ in range(5):
        rig.feed(seq("C", user_ref_num=999_999, quantity=1))
    assert bad_answer_bytes(rig.st, 1) == {"bytes_lost": True} and "bytes" in bad_answer_bytes(rig.st, 5)
    assert rig.killed == (1, rig.lib.TW_KILL_BAD_ANSWER)


def test_a_kill_already_thrown_keeps_its_reason(rig):
    rig.st.kill, rig.st.kill_reason = 1, rig.lib.TW_KILL_OPERATOR
    rig.feed(seq("C", user_ref_num=999_999, quantity=1))
    assert rig.killed == (1, rig.lib.TW_KILL_OPERATOR) and rig.st.bad_answers == 1
