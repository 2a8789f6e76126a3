"""Order books in C (dpdk/src/book.c) from Python: build them from ITCH, read
depth, micro-price and counters. The worker will hold the same books on its
lcore; here they serve tests, replays and benchmarks."""

from __future__ import annotations

from typing import Any

from dpdk import native

SIDES = {"B": 0, "S": 1}
ERRORS = ("", "bad length", "bad locate", "bad field", "duplicate", "unknown order", "overfill", "orders full",
          "levels full")


class Books:
    def __init__(self, max_locate: int = 65535, max_orders: int = 1_000_000, levels_per_side: int = 1024):
        self.ffi, self.lib = native()
        ptr = self.lib.tw_books_create(max_locate, max_orders, levels_per_side)
        if ptr == self.ffi.NULL:
            raise MemoryError(f"tw_books_create({max_locate}, {max_orders}, {levels_per_side}) failed")
        self._b = self.ffi.gc(ptr, self.lib.tw_books_destroy)
        self._level = self.ffi.new("struct tw_book_level[]", levels_per_side)

    def apply(self, msg: bytes) -> int:
        """One ITCH message; 0 or a negative tw_book_error."""
        return self.lib.tw_books_apply(self._b, msg, len(msg))

    def apply_binaryfile(self, data: bytes | memoryview) -> int:
        buf = self.ffi.from_buffer("uint8_t[]", data)
        return self.lib.tw_books_apply_binaryfile(self._b, buf, len(data))

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
        return {"applied": st.applied, "ignored": st.ignored,
                "errors": {ERRORS[i]: st.errors[i] for i in range(1, len(ERRORS)) if st.errors[i]}}


FEED_FIELDS = ("next_seq", "applied", "duplicates", "gaps", "recovered", "unrecoverable", "skipped", "malformed",
               "other_session", "book_errors", "gap_to", "in_gap", "stale", "end_of_session")
LINES = {"A": 0, "B": 1, "retransmission": 2}


class Feed:
    """One MoldUDP64 session feeding a :class:`Books`: A/B arbitration and gaps."""

    def __init__(self, books: Books, max_held: int = 65_536):
        self.books = books
        self.ffi, self.lib = books.ffi, books.lib
        ptr = self.lib.tw_feed_create(books._b, max_held)
        if ptr == self.ffi.NULL:
            raise MemoryError("tw_feed_create failed")
        self._f = self.ffi.gc(ptr, self.lib.tw_feed_destroy)

    def packet(self, line: str, data: bytes) -> int:
        return self.lib.tw_feed_packet(self._f, LINES[line], data, len(data))

    def state(self) -> dict[str, Any]:
        st = self.ffi.new("struct tw_feed_state *")
        self.lib.tw_feed_state(self._f, st)
        out = {f: getattr(st, f) for f in FEED_FIELDS}
        out["packets"] = dict(zip(LINES, list(st.packets), strict=True))
        out["first_copy"] = dict(zip(LINES, list(st.first_copy), strict=True))
        return out

    def missing(self) -> tuple[int, int] | None:
        first, count = self.ffi.new("uint64_t *"), self.ffi.new("uint64_t *")
        return (first[0], count[0]) if self.lib.tw_feed_missing(self._f, first, count) else None
