"""``tickwire ptp ...`` and ``tickwire lab ptp ...``: the clock's health for ops.

Which instance and what to expect of it: ``--config FILE`` (the appliance YAML's
ptp section), ``--lab`` (the lab's slave, ``tickwire lab ptp up``), or neither
(ptp4l's default socket, the ``hft`` profile); ``--socket``, ``--domain`` and
``--profile`` override what those say.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import signal
import time
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.table import Table

from appliance.commands.kit import Command, UsageError, arg, console, repeat
from appliance.ptp import mgmt  # the table lists its datasets: loaded at start-up anyway

# ---- which instance ------------------------------------------------------------------------


def resolve(args: argparse.Namespace) -> Any:
    """The config.Ptp the command works with."""
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import config

    if getattr(args, "config", None) and getattr(args, "lab", False):
        raise UsageError("give --config FILE or --lab, not both")
    if getattr(args, "config", None):
        try:
            ptp = config.load(args.config).ptp
        except config.ConfigError as exc:
            raise UsageError(str(exc)) from exc
    elif getattr(args, "lab", False):
        # lazy: the library loads with its verb, not at every tickwire start
        from appliance.lab import ptp as lab_ptp
        from appliance.lab import topology

        ptp = lab_ptp.lab_ptp(topology.check_prefix(args.prefix or topology.DEFAULT_PREFIX), args.role)
    else:
        ptp = config.Ptp()
    changes: dict[str, Any] = {}
    if getattr(args, "socket", None):
        changes["uds_address"] = pathlib.Path(args.socket)
    if getattr(args, "domain", None) is not None:
        changes["domain"] = args.domain
    if getattr(args, "profile", None):
        changes["profile"] = args.profile
    return ptp.model_copy(update=changes) if changes else ptp


def _client(ptp: Any, timeout: float = 0.3) -> Any:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.ptp.client import PtpClient

    return PtpClient(ptp.uds_address, ptp.domain, timeout)


def _history(args: argparse.Namespace, ptp: Any) -> Any:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.ptp import monitor

    path = pathlib.Path(args.history) if getattr(args, "history", None) else monitor.history_path(args.name)
    recs = monitor.read_history(path)
    return monitor.History.load(recs, ptp.window) if recs else None


def _ptp_error(fn: Any, *a: Any, **kw: Any) -> Any:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.ptp.client import PtpClientError

    try:
        return fn(*a, **kw)
    except PtpClientError as exc:
        raise UsageError(str(exc)) from exc


# ---- status, check, get ----------------------------------------------------------------------


def evaluate_now(args: argparse.Namespace) -> dict[str, Any]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.ptp import health
    from appliance.ptp.client import PtpClientError

    ptp = resolve(args)
    lim = health.Limits.from_config(ptp)
    snap, error = None, None
    try:
        with _client(ptp) as c:
            snap = c.snapshot()
        health.observe_host(snap, ptp)
    except PtpClientError as exc:
        error = str(exc)
    result = health.evaluate(snap, lim, _history(args, ptp), error)
    result.update(socket=str(ptp.uds_address), domain=ptp.domain, at=time.time())
    if snap is not None:
        result["datasets"] = {k: v for k, v in snap.items() if k.isupper()}
    return result


def cmd_status(args: argparse.Namespace) -> tuple[int, Any]:
    return 0, evaluate_now(args)


def cmd_check(args: argparse.Namespace) -> tuple[int, Any]:
    r = evaluate_now(args)
    return r["exit"], r


COLOUR = {"ok": "green", "skip": "dim", "warn": "yellow", "fail": "red", "healthy": "green", "degraded": "yellow",
          "failed": "red"}


def checks_table(r: dict[str, Any], title: str | None = None) -> Any:
    v = r["verdict"]
    t = Table(title=title or f"clock: [{COLOUR[v]}]{v}[/] (profile {r['profile']}, ptp4l at {r.get('socket')}, "
              f"domain {r.get('domain')})", title_justify="left")
    for col in ("check", "", "evidence", "fix"):
        t.add_column(col, overflow="fold")
    for c in r["checks"]:
        t.add_row(c["name"], f"[{COLOUR[c['status']]}]{c['status']}[/]", c["evidence"], c["fix"] or "")
    return t


def render_status(r: dict[str, Any]) -> None:
    console.print(checks_table(r))


def cmd_get(args: argparse.Namespace) -> tuple[int, Any]:
    name = args.dataset.upper()
    if name not in mgmt.DATASETS:
        raise UsageError(f"dataset {args.dataset!r}: give one of {', '.join(mgmt.DATASETS)}")
    ptp = resolve(args)
    with _client(ptp, args.timeout) as c:
        return 0, {"dataset": name, "socket": str(ptp.uds_address), "answers": _ptp_error(c.get, name)}


def render_get(r: dict[str, Any]) -> None:
    for a in r["answers"]:
        console.print(f"[bold]{r['dataset']}[/]")
        for k, v in a.items():
            console.print(f"  {k:<44} {v}", markup=False, highlight=False)


# ---- watch, monitor, metrics -------------------------------------------------------------------


def _monitor(args: argparse.Namespace, sink: Any = None, metrics: Any = None) -> Any:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.ptp.monitor import Monitor

    ptp = resolve(args)
    return Monitor(ptp, name=args.name, interval=args.interval, sink=sink, metrics=metrics)


def cmd_watch(args: argparse.Namespace) -> tuple[int, Any]:
    """A live view: the checks refreshed every interval, the events below them."""

    mon = _monitor(args)
    events: list[str] = []
    with contextlib.ExitStack() as stack:
        live = None if args.json else stack.enter_context(Live(console=console, auto_refresh=False))

        def show(r: dict[str, Any]) -> None:
            events.extend(_event_text(e) for e in r["events"])
            if live is None:
                print(json.dumps({k: r[k] for k in ("at", "verdict", "exit", "sample", "events", "failed",
                                                    "degraded")}, default=str), flush=True)
            else:
                r.update(socket=str(mon.ptp.uds_address), domain=mon.ptp.domain)
                live.update(Group(checks_table(r), *events[-8:]), refresh=True)

        _looks(mon, args, show)
    return 0, None


def _looks(mon: Any, args: argparse.Namespace, then: Any = None, stop: dict[str, bool] | None = None) -> None:
    """Look every --interval until Ctrl-C, --count looks, or stop["now"]; then(result) after each."""

    def look() -> None:
        r = mon.step()
        if then is not None:
            then(r)

    try:
        repeat(look, args.interval, args.count, (lambda: stop["now"]) if stop else None)
    finally:
        mon.client.close()


def _event_text(e: dict[str, Any]) -> str:
    at = time.strftime("%H:%M:%S", time.gmtime(e["t"]))
    if e["event"] == "gm_change":
        return f"[yellow]{at} grandmaster changed: {e['from']} -> {e['to']} (class {e.get('gm_class')})[/]"
    if e["event"] == "port_state":
        return f"{at} port state {e['from']} -> {e['to']}"
    colour = COLOUR.get(e.get("to", ""), "white")
    return f"[{colour}]{at} {e['event'].replace('_', ' ')}[/]" + (
        f": {', '.join(e.get('failed') or e.get('degraded') or [])}" if e.get("failed") or e.get("degraded") else "")


def cmd_monitor(args: argparse.Namespace) -> tuple[int, Any]:
    """The watch as a service: samples and events into the history (and the journal), metrics served."""
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.ptp.metrics import Metrics

    journal = None
    if args.journal:
        # lazy: the library loads with its verb, not at every tickwire start
        from appliance.journal import Journal, JournalError

        try:
            journal = Journal(args.journal, fsync="batch")
        except (JournalError, OSError) as exc:
            raise UsageError(f"--journal {args.journal}: {exc}") from exc
    ptp = resolve(args)
    metrics = Metrics(ptp.interface or "ptp")
    if args.listen:
        host, _, port = args.listen.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--listen {args.listen!r}: write it as ADDRESS:PORT, e.g. 127.0.0.1:9321")
        metrics.serve(host, int(port))
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))

    def sink(rec: dict[str, Any]) -> None:
        if journal is not None:
            journal.append("ptp", rec)
        if "event" in rec and not args.json:
            console.print(_event_text(rec))
        elif "event" in rec:
            print(json.dumps(rec), flush=True)

    mon = _monitor(args, sink, metrics)
    if not args.json:
        console.print(f"[dim]watching ptp4l at {mon.ptp.uds_address} every {args.interval:g} s; history in "
                      f"{mon.history_file}" + (f"; metrics on http://{args.listen}/metrics" if args.listen else "")
                      + (f"; journal {args.journal}" if journal else "") + "[/]")
    try:
        _looks(mon, args, stop=stop)
    finally:
        if journal is not None:
            journal.close()
    return 0, None


def cmd_metrics(args: argparse.Namespace) -> tuple[int, Any]:
    """One look, as Prometheus text (for node_exporter's textfile collector)."""
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.ptp.metrics import Metrics
    from appliance.ptp.monitor import Monitor

    ptp = resolve(args)
    metrics = Metrics(ptp.interface or "ptp")
    mon = Monitor(ptp, name=args.name, metrics=metrics, history_file=None)
    try:
        r = mon.step()
    finally:
        mon.client.close()
    if args.json:  # the same look as data: the samples' values, with the metrics' text beside them
        return 0, {"sample": r["sample"], "verdict": r["verdict"], "metrics": metrics.text()}
    print(metrics.text(), end="")
    return 0, None


# ---- report, config -----------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> tuple[int, Any]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.ptp import monitor, report

    ptp = resolve(args)
    try:
        since = report.parse_time(args.since)
        until = report.parse_time(args.until) if args.until else time.time()
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.journal:
        records = report.records_from_journal(args.journal)
        source = f"journal {args.journal}"
    else:
        path = pathlib.Path(args.history) if args.history else monitor.history_path(args.name)
        records = monitor.read_history(path)
        source = f"history {path}"
    rep = report.build(records, since, until, ptp)
    rep["source"] = source
    if args.html:
        pathlib.Path(args.html).write_text(report.to_html(rep))
        rep["html"] = args.html
    return 0, rep


def render_report(r: dict[str, Any]) -> None:
    t = Table(title=f"clock evidence {r['since']} .. {r['until']} ({r['source']})", title_justify="left")
    t.add_column("")
    t.add_column("")
    for k in ("profile", "verdict", "samples", "period_covered_s", "out_of_tolerance_s", "unsynchronised_s",
              "timestamping", "timestamp_granularity", "traceable_share", "port_state_changes"):
        if k in r:
            t.add_row(k.replace("_", " "), str(r[k]))
    for k, v in (r.get("offset_ns") or {}).items():
        t.add_row(f"|offset| {k}", "-" if v is None else f"{v:,.0f} ns")
    for c in r.get("grandmaster_changes", []):
        t.add_row("grandmaster change", f"{c['at']}: {c['from']} -> {c['to']}")
    console.print(t)
    if r.get("html"):
        console.print(f"written: {r['html']}")


def cmd_config(args: argparse.Namespace) -> tuple[int, Any]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import config
    from appliance.ptp import conf

    try:
        ptp = config.load(args.file).ptp
        written = conf.write(ptp, pathlib.Path(args.out), pathlib.Path(args.conf_path) if args.conf_path else None,
                             args.group)
    except (config.ConfigError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    return 0, {"file": args.file, "written": written, "phc2sys": conf.phc2sys_argv(ptp)}


def render_config(r: dict[str, Any]) -> None:
    for path in r["written"].values():
        console.print(f"wrote {path}")
    if r["phc2sys"] is None:
        console.print("[dim]no phc2sys: software timestamping or free_running (ptp4l steers the system clock "
                      "itself, or nothing is steered)[/]")


# ---- the lab's instances ------------------------------------------------------------------------


def cmd_lab_up(args: argparse.Namespace) -> tuple[int, Any]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.lab import ptp as lab_ptp
    from appliance.lab import topology

    lab = topology.plan(args.prefix or topology.DEFAULT_PREFIX)
    roles = tuple(r.strip() for r in args.roles.split(",") if r.strip())
    started = lab_ptp.up(lab, roles)
    if args.wait and "app" in roles:
        lab_ptp.wait_state(lab.prefix, "app")
    return 0, {"prefix": lab.prefix, "started": started}


def render_lab_up(r: dict[str, Any]) -> None:
    for s in r["started"]:
        console.print(f"ptp4l {s['role']} in {s['namespace']} on {s['interface']} (pid {s['pid']}): socket "
                      f"{s['socket']}, log {s['log']}")


def cmd_lab_down(args: argparse.Namespace) -> tuple[int, Any]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.lab import ptp as lab_ptp
    from appliance.lab import topology

    lab = topology.plan(args.prefix or topology.DEFAULT_PREFIX)
    roles = [r.strip() for r in args.roles.split(",") if r.strip()] if args.roles else None
    stopped = [r for r in roles if lab_ptp.stop(lab, r)] if roles else lab_ptp.down(lab)
    return 0, {"prefix": lab.prefix, "stopped": stopped}




WHICH = (
    arg("--config", metavar="FILE", help="the appliance YAML: its ptp section says the socket, domain, profile "
        "and what the instance does"),
    arg("--lab", action="store_true", help="the lab's instance (tickwire lab ptp up)"),
    arg("--prefix", default=None, help="with --lab: the lab's prefix (default tw)"),
    arg("--role", default="app", choices=("app", "standby", "gm", "gm2"), help="with --lab: which instance "
        "(default app, the appliance's slave)"),
    arg("--socket", metavar="PATH", help="ptp4l's management socket (default: the config's uds_address, else "
        "/var/run/ptp/ptp4l or /var/run/ptp4l; a read-only twin ...ro is preferred)"),
    arg("--domain", type=int, metavar="N", help="the instance's domain number"),
    arg("--profile", choices=("hft", "rts25"), help="hft: warn above 100 ns, fail above 1 µs; rts25: fail "
        "above 100 µs"),
)
NAME = arg("--name", default="ptp", help="the monitor's name: its history is /run/tickwire/ptp/NAME.jsonl")
HISTORY = arg("--history", metavar="FILE", help="a monitor's history file (default: NAME's)")

COMMANDS: tuple[Command, ...] = (
    Command(("ptp",), "PTP clock health on linuxptp: status, checks, a live watch, a monitor with metrics, "
            "compliance evidence, and ptp4l's configuration from the appliance YAML", None),
    Command(("ptp", "status"), "every check of the clock once, each with its evidence and fix", cmd_status,
            (*WHICH, NAME, HISTORY), render_status),
    Command(("ptp", "check"), "the checks for automation: exit 0 healthy, 1 degraded, 2 failed (grandmaster "
            "changes and port-state flaps from a running monitor's history)", cmd_check,
            (*WHICH, NAME, HISTORY), render_status),
    Command(("ptp", "watch"), "the checks live, refreshed every --interval, with the events (port state, "
            "grandmaster, verdict) as they happen (--json: a line per refresh)", cmd_watch,
            (*WHICH, NAME, arg("--interval", type=float, default=1.0, metavar="SECONDS"),
             arg("--count", type=int, default=0, metavar="N", help="stop after N refreshes")), None),
    Command(("ptp", "monitor"), "watch the clock as a service: a sample every --interval into the history "
            "(and --journal), events printed, Prometheus metrics served on --listen", cmd_monitor,
            (*WHICH, NAME, arg("--interval", type=float, default=1.0, metavar="SECONDS"),
             arg("--journal", metavar="DIR", help="also write the samples and events as journal records"),
             arg("--listen", metavar="ADDR:PORT", help="serve /metrics there (e.g. 127.0.0.1:9321)"),
             arg("--count", type=int, default=0, metavar="N", help="stop after N samples")), None),
    Command(("ptp", "metrics"), "one look at the clock as Prometheus text (node_exporter's textfile "
            "collector; --json: the sample and the text as data)", cmd_metrics, (*WHICH, NAME), None),
    Command(("ptp", "get"), "one dataset, as pmc GET shows it: " + ", ".join(mgmt.DATASETS), cmd_get,
            (*WHICH, arg("dataset", metavar="DATASET"),
             arg("--timeout", type=float, default=0.3, metavar="SECONDS")), render_get),
    Command(("ptp", "report"), "compliance evidence over a period (RTS 25): offset percentiles, time out of "
            "tolerance and unsynchronised, grandmaster changes, timestamping mode; --html FILE for a page",
            cmd_report, (*WHICH, NAME, HISTORY, arg("--since", required=True, metavar="TIME",
                                                      help="ISO 8601 (2026-12-02T09:30:00Z) or an age (30m)"),
                         arg("--until", metavar="TIME", help="default now"),
                         arg("--journal", metavar="DIR", help="read the journal's ptp records instead"),
                         arg("--html", metavar="FILE", help="also write the evidence as a page")),
            render_report),
    Command(("ptp", "config"), "write ptp4l.conf and the systemd units (ptp4l, and phc2sys with hardware "
            "timestamping) from the appliance YAML's ptp section", cmd_config,
            (arg("file", metavar="CONFIG"), arg("--out", required=True, metavar="DIR"),
             arg("--conf-path", metavar="PATH", help="where the unit will find ptp4l.conf (default "
                 "/etc/tickwire/ptp4l.conf)"),
             arg("--group", metavar="GROUP", help="ptp4l's management socket is this group's (the user "
                 "tickwire run runs as: provisioning uses tickwire); default root's only")), render_config),
    Command(("lab", "ptp"), "ptp4l in the lab: a grandmaster in exch, slaves in app and standby (all "
            "free_running: this machine's clock is never steered)", None),
    Command(("lab", "ptp", "up"), "start the lab's PTP instances (default: the grandmaster and app's slave)",
            cmd_lab_up, (arg("--prefix", default=None), arg("--roles", default="gm,app", help="of gm, app, "
                         "standby, gm2 (a second grandmaster with a better priority, on standby's port)"),
                         arg("--wait", action="store_true", help="until app's slave follows the grandmaster")),
            render_lab_up, root=True),
    Command(("lab", "ptp", "down"), "stop the lab's PTP instances (all, or --roles)", cmd_lab_down,
            (arg("--prefix", default=None), arg("--roles", default=None)), None, root=True),
)
