"""``tickwire feed run|stats`` and ``tickwire book``: the C worker on live feed
interfaces (af_xdp behind our XDP filter) or on a capture (pcap), from Python.

Live, in the lab (``--prefix``): the worker process enters ``PREFIX-app``, pins
the filter's maps with a redirect rule per line, shares them with the copy of
the filter that DPDK's af_xdp driver loads on ``feed-a`` and ``feed-b``, and
asks the exchange's retransmission server when both lines miss something.
Python drains the worker's events and writes its status; packets stay in C.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pathlib
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.lab import topology
from dpdk.worker import STATE_DIR, remove_state

FEED_ID = 1


class FeedError(RuntimeError):
    """A mistake in what was asked, or a part that is missing: said plainly."""


@dataclass
class LiveFeed:
    netns: str | None
    ifaces: dict[str, str]                       # line -> interface
    groups: dict[str, tuple[str, int]]           # line -> (group, port)
    retrans: tuple[str, int] | None
    retrans_source: str | None
    extra: dict[str, Any] = field(default_factory=dict)


def lab_feed(prefix: str, role: str = "app") -> LiveFeed:
    """Where the lab's feed arrives at ``role`` (app or standby)."""
    from appliance.lab.exchange.config import FeedConfig

    lab = topology.plan(topology.check_prefix(prefix))
    a, b = lab.network("feed-a"), lab.network("feed-b")
    fc = FeedConfig()
    return LiveFeed(
        netns=lab.ns(role),
        ifaces={"A": a.host_ifname, "B": b.host_ifname},
        groups={"A": (a.group, a.group_port), "B": (b.group, b.group_port)},
        retrans=(fc.line_a.source, fc.retransmission_port),
        retrans_source=a.address(role),
    )


