"""What a worker is doing, read from its shared statistics and its status file (running or
not): ``tickwire feed stats``'s figures and ``tickwire status``'s operator view."""

from __future__ import annotations

import json
import os
import pathlib
import time
from typing import Any

from appliance.feed import eventlog
from appliance.feed.errors import FeedError
from dpdk import worker as W
from dpdk.worker import DpdkError


def stats(name: str, events: int = 10) -> dict[str, Any]:
    """The named worker's figures from its shared statistics (running or not)."""
    path = W.STATE_DIR / f"{name}.stats"
    if not path.exists():
        known = sorted(p.stem for p in W.STATE_DIR.glob("*.stats")) if W.STATE_DIR.exists() else []
        raise FeedError(f"no feed worker named {name} has run on this host ({path} is missing)"
                        + (f"; known: {', '.join(known)}" if known else "; start one with tickwire feed run"))
    shared = W.SharedStats(path)
    try:
        st = shared.snapshot()
        out = W.stats_dict(st)
    finally:
        shared.close()
    info_path = W.STATE_DIR / f"{name}.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    up = alive(out["pid"])
    out["running"] = bool(out["running"]) and up
    if not up:
        out["heartbeat_age_ms"] = None
    out["name"] = name
    out["info"] = info
    out["rx_packets"] = out["rx_packets"][:len(info.get("ports", [])) or 4]
    ev_path = pathlib.Path(info.get("events", W.STATE_DIR / f"{name}.events.jsonl"))
    out["recent_events"] = eventlog.recent(ev_path, events) if events else []  # across a rotation
    return out


def wait_started(name: str, proc: Any, timeout: float = 30.0) -> None:
    """Until the worker ``name`` that ``proc`` (a Popen of tickwire feed run or run) started
    is running; FeedError with its stderr when it exits first or takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise FeedError(f"worker {name} exited ({proc.returncode}) before it ran: {err[-2000:]}")
        try:
            st = stats(name, events=0)
            if st["running"] and st["pid"] == proc.pid:
                return
        except (FeedError, DpdkError, OSError, ValueError):  # not written yet
            pass
        if time.monotonic() > deadline:
            raise FeedError(f"worker {name} did not start within {timeout:g} s")
        time.sleep(0.2)


def status(name: str) -> dict[str, Any]:
    """``tickwire status``: one trading worker's state for an operator: health of feed,
    session and kill switches, position and P&L, orders, rates and latency."""
    s = stats(name, events=5)
    info, live = s["info"], s["info"].get("live") or {}
    risk = live.get("risk") or {}
    lat = s["latency_ns"]
    age = round(time.time() - live["at"], 1) if live.get("at") else None
    views = risk.get("strategies") or {}
    open_by = live.get("open_by_strategy") or {}
    strategies = []
    for t in info.get("strategies") or []:
        v = views.get(t["name"], {})
        strategies.append({
            "name": t["name"], "kind": t["kind"], "symbol": t["symbol"], "locate": t["locate"],
            "killed": bool((s["killed_strategy"] >> t["slot"]) & 1),
            "instrument_killed": bool((s["killed_instrument"] >> t["slot"]) & 1),
            "position": v.get("position"), "mark": v.get("mark"), "pnl": v.get("pnl"),
            "drawdown": v.get("drawdown"), "open_orders": open_by.get(t["name"], 0),
            "risk_manager": v.get("tripped") or "watching"})
    tripped = risk.get("tripped") or next((st["risk_manager"] for st in strategies
                                           if isinstance(st["risk_manager"], dict)), None)
    return {
        "name": name, "running": s["running"], "pid": s["pid"], "uptime_s": s["uptime_s"],
        "strategies": strategies, "config": info.get("config"), "live_age_s": age,
        "health": {
            "feed": "stale" if s["feed"]["stale"] else ("in gap" if s["feed"]["in_gap"] else "in sequence"),
            "session": risk.get("session", "unknown"),
            "kill_switch": {"global": bool(s["killed"]), "reason": s.get("kill_reason"),
                            "strategies": [st["name"] for st in strategies if st["killed"]],
                            "instruments": sorted({st["symbol"] or str(st["locate"]) for st in strategies
                                                   if st["instrument_killed"]})},
            "risk_manager": tripped or "watching",
            "clock": _clock_health(live.get("clock"), info.get("config")),
        },
        "positions": live.get("positions", {}), "pnl": risk.get("pnl"), "drawdown": risk.get("drawdown"),
        "orders": live.get("orders", {}), "open_orders": live.get("open_orders", []),
        "anomalies": live.get("anomalies", 0),
        "counts": {k: s[k] for k in ("orders_sent", "cancels_sent", "orders_denied", "send_failed", "executed",
                                     "decisions")},
        "messages_per_s": risk.get("messages_per_s"),
        "feed": {k: s["feed"][k] for k in ("applied", "gaps", "recovered", "unrecoverable", "next_seq")},
        "latency_us": {k: {q: round(lat[k][q] / 1000, 1) for q in ("p50", "p99") if q in lat[k]}
                       for k in ("total", "tick_to_trade", "send")},
        "last_reload": info.get("last_reload"),
        "disk": info.get("disk"),
        "recent_events": s["recent_events"],
    }


def _clock_health(view: dict[str, Any] | None, config: str | None) -> str:
    """One line for status: the PTP monitor's verdict and why."""
    if view is None:
        return "not watched (started without --config)" if not config else "not watched yet"
    if view["verdict"] == "healthy":
        return "healthy"
    names = view["failed"] if view["verdict"] == "failed" else view["degraded"]
    return f"{view['verdict']}: {', '.join(names)}" if names else view["verdict"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
