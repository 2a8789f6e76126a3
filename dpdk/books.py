"""Order books in C (dpdk/src/book.c, fed by the ITCH decoder itch.c) from Python: build them from ITCH,
read depth, micro-price, instrument state, events and counters. The worker holds
the same books on its lcore (dpdk/worker.py); here they also serve tests,
replays of BinaryFILEs and benchmarks."""

from __future__ import annotations

import functools
from typing import Any

from dpdk import native
from dpdk.ouch import BAD_ANSWERS
from dpdk.risk import denial_names, denial_reason

SIDES = {"B": 0, "S": 1}
ERRORS = ("", "bad length", "bad locate", "bad field", "duplicate", "unknown order", "overfill", "orders full",
          "levels full")
EVENTS = ("", "gap", "recovered", "unrecoverable", "end_of_session", "system", "trading_action",
          "operational_halt", "reg_sho", "mwcb", "retransmission_request", "risk_denied", "order", "kill",
          "command", "bad_answer", "feed_refused")


def book_stats_dict(st: Any) -> dict[str, Any]:
    return {"applied": st.applied, "ignored": st.ignored, "state": st.state,
            "errors": {ERRORS[i]: st.errors[i] for i in range(1, len(ERRORS)) if st.errors[i]}}


def _text(raw: Any) -> str:
    """A space-padded ITCH text field held in a C char[8]."""
    ffi, _ = native()
    return ffi.unpack(raw, 8).split(b"\0", 1)[0].decode("ascii", "replace").rstrip()


# issue 16 (B): feed.h's enum tw_feed_refusal, in order: why a feed datagram was not the exchange's
REFUSALS = ("wrong_source", "wrong_session", "unconfirmed_jump", "unasked_answer")
# what an order event's stage_ns holds, in order (enum tw_order_stage): they add up to its tick-to-trade
ORDER_STAGES = ("wire", "queue", "apply", "decide", "risk", "send")
# issue 16 (F): worker.h's enum tw_worker_cmd (code -> action, level) and enum tw_command_result, in order
COMMANDS = {1: ("kill", "instrument"), 2: ("resume", "instrument"), 3: ("kill", "strategy"),
            4: ("resume", "strategy"), 5: ("kill", "global"), 6: ("resume", "global"), 7: ("reload", None)}
COMMAND_RESULTS = ("done", "no_target", "refused", "malformed")


@functools.cache
def kill_reasons() -> dict[int, str]:
    """worker.h's enum tw_kill_reason: each value's name (TW_KILL_DEADMAN -> "deadman")."""
    _, lib = native()
    return {getattr(lib, n): n.removeprefix("TW_KILL_").lower() for n in dir(lib) if n.startswith("TW_KILL_")}


