"""Fail safe: a trading run leaves nothing resting at the venue whichever way it ends, and its
worker stops quoting by itself when the control loop cannot follow.

- The heartbeat: the control loop stamps ``stats.control_heartbeat_ns`` (CLOCK_MONOTONIC, the
  clock of ``time.monotonic_ns``) before the launch and every round; the lcore throws its own
  kill switch (kill_reason ``deadman``) when the stamp is older than ``watchdog.deadman``, and
  (``events_dropped``) when its event ring drops an event (dpdk/src/worker.c ``fail_safe``).
- The journal, guarded: an append that fails throws the kill switch at once (``journal``); the
  run then ends with :class:`JournalFailed`, naming the folder and the errno. It never goes on
  without its journal.
- The way out (:meth:`Failsafe.leave`): an exception, SIGTERM/SIGINT, the systemd watchdog's
  SIGABRT or the end of the run throw the kill switch (``stopping``, or ``journal``) and wait for
  the venue's cancels, up to ``--cancel-timeout``, draining the events, before the worker stops
  and the session closes. In C, ``tw_worker_stop`` does the same for any other caller.
- The worker's own kill switch, seen by the control loop (:meth:`Failsafe.watch`): said and
  journaled once; only an operator releases it (``tickwire resume``).
"""

from __future__ import annotations

import errno as errnos
import time
from collections.abc import Callable
from typing import Any

from appliance.feed.errors import FeedError
from appliance.journal import JournalError, kind_of
from dpdk.books import kill_reasons

STAMP_EVERY = 16  # events drained between two heartbeat stamps: a long backlog is a live loop, not a dead one
# (16 events take well under a millisecond, or 16 fsyncs with journal.fsync: always)
DEADMAN_DEFAULT_S = 0.5  # watchdog.deadman without a config (appliance/config/model.py's default)


class JournalFailed(FeedError):
    """The journal could not write a record: the kill switch was thrown; the run ends with this."""


def reason_code(name: str) -> int:
    """enum tw_kill_reason's value of a reason's name (``journal`` -> TW_KILL_JOURNAL)."""
    return {v: k for k, v in kill_reasons().items()}[name]


def throw(st: Any, reason: str) -> bool:
    """Throw the worker's global kill switch as another process would: the reason first, then kill; the
    lcore acts before its next burst (risk refuses every new order, every open order is cancelled). A
    switch thrown already keeps its reason. True when this call threw it."""
    if st.kill:
        return False
    st.kill_reason = reason_code(reason)
    st.kill = 1
    return True


