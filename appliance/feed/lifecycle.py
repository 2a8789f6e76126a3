"""A worker's run from start to stop: the feed's ports (af_xdp behind our XDP filter,
kernel sockets, or a capture), the EAL, the journal, the clock's monitor, the control
loop draining the worker's events and stamping the dead-man switch's heartbeat, and on
every way out (the end, a signal, an exception) every open order cancelled before the
worker stops (failsafe.py), and the final report.

Live, in the lab: the worker process enters ``PREFIX-app``, pins the filter's maps
with a redirect rule per line, shares them with the copy of the filter that DPDK's
af_xdp driver loads on ``feed-a`` and ``feed-b``, and asks the exchange's
retransmission server when both lines miss something. Python drains the worker's
events and writes its status; packets stay in C.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import time
import warnings
from collections.abc import Callable
from typing import Any

from appliance.diskwatch import DiskWatch
from appliance.feed.control import Control
from appliance.feed.errors import FeedError
from appliance.feed.eventlog import EventLog
from appliance.feed.failsafe import Drain, Failsafe, GuardedJournal, deadman_of
from appliance.feed.live import make_recorder, process_memory, share_filter
from appliance.feed.reloader import Reloader
from appliance.feed.settings import RunSettings
from appliance.journal import Journal, JournalError
from appliance.ptp.monitor import Monitor
from appliance.service import Notifier
from common.netns import in_netns
from dpdk import worker as W
from tuning.pmqos import PmQosError, hold_cpu_latency
from xdp import object_path
from xdp.filter import PIN_ROOT


class _Stop:
    """SIGTERM, SIGINT and the systemd watchdog's SIGABRT end the loop the same way: every open order
    cancelled first. (A C abort() still ends the process: the handler only sets a flag.)"""

    def __init__(self) -> None:
        self.reason: str | None = None
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGABRT):
            signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: Any) -> None:
        self.reason = signal.Signals(signum).name


def run(settings: RunSettings, progress: Callable[[str], None] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the worker until the duration ends, the session ends (``until_end``),
    a replay runs dry, or SIGTERM/SIGINT/SIGABRT. Returns the final report. A trading run
    leaves nothing open at the venue whichever way it ends: on an exception too, whose
    error it then raises (:class:`~appliance.feed.failsafe.JournalFailed` when the journal
    could not write)."""
    s = settings
    say = progress or (lambda _m: None)
    name, pcap, source, feed = s.name, s.pcap, s.input, s.feed
    sockets = source in ("socket", "asyncio")
    undo: Callable[[], None] | None = None
    if pcap:
        vdevs = [W.pcap_vdev(0, str(pathlib.Path(pcap).resolve()))]
        ports = [W.Port("net_pcap0", "dest", False)]
    elif sockets:
        vdevs, ports = [], []  # the lines are kernel sockets, opened in the namespace below
    else:
        obj = str(object_path("feed_filter"))
        if not 0 <= s.busy_budget <= 65535:
            raise FeedError(f"--busy-budget {s.busy_budget}: give 0 (no busy-poll syscall per burst) to 65535")
        vdevs = [W.af_xdp_vdev(i, iface, obj, s.busy_budget) for i, iface in enumerate(feed.ifaces.values())]
        ports = [W.Port(f"net_af_xdp{i}", line, True) for i, line in enumerate(feed.ifaces)]
    record = s.record
    recorder = make_recorder(record, s.record_rotate_mb, s.record_keep_mb) if record and not pcap else None
    trading = s.trading()
    cfg = W.WorkerConfig(
        trading=trading,
        ports=ports, group=feed.groups, retrans=feed.retrans, retrans_source=feed.retrans_source,
        retrans_port=s.retrans_port if pcap else 0, burst=s.burst, give_up_s=s.give_up,
        idle_stop_ms=s.idle_stop * 1000 if pcap else 0.0, idle_sleep_us=s.idle_sleep_us,
        max_locate=s.max_locate, max_orders=s.max_orders, levels=s.levels, join_late=bool(pcap),
        prefault=s.prefault, unsequenced=s.unsequenced,
        recorder=recorder, driver="asyncio" if source == "asyncio" else "lcore",
        cancel_each=s.cancel_each, deadman_s=deadman_of(s) if trading else 0.0, stop_cancel_s=s.cancel_timeout,
        sources=feed.sources, session=feed.session,  # issue 16 (B): who may speak for the feed
    )
    eal = W.EalConfig(lcores=s.lcores, file_prefix=f"tw-{name}", vdevs=vdevs, hugepages=s.hugepages)
    stop = _Stop()
    events_path = W.STATE_DIR / f"{name}.events.jsonl"
    report: dict[str, Any] = {"name": name, "mode": "replay" if pcap else "live", "input": "pcap" if pcap else source}
    pin_root = PIN_ROOT / feed.netns if feed.netns else PIN_ROOT
    qos = s.cpu_latency_us
    with contextlib.ExitStack() as held:
        if qos is not None:
            try:
                held.enter_context(hold_cpu_latency(qos))
            except PmQosError as exc:
                raise FeedError(f"--cpu-latency-us {qos}: {exc}") from exc
            say(f"holding PM QoS at {qos} µs: idle CPUs {'poll' if qos == 0 else f'wake within {qos} µs'}")
            report["cpu_latency_us"] = qos
        held.enter_context(in_netns(feed.netns))
        try:
            if sockets:
                for line, iface in feed.ifaces.items():
                    cfg.sockets[line] = W.line_socket(*feed.groups[line], iface)
                say(f"reading lines {', '.join(feed.ifaces)} from kernel UDP sockets "
                    + ("in C (recvmmsg)" if source == "socket" else "in Python (asyncio), the C path after that"))
            elif not pcap:
                say(f"pinning the feed filter's maps under {pin_root} with redirect rules for lines "
                    + ", ".join(f"{k} {g}:{p}" for k, (g, p) in feed.groups.items()))
                undo = share_filter(feed, pin_root)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                argv = W.eal_init(eal)
            report["warnings"] = [str(w.message) for w in caught]
            for w in caught:
                say(f"warning: {w.message}")
            report["eal"] = argv[1:]
            worker = W.Worker(cfg, name)
            journal: GuardedJournal | None = None
            control = None
            notifier = Notifier()
            clock = None
            failsafe = drain = log = None
            try:
                log = EventLog.configured(events_path, s.app_config)  # rotated, capped; closed in the finally
                opened = _open_journal(s, report, trading, say)
                journal = GuardedJournal(opened, worker.shared.ptr, trading is not None) if opened else None
                failsafe = Failsafe(worker, trading, journal, say, cfg.deadman_s)
                drain = Drain(worker, log, journal, None, on_event, failsafe.beat)
                clock = _watch_clock(s, journal, say)
                status = {"pid": os.getpid(), "name": name, "mode": report["mode"], "netns": feed.netns,
                          "ifaces": feed.ifaces, "pcap": pcap,
                          "groups": {k: f"{g}:{p}" for k, (g, p) in feed.groups.items()},
                          "retrans": f"{feed.retrans[0]}:{feed.retrans[1]}" if feed.retrans else None,
                          "ports": [p.name for p in ports], "started": time.time(),
                          "trading": trading is not None, "config": s.config,
                          "strategies": strategy_table(trading, s.instruments), "instruments": s.instruments,
                          "stats": str(worker.stats_path), "events": str(events_path)}
                W.write_status(name, status)
                reloads = Reloader(s, trading, journal, status, say) if s.config else None
                control = Control(s, worker, trading, journal, status, reloads, say, clock) if trading else None
                drain.control = control
                if recorder is not None:
                    recorder.start()  # its writer thread, on the control lcore's CPU like this one
                failsafe.beat()  # the dead-man switch's first stamp: the lcore checks it from its first millisecond
                lcore = worker.launch()
                say(f"worker on lcore {lcore}: " + ", ".join(
                    [f"line {p.line} on {v.split(',')[1].split('=')[1] if not pcap else pcap}"
                     for p, v in zip(ports, vdevs[:len(ports)], strict=True)]
                    + [f"line {line} on {feed.ifaces[line]} (socket)" for line in cfg.sockets])
                    + (f"; keeping every frame in {record}" if record else ""))
                notifier.ready(f"trading {', '.join(trading.names)}" if trading else "reading the feed")
                disk = DiskWatch.configured(s.app_config, s.journal, record, runtime_dir=W.STATE_DIR)
                report["events"] = _watch(worker, s, stop, drain, failsafe, journal, control, notifier,
                                          Alerts(log, disk, journal, status, say))
                report["stopped_by"] = stop.reason
            except BaseException as exc:  # every way out: the open orders cancelled before the worker stops
                if failsafe is not None and drain is not None:
                    _leave_on_error(failsafe, drain, exc, s.cancel_timeout, say)
                raise
            finally:
                notifier.stopping(f"stopped by {stop.reason}")
                notifier.close()
                worker.stop()  # a trading worker's C loop cancels what is still open before it ends
                if drain is not None:
                    drain.rest()  # what came while it stopped
                report["stats"] = worker.stats()
                report["ports"] = worker.port_stats()
                report["books"] = worker.books.report(s.top)
                report["system_event"] = worker.books.system_event
                report["memory"] = process_memory()
                if recorder is not None:
                    recorder.stop()  # what the ring still held, written; the files closed
                    report["recorder"] = recorder.report()
                if trading is not None:
                    report["trading"] = trading.report()
                if control is not None:
                    report["control"] = control.final()
                if clock is not None:
                    report["clock"] = clock.view()
                    clock.stop()
                if failsafe is not None:
                    report["failsafe"] = failsafe.report()
                if log is not None:
                    log.close()
                    report["events_file"] = log.stats()
                worker.close()
                if journal is not None:
                    journal.close()
                    report["journal"].update(last_seq=journal.seq, durable_seq=journal.durable_seq)
        finally:
            if undo:
                undo()
    if journal is not None and journal.failed is not None:
        raise journal.failed  # the orders are cancelled; the run still fails, naming the journal
    if s.books_out:
        pathlib.Path(s.books_out).write_text(json.dumps(report["books"], indent=1))
    return report