def event_dict(ev: Any, strategies: list[str] | None = None) -> dict[str, Any]:
    """A ``struct tw_event`` as plain data, with only the fields its type uses; an order's
    or a denial's strategy by name (``strategies``: the worker's, by slot)."""
    kind = EVENTS[ev.type] if ev.type < len(EVENTS) else f"type {ev.type}"
    out: dict[str, Any] = {"ts_ns": ev.ts_ns, "event": kind}
    if kind in ("gap", "unrecoverable", "retransmission_request"):
        out.update(first=ev.a, count=ev.b)
    elif kind == "recovered":
        out.update(next_seq=ev.a, messages=ev.b)
    elif kind == "end_of_session":
        out.update(next_seq=ev.a)
    elif kind == "order":  # code: O sent, N not sent (the link broke), or the exchange's OUCH type (A E C J ...)
        out.update(type=chr(ev.code), user_ref=ev.a, qty=ev.b)
        if ev.side:
            out["side"] = chr(ev.side)
        if ev.price:
            out["price"] = ev.price
        if ev.locate:
            out.update(locate=ev.locate, symbol=_text(ev.symbol))
        _strategy(out, ev, strategies)
        if ev.seq and ev.code != ord("O"):  # the venue's answer: its SoupBinTCP sequence number
            out["ouch_seq"] = ev.seq
        elif ev.seq:  # a packet triggered it: which, and where the time went from its arrival to the send
            out.update(line="AB"[ev.line] if ev.line < 2 else "retransmission", seq=ev.seq)
            if any(ev.stage_ns):
                out["stages_ns"] = dict(zip(ORDER_STAGES, list(ev.stage_ns), strict=True))
                out["tick_to_trade_ns"] = sum(ev.stage_ns)
        return out
    elif kind == "feed_refused":  # issue 16 (B): datagrams not the exchange's (feed.h's enum tw_feed_refusal)
        out.update(why=REFUSALS[ev.code] if ev.code < len(REFUSALS) else ev.code,
                   line="AB"[ev.line] if ev.line < 2 else "retransmission", refused=ev.a, total=ev.b)
        if ev.seq:
            out["seq"] = ev.seq  # the sequence number it claimed
        return out
    elif kind == "kill":  # the worker's own kill switch (dead-man, dropped events, stopping): why, cancels sent
        out.update(reason=kill_reasons().get(ev.code, ev.code), thrown=bool(ev.a), cancels=ev.b)
        return out
    elif kind == "bad_answer":  # an impossible answer from the venue (order_entry.h's enum tw_bad_answer)
        out.update(why=BAD_ANSWERS[ev.code] if ev.code < len(BAD_ANSWERS) else ev.code, user_ref=ev.a,
                   number=ev.b, type=chr(ev.stage_ns[0]) if ev.stage_ns[0] else "session", qty=ev.stage_ns[1])
        if ev.stage_ns[2] != 0xFFFFFFFF:
            out["open"] = ev.stage_ns[2]
        if ev.seq:
            out["ouch_seq"] = ev.seq
        if ev.price:
            out["price"] = ev.price
        if ev.side:
            out["side"] = chr(ev.side)
        _strategy(out, ev, strategies)
        return out
    elif kind == "risk_denied":
        out.update(denial=denial_names().get(ev.code, ev.code), reason=denial_reason(ev.code, ev.limit, ev.value),
                   user_ref=ev.a, qty=ev.b, locate=ev.locate)
        _strategy(out, ev, strategies)
        return out
    if kind == "command":  # issue 16 (F): a command from the worker's socket; uid, gid, pid: the kernel's
        action, level = COMMANDS.get(ev.code, (f"command {ev.code}", None))
        out.update(action=action, level=level, result=COMMAND_RESULTS[ev.line] if ev.line < len(COMMAND_RESULTS)
                   else ev.line, request_id=ev.a, uid=ev.b, gid=ev.stage_ns[0], pid=ev.seq, number=ev.value,
                   by="risk manager" if ev.side else "operator")
        if level == "instrument":
            out["locate"] = ev.locate
        elif level == "strategy" and ev.strategy != 255:
            out["slot"] = ev.strategy
            _strategy(out, ev, strategies)
        return out
    if ev.code:
        out["code"] = chr(ev.code) if 32 < ev.code < 127 else ev.code
    if ev.locate:
        out.update(locate=ev.locate, symbol=_text(ev.symbol))
    return out


def _strategy(out: dict[str, Any], ev: Any, names: list[str] | None) -> None:
    if names and ev.strategy < len(names):
        out["strategy"] = names[ev.strategy]