def parse_endpoint(text: str, what: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise FeedError(f"{what} {text!r}: write it as ADDRESS:PORT, e.g. 239.198.1.1:26400")
    return host, int(port)


def parse_line_map(items: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        line, sep, value = item.partition("=")
        if not sep or line not in ("A", "B") or not value:
            raise FeedError(f"{what} {item!r}: write it as LINE=VALUE with LINE A or B, e.g. A=feed-a")
        out[line] = value
    return out


def parse_groups(items: list[str]) -> dict[str, tuple[str, int]]:
    """--group LINE=ADDR:PORT options: line -> (address, port)."""
    return {k: parse_endpoint(v, "--group") for k, v in parse_line_map(items, "--group").items()}


def _share_filter(feed: LiveFeed, pin_root: pathlib.Path) -> Callable[[], None]:
    """Pin the filter's maps once for every feed interface (one rules map: the
    line rules differ by group), link them where the af_xdp driver's libbpf
    looks, and return the undo."""
    from xdp.filter import FeedFilter, share_with_dpdk, unshare_with_dpdk

    first = pin_root / next(iter(feed.ifaces.values()))
    flt = FeedFilter(first)
    try:
        for line, (group, port) in feed.groups.items():
            flt.add_rule(group, port, "redirect", feed_id=FEED_ID, line=line)
    finally:
        flt.close()
    others = []
    for iface in list(feed.ifaces.values())[1:]:
        d = pin_root / iface  # the same maps under each interface, for `tickwire xdp stats IFACE`
        d.mkdir(parents=True, exist_ok=True)
        for m in first.iterdir():
            link = d / m.name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(m)
        others.append(d)
    share_with_dpdk(first)

    def undo() -> None:
        from xdp.filter import PinnedFilter

        unshare_with_dpdk()
        for d in others:
            for m in list(d.iterdir()):
                m.unlink()
            d.rmdir()
        PinnedFilter(first).unpin()
        try:
            pin_root.rmdir()  # PIN_ROOT/NS, when nothing else is pinned there
        except OSError:
            pass

    return undo


class _Stop:
    def __init__(self) -> None:
        self.reason: str | None = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: Any) -> None:
        self.reason = signal.Signals(signum).name


def run(args: Any, progress: Callable[[str], None] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the worker until the duration ends, the session ends (``until_end``),
    a replay runs dry, or SIGTERM/SIGINT. Returns the final report."""
    from appliance.lab.net import in_netns
    from dpdk import worker as W
    from xdp import object_path
    from xdp.filter import PIN_ROOT

    say = progress or (lambda _m: None)
    name = args.name
    from_config = apply_config(args) if getattr(args, "config", None) else None
    pcap = getattr(args, "pcap", None)
    source = getattr(args, "input", "af_xdp")
    sockets = source in ("socket", "asyncio")
    if pcap and sockets:
        raise FeedError(f"--input {source} reads a live feed; --pcap replays a capture: give one of them")
    undo: Callable[[], None] | None = None
    if pcap:
        if not pathlib.Path(pcap).is_file():
            raise FeedError(f"--pcap {pcap}: no such file")
        feed = LiveFeed(None, {}, {}, None, None)
        if args.group:
            feed.groups = parse_groups(args.group)
        vdevs = [W.pcap_vdev(0, str(pathlib.Path(pcap).resolve()))]
        ports = [W.Port("net_pcap0", "dest", False)]
    else:
        if args.prefix:
            feed = lab_feed(args.prefix, args.role)
        else:
            feed = LiveFeed(args.netns, {}, {}, None, None)
        if args.iface:
            feed.ifaces = parse_line_map(args.iface, "--iface")
        if args.group:
            feed.groups = parse_groups(args.group)
        if args.retrans:
            feed.retrans = parse_endpoint(args.retrans, "--retrans")
        if args.netns:
            feed.netns = args.netns
        if not feed.ifaces:
            raise FeedError("no feed interface: give --prefix (the lab) or --iface A=IFACE [--iface B=IFACE]")
        missing = [line for line in feed.ifaces if line not in feed.groups]
        if missing:
            raise FeedError(f"line {missing[0]} has an interface but no --group {missing[0]}=ADDRESS:PORT")
        if sockets:
            vdevs, ports = [], []  # the lines are kernel sockets, opened in the namespace below
        else:
            obj = str(object_path("feed_filter"))
            budget = getattr(args, "busy_budget", 0)
            if not 0 <= budget <= 65535:
                raise FeedError(f"--busy-budget {budget}: give 0 (no busy-poll syscall per burst) to 65535")
            vdevs = [W.af_xdp_vdev(i, iface, obj, budget) for i, iface in enumerate(feed.ifaces.values())]
            ports = [W.Port(f"net_af_xdp{i}", line, True) for i, line in enumerate(feed.ifaces)]

    record = getattr(args, "record", None)
    recorder = make_recorder(record, getattr(args, "record_rotate_mb", 256.0)) if record and not pcap else None
    if record and pcap:
        raise FeedError(f"--record {record} keeps a live feed; a replay of --pcap {pcap} is a capture already")
    trading = from_config
    if getattr(args, "trade", None):
        from dpdk.trading import Trading, TradingConfigError

        if pcap:
            raise FeedError("--trade needs a live feed, not --pcap")
        try:
            trading = Trading.load(args.trade)
        except TradingConfigError as exc:
            raise FeedError(str(exc)) from exc
    cfg = W.WorkerConfig(
        trading=trading,
        ports=ports, group=feed.groups, retrans=feed.retrans, retrans_source=feed.retrans_source,
        retrans_port=args.retrans_port if pcap else 0, burst=args.burst, give_up_s=args.give_up,
        idle_stop_ms=args.idle_stop * 1000 if pcap else 0.0, idle_sleep_us=args.idle_sleep_us,
        max_locate=args.max_locate, max_orders=args.max_orders, levels=args.levels, join_late=bool(pcap),
        prefault=not getattr(args, "no_prefault", False), unsequenced=getattr(args, "unsequenced", False),
        recorder=recorder, driver="asyncio" if source == "asyncio" else "lcore",
        cancel_each=getattr(args, "cancel_each", False),
    )
    eal = W.EalConfig(lcores=args.lcores, file_prefix=f"tw-{name}", vdevs=vdevs, hugepages=args.hugepages)
    stop = _Stop()
    events_path = W.STATE_DIR / f"{name}.events.jsonl"
    report: dict[str, Any] = {"name": name, "mode": "replay" if pcap else "live", "input": "pcap" if pcap else source}
    pin_root = PIN_ROOT / feed.netns if feed.netns else PIN_ROOT
    qos = getattr(args, "cpu_latency_us", None)
    with contextlib.ExitStack() as held:
        if qos is not None:
            from tuning.pmqos import PmQosError, hold_cpu_latency

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
                undo = _share_filter(feed, pin_root)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                argv = W.eal_init(eal)
            report["warnings"] = [str(w.message) for w in caught]
            for w in caught:
                say(f"warning: {w.message}")
            report["eal"] = argv[1:]
            worker = W.Worker(cfg, name)
            journal = None
            control = None
            from appliance.service import Notifier

            notifier = Notifier()
            clock = None
            try:
                journal = _open_journal(args, report, trading, say)
                clock = _watch_clock(args, journal, say)
                status = {"pid": os.getpid(), "name": name, "mode": report["mode"],
                                      "netns": feed.netns, "ifaces": feed.ifaces, "pcap": pcap,
                                      "groups": {k: f"{g}:{p}" for k, (g, p) in feed.groups.items()},
                                      "retrans": f"{feed.retrans[0]}:{feed.retrans[1]}" if feed.retrans else None,
                                      "ports": [p.name for p in ports], "started": time.time(),
                                      "trading": trading is not None, "config": getattr(args, "config", None),
                                      "strategies": strategy_table(trading, getattr(args, "instruments", None)),
                                      "instruments": getattr(args, "instruments", None),
                                      "stats": str(worker.stats_path), "events": str(events_path)}
                W.write_status(name, status)
                reloads = Reloader(args, trading, journal, status, say) if getattr(args, "config", None) else None
                control = Control(args, worker, trading, journal, status, reloads, say, clock) if trading else None
                if recorder is not None:
                    recorder.start()  # its writer thread, on the control lcore's CPU like this one
                lcore = worker.launch()
                say(f"worker on lcore {lcore}: " + ", ".join(
                    [f"line {p.line} on {v.split(',')[1].split('=')[1] if not pcap else pcap}"
                     for p, v in zip(ports, vdevs[:len(ports)], strict=True)]
                    + [f"line {line} on {feed.ifaces[line]} (socket)" for line in cfg.sockets])
                    + (f"; keeping every frame in {record}" if record else ""))
                notifier.ready(f"trading {', '.join(trading.names)}" if trading else "reading the feed")
                report["events"] = _watch(worker, args, stop, events_path, on_event, journal,
                                          control, notifier, trading)
                report["stopped_by"] = stop.reason
            finally:
                notifier.stopping(f"stopped by {stop.reason}")
                notifier.close()
                worker.stop()
                report["stats"] = worker.stats()
                report["ports"] = worker.port_stats()
                report["books"] = worker.books.report(args.top)
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
                worker.close()
                if journal is not None:
                    journal.close()
                    report["journal"].update(last_seq=journal.seq, durable_seq=journal.durable_seq)
        finally:
            if undo:
                undo()
    if args.books_out:
        pathlib.Path(args.books_out).write_text(json.dumps(report["books"], indent=1))
    return report


def _watch_clock(args: Any, journal: Any, say: Callable[[str], None]) -> Any:
    """With a config: the PTP monitor on its own thread (appliance.ptp.monitor), every sample and
    event into the journal (``ptp`` records) and the history /run/tickwire/ptp/NAME.jsonl; the risk
    manager reads its verdict. None without a config."""
    cfg = getattr(args, "app_config", None)
    if cfg is None:
        return None
    from appliance.ptp.monitor import Monitor

    def sink(rec: dict[str, Any]) -> None:
        if journal is not None:
            journal.append("ptp", rec)
        if rec.get("event", "").startswith("clock_") or rec.get("event") == "gm_change":
            say(f"clock: {rec['event'].replace('_', ' ')}" + (f" ({', '.join(rec['failed'])})" if rec.get("failed")
                                                               else ""))

    mon = Monitor(cfg.ptp, name=args.name, sink=sink)
    mon.start()
    say(f"watching the clock: ptp4l at {cfg.ptp.uds_address}, profile {cfg.ptp.profile}"
        + ("; trading stops when it fails" if cfg.ptp.stop_trading_on_failure else ""))
    return mon


def make_recorder(where: str, rotate_mb: float) -> Any:
    """--record PATH: FILE.pcap is one capture of every frame; anything else is a folder (made
    when missing) with a capture per line, rotated at rotate_mb."""
    from dpdk.recorder import Recorder, RecorderError

    path = pathlib.Path(where)
    try:
        if path.suffix == ".pcap":
            return Recorder(single=path)
        if not path.parent.is_dir():
            raise RecorderError(f"the folder {path.parent} does not exist")
        path.mkdir(exist_ok=True)
        return Recorder(directory=path, rotate_mb=rotate_mb)
    except (RecorderError, OSError) as exc:
        raise FeedError(f"--record {where}: {exc}") from exc


def strategy_table(trading: Any, instruments: dict[str, int] | None) -> list[dict[str, Any]]:
    """What the status file says of each strategy: its slot, name, kind and instrument."""
    if trading is None:
        return []
    symbols = {loc: sym for sym, loc in (instruments or {}).items()}
    return [{"slot": i, "name": s.name, "kind": s.params.kind, "locate": s.params.locate,
             "symbol": symbols.get(s.params.locate)} for i, s in enumerate(trading.specs)]


def _open_journal(args: Any, report: dict[str, Any], trading: Any, say: Callable[[str], None]) -> Any:
    """The journal the run writes (--journal DIR, or the config's), with a first record
    saying what started; None without one."""
    directory = getattr(args, "journal", None)
    if not directory:
        return None
    from appliance.journal import Journal, JournalError

    try:
        j = Journal(directory, fsync=getattr(args, "journal_fsync", "batch"),
                    interval=getattr(args, "journal_interval", 0.01))
    except (JournalError, OSError) as exc:
        raise FeedError(f"--journal {directory}: {exc}") from exc
    rec = j.recovery
    start: dict[str, Any] = {"action": "start", "name": args.name, "pid": os.getpid(), "input": report["input"],
                             "config": getattr(args, "config", None), "config_sha256": getattr(args, "config_sha256",
                                                                                                None)}
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


class Control:
    """The control loop's view of a trading worker, ticked with the event drain: the
    OMS fed with every order event, the risk manager (the config's risk.manager),
    hot reload, and a live section in the status file (positions, P&L, orders,
    health) for tickwire status and top."""

    LIVE_EVERY_S = 0.5

    def __init__(self, args: Any, worker: Any, trading: Any, journal: Any, status: dict[str, Any],
                 reloads: Reloader | None, say: Callable[[str], None], clock: Any = None):
        from appliance.config import RiskManager as Limits
        from appliance.oms import Oms
        from appliance.riskman import RiskManager

        self.worker, self.trading, self.status, self.reloads, self.name = worker, trading, status, reloads, args.name
        self.oms = Oms()
        cfg = getattr(args, "app_config", None)
        limits = cfg.risk.manager if cfg is not None else Limits()
        watched = [(s["name"], s["symbol"] or f"locate {s['locate']}", s["locate"]) for s in status["strategies"]]

        def trip(level: str, target: str | None, reason: str) -> dict[str, Any]:
            return kill(args.name, False, 2.0, level, target, reason, who="risk manager")

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
        from dpdk.worker import write_status

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


class Reloader:
    """Hot reload of a running worker's strategy parameters and risk limits (not its
    structure) from its config, on SIGHUP (``tickwire reload``): validated first,
    published whole into the worker's tables (each swap is atomic: the worker takes a
    table at its next decision or check, never half of one), journaled, and the
    outcome written into the worker's status file. An invalid file, or one whose
    structure changed, changes nothing and says why."""

    def __init__(self, args: Any, trading: Any, journal: Any, status: dict[str, Any],
                 say: Callable[[str], None]):
        self.args, self.trading, self.journal, self.status, self.say = args, trading, journal, status, say
        self.current = args.app_config  # as apply_config read it
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
        from appliance import config
        from dpdk.worker import write_status

        self.count += 1
        out: dict[str, Any] = {"n": self.count, "at": time.time(), "file": self.args.config}
        try:
            new = config.load(self.args.config)
            why = self._structure_changed(self.current, new)
            if why:
                raise config.ConfigError([config.Problem((), None, config._MISSING,
                                                         f"{why} changed: that needs a restart; nothing was changed")],
                                         self.args.config)
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
            self.say(f"reloaded {self.args.config}: " + (", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items())
                                                         or "nothing changed"))
        except config.ConfigError as exc:
            out.update(ok=False, problems=[p.text(exc.file) for p in exc.problems])
            self.say(f"reload of {self.args.config} refused: {exc}")
        out["sha256"] = hashlib.sha256(pathlib.Path(self.args.config).read_bytes()).hexdigest() \
            if pathlib.Path(self.args.config).exists() else None
        if self.journal is not None:
            self.journal.append("config", {"action": "reload", **out})
        self.status["last_reload"] = out
        write_status(self.args.name, self.status)
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
    """``tickwire reload``: SIGHUP to the named worker, then its verdict."""
    from dpdk import worker as W

    path = W.STATE_DIR / f"{name}.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FeedError(f"no feed worker named {name} is known ({path}): start one with "
                        "tickwire feed run --config FILE") from exc
    if not info.get("config"):
        raise FeedError(f"worker {name} was not started with --config: there is nothing to reload from")
    if not _alive(info["pid"]):
        raise FeedError(f"worker {name} (pid {info['pid']}) is not running")
    before = (info.get("last_reload") or {}).get("n", 0)
    os.kill(info["pid"], signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        last = info.get("last_reload") or {}
        if last.get("n", 0) > before:
            return {"name": name, "pid": info["pid"], **last}
    raise FeedError(f"worker {name} did not answer the reload within {timeout:g} s")


CONFIG_EXCLUDES = ("prefix", "iface", "group", "retrans", "netns", "trade", "pcap")


def apply_config(args: Any) -> Any:
    """``feed run --config FILE``: the feed, the host and the trading of every strategy (or
    the one --strategy names) from the appliance YAML (appliance/config.py) instead of
    options; returns the Trading."""
    from appliance import config
    from dpdk.trading import OrderEntry, StrategySpec, Trading, TradingConfigError

    given = [f"--{k.replace('_', '-')}" for k in CONFIG_EXCLUDES if getattr(args, k, None)]
    if given:
        raise FeedError(f"--config {args.config} says where the feed is and what to trade; drop {', '.join(given)}")
    try:
        cfg = config.load(args.config)
        password = cfg.venue.password()
        only = getattr(args, "strategy", None)
        strategies = [cfg.strategy(only)] if only else list(cfg.strategies) or [cfg.strategy()]
    except config.ConfigError as exc:
        raise FeedError(f"{exc}") from exc
    f, h, v = cfg.feed, cfg.host, cfg.venue
    args.netns = h.netns
    args.iface = [f"{line}={ln.interface}" for line, ln in f.lines.items()]
    args.group = [f"{line}={ln.group}:{ln.port}" for line, ln in f.lines.items()]
    args.retrans = f"{f.retransmission.address}:{f.retransmission.port}" if f.retransmission else None
    args.input, args.give_up = f.input, f.give_up
    args.max_locate, args.max_orders, args.levels = f.max_locate, f.max_orders, f.levels
    args.lcores, args.hugepages = f"{h.lcores.control},{h.lcores.worker}", h.hugepages
    if h.cpu_latency_us is not None and getattr(args, "cpu_latency_us", None) is None:
        args.cpu_latency_us = h.cpu_latency_us
    if not getattr(args, "journal", None):
        args.journal = str(cfg.journal.dir)
    if not getattr(args, "record", None) and cfg.journal.market_data:
        kept = pathlib.Path(args.journal) / "market-data"  # a capture per line, rotated
        try:
            kept.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FeedError(f"journal.dir {args.journal}: cannot make {kept} for the market data "
                            f"({exc.strerror})") from exc
        args.record, args.record_rotate_mb = str(kept), cfg.journal.pcap_rotate_mb
    args.journal_fsync, args.journal_interval = cfg.journal.fsync, cfg.journal.fsync_interval
    args.config_sha256 = hashlib.sha256(pathlib.Path(args.config).read_bytes()).hexdigest()
    oe = OrderEntry(address=v.address, port=v.port, username=v.account, password=password.get_secret_value(),
                    session=v.session, user_ref_base=v.user_ref_base, heartbeat_s=v.heartbeat, timeout_s=v.timeout,
                    reconnect_s=v.reconnect)
    args.app_config = cfg
    args.instruments = {i.symbol: i.locate for i in cfg.instruments}
    try:
        trading = Trading([StrategySpec(s.name, cfg.strategy_params(s.name), cfg.limits(s.name)) for s in strategies],
                          cfg.global_limits(), oe)
    except TradingConfigError as exc:
        raise FeedError(f"{args.config}: {exc}") from exc
    trading.restart = restart_from_journal(pathlib.Path(args.journal), args.instruments)
    return trading


def restart_from_journal(directory: pathlib.Path, instruments: dict[str, int]) -> Any:
    """What the journal of an earlier run today (UTC) leaves to this one (None when nothing):
    the next UserRefNum (never one twice), the venue's next sequence number to ask for
    at login (its replay then brings what happened while nobody listened), the
    positions and the orders still open."""
    from appliance import journal
    from appliance.oms import Oms
    from dpdk.trading import Restart

    if not journal.segments(directory):
        return None
    import datetime

    midnight = datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    oms = Oms.from_journal(directory, since_ns=int(midnight.timestamp()) * 1_000_000_000)  # not another day's
    if not oms.orders:
        return None
    positions = {instruments[sym]: p.shares for sym, p in oms.positions.items() if sym in instruments}
    open_orders = [{"user_ref": o.user_ref, "locate": instruments[o.symbol], "side": o.side, "qty": o.leaves,
                    "price": o.price, "strategy": o.strategy} for o in oms.open_orders()
                   if o.symbol in instruments and o.leaves]
    return Restart(next_user_ref=max(oms.orders) + 1, login_seq=oms.last_venue_seq + 1, positions=positions,
                   open_orders=open_orders,
                   strategy_positions={n: p.shares for n, p in oms.strategy_positions.items()})


def _watch(worker: Any, args: Any, stop: _Stop, events_path: pathlib.Path,
           on_event: Callable[[dict[str, Any]], None] | None, journal: Any = None,
           control: Any = None, notifier: Any = None, trading: Any = None) -> dict[str, int]:
    """Drain events until it is time to stop (into the events file, the journal when
    there is one, and on_event); a trading worker then cancels its open orders and
    waits for the venue to confirm (up to --cancel-timeout). Returns counts per event
    kind."""
    from appliance.journal import kind_of

    counts: dict[str, int] = {}
    deadline = time.monotonic() + args.duration if args.duration else None
    ended_at: float | None = None
    operator_file = STATE_DIR / f"{args.name}.operator.jsonl"
    operator_file.unlink(missing_ok=True)
    operator_at = 0

    def operator_actions() -> None:  # what tickwire kill / resume asked, with who and why
        nonlocal operator_at
        try:
            with open(operator_file) as f:
                f.seek(operator_at)
                for line in f:
                    if not line.endswith("\n"):
                        break
                    operator_at += len(line.encode())
                    if journal is not None:
                        journal.append("operator", json.loads(line))
        except FileNotFoundError:
            pass

    def take(ev: dict[str, Any], tell: bool = True) -> None:
        counts[ev["event"]] = counts.get(ev["event"], 0) + 1
        log.write(json.dumps(ev) + "\n")
        if journal is not None:
            journal.append(kind_of(ev), ev)
        if control is not None:
            control.on_event(ev)
        if on_event and tell:
            on_event(ev)

    with open(events_path, "w") as log:
        while True:
            for ev in worker.events():
                take(ev)
            log.flush()
            if control is not None:
                control.tick()
            if notifier is not None:
                notifier.watchdog(worker.running() and time.monotonic_ns() - worker.shared.ptr.heartbeat_ns < 1e9)
            operator_actions()
            if stop.reason:
                break
            if deadline and time.monotonic() >= deadline:
                stop.reason = "duration"
                break
            if not worker.running():
                stop.reason = "replay ended" if args.pcap else "worker ended"
                break
            if getattr(args, "until_end", False):
                st = worker.shared.ptr.feed
                if st.end_of_session and not st.in_gap:
                    ended_at = ended_at or time.monotonic()
                    if time.monotonic() - ended_at > 0.2:  # the other line's last packets
                        stop.reason = "end of session"
                        break
            time.sleep(0.05)
        if trading is not None and worker.running():
            _cancel_on_stop(worker, trading, journal, stop.reason, getattr(args, "cancel_timeout", 2.0),
                            lambda: [take(ev, tell=False) for ev in worker.events()])
        for ev in worker.events():  # what came while stopping
            take(ev, tell=False)
        operator_actions()
    return counts


def _cancel_on_stop(worker: Any, trading: Any, journal: Any, why: str | None, timeout: float,
                    drain: Callable[[], Any]) -> None:
    """Leave nothing resting at the venue: throw the kill switch (every open order is
    cancelled in one send), then wait for the venue's answers while draining events."""
    if trading.session is None or trading.session.stats()["state"] != "up":
        return  # the session is gone: nothing can be cancelled, the venue's own rules apply
    st = worker.shared.ptr
    st.kill = 1
    deadline = time.monotonic() + timeout
    while st.killed != 1 and time.monotonic() < deadline:
        time.sleep(0.0005)
    while trading.risk.stats()["open_orders"] and time.monotonic() < deadline:
        drain()
        time.sleep(0.01)
    if journal is not None:
        journal.append("operator", {"action": "kill", "level": "global", "target": None, "who": "tickwire",
                                    "reason": f"stopping ({why}): every open order cancelled",
                                    "cancels": st.kill_cancels, "left_open": trading.risk.stats()["open_orders"]})


def stats(name: str, events: int = 10) -> dict[str, Any]:
    """The named worker's figures from its shared statistics (running or not)."""
    from dpdk import worker as W

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
    alive = _alive(out["pid"])
    out["running"] = bool(out["running"]) and alive
    if not alive:
        out["heartbeat_age_ms"] = None
    out["name"] = name
    out["info"] = info
    out["rx_packets"] = out["rx_packets"][:len(info.get("ports", [])) or 4]
    ev_path = pathlib.Path(info.get("events", W.STATE_DIR / f"{name}.events.jsonl"))
    out["recent_events"] = [json.loads(x) for x in ev_path.read_text().splitlines()[-events:]] \
        if events and ev_path.exists() else []
    return out


def wait_started(name: str, proc: Any, timeout: float = 30.0) -> None:
    """Until the worker ``name`` that ``proc`` (a Popen of tickwire feed run or run) started
    is running; FeedError with its stderr when it exits first or takes too long."""
    from dpdk.worker import DpdkError

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
            "kill_switch": {"global": bool(s["killed"]),
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


LEVELS = ("global", "strategy", "instrument")


def operator() -> str:
    """Who is at the keyboard: the user sudo ran for, else this process's user."""
    import pwd

    return os.environ.get("SUDO_USER") or pwd.getpwuid(os.getuid()).pw_name


def kill(name: str, release: bool = False, timeout: float = 2.0, level: str = "global", target: str | None = None,
         reason: str = "", who: str | None = None) -> dict[str, Any]:
    """Throw (or release) a running worker's kill switch at one level, through its
    shared statistics, and wait for its loop to act: global (every new order refused),
    strategy (the strategy stops) or instrument (risk refuses its orders); a trip
    cancels the open orders it covers. The request, who made it and why go to the
    worker, which journals them."""
    import mmap

    from dpdk import native

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


def process_memory() -> dict[str, int]:
    """This process's resident size now and at its peak, in bytes (/proc/self/status)."""
    out = {}
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[{"VmRSS": "rss", "VmHWM": "peak_rss"}[key]] = int(value.split()[0]) * 1024
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def book_file(path: str, top: int, max_orders: int, levels: int) -> dict[str, Any]:
    """A BinaryFILE straight into the C books (no DPDK needed)."""
    from dpdk.books import Books

    p = pathlib.Path(path)
    if not p.is_file():
        raise FeedError(f"{path}: no such file")
    books = Books(65535, max_orders, levels)
    data = p.read_bytes()
    t0 = time.perf_counter()
    n = books.apply_binaryfile(data)
    elapsed = time.perf_counter() - t0
    return {"file": str(p), "mode": "binaryfile", "messages": n, "seconds": round(elapsed, 3),
            "book": books.stats(), "live_orders": books.live_orders, "system_event": books.system_event,
            "books": books.report(top)}


def book_capture(path: str, top: int, max_orders: int, levels: int, retrans_port: int) -> dict[str, Any]:
    """A capture through DPDK's pcap port and the worker: the live code path.
    Lines are told apart by the lab's groups; other datagrams count as line A."""
    import argparse

    groups = lab_feed(topology.DEFAULT_PREFIX).groups
    unsequenced = zeroed_sequences(path)
    args = argparse.Namespace(
        name=f"book{os.getpid()}", pcap=path, group=[f"{k}={g}:{p}" for k, (g, p) in groups.items()],
        retrans_port=retrans_port, unsequenced=unsequenced, burst=32, give_up=0.2, idle_stop=0.5, no_prefault=True,
        idle_sleep_us=0, max_locate=65535, max_orders=max_orders, levels=levels, lcores="0,1", hugepages="auto",
        duration=0, top=top, books_out=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # --no-huge is fine for a replay
        report = run(args)
    remove_state(args.name)  # a one-off replay leaves no worker state behind
    st = report["stats"]
    return {"file": path, "mode": "pcap", "packets": sum(st["rx_packets"]), "messages": st["feed"]["applied"],
            "sequencing": "arrival order (the capture's sequence numbers are 0)" if unsequenced else "MoldUDP64",
            "frames": {k: st[k] for k in ("not_udp", "multi_segment")}, "feed": st["feed"], "book": st["book"],
            "live_orders": st["live_orders"], "system_event": report["system_event"], "events": report["events"],
            "books": report["books"]}


def zeroed_sequences(path: str) -> bool:
    """Whether the capture's first MoldUDP64 packet has sequence number 0 (sample
    captures are published that way): then no sequencing is possible."""
    from appliance.protocols import capture, moldudp64

    for fr in capture.read_frames(path):
        if fr.proto == "udp" and len(fr.payload) >= 20:
            try:
                return moldudp64.unpack(fr.payload).sequence == 0
            except moldudp64.MoldError:
                continue
    return False