def _watch_clock(settings: RunSettings, journal: Any, say: Callable[[str], None]) -> Monitor | None:
    """With a config: the PTP monitor on its own thread (appliance.ptp.monitor), every sample and
    event into the journal (``ptp`` records) and the history /run/tickwire/ptp/NAME.jsonl; the risk
    manager reads its verdict. None without a config."""
    cfg = settings.app_config
    if cfg is None:
        return None

    def sink(rec: dict[str, Any]) -> None:
        if journal is not None:
            journal.append("ptp", rec)
        if rec.get("event", "").startswith("clock_") or rec.get("event") == "gm_change":
            say(f"clock: {rec['event'].replace('_', ' ')}" + (f" ({', '.join(rec['failed'])})" if rec.get("failed")
                                                               else ""))

    mon = Monitor(cfg.ptp, name=settings.name, sink=sink)
    mon.start()
    say(f"watching the clock: ptp4l at {cfg.ptp.uds_address}, profile {cfg.ptp.profile}"
        + ("; trading stops when it fails" if cfg.ptp.stop_trading_on_failure else ""))
    return mon


def strategy_table(trading: Any, instruments: dict[str, int] | None) -> list[dict[str, Any]]:
    """What the status file says of each strategy: its slot, name, kind and instrument."""
    if trading is None:
        return []
    symbols = {loc: sym for sym, loc in (instruments or {}).items()}
    return [{"slot": i, "name": s.name, "kind": s.params.kind, "locate": s.params.locate,
             "symbol": symbols.get(s.params.locate)} for i, s in enumerate(trading.specs)]


