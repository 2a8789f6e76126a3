"""The clock watched over time: a sample of ptp4l's datasets every interval, the
health of each (appliance.ptp.health), and what changed between them.

A sample is one small record (port state, offset, path delay, grandmaster, its
clock class, the last sync's age, the timestamping mode, the verdict). Changes
become events: the port's state, the grandmaster, and the verdict, whose steps
are one transition table (``TRANSITIONS``: verdict before, verdict now -> the
event). Samples and events go to a sink (the journal's ``ptp`` records, and a
history file under /run/tickwire/ptp that ``tickwire ptp check`` and ``report``
read), and the Prometheus gauges follow the latest sample.

Time is injected (``clock``) and so is the client, so tests can drive it.
"""

from __future__ import annotations

import collections
import json
import pathlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from appliance.ptp import health
from appliance.ptp.client import PtpClient, PtpClientError
from appliance.ptp.mgmt import SERVICE_STATS
from common.paths import RUN_DIR

HISTORY_DIR = RUN_DIR / "ptp"

# (verdict before, verdict now) -> the event raised; a pair not here raises nothing
TRANSITIONS: dict[tuple[str | None, str], str] = {
    (None, "healthy"): "clock_healthy",
    (None, "degraded"): "clock_degraded",
    (None, "failed"): "clock_failed",
    ("healthy", "degraded"): "clock_degraded",
    ("healthy", "failed"): "clock_failed",
    ("degraded", "healthy"): "clock_healthy",
    ("degraded", "failed"): "clock_failed",
    ("failed", "healthy"): "clock_recovered",
    ("failed", "degraded"): "clock_recovered",
}


def sample_of(snap: dict[str, Any] | None, result: dict[str, Any], at: float, error: str | None) -> dict[str, Any]:
    """The compact record of one look."""
    checks = {c["name"]: c for c in result["checks"]}
    out: dict[str, Any] = {"t": round(at, 3), "verdict": result["verdict"], "error": error}
    if snap is not None:
        cur, parent = snap.get("CURRENT_DATA_SET") or {}, snap.get("PARENT_DATA_SET") or {}
        port = health._port(snap) or {}
        out.update(state=port.get("port_state"), offset_ns=cur.get("offset_from_master_ns"),
                   delay_ns=cur.get("mean_path_delay_ns"), gm=parent.get("gm_identity"),
                   gm_class=parent.get("gm_clock_class"),
                   sync_age_s=checks.get("last sync", {}).get("value"),
                   timestamping=checks.get("timestamping", {}).get("value"),
                   traceable=checks.get("traceable to UTC", {}).get("value"),
                   service=(snap.get("PORT_SERVICE_STATS_NP") or [None])[0])
    out["failed"], out["degraded"] = result["failed"], result["degraded"]
    return out


class History:
    """The samples and events of the last window, in memory (and what the checks count)."""

    def __init__(self, window_s: float = 600.0):
        self.window_s = window_s
        self.samples: collections.deque[dict[str, Any]] = collections.deque()
        self.events: collections.deque[dict[str, Any]] = collections.deque()

    def add(self, rec: dict[str, Any]) -> None:
        (self.samples if "verdict" in rec and "event" not in rec else self.events).append(rec)
        cut = rec["t"] - self.window_s
        for q in (self.samples, self.events):
            while q and q[0]["t"] < cut:
                q.popleft()

    def gm_changes(self, window_s: float) -> list[dict[str, Any]]:
        cut = (self.samples[-1]["t"] if self.samples else time.time()) - window_s
        return [{"at": e["t"], "from": e["from"], "to": e["to"]} for e in self.events
                if e["event"] == "gm_change" and e["t"] >= cut]

    def state_changes(self, window_s: float) -> int:
        cut = (self.samples[-1]["t"] if self.samples else time.time()) - window_s
        return sum(1 for e in self.events if e["event"] == "port_state" and e["t"] >= cut)

    def service_growth(self, window_s: float) -> dict[str, int]:
        have = [s for s in self.samples if s.get("service")]
        if len(have) < 2:
            return {}
        cut = have[-1]["t"] - window_s
        first = next(s for s in have if s["t"] >= cut)
        return {k: have[-1]["service"][k] - first["service"][k] for k in health_service_keys()}

    @classmethod
    def load(cls, records: Iterable[dict[str, Any]], window_s: float) -> History:
        h = cls(window_s)
        for r in records:
            h.add(r)
        return h


def health_service_keys() -> tuple[str, ...]:
    return SERVICE_STATS


def history_path(name: str) -> pathlib.Path:
    return HISTORY_DIR / f"{name}.jsonl"