class Books:
    def __init__(self, max_locate: int = 65535, max_orders: int = 1_000_000, levels_per_side: int = 1024,
                 prefault: bool = False):
        """``prefault``: touch every page now (the worker and benchmarks: no page
        fault later); otherwise memory is taken as instruments are first used."""
        self.ffi, self.lib = native()
        ptr = self.lib.tw_books_create(max_locate, max_orders, levels_per_side,
                                       self.lib.TW_BOOKS_PREFAULT if prefault else 0)
        if ptr == self.ffi.NULL:
            raise MemoryError(f"tw_books_create({max_locate}, {max_orders}, {levels_per_side}) failed")
        self._b = self.ffi.gc(ptr, self.lib.tw_books_destroy)
        self._level = self.ffi.new("struct tw_book_level[]", levels_per_side)
        self.max_locate = max_locate
        self._log: Any = None
        # where the ITCH decoder, a Feed on these books and the risk chain raise their events
        self._sink = self.ffi.new("struct tw_event_sink *")

    def record_events(self, capacity: int = 100_000) -> None:
        """Keep the events raised from now on in memory (see :meth:`events`)."""
        self._log_ev = self.ffi.new("struct tw_event[]", capacity)
        self._log = self.ffi.new("struct tw_event_log *", {"ev": self._log_ev, "cap": capacity})
        self._sink.fn, self._sink.ctx = self.ffi.addressof(self.lib, "tw_event_log_emit"), self._log

    def events(self) -> list[dict[str, Any]]:
        if self._log is None:
            return []
        return [event_dict(self._log_ev[i]) for i in range(self._log.n)]

    def apply(self, msg: bytes) -> int:
        """One ITCH message; 0 or a negative tw_book_error."""
        return self.lib.tw_itch_apply(self._b, self._sink, msg, len(msg))

    def apply_binaryfile(self, data: bytes | memoryview) -> int:
        buf = self.ffi.from_buffer("uint8_t[]", data)
        return self.lib.tw_itch_apply_binaryfile(self._b, self._sink, buf, len(data))

    def depth(self, locate: int, side: str, n: int = 10_000) -> list[tuple[int, int, int]]:
        """(price, shares, orders), best first."""
        n = min(n, len(self._level))
        k = self.lib.tw_books_depth(self._b, locate, SIDES[side], self._level, n)
        return [(self._level[i].price, self._level[i].shares, self._level[i].orders) for i in range(k)]

    def micro_price(self, locate: int) -> int | None:
        v = self.lib.tw_books_micro_price(self._b, locate)
        return None if v < 0 else v

    @property
    def live_orders(self) -> int:
        return self.lib.tw_books_live_orders(self._b)

    def stats(self) -> dict[str, Any]:
        st = self.ffi.new("struct tw_book_stats *")
        self.lib.tw_books_stats(self._b, st)
        return book_stats_dict(st)

    @property
    def system_event(self) -> str | None:
        code = self.lib.tw_books_system_event(self._b)
        return chr(code) if code else None

    def instrument(self, locate: int) -> dict[str, Any]:
        """What the state messages said: symbol, trading state, halts, Reg SHO."""
        ins = self.ffi.new("struct tw_instrument *")
        if self.lib.tw_books_instrument(self._b, locate, ins) < 0:
            raise ValueError(f"locate {locate} is above max_locate {self.max_locate}")

        def code(v: int) -> str | None:
            return chr(v) if v else None

        return {"locate": locate, "symbol": _text(ins.symbol) or None, "trading_state": code(ins.trading_state),
                "operational_halt": bool(ins.operational_halt), "reg_sho": code(ins.reg_sho),
                "market_category": code(ins.market_category), "round_lot": ins.round_lot,
                "last_trade": ins.last_trade}

    def watch(self, locate: int, on: bool = True) -> None:
        """Put the instrument's book changes on the touched list (what the worker asks its strategies about)."""
        if self.lib.tw_books_watch(self._b, locate, int(on)) < 0:
            raise ValueError(f"locate {locate}: out of range (1..{self.max_locate}), or "
                             f"{self.lib.TW_BOOKS_MAX_WATCHED} instruments are watched already")

    def take_touched(self) -> list[int]:
        """The watched instruments changed since the last call, in the order they first changed."""
        out = self.ffi.new("uint16_t[]", self.lib.TW_BOOKS_MAX_WATCHED)
        n = self.lib.tw_books_take_touched(self._b, out)
        return [out[i] for i in range(n)]

    def active(self) -> list[int]:
        """Locates with a name, a state or orders, ascending."""
        n = self.lib.tw_books_active(self._b, self.ffi.NULL, 0)
        out = self.ffi.new("uint16_t[]", max(n, 1))
        self.lib.tw_books_active(self._b, out, n)
        return [out[i] for i in range(n)]

    def report(self, top: int = 5) -> list[dict[str, Any]]:
        """Each active instrument: its state and the top levels a side as
        [price, shares, orders], best first (``top`` 0: every level)."""
        out = []
        for loc in self.active():
            entry = self.instrument(loc)
            n = top or len(self._level)
            entry["bids"] = [list(x) for x in self.depth(loc, "B", n)]
            entry["asks"] = [list(x) for x in self.depth(loc, "S", n)]
            entry["micro_price"] = self.micro_price(loc)
            out.append(entry)
        return out