def _open_journal(settings: RunSettings, report: dict[str, Any], trading: Any,
                  say: Callable[[str], None]) -> Journal | None:
    """The journal the run writes (--journal DIR, or the config's), with a first record
    saying what started; None without one."""
    directory = settings.journal
    if not directory:
        return None
    try:
        j = Journal(directory, fsync=settings.journal_fsync, interval=settings.journal_interval)
    except (JournalError, OSError) as exc:
        raise FeedError(f"--journal {directory}: {exc}") from exc
    rec = j.recovery
    start: dict[str, Any] = {"action": "start", "name": settings.name, "pid": os.getpid(), "input": report["input"],
                             "config": settings.config, "config_sha256": settings.config_sha256}
    if trading is not None:
        start["strategies"] = [{"name": s.name, "params": dataclasses.asdict(s.params),
                                "limits": dataclasses.asdict(s.limits)} for s in trading.specs]
        start["limits"] = dataclasses.asdict(trading.limits)
        if trading.restart is not None:
            start["restart"] = dataclasses.asdict(trading.restart)
            report["restart"] = start["restart"]
            say(f"restart: from the journal, UserRefNums go on at {trading.restart.next_user_ref}, the venue is "
                f"asked for its messages from {trading.restart.login_seq}, positions "
                f"{trading.restart.positions or 'none'}, {len(trading.restart.open_orders)} open orders held")
    j.append("config", start)
    report["journal"] = {"dir": str(directory), "fsync": j.fsync, "first_seq": j.seq,
                         "torn_tail": rec.torn_tail}
    say(f"journal {directory}: records from {j.seq}" + (f"; cut a torn tail of {rec.torn_tail['bytes']} bytes"
                                                         if rec.torn_tail else ""))
    return j


