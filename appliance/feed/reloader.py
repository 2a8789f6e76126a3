"""Hot reload: a running worker's strategy parameters and risk limits from its config,
on SIGHUP (``tickwire reload`` asks the worker through its command socket, and the worker
signals its own control loop; systemd's ExecReload sends it to the MainPID it knows)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from appliance import config
from appliance.feed.errors import FeedError
from appliance.feed.killswitch import command
from common.operator import user_name
from dpdk import native
from dpdk import worker as W
from dpdk.worker import write_status

if TYPE_CHECKING:  # a type only: whoever calls this has loaded it
    from appliance.feed.settings import RunSettings


class Reloader:
    """Hot reload of a running worker's strategy parameters and risk limits (not its
    structure) from its config, on SIGHUP (``tickwire reload``): validated first,
    published whole into the worker's tables (each swap is atomic: the worker takes a
    table at its next decision or check, never half of one), journaled, and the
    outcome written into the worker's status file. An invalid file, or one whose
    structure changed, changes nothing and says why."""

    def __init__(self, settings: RunSettings, trading: Any, journal: Any, status: dict[str, Any],
                 say: Callable[[str], None]):
        self.file, self.name = settings.config, settings.name
        self.trading, self.journal, self.status, self.say = trading, journal, status, say
        self.current = settings.app_config  # as the run started with it
        self.requested = 0
        self.count = 0
        signal.signal(signal.SIGHUP, self._handler)

    def _handler(self, signum: int, frame: Any) -> None:
        self.requested += 1

    def tick(self) -> bool:
        """Reload when asked; True when a new config took effect."""
        if not self.requested:
            return False
        self.requested = 0
        return self.reload()["ok"]

    def reload(self) -> dict[str, Any]:
        self.count += 1
        out: dict[str, Any] = {"n": self.count, "at": time.time(), "file": self.file}
        try:
            new = config.load(self.file)
            why = self._structure_changed(self.current, new)
            if why:
                raise config.ConfigError([config.Problem((), None, config.MISSING,
                                                         f"{why} changed: that needs a restart; nothing was changed")],
                                         self.file)
            names = self.trading.names
            params = [new.strategy_params(n) for n in names]
            rows, glob = [new.limits(n) for n in names], new.global_limits()
            changed = _changes("risk.global", self.trading.limits, glob)
            for spec, p, row in zip(self.trading.specs, params, rows, strict=True):
                changed.update(_changes(f"{spec.name}.params", spec.params, p))
                changed.update(_changes(f"{spec.name}.risk", spec.limits, row))
            for slot, p in enumerate(params):  # each strategy's table swapped whole
                self.trading.set_params(slot, p)
            self.trading.set_limits(glob, rows)  # the whole risk table, every row, in one swap
            self.current = new
            out.update(ok=True, changed=changed)
            self.say(f"reloaded {self.file}: " + (", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items())
                                                         or "nothing changed"))
        except config.ConfigError as exc:
            out.update(ok=False, problems=[p.text(exc.file) for p in exc.problems])
            self.say(f"reload of {self.file} refused: {exc}")
        out["sha256"] = hashlib.sha256(pathlib.Path(self.file).read_bytes()).hexdigest() \
            if pathlib.Path(self.file).exists() else None
        if self.journal is not None:
            self.journal.append("config", {"action": "reload", **out})
        self.status["last_reload"] = out
        write_status(self.name, self.status)
        return out

    @staticmethod
    def _structure_changed(old: Any, new: Any) -> str | None:
        """What changed that only a restart can take; None when nothing did."""
        for section in ("host", "feed", "venue", "instruments", "ptp", "failover", "journal"):
            if getattr(old, section) != getattr(new, section):
                return section
        shape = [(s.name, s.kind, s.instrument) for s in old.strategies]
        if shape != [(s.name, s.kind, s.instrument) for s in new.strategies]:
            return "the strategies' names, kinds or instruments"
        return None


def _changes(prefix: str, old: Any, new: Any) -> dict[str, list[Any]]:
    """Each field of two tables (dataclasses) that differs: its old and new figure."""
    return {f"{prefix}.{k}": [getattr(old, k), v] for k, v in dataclasses.asdict(new).items() if getattr(old, k) != v}


def reload(name: str, timeout: float = 5.0) -> dict[str, Any]:
    """``tickwire reload``: a reload command on the worker's command socket (no pid, from a file or
    elsewhere: the worker signals its own control loop, and records who asked), then the control
    loop's verdict from the status file."""
    path = W.STATE_DIR / f"{name}.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FeedError(f"no feed worker named {name} is known ({path}): start one with "
                        "tickwire feed run --config FILE") from exc
    if not info.get("config"):
        raise FeedError(f"worker {name} was not started with --config: there is nothing to reload from")
    _, lib = native()
    before = (info.get("last_reload") or {}).get("n", 0)
    deadline = time.monotonic() + timeout
    a = command(name, lib.TW_CMD_RELOAD, timeout=timeout)
    if a.result == lib.TW_CMDR_NO_TARGET:
        raise FeedError(f"worker {name} has no reloader (its control loop handles no reload)")
    if a.result != lib.TW_CMDR_DONE:
        raise FeedError(f"worker {name} refused the reload of {user_name(a.uid)} (uid {a.uid}, result {a.result})")
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        last = info.get("last_reload") or {}
        if last.get("n", 0) > before:
            return {"name": name, "pid": info["pid"], **last, "who": user_name(a.uid), "request_id": a.request_id}
    raise FeedError(f"worker {name} did not answer the reload within {timeout:g} s")
