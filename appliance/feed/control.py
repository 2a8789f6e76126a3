"""Control of a running trading worker from inside its run: the control loop's view of it
(the OMS fed with every order event, the risk manager, hot reload, the live section of its
status file). The operator's kill switch, from another process, is killswitch.py's."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from appliance.config import RiskManager as ManagerLimits
from appliance.feed.killswitch import kill
from appliance.oms import Oms
from appliance.riskman import RiskManager
from dpdk.worker import write_status

if TYPE_CHECKING:  # types only: the run that makes a Control has loaded them
    from appliance.feed.reloader import Reloader
    from appliance.feed.settings import RunSettings


class Control:
    """The control loop's view of a trading worker, ticked with the event drain: the
    OMS fed with every order event, the risk manager (the config's risk.manager),
    hot reload, and a live section in the status file (positions, P&L, orders,
    health) for tickwire status and top."""

    LIVE_EVERY_S = 0.5

    def __init__(self, settings: RunSettings, worker: Any, trading: Any, journal: Any, status: dict[str, Any],
                 reloads: Reloader | None, say: Callable[[str], None], clock: Any = None):
        name = settings.name
        self.worker, self.trading, self.status, self.reloads, self.name = worker, trading, status, reloads, name
        self.oms = Oms()
        cfg = settings.app_config
        limits = cfg.risk.manager if cfg is not None else ManagerLimits()
        watched = [(s["name"], s["symbol"] or f"locate {s['locate']}", s["locate"]) for s in status["strategies"]]

        def trip(level: str, target: str | None, reason: str) -> dict[str, Any]:
            return kill(name, False, 2.0, level, target, reason, who="risk manager")

        ptp = cfg.ptp if cfg is not None else None
        self.clock = clock
        self.risk = RiskManager(limits, self.oms, worker, trading, watched, trip, journal, say,
                                clock=clock.view if clock is not None else None,
                                clock_stop=bool(ptp and ptp.stop_trading_on_failure),
                                clock_fail_after=ptp.fail_after if ptp else 2.0)
        self._last_live = 0.0

    def on_event(self, ev: dict[str, Any]) -> None:
        self.risk.on_event(ev)

    def tick(self) -> None:
        if self.reloads is not None and self.reloads.tick():
            self.risk.limits = self.reloads.current.risk.manager
        self.risk.tick()
        now = time.monotonic()
        if now - self._last_live >= self.LIVE_EVERY_S:
            self._last_live = now
            self.status["live"] = self.live()
            write_status(self.name, self.status)

    def live(self) -> dict[str, Any]:
        summary = self.oms.summary()
        return {"at": time.time(), "risk": self.risk.view, "orders": {k: summary[k] for k in ("orders", "open",
                "by_state")}, "anomalies": len(summary["anomalies"]), "open_by_strategy": self.oms.strategy_open(),
                "positions": {sym: p.shares for sym, p in sorted(self.oms.positions.items())},
                "clock": self.clock.view() if self.clock is not None else None,
                "open_orders": [o.as_dict() for o in self.oms.open_orders()][:50]}

    def final(self) -> dict[str, Any]:
        summary = self.oms.summary()
        return {"oms": {k: summary[k] for k in ("orders", "open", "by_state", "anomalies")},
                "risk_manager": self.risk.view}