class Alerts:
    """What the control loop says and journals (kind ``alert``) of the disks: the events file losing lines
    (each round) and a filesystem running low (about once a second); their figures in the status file."""

    EVERY_S = 1.0

    def __init__(self, log: EventLog, disk: DiskWatch, journal: GuardedJournal | None, status: dict[str, Any],
                 say: Callable[[str], None]):
        self.log, self.disk, self.journal, self.status, self.say = log, disk, journal, status, say
        self._next = 0.0

    def tick(self) -> None:
        alerts = self.log.alerts()
        if time.monotonic() >= self._next:
            self._next = time.monotonic() + self.EVERY_S
            alerts += self.disk.check()
            self.status.update(disk=self.disk.status(), events_file=self.log.stats())
        for a in alerts:
            self.say(a["message"])
            if self.journal is not None:
                self.journal.append("alert", a)


def _watch(worker: Any, settings: RunSettings, stop: _Stop, drain: Drain, failsafe: Failsafe,
           journal: GuardedJournal | None = None, control: Any = None, notifier: Any = None,
           alerts: Alerts | None = None) -> dict[str, int]:
    """Drain events until it is time to stop (into the events file, the journal when
    there is one, and on_event), stamping the dead-man switch's heartbeat each round; a
    trading worker then cancels its open orders and waits for the venue to confirm (up to
    --cancel-timeout). Returns counts per event kind."""
    deadline = time.monotonic() + settings.duration if settings.duration else None
    ended_at: float | None = None
    while True:
        failsafe.beat()
        drain.all()
        drain.log.flush()
        if alerts is not None:
            alerts.tick()
        failsafe.lap("events")
        failsafe.watch()
        if journal is not None and journal.failed is not None:
            raise journal.failed  # an append of another thread (the clock's monitor) failed
        if control is not None:
            control.tick()
            failsafe.lap("control")
        if notifier is not None:
            notifier.watchdog(worker.running() and time.monotonic_ns() - worker.shared.ptr.heartbeat_ns < 1e9)
        if stop.reason:
            break
        if deadline and time.monotonic() >= deadline:
            stop.reason = "duration"
            break
        if not worker.running():
            stop.reason = "replay ended" if settings.pcap else "worker ended"
            break
        if settings.until_end:
            st = worker.shared.ptr.feed
            if st.end_of_session and not st.in_gap:
                ended_at = ended_at or time.monotonic()
                if time.monotonic() - ended_at > 0.2:  # the other line's last packets
                    stop.reason = "end of session"
                    break
        failsafe.lap("checks")
        time.sleep(0.05)
    failsafe.leave(stop.reason, lambda: drain.all(tell=False), settings.cancel_timeout)
    drain.all(tell=False)  # what came while stopping
    return drain.counts


def _leave_on_error(failsafe: Failsafe, drain: Drain, exc: BaseException, timeout: float,
                    say: Callable[[str], None]) -> None:
    """The way out on an exception: the kill switch thrown (the journal's failure threw it already), the
    venue's cancels waited for while draining what still can be."""
    why = f"error: {type(exc).__name__}: {exc}" if not isinstance(exc, FeedError) else f"error: {exc}"
    try:
        failsafe.leave(why[:200], drain.rest, timeout)
    except Exception as inner:  # noqa: BLE001
        say(f"stopping after an error: could not wait for the cancels ({inner})")
