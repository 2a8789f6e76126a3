"""The order management system: every order's state from the worker's events.

The worker (C) sends orders and reads the venue's answers; it reports each as an
event (dpdk.books.event_dict: ``order`` with type O sent, X cancel sent, N not
sent, or the venue's A accepted, E executed, C canceled, J rejected, U replaced).
The OMS follows them through one transition table, ``TRANSITIONS``; an event the
table has no entry for is *illegal*: it is recorded as an anomaly and the order
keeps its state. An answer about an order never sent is *unknown*.

Quantities follow the venue's word as the worker's risk table does (dpdk/src/risk_orders.c), so
that a restart, which seeds the worker's positions from here, agrees with it: a Canceled takes
its decrement (OUCH 5.0's Order Canceled carries it) and the order stays open with the rest; an
execution of more than the order has open is an anomaly (the worker calls it impossible and throws
its kill switch) and counts in full, every share the venue says traded, and fills the order.

Positions and P&L come from the fills: per instrument (and per strategy, for
orders whose event names one), the signed position, the average cost of it, the
realized P&L of what was closed, and the unrealized P&L against a mark.

After a restart, :meth:`Oms.from_journal` rebuilds the state from the journal and
:func:`reconcile` compares it with what the venue says (the session's replay of
the day's messages): venue answers the journal missed are applied, orders the
venue has and the journal does not are *orphans*, orders the journal sent and
the venue never answered are *unconfirmed*.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterable
from typing import Any

from appliance import journal

PRICE_SCALE = 10_000

STATES = ("pending_new", "accepted", "partially_filled", "filled", "cancel_pending", "canceled", "rejected",
          "not_sent", "replaced")
TERMINAL = frozenset({"filled", "canceled", "rejected", "not_sent", "replaced"})
EVENT_OF = {"O": "sent", "X": "cancel_sent", "N": "not_sent", "A": "accepted", "E": "executed", "C": "canceled",
            "J": "rejected", "U": "replaced"}
FILL = "<fill>"  # executed: partially_filled, or filled once every share has traded

# (state before, event) -> state after. Anything else is illegal.
TRANSITIONS: dict[tuple[str | None, str], str] = {
    (None, "sent"): "pending_new",
    ("pending_new", "accepted"): "accepted",
    ("pending_new", "rejected"): "rejected",
    ("pending_new", "not_sent"): "not_sent",
    ("pending_new", "cancel_sent"): "cancel_pending",      # cancelled before the venue's ack came
    ("accepted", "executed"): FILL,
    ("accepted", "cancel_sent"): "cancel_pending",
    ("accepted", "canceled"): "canceled",                   # an IOC's rest, or the venue's own cancel
    ("accepted", "replaced"): "replaced",
    ("partially_filled", "executed"): FILL,
    ("partially_filled", "cancel_sent"): "cancel_pending",
    ("partially_filled", "canceled"): "canceled",
    ("partially_filled", "replaced"): "replaced",
    ("cancel_pending", "accepted"): "cancel_pending",       # the ack our cancel overtook
    ("cancel_pending", "executed"): FILL,                   # a fill that raced the cancel
    ("cancel_pending", "cancel_sent"): "cancel_pending",
    ("cancel_pending", "canceled"): "canceled",
    ("cancel_pending", "rejected"): "rejected",
    ("cancel_pending", "not_sent"): "not_sent",
}


@dataclasses.dataclass
class Order:
    user_ref: int
    symbol: str
    side: str            # B or S
    qty: int
    price: int           # 4 decimals
    state: str = "pending_new"
    filled: int = 0
    notional: int = 0    # sum of fill price x shares (4 decimals)
    canceled: int = 0
    history: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (event, state after)
    strategy: str | None = None  # the strategy that sent it, when the event said

    @property
    def open(self) -> bool:
        return self.state not in TERMINAL

    @property
    def leaves(self) -> int:
        """Shares still open: neither filled nor canceled."""
        return 0 if not self.open else max(self.qty - self.filled - self.canceled, 0)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["history"] = [f"{e}->{s}" for e, s in self.history]
        d["avg_price"] = round(self.notional / self.filled / PRICE_SCALE, 4) if self.filled else None
        return d


@dataclasses.dataclass
class Position:
    shares: int = 0
    cost: float = 0.0        # dollars paid for the open shares (negative for a short)
    realized: float = 0.0    # dollars
    bought: int = 0
    sold: int = 0

    def fill(self, side: str, qty: int, price: int) -> None:
        px = price / PRICE_SCALE
        signed = qty if side == "B" else -qty
        if side == "B":
            self.bought += qty
        else:
            self.sold += qty
        if self.shares == 0 or (self.shares > 0) == (signed > 0):  # opening or adding
            self.cost += signed * px
            self.shares += signed
            return
        closing = min(abs(signed), abs(self.shares))
        avg = self.cost / self.shares
        self.realized += closing * (px - avg) * (1 if self.shares > 0 else -1)
        self.cost -= avg * closing * (1 if self.shares > 0 else -1)
        self.shares += signed
        rest = abs(signed) - closing
        if rest:  # through zero: the rest opens the other way
            self.cost = (rest if signed > 0 else -rest) * px
        if self.shares == 0:
            self.cost = 0.0

    def unrealized(self, mark: float | None) -> float:
        return 0.0 if mark is None or self.shares == 0 else self.shares * mark - self.cost


class Oms:
    def __init__(self) -> None:
        self.orders: dict[int, Order] = {}
        self.positions: dict[str, Position] = {}
        self.strategy_positions: dict[str, Position] = {}  # by strategy name
        self.strategy_symbols: dict[str, str] = {}          # strategy name -> the instrument it traded
        self.anomalies: list[dict[str, Any]] = []
        self.events = 0
        self.last_venue_seq = 0  # the highest SoupBinTCP sequence number among the venue's answers

    # ---- events ------------------------------------------------------------------------------

    def on_event(self, ev: dict[str, Any], where: Any = None) -> None:
        """One worker event (others than orders are ignored). ``where``: a journal
        sequence number or the like, kept with an anomaly."""
        if ev.get("event") != "order":
            return
        event = EVENT_OF.get(ev["type"])
        if event is None:
            return
        self.events += 1
        self.last_venue_seq = max(self.last_venue_seq, int(ev.get("ouch_seq") or 0))
        ref = ev["user_ref"]
        if event == "sent":
            if ref in self.orders:
                self._anomaly(ref, event, "a UserRefNum used twice", where)
                return
            o = Order(ref, ev.get("symbol", "?"), ev.get("side", "?"), ev["qty"], ev.get("price", 0),
                      strategy=ev.get("strategy"))
            if o.strategy is not None:
                self.strategy_symbols.setdefault(o.strategy, o.symbol)
            o.history.append((event, o.state))
            self.orders[ref] = o
            return
        o = self.orders.get(ref)
        if o is None:
            self._anomaly(ref, event, "unknown order: an answer about an order never sent", where)
            return
        after = TRANSITIONS.get((o.state, event))
        if after is None:
            self._anomaly(ref, event, f"illegal: {event} in state {o.state}", where)
            return
        if event == "executed":
            qty, leaves = ev["qty"], o.leaves
            if qty > leaves:  # impossible: counted all the same, as the venue says it traded (and the worker does)
                self._anomaly(ref, event, f"overfill: {qty} executed, {leaves} open of {o.qty}", where)
            o.filled += qty
            o.notional += qty * ev.get("price", 0)
            self.positions.setdefault(o.symbol, Position()).fill(o.side, qty, ev.get("price", 0))
            if o.strategy is not None:
                self.strategy_positions.setdefault(o.strategy, Position()).fill(o.side, qty, ev.get("price", 0))
            if qty >= leaves:
                after = "filled"
            elif after == FILL:
                after = "partially_filled"
        elif event == "canceled":  # the decrement; the order works on with the rest
            qty, leaves = ev.get("qty", 0), o.leaves
            if not 0 < qty <= leaves:
                self._anomaly(ref, event, f"cancel of {qty}, {leaves} open of {o.qty}", where)
            o.canceled += min(qty, leaves)
            if qty < leaves:
                after = o.state
        o.state = after
        o.history.append((event, after))

    def _anomaly(self, ref: int, event: str, why: str, where: Any) -> None:
        self.anomalies.append({"user_ref": ref, "event": event, "why": why, "where": where})

    # ---- reading -----------------------------------------------------------------------------

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.open]

    def by_state(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.orders.values():
            out[o.state] = out.get(o.state, 0) + 1
        return out

    def position(self, symbol: str) -> int:
        p = self.positions.get(symbol)
        return p.shares if p else 0

    def pnl(self, marks: dict[str, float] | None = None) -> dict[str, dict[str, Any]]:
        """Per instrument: position, average cost, realized and unrealized P&L (dollars)."""
        marks = marks or {}
        return {sym: _pnl(p, marks.get(sym)) for sym, p in sorted(self.positions.items())}

    def strategy_pnl(self, marks: dict[str, float] | None = None) -> dict[str, dict[str, Any]]:
        """The same per strategy (its own fills, marked at its instrument's mark)."""
        marks = marks or {}
        return {name: {**_pnl(p, marks.get(self.strategy_symbols.get(name, ""))),
                       "symbol": self.strategy_symbols.get(name)}
                for name, p in sorted(self.strategy_positions.items())}

    def strategy_open(self) -> dict[str, int]:
        """Open orders per strategy."""
        out: dict[str, int] = {}
        for o in self.open_orders():
            if o.strategy is not None:
                out[o.strategy] = out.get(o.strategy, 0) + 1
        return out

    def summary(self) -> dict[str, Any]:
        return {"orders": len(self.orders), "open": len(self.open_orders()), "by_state": self.by_state(),
                "events": self.events, "anomalies": self.anomalies, "pnl": self.pnl()}

    @classmethod
    def from_journal(cls, directory: str | pathlib.Path, since_ns: int = 0) -> Oms:
        """The state the journal's order records lead to (those written from since_ns on)."""
        oms = cls()
        for r in journal.read(directory):
            if "event" in r.data and r.ts_ns >= since_ns:
                oms.on_event(r.data, where=r.seq)
        return oms


def _pnl(p: Position, mark: float | None) -> dict[str, Any]:
    return {"position": p.shares, "bought": p.bought, "sold": p.sold,
            "avg_cost": round(p.cost / p.shares, 4) if p.shares else None,
            "realized": round(p.realized, 2), "unrealized": round(p.unrealized(mark), 2), "mark": mark}


def reconcile(oms: Oms, venue: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Bring the OMS in line with the venue's own account of the day (OUCH messages
    as dpdk.ouch.OuchSession.poll gives them, in session order: type, user_ref, qty,
    price). The answers the journal has for an order are a prefix of the venue's
    (both follow the session's sequence); the rest are applied. Reported: what was
    applied, orphans (orders the venue has that were never sent from here) and
    unconfirmed orders (sent, or asked to cancel, and never answered)."""
    answers: dict[int, list[dict[str, Any]]] = {}
    for m in venue:
        if m.get("type") in ("A", "E", "C", "J", "U") and m.get("user_ref"):
            answers.setdefault(m["user_ref"], []).append(m)
    applied, orphans = [], []
    for ref, msgs in answers.items():
        o = oms.orders.get(ref)
        if o is None:
            orphans.append(ref)
            continue
        have = sum(1 for e, _ in o.history if e in ("accepted", "executed", "canceled", "rejected", "replaced"))
        for m in msgs[have:]:
            oms.on_event({"event": "order", "type": m["type"], "user_ref": ref, "qty": m.get("qty", 0),
                          "price": m.get("price", 0)}, where="venue replay")
            applied.append({"user_ref": ref, "type": m["type"], "qty": m.get("qty", 0)})
    unconfirmed = [ref for ref, o in oms.orders.items()
                   if ref not in answers and o.state in ("pending_new", "cancel_pending")]
    return {"applied": applied, "orphans": sorted(orphans), "unconfirmed": sorted(unconfirmed),
            "open": sorted(o.user_ref for o in oms.open_orders())}
