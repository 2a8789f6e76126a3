"""Control of a running trading worker: the control loop's view of it (the OMS fed with
every order event, the risk manager, hot reload, the live section of its status file)
and the operator's kill switch (``tickwire kill``/``resume``/``feed kill``) at the
global, strategy or instrument level, through its shared statistics."""

from __future__ import annotations

import json
import mmap
import os
import pwd
import time
from collections.abc import Callable
from typing import Any

from appliance.config import RiskManager as ManagerLimits
from appliance.feed.errors import FeedError
from appliance.feed.reload import Reloader
from appliance.feed.settings import RunSettings
from appliance.feed.status import stats
from appliance.oms import Oms
from appliance.riskman import RiskManager
from dpdk import native
from dpdk.worker import STATE_DIR, write_status


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


LEVELS = ("global", "strategy", "instrument")


def operator() -> str:
    """Who is at the keyboard: the user sudo ran for, else this process's user."""
    return os.environ.get("SUDO_USER") or pwd.getpwuid(os.getuid()).pw_name


def kill(name: str, release: bool = False, timeout: float = 2.0, level: str = "global", target: str | None = None,
         reason: str = "", who: str | None = None) -> dict[str, Any]:
    """Throw (or release) a running worker's kill switch at one level, through its
    shared statistics, and wait for its loop to act: global (every new order refused),
    strategy (the strategy stops) or instrument (risk refuses its orders); a trip
    cancels the open orders it covers. The request, who made it and why go to the
    worker, which journals them."""
    ffi, lib = native()
    path = STATE_DIR / f"{name}.stats"
    if not path.exists():
        raise FeedError(f"no feed worker named {name} has run on this host ({path} is missing)")
    if level not in LEVELS:
        raise FeedError(f"kill level {level!r}: give one of {', '.join(LEVELS)}")
    info = stats(name, events=0)
    if not info["running"]:
        raise FeedError(f"feed worker {name} is not running (pid {info['pid']})")
    status = info.get("info", {})
    if not status.get("trading", False):
        raise FeedError(f"feed worker {name} does not trade (start it with --trade or --config): there is nothing "
                        "to kill")
    locate = 0
    slot = None
    if level == "strategy":
        mine = {s["name"]: s["slot"] for s in status.get("strategies") or []}
        if target not in mine:
            raise FeedError(f"strategy {target!r}: worker {name} runs " + (", ".join(mine) or "none"))
        slot = mine[target]
    elif level == "instrument":
        known = status.get("instruments") or {}
        if target is not None and target.isdigit():
            locate = int(target)
        elif target in known:
            locate = known[target]
        else:
            raise FeedError(f"instrument {target!r}: " + (f"worker {name} trades {', '.join(known)}" if known else
                            "give its stock locate (a number): this worker was started without an instrument list "
                            "(--config has one)"))
    who = who or operator()
    want = 0 if release else 1
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
        st = ffi.cast("struct tw_worker_stats *", ffi.from_buffer(m))
        asked, asked_real = time.monotonic_ns(), time.time_ns()
        deadline = time.monotonic() + timeout
        if level == "global":
            st.kill = want
            while st.killed != want:
                if time.monotonic() > deadline:
                    raise FeedError(f"feed worker {name} did not act on the kill switch within {timeout:g} s")
                time.sleep(0.0002)
            acted = st.killed_ns
        else:
            cmd = {("strategy", 1): lib.TW_CMD_KILL_STRATEGY, ("strategy", 0): lib.TW_CMD_RELEASE_STRATEGY,
                   ("instrument", 1): lib.TW_CMD_KILL_INSTRUMENT,
                   ("instrument", 0): lib.TW_CMD_RELEASE_INSTRUMENT}[(level, want)]
            seq = st.cmd_seq + 1
            st.cmd, st.cmd_arg = cmd, (slot if level == "strategy" else locate)
            st.cmd_seq = seq  # last: the loop reads the command once it sees the new number
            while st.cmd_done != seq:
                if time.monotonic() > deadline:
                    raise FeedError(f"feed worker {name} did not act on the command within {timeout:g} s")
                time.sleep(0.0002)
            if st.cmd_result:
                raise FeedError(f"instrument locate {locate}: out of the worker's range" if level == "instrument"
                                else f"strategy {target!r} (slot {slot}): not one of the worker's")
            acted = st.cmd_done_ns
        out = {"name": name, "kill": bool(want), "level": level, "target": target, "locate": locate or None,
               "who": who, "reason": reason, "asked_realtime_ns": asked_real,
               "acted_after_us": round(max(0, acted - asked) / 1000, 1),
               "cancels": st.kill_cancels if want else 0,
               "cancels_sent_after_us": round(max(0, st.kill_sent_ns - asked) / 1000, 1) if want else None,
               "orders_sent": st.orders_sent, "cancels_sent": st.cancels_sent}
        del st
    with open(STATE_DIR / f"{name}.operator.jsonl", "a") as f:  # the worker journals it
        f.write(json.dumps({"action": "kill" if want else "resume", **{k: out[k] for k in (
            "level", "target", "locate", "who", "reason", "asked_realtime_ns", "acted_after_us", "cancels")}}) + "\n")
    return out
