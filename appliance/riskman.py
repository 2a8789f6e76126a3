"""The risk manager: the control plane's watch over a trading worker.

The worker's inline risk (dpdk/src/risk.c) checks every order against hard
limits in nanoseconds. This watches what only shows over time, every tick of the
control loop (50 ms):

- per strategy: its P&L, realized and unrealized (the OMS's fills of its own
  orders, marked to its instrument's micro-price), the drawdown from its best,
  and its reject rate over a window: a breach trips *that strategy's* kill switch;
- for the whole worker: the total P&L of every strategy (``max_total_loss``),
  the session's message rate (what the venue throttles), books left stale, the
  order-entry session down, and (``ptp.stop_trading_on_failure``) the clock
  failed for ``ptp.fail_after`` (the PTP monitor's verdict,
  appliance.ptp.monitor): a breach trips the *global* kill switch.

A trip journals why (a ``risk`` record) and goes to the worker as a command on its
command socket, the operators' channel (appliance.feed.killswitch): the worker carries
it out in turn with theirs (neither overwrites the other) and records it itself, as
the risk manager's only when it comes from its own process (the ``operator`` record
by ``risk manager``). It stays until an operator runs ``tickwire resume`` at that
level: the manager then watches that target again (a drawdown from then on; a
loss still past its limit trips again at once, so raise the limit with
``tickwire reload`` first).
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from appliance.oms import PRICE_SCALE, Oms


@dataclasses.dataclass
class Watched:
    """One strategy as the manager follows it."""
    name: str
    symbol: str
    locate: int
    slot: int
    peak: float = 0.0
    sent: collections.deque[float] = dataclasses.field(default_factory=collections.deque)
    rejected: collections.deque[float] = dataclasses.field(default_factory=collections.deque)
    tripped: dict[str, Any] | None = None


class RiskManager:
    def __init__(self, limits: Any, oms: Oms, worker: Any, trading: Any, strategies: list[tuple[str, str, int]],
                 trip: Callable[[str, str | None, str], dict[str, Any]], journal: Any = None,
                 say: Callable[[str], None] = lambda _m: None, clock: Callable[[], Any] | None = None,
                 clock_stop: bool = False, clock_fail_after: float = 2.0):
        """limits: config.RiskManager; strategies: (name, symbol, locate) by slot;
        trip(level, target, reason) throws the kill switch (level global or strategy); clock():
        the PTP monitor's latest view (its verdict, how long it has failed, why)."""
        self.limits, self.oms, self.worker, self.trading = limits, oms, worker, trading
        self.watched = {name: Watched(name, symbol, locate, slot)
                        for slot, (name, symbol, locate) in enumerate(strategies)}
        self.trip, self.journal, self.say = trip, journal, say
        self.clock, self.clock_stop, self.clock_fail_after = clock, clock_stop, clock_fail_after
        self.peak = 0.0
        self.tripped: dict[str, Any] | None = None  # the global trip
        self.messages: collections.deque[tuple[float, int]] = collections.deque()
        self.stale_since: float | None = None
        self.down_since: float | None = None
        self.was_up = False
        self.view: dict[str, Any] = {}

    def on_event(self, ev: dict[str, Any]) -> None:
        """Every worker event, as the control loop drains them."""
        self.oms.on_event(ev)
        if ev.get("event") != "order":
            return
        w = self._owner(ev)
        if w is None:
            return
        now = time.monotonic()
        if ev["type"] == "O":
            w.sent.append(now)
        elif ev["type"] == "J":
            w.rejected.append(now)

    def _owner(self, ev: dict[str, Any]) -> Watched | None:
        name = ev.get("strategy")
        if name is None:  # an answer: the strategy its order was sent by
            o = self.oms.orders.get(ev.get("user_ref"))
            name = o.strategy if o is not None else None
        if name is None and len(self.watched) == 1:
            return next(iter(self.watched.values()))
        return self.watched.get(name) if name is not None else None

    def marks(self) -> dict[str, float]:
        out = {}
        for w in self.watched.values():
            micro = self.worker.books.micro_price(w.locate)  # read while the worker writes: a monitoring figure
            if micro:
                out[w.symbol] = micro / PRICE_SCALE
        return out

    def _strategy_pnl(self, marks: dict[str, float]) -> dict[str, dict[str, Any]]:
        by = self.oms.strategy_pnl(marks)
        if len(self.watched) == 1 and not by:  # events without a strategy name (an older worker's journal)
            w = next(iter(self.watched.values()))
            return {w.name: self.oms.pnl(marks).get(w.symbol, {})}
        return by

    def tick(self, now: float | None = None) -> dict[str, Any] | None:
        """Look once; each breach trips its target (once). Returns the first trip of this tick."""
        now = time.monotonic() if now is None else now
        lim = self.limits
        st = self.worker.shared.ptr
        self._rearm(st)
        marks = self.marks()
        by = self._strategy_pnl(marks)
        total = 0.0
        views = {}
        for w in self.watched.values():
            p = by.get(w.name, {})
            pnl = float(p.get("realized", 0.0)) + float(p.get("unrealized", 0.0))
            total += pnl
            w.peak = max(w.peak, pnl)
            for q in (w.sent, w.rejected):
                while q and now - q[0] > lim.reject_window:
                    q.popleft()
            views[w.name] = {"symbol": w.symbol, "mark": marks.get(w.symbol), "position": p.get("position", 0),
                             "pnl": round(pnl, 2), "peak": round(w.peak, 2), "drawdown": round(w.peak - pnl, 2),
                             "sent_in_window": len(w.sent), "rejected_in_window": len(w.rejected),
                             "tripped": w.tripped}
        self.peak = max(self.peak, total)
        msgs = st.orders_sent + st.cancels_sent
        self.messages.append((now, msgs))
        while self.messages and now - self.messages[0][0] > 1.0:
            self.messages.popleft()
        rate = msgs - self.messages[0][1] if len(self.messages) > 1 else 0
        stale = bool(st.feed.stale)
        self.stale_since = (now if self.stale_since is None else self.stale_since) if stale else None
        up = self.trading.session is not None and self.trading.session.stats()["state"] == "up"
        self.was_up = self.was_up or up
        self.down_since = (now if self.down_since is None else self.down_since) if (self.was_up and not up) \
            else None
        clock = self.clock() if self.clock is not None else None
        self.view = {"pnl": round(total, 2), "peak": round(self.peak, 2), "drawdown": round(self.peak - total, 2),
                     "clock": clock["verdict"] if clock else None,
                     "strategies": views, "messages_per_s": rate,
                     "books_stale_s": round(now - self.stale_since, 3) if stale else 0,
                     "session": "up" if up else ("down" if self.was_up else "not yet up"),
                     "session_down_s": round(now - self.down_since, 3) if self.down_since is not None else 0,
                     "tripped": self.tripped}
        first = None
        if self.tripped is None:
            breach = self._global_breach(total, rate, now, clock)
            if breach is not None:
                first = self._trip("global", None, *breach)
        if self.tripped is None:  # a global trip stops everything: no strategy to trip on its own
            for w in self.watched.values():
                if w.tripped is None:
                    breach = self._strategy_breach(w, views[w.name])
                    if breach is not None:
                        got = self._trip("strategy", w, *breach)
                        first = first or got
        return first

    def _trip(self, level: str, w: Watched | None, what: str, value: Any, limit: Any) -> dict[str, Any] | None:
        who = f"strategy {w.name}" if w is not None else "the whole worker"
        reason = f"{what} {value} past its limit {limit}" + (f" ({w.name})" if w is not None else "")
        self.say(f"risk manager: {reason}: tripping the kill switch of {who}")
        if self.journal is not None:
            self.journal.append("risk", {"breach": what, "value": value, "limit": limit, "level": level,
                                         "target": w.name if w is not None else None,
                                         "view": _plain(self.view)})
        try:
            acted = self.trip(level, w.name if w is not None else None, reason)
        except Exception as exc:  # noqa: BLE001 - a trip that failed is reported, and tried again next tick
            self.say(f"risk manager: the trip failed: {exc}")
            return None
        tripped = {"breach": what, "value": value, "limit": limit, "level": level,
                   "target": w.name if w is not None else None, "at": time.time(), "cancels": acted.get("cancels")}
        if w is None:
            self.tripped = tripped
            self.view["tripped"] = tripped
        else:
            w.tripped = tripped
            self.view["strategies"][w.name]["tripped"] = tripped
        return tripped

    def _rearm(self, st: Any) -> None:
        """An operator's resume at a level the manager tripped: watch that target again."""
        if self.tripped is not None and not getattr(st, "killed", 1):
            self.say("risk manager: the whole worker was resumed: watching it again")
            self.tripped = None
            self.peak = float("-inf")  # the drawdown counts from now on
        mask = getattr(st, "killed_strategy", None)
        for w in self.watched.values():
            if w.tripped is not None and mask is not None and not (mask >> w.slot) & 1:
                self.say(f"risk manager: strategy {w.name} was resumed: watching it again")
                w.tripped = None
                w.peak = float("-inf")

    def _strategy_breach(self, w: Watched, v: dict[str, Any]) -> tuple[str, Any, Any] | None:
        lim = self.limits
        if lim.max_loss is not None and -v["pnl"] > float(lim.max_loss):
            return "loss", round(-v["pnl"], 2), str(lim.max_loss)
        if lim.max_drawdown is not None and w.peak - v["pnl"] > float(lim.max_drawdown):
            return "drawdown", round(w.peak - v["pnl"], 2), str(lim.max_drawdown)
        if lim.max_reject_rate is not None and len(w.sent) >= lim.min_orders:
            r = len(w.rejected) / len(w.sent)
            if r > lim.max_reject_rate:
                return "reject rate", round(r, 3), lim.max_reject_rate
        return None

    def _global_breach(self, total: float, rate: int, now: float, clock: Any = None) -> tuple[str, Any, Any] | None:
        lim = self.limits
        if self.clock_stop and clock and clock["verdict"] == "failed" and \
                clock["failed_for_s"] >= self.clock_fail_after:
            return f"clock failed ({', '.join(clock['failed']) or clock.get('error')}) for s", \
                round(clock["failed_for_s"], 3), self.clock_fail_after
        if lim.max_total_loss is not None and -total > float(lim.max_total_loss):
            return "total loss", round(-total, 2), str(lim.max_total_loss)
        if lim.max_message_rate is not None and rate > lim.max_message_rate:
            return "message rate", rate, lim.max_message_rate
        if lim.stale_books is not None and self.stale_since is not None and now - self.stale_since > lim.stale_books:
            return "stale books (s)", round(now - self.stale_since, 3), lim.stale_books
        if lim.session_down is not None and self.down_since is not None and now - self.down_since > lim.session_down:
            return "session down (s)", round(now - self.down_since, 3), lim.session_down
        return None


def _plain(view: dict[str, Any]) -> dict[str, Any]:
    """The view without the trips (a journal record of what was seen)."""
    out = {k: v for k, v in view.items() if k not in ("tripped", "strategies")}
    out["strategies"] = {n: {k: x for k, x in s.items() if k != "tripped"} for n, s in view.get("strategies",
                                                                                                {}).items()}
    return out


def watched(limits: Any) -> bool:
    return any(getattr(limits, k) is not None for k in ("max_loss", "max_drawdown", "max_reject_rate",
                                                         "max_message_rate", "stale_books", "session_down",
                                                         "max_total_loss"))
