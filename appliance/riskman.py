"""The risk manager: the control plane's watch over a trading worker.

The worker's inline risk (dpdk/src/risk.c) checks every order against hard
limits in nanoseconds. This watches what only shows over time, every tick of the
control loop (50 ms): the P&L of the strategy's instrument, realized and
unrealized (the OMS's fills, marked to the book's micro-price), the drawdown from
the day's best, the reject rate and the message rate over a window, books left
stale, and the order-entry session down. A breach trips the kill switch once —
the strategy's for P&L, drawdown, rejects and message rate; the whole worker's
for stale books and a session down — journals why (a ``risk`` record, and the
kill as an ``operator`` action by ``risk manager``), and stays tripped until an
operator resumes (``tickwire resume``).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

from appliance.oms import PRICE_SCALE, Oms


class RiskManager:
    def __init__(self, limits: Any, oms: Oms, worker: Any, trading: Any, symbol: str, locate: int,
                 trip: Callable[[str, str], dict[str, Any]], journal: Any = None,
                 say: Callable[[str], None] = lambda _m: None):
        """limits: config.RiskManager; trip(level, reason) throws the kill switch."""
        self.limits, self.oms, self.worker, self.trading = limits, oms, worker, trading
        self.symbol, self.locate = symbol, locate
        self.trip, self.journal, self.say = trip, journal, say
        self.peak = 0.0
        self.tripped: dict[str, Any] | None = None
        self.sent: collections.deque[float] = collections.deque()
        self.rejected: collections.deque[float] = collections.deque()
        self.messages: collections.deque[tuple[float, int]] = collections.deque()
        self.stale_since: float | None = None
        self.down_since: float | None = None
        self.was_up = False
        self.view: dict[str, Any] = {}

    def on_event(self, ev: dict[str, Any]) -> None:
        """Every worker event, as the control loop drains them."""
        self.oms.on_event(ev)
        if ev.get("event") == "order":
            now = time.monotonic()
            if ev["type"] == "O":
                self.sent.append(now)
            elif ev["type"] == "J":
                self.rejected.append(now)

    def mark(self) -> float | None:
        micro = self.worker.books.micro_price(self.locate)  # read while the worker writes: a monitoring figure
        return micro / PRICE_SCALE if micro else None

    def tick(self, now: float | None = None) -> dict[str, Any] | None:
        """Look once; a breach trips (once). Returns the trip when this tick tripped."""
        now = time.monotonic() if now is None else now
        lim = self.limits
        st = self.worker.shared.ptr
        mark = self.mark()
        pnl = self.oms.pnl({self.symbol: mark} if mark else {}).get(self.symbol, {})
        total = float(pnl.get("realized", 0.0)) + float(pnl.get("unrealized", 0.0))
        self.peak = max(self.peak, total)
        for q in (self.sent, self.rejected):
            while q and now - q[0] > lim.reject_window:
                q.popleft()
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
        self.view = {"symbol": self.symbol, "mark": mark, "pnl": round(total, 2), "peak": round(self.peak, 2),
                     "drawdown": round(self.peak - total, 2), "position": pnl.get("position", 0),
                     "sent_in_window": len(self.sent), "rejected_in_window": len(self.rejected),
                     "messages_per_s": rate, "books_stale_s": round(now - self.stale_since, 3) if stale else 0,
                     "session": "up" if up else ("down" if self.was_up else "not yet up"),
                     "session_down_s": round(now - self.down_since, 3) if self.down_since is not None else 0,
                     "tripped": self.tripped}
        if self.tripped:
            return None
        breach = self._breach(total, rate, now)
        if breach is None:
            return None
        what, value, limit, level = breach
        reason = f"{what} {value} past its limit {limit}"
        self.say(f"risk manager: {reason}: tripping the {level} kill switch")
        if self.journal is not None:
            self.journal.append("risk", {"breach": what, "value": value, "limit": limit, "level": level,
                                         "view": {k: v for k, v in self.view.items() if k != "tripped"}})
        try:
            acted = self.trip(level, reason)
        except Exception as exc:  # noqa: BLE001 - a trip that failed is reported, and tried again next tick
            self.say(f"risk manager: the trip failed: {exc}")
            return None
        self.tripped = {"breach": what, "value": value, "limit": limit, "level": level, "at": time.time(),
                        "cancels": acted.get("cancels")}
        self.view["tripped"] = self.tripped
        return self.tripped

    def _breach(self, total: float, rate: int, now: float) -> tuple[str, Any, Any, str] | None:
        lim = self.limits
        if lim.max_loss is not None and -total > float(lim.max_loss):
            return "loss", round(-total, 2), str(lim.max_loss), "strategy"
        if lim.max_drawdown is not None and self.peak - total > float(lim.max_drawdown):
            return "drawdown", round(self.peak - total, 2), str(lim.max_drawdown), "strategy"
        if lim.max_reject_rate is not None and len(self.sent) >= lim.min_orders:
            r = len(self.rejected) / len(self.sent)
            if r > lim.max_reject_rate:
                return "reject rate", round(r, 3), lim.max_reject_rate, "strategy"
        if lim.max_message_rate is not None and rate > lim.max_message_rate:
            return "message rate", rate, lim.max_message_rate, "strategy"
        if lim.stale_books is not None and self.stale_since is not None and now - self.stale_since > lim.stale_books:
            return "stale books (s)", round(now - self.stale_since, 3), lim.stale_books, "global"
        if lim.session_down is not None and self.down_since is not None and now - self.down_since > lim.session_down:
            return "session down (s)", round(now - self.down_since, 3), lim.session_down, "global"
        return None


def watched(limits: Any) -> bool:
    return any(getattr(limits, k) is not None for k in ("max_loss", "max_drawdown", "max_reject_rate",
                                                         "max_message_rate", "stale_books", "session_down"))