FEED_FIELDS = ("next_seq", "applied", "duplicates", "gaps", "recovered", "unrecoverable", "skipped", "malformed",
               "other_session", "book_errors", "gap_to", "in_gap", "stale", "end_of_session")
LINES = {"A": 0, "B": 1, "retransmission": 2}


def refused_dict(st: Any) -> dict[str, dict[str, int]]:
    """A tw_feed_state's refusals, by line and why (issue 16 (B))."""
    return {line: dict(zip(REFUSALS, list(st.refused[i]), strict=True)) for i, line in enumerate(LINES)}


class Feed:
    """One MoldUDP64 session feeding a :class:`Books`: A/B arbitration and gaps."""

    def __init__(self, books: Books, max_held: int = 65_536):
        self.books = books
        self.ffi, self.lib = books.ffi, books.lib
        ptr = self.lib.tw_feed_create(max_held)
        if ptr == self.ffi.NULL:
            raise MemoryError("tw_feed_create failed")
        self._f = self.ffi.gc(ptr, self.lib.tw_feed_destroy)
        self.lib.tw_feed_set_events(self._f, books._sink)

    def packet(self, line: str, data: bytes) -> int:
        """One packet through the feed into the books, as the worker's loop takes it."""
        return self.lib.tw_feed_packet(self._f, self.books._b, self.books._sink, LINES[line], data, len(data))

    def state(self) -> dict[str, Any]:
        st = self.ffi.new("struct tw_feed_state *")
        self.lib.tw_feed_state(self._f, st)
        out = {f: getattr(st, f) for f in FEED_FIELDS}
        out["packets"] = dict(zip(LINES, list(st.packets), strict=True))
        out["first_copy"] = dict(zip(LINES, list(st.first_copy), strict=True))
        out["refused"] = refused_dict(st)
        out["shown"] = dict(zip(LINES, list(st.shown), strict=True))
        return out

    # issue 16 (B): who may speak for the feed (feed.h)
    def expect_session(self, session: str) -> None:
        """Take only this MoldUDP64 session (space padded to 10 bytes, as on the wire); others are refused."""
        raw = session.encode("ascii")
        if not 0 < len(raw) <= 10:
            raise ValueError(f"session {session!r}: give 1 to 10 characters")
        self.lib.tw_feed_expect_session(self._f, raw.ljust(10, b" "))

    def answers_asked_only(self) -> None:
        """Take retransmission answers only within the ranges asked (asked())."""
        self.lib.tw_feed_answers_asked_only(self._f)

    def asked(self, first: int, count: int) -> None:
        """A request for first .. first + count - 1 went to the re-request server."""
        self.lib.tw_feed_asked_range(self._f, first, count)

    def refuse(self, line: str, why: str) -> None:
        """A datagram refused before the feed (the loop's TW_REFUSED_SOURCE): counted, raised."""
        self.lib.tw_feed_refuse(self._f, LINES[line], REFUSALS.index(why))

    def missing(self) -> tuple[int, int] | None:
        first, count = self.ffi.new("uint64_t *"), self.ffi.new("uint64_t *")
        return (first[0], count[0]) if self.lib.tw_feed_missing(self._f, first, count) else None

    def skip_gap(self) -> bool:
        """Give the open gap's first hole up (the books stay stale); what was held after it is applied."""
        skipped = bool(self.lib.tw_feed_skip_gap(self._f))
        self.lib.tw_feed_apply(self._f, self.books._b, self.books._sink)
        return skipped