def journal_message(directory: Any, exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    name = errnos.errorcode.get(code, str(code)) if code else None
    return (f"journal {directory}: cannot write ({f'{name}: ' if name else ''}{exc}); the kill switch was thrown "
            "(kill_reason journal) and the open orders cancelled: make room there (df, journal.dir) and start "
            "again, the journal recovers every record it kept")


class GuardedJournal:
    """The run's journal as every part of the control loop writes it (events, the risk manager, reloads,
    the clock's monitor thread): an append that fails throws the kill switch at once and raises
    :class:`JournalFailed`, as does every later append. The rest is the journal's own."""

    def __init__(self, journal: Any, st: Any, trading: bool):
        self._j, self._st, self._trading = journal, st, trading
        self.failed: JournalFailed | None = None

    def append(self, kind: str, data: dict[str, Any], ts_ns: int | None = None) -> int:
        if self.failed is not None:
            raise self.failed
        try:
            return self._j.append(kind, data, ts_ns)
        except (JournalError, OSError) as exc:
            if self._trading:
                throw(self._st, "journal")
            self.failed = JournalFailed(journal_message(self._j.dir, exc))
            self.failed.__cause__ = exc
            raise self.failed from exc

    def close(self) -> None:
        try:
            self._j.close()
        except (JournalError, OSError):
            if self.failed is None:
                raise  # after a failure the run ends with that one: a second is noise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._j, name)


class Drain:
    """The worker's events as the control loop takes them: into the events file, the journal (its kind),
    the control view and on_event; counted by kind. The heartbeat is stamped as a long backlog drains."""

    def __init__(self, worker: Any, log: Any, journal: GuardedJournal | None, control: Any,
                 on_event: Callable[[dict[str, Any]], None] | None, beat: Callable[[], None]):
        self.worker, self.log, self.journal, self.control, self.on_event = worker, log, journal, control, on_event
        self.beat = beat
        self.counts: dict[str, int] = {}

    def take(self, ev: dict[str, Any], tell: bool = True) -> None:
        self.counts[ev["event"]] = self.counts.get(ev["event"], 0) + 1
        self.log.write(ev)
        if self.journal is not None and self.journal.failed is None:
            self.journal.append(kind_of(ev), ev)
        if self.control is not None:
            self.control.on_event(ev)
        if self.on_event and tell:
            self.on_event(ev)

    def all(self, tell: bool = True) -> int:
        n = 0
        for ev in self.worker.events():
            self.take(ev, tell)
            n += 1
            if n % STAMP_EVERY == 0:
                self.beat()
        return n

    def rest(self) -> None:
        """On the way out after an error: what is left, through the sinks that still work (the journal once
        failed is skipped); another error here is not the one to tell."""
        try:
            self.all(tell=False)
        except Exception:  # noqa: BLE001 (the exception being raised is the one the run ends with)
            pass


class Failsafe:
    """The control loop's side of the fail-safe for one run: the heartbeat it stamps (and the worst
    round between two stamps, for the report), the worker's own kills it reports, and the way out."""

    def __init__(self, worker: Any, trading: Any, journal: GuardedJournal | None, say: Callable[[str], None],
                 deadman_s: float):
        self.worker, self.trading, self.journal, self.say = worker, trading, journal, say
        self.st = worker.shared.ptr
        self.deadman_s = deadman_s
        self._last = self._lap = 0
        self.rounds = 0
        self.worst_ns = self.worst_work_ns = 0
        self._parts: dict[str, int] = {}
        self.worst_parts: dict[str, int] = {}
        self._seen_killed_ns = 0
        self.left = False

    def beat(self) -> None:
        """The control loop is alive: the stamp the lcore's dead-man switch reads."""
        now = time.monotonic_ns()
        self.st.control_heartbeat_ns = now
        if self._last:
            self.lap("rest")  # the round's sleep, and whatever kept this thread off the CPU
            self.worst_work_ns = max(self.worst_work_ns, sum(v for k, v in self._parts.items() if k != "rest"))
            if now - self._last > self.worst_ns:
                self.worst_ns, self.worst_parts = now - self._last, self._parts
            self.rounds += 1
        self._last = self._lap = now
        self._parts = {}

    def lap(self, part: str) -> None:
        """What the round spent since the last lap, by part: the report names the worst round's."""
        now = time.monotonic_ns()
        self._parts[part] = self._parts.get(part, 0) + now - self._lap
        self._lap = now

    def watch(self) -> None:
        """The worker's own kill switch (the dead-man, dropped events), seen once: said and journaled. It stays
        thrown: only an operator releases it."""
        st = self.st
        if not st.killed or st.killed_ns == self._seen_killed_ns:
            return
        self._seen_killed_ns = st.killed_ns
        reason = kill_reasons().get(st.kill_reason, str(st.kill_reason))
        if reason not in ("deadman", "events_dropped"):
            return  # an operator's, the risk manager's or this loop's own: journaled where it is thrown
        why = (f"the control loop was silent for more than {self.deadman_s * 1000:g} ms" if reason == "deadman"
               else f"its event ring dropped events ({st.events_dropped} so far): the journal misses some")
        self.say(f"kill switch thrown by the worker ({reason}): {why}; {st.kill_cancels} open orders cancelled, "
                 "no new orders until an operator resumes (tickwire resume)")
        if self.journal is not None and self.journal.failed is None:
            self.journal.append("event", {"event": "kill", "reason": reason, "thrown": True, "by": "worker",
                                          "seen_by": "control loop", "why": why, "cancels": st.kill_cancels,
                                          "events_dropped": st.events_dropped, "killed_ns": st.killed_ns})

    def leave(self, why: str | None, drain: Callable[[], Any], timeout: float, reason: str = "stopping") -> None:
        """Leave nothing resting at the venue, once: throw the kill switch (``reason``; one thrown already keeps
        its own), then wait for the venue's answers while draining, up to ``timeout``. Nothing to do when the
        run does not trade, the worker has ended or the session is not up (the venue's own rules apply)."""
        if self.left or self.trading is None:
            return
        session = self.trading.session
        if not self.worker.running() or session is None or session.stats()["state"] != "up":
            self.left = True
            return
        st = self.st
        threw = throw(st, reason)
        deadline = time.monotonic() + timeout
        while st.killed != 1 and time.monotonic() < deadline:
            time.sleep(0.0005)
        while self.trading.risk.stats()["open_orders"] and time.monotonic() < deadline:
            self.beat()
            drain()
            time.sleep(0.01)
        self.beat()
        self.left = True  # only now: a drain that raised (the journal failing) leaves it to the error path to wait
        left_open = self.trading.risk.stats()["open_orders"]
        if self.journal is not None and self.journal.failed is None:
            self.journal.append("operator", {
                "action": "kill", "level": "global", "target": None, "who": "tickwire",
                "reason": f"stopping ({why}): every open order cancelled", "cancels": st.kill_cancels,
                "left_open": left_open, "kill_reason": kill_reasons().get(st.kill_reason), "thrown_here": threw})
        if left_open:
            self.say(f"stopping ({why}): {left_open} orders still open at the venue after {timeout:g} s "
                     "(--cancel-timeout); the worker stops anyway")

    def report(self) -> dict[str, Any]:
        st = self.st
        return {"deadman_ms": round(self.deadman_s * 1000, 1), "rounds": self.rounds,
                "worst_round_ms": round(self.worst_ns / 1e6, 1), "worst_work_ms": round(self.worst_work_ns / 1e6, 1),
                "worst_round_parts_ms": {k: round(v / 1e6, 1) for k, v in self.worst_parts.items() if v >= 1e5},
                "killed": bool(st.killed),
                "kill_reason": kill_reasons().get(st.kill_reason) if st.killed else None}


def deadman_of(settings: Any) -> float:
    """watchdog.deadman from the YAML (its default without one)."""
    cfg = settings.app_config
    return float(cfg.watchdog.deadman) if cfg is not None else DEADMAN_DEFAULT_S