def read_history(path: pathlib.Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a crash: the rest are good
    return out


class Monitor:
    def __init__(self, ptp: Any, name: str = "ptp", interval: float = 1.0,
                 sink: Callable[[dict[str, Any]], None] | None = None, metrics: Any = None,
                 client: PtpClient | None = None, clock: Callable[[], float] = time.time,
                 history_file: pathlib.Path | None = None):
        """ptp: the config's section; sink(record) takes every sample and event (the journal)."""
        self.ptp, self.name, self.interval = ptp, name, interval
        self.limits = health.Limits.from_config(ptp)
        self.sink, self.metrics, self.clock = sink, metrics, clock
        self.client = client or PtpClient(ptp.uds_address, ptp.domain)
        self.history = History(max(ptp.window, 60.0))
        self.history_file = history_file if history_file is not None else history_path(name)
        self.latest: dict[str, Any] | None = None   # the last evaluation
        self.failed_since: float | None = None
        self._verdict: str | None = None
        self._state: str | None = None
        self._gm: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._trim_at = 0.0
        self.sink_errors = 0
        self.last_sink_error: str | None = None
        if self.history_file is not None:
            self.history_file.parent.mkdir(parents=True, exist_ok=True)
            for r in read_history(self.history_file):  # a restart keeps the window it had
                self.history.add(r)

    def step(self) -> dict[str, Any]:
        """One look: sample, note what changed, evaluate (the changes count at once), raise the
        verdict's step. Returns the evaluation."""
        at = self.clock()
        snap, error = None, None
        try:
            snap = self.client.snapshot()
            snap["at"] = at
            health.observe_host(snap, self.ptp)
        except PtpClientError as exc:
            error = str(exc)
        with self._lock:
            events = self._observe(snap, at)
            for e in events:
                self.history.add(e)
            result = health.evaluate(snap, self.limits, self.history, error)
            rec = sample_of(snap, result, at, error)
            name = TRANSITIONS.get((self._verdict, rec["verdict"]))
            if name:
                events.append({"t": at, "event": name, "from": self._verdict, "to": rec["verdict"],
                               "failed": rec["failed"], "degraded": rec["degraded"], "error": rec["error"]})
                self.history.add(events[-1])
            self._verdict = rec["verdict"]
            self.history.add(rec)
            for r in (rec, *events):
                self._emit(r)
            result["at"] = at
            result["sample"] = rec
            result["events"] = events
            self.latest = result
            if result["verdict"] == "failed":
                self.failed_since = self.failed_since if self.failed_since is not None else at
            else:
                self.failed_since = None
        if self.metrics is not None:
            self.metrics.update(rec, result, self.history)
        return result

    def _observe(self, snap: dict[str, Any] | None, at: float) -> list[dict[str, Any]]:
        """The port's state and the grandmaster, against the last look: their changes."""
        events = []
        state = gm = gm_class = None
        if snap is not None:
            port = health._port(snap) or {}
            state = port.get("port_state")
            parent = snap.get("PARENT_DATA_SET") or {}
            if state in health.FOLLOWING:  # a grandmaster only counts while a port follows it
                gm, gm_class = parent.get("gm_identity"), parent.get("gm_clock_class")
        if state != self._state and (self._state is not None or state is not None):
            events.append({"t": at, "event": "port_state", "from": self._state, "to": state})
        if gm and self._gm and gm != self._gm:
            events.append({"t": at, "event": "gm_change", "from": self._gm, "to": gm, "gm_class": gm_class})
        self._state = state
        if gm:
            self._gm = gm
        return events

    def _emit(self, rec: dict[str, Any]) -> None:
        if self.sink is not None:
            try:
                self.sink(rec)
            except Exception as exc:  # noqa: BLE001 - a sink that fails (a full disk) must not end the watch
                self.sink_errors += 1
                self.last_sink_error = repr(exc)
        if self.history_file is not None:
            with open(self.history_file, "a") as f:
                f.write(json.dumps(rec, separators=(",", ":")) + "\n")
            if rec["t"] - self._trim_at > 60:  # keep the file to about the window
                self._trim_at = rec["t"]
                keep = [r for r in read_history(self.history_file) if r["t"] >= rec["t"] - self.history.window_s]
                tmp = self.history_file.with_suffix(".tmp")
                tmp.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in keep))
                tmp.replace(self.history_file)

    # ---- as a thread (tickwire run, tickwire ptp monitor) --------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"tw-ptp-{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - the watch goes on; the failure is a sample
                self._emit({"t": self.clock(), "event": "monitor_error", "error": repr(exc)})
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t0)))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.client.close()

    def view(self) -> dict[str, Any] | None:
        """The latest evaluation, for the status file and the risk manager."""
        with self._lock:
            if self.latest is None:
                return None
            s = self.latest["sample"]
            return {"verdict": self.latest["verdict"], "at": self.latest["at"], "failed": self.latest["failed"],
                    "degraded": self.latest["degraded"], "offset_ns": s.get("offset_ns"), "state": s.get("state"),
                    "gm": s.get("gm"), "timestamping": s.get("timestamping"), "error": s.get("error"),
                    "failed_for_s": round(self.latest["at"] - self.failed_since, 3)
                    if self.failed_since is not None else 0.0,
                    "reason": "; ".join(c["evidence"] for c in self.latest["checks"] if c["status"] == "fail")}
