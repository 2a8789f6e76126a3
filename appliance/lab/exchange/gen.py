"""``tickwire exchange gen``: a deterministic trading day as a NASDAQ BinaryFILE.

The day: system event O (start of messages), the stock directory (R) and a
trading action (H, T) per symbol, S (start of system hours), pre-open orders,
Q (market open) and an opening cross per symbol (C executions and a Q cross
trade), the order flow (A F E X D U P from :mod:`flow` through the matching
engine), a closing cross, then M (market close), E (end of system hours) and C
(end of messages). ``messages`` counts the book messages from the pre-open to the
last continuous event (the closing cross comes on top). Same arguments, same bytes.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import pathlib
from collections.abc import Callable

from appliance.lab.exchange.book import Engine
from appliance.lab.exchange.flow import FlowGenerator, FlowParams
from appliance.protocols import binaryfile, itch

HOUR = 3_600_000_000_000
OPEN_NS = 9 * HOUR + 30 * 60_000_000_000
CLOSE_NS = 16 * HOUR
BOOK_TYPES = frozenset("AFECXDUPQ")


def symbol_names(n: int) -> list[str]:
    """Deterministic, distinct, 2-5 letter symbols: TWAA, TWAB, ..."""
    if not 1 <= n <= 26 * 26 * 26:
        raise ValueError(f"--symbols {n}: must be within 1..17576")
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [f"T{letters[i // 676]}{letters[i // 26 % 26]}{letters[i % 26]}" for i in range(n)]


@dataclasses.dataclass
class DayReport:
    path: str
    symbols: int
    messages: int            # all messages in the file
    book_messages: int       # order-flow messages (A F E C X D U P Q), the closing cross included
    by_type: dict[str, int]
    bytes: int
    sha256: str
    seed: int


def generate(out: pathlib.Path, symbols: int, messages: int, seed: int, rate: float = 100_000.0,
             progress: Callable[[int], None] | None = None) -> DayReport:
    if messages < 1:
        raise ValueError(f"--messages {messages}: must be at least 1")
    names = symbol_names(symbols)
    now = [3 * HOUR]
    records: list[bytes] = []
    book_count = [0]  # book messages (A F E C X D U P Q) published so far

    def emit(rec: itch.Message) -> None:
        records.append(itch.encode(rec))
        if rec.TYPE in BOOK_TYPES:
            book_count[0] += 1

    engine = Engine(names, clock=lambda: now[0], emit=emit)

    def at(ns: int) -> None:
        now[0] = max(now[0], ns)

    at(3 * HOUR + 5 * 60_000_000_000)
    engine.system_event("O")
    engine.directory()
    at(4 * HOUR)
    engine.system_event("S")
    for s in names:
        engine.trading_action(s, "T")
    flow = FlowGenerator(engine, seed, FlowParams(rate=rate), start_ns=OPEN_NS)
    at(9 * HOUR)
    flow.pre_open(min(20, messages // (20 * symbols)))  # books exist when the market opens
    at(OPEN_NS)
    engine.system_event("Q")
    for s in names:
        engine.cross(s, "O", flow.cross_size())
    last_report = 0
    while book_count[0] < messages:
        at(flow.step())
        if progress and book_count[0] - last_report >= 50_000:
            progress(book_count[0])
            last_report = book_count[0]
    # the last event may have published several messages: keep exactly `messages`
    # (the tail holds only book messages, no administrative one comes after the open)
    cut = book_count[0] - messages
    if cut:
        del records[-cut:]
    at(max(CLOSE_NS, now[0] + 1))
    if cut == 0:  # the file holds all the engine published, so a cross against its book is consistent
        for s in names:
            engine.cross(s, "C", flow.cross_size())
    engine.system_event("M")
    at(max(20 * HOUR, now[0] + 1))
    engine.system_event("E")
    at(now[0] + 5 * 60_000_000_000)
    engine.system_event("C")
    data = binaryfile.encode(records)
    out.write_bytes(data)
    if progress:
        progress(messages)
    counts = collections.Counter(chr(r[0]) for r in records)
    return DayReport(str(out), symbols, len(records), sum(counts[t] for t in BOOK_TYPES),
                     dict(sorted(counts.items())), len(data),
                     hashlib.sha256(data).hexdigest(), seed)
