"""The ``tickwire`` command.

Every verb is a row in :data:`COMMANDS` (path, help, arguments, handler); the
argparse tree and so every ``--help`` are generated from it. A handler returns
``(exit_code, report)``: ``--json`` prints the report as JSON, otherwise its
``render`` function prints it for a person. Errors a user can cause (a bad link
name, a missing namespace, not root) print one line naming the value and the fix,
exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from appliance import __version__, preflight
from appliance.provision import commands as provision_commands
from appliance.ptp.commands import commands as ptp_commands
from tuning.commands import commands as tune_commands

Report = dict[str, Any] | list[Any]
Handler = Callable[[argparse.Namespace], tuple[int, Report]]
console = Console()


class UsageError(Exception):
    """Something the user can fix; the message says what and how."""


@dataclasses.dataclass(frozen=True)
class Arg:
    flags: tuple[str, ...]
    kwargs: dict[str, Any]


def arg(*flags: str, **kwargs: Any) -> Arg:
    return Arg(flags, kwargs)


@dataclasses.dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    help: str
    handler: Handler
    args: tuple[Arg, ...] = ()
    render: Callable[[Report], None] | None = None
    json: bool = True      # has --json
    root: bool = False     # needs root


PREFIX = arg("--prefix", default=None,
             help="lab name prefix: namespaces are PREFIX-exch, PREFIX-app, PREFIX-standby (default tw)")


# what `tickwire run` needs on a box without the lab's namespaces, each one shown needed by
# tests/integration/test_provisioning.py: the XDP program and its maps (NET_ADMIN, BPF, and PERFMON for the
# verifier's pointer arithmetic), AF_XDP sockets (NET_RAW) and their locked umem (IPC_LOCK)
RUN_CAPABILITIES = ("CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF", "CAP_PERFMON", "CAP_IPC_LOCK")


def need_root(what: str, caps: Sequence[str] = ()) -> None:
    """Root, or (when ``caps`` are given) a process holding every one of them: the
    systemd unit provisioning writes runs ``tickwire run`` as its own user with just those."""
    if os.geteuid() == 0:
        return
    if caps:
        missing = [c for c in caps if not preflight.has_capability(c)]
        if not missing:
            return
        raise UsageError(f"{what} needs root or the capabilities {', '.join(caps)} (missing here: "
                         f"{', '.join(missing)}): run it as root, or give them to the process (systemd's "
                         "AmbientCapabilities=, as provisioning's tickwire_app unit does)")
    raise UsageError(f"{what} needs root (network namespaces, BPF): run it as root, e.g. sudo tickwire ...")


# ---- version, doctor ------------------------------------------------------------------


def cmd_version(args: argparse.Namespace) -> tuple[int, Report]:
    from dpdk import NativeMissing, dpdk_version

    try:
        dpdk = dpdk_version()
    except NativeMissing as exc:
        dpdk = f"not built ({exc})"
    return 0, {"tickwire": __version__, "python": platform.python_version(), "kernel": platform.release(),
               "dpdk": dpdk}


def cmd_doctor(args: argparse.Namespace) -> tuple[int, Report]:
    import shutil

    import xdp

    findings = [dataclasses.asdict(f) for f in preflight.run_checks(preflight.gather())]
    for name in xdp.PROGRAMS:
        try:
            findings.append({"check": f"build:{name}.bpf.o", "ok": True, "evidence": str(xdp.object_path(name)),
                             "fix": ""})
        except FileNotFoundError as exc:
            findings.append({"check": f"build:{name}.bpf.o", "ok": False, "evidence": str(exc),
                             "fix": "make build"})
    from dpdk import NativeMissing, native

    try:
        native()
        findings.append({"check": "build:dpdk._native", "ok": True, "evidence": "imports", "fix": ""})
    except NativeMissing as exc:
        findings.append({"check": "build:dpdk._native", "ok": False, "evidence": str(exc), "fix": "make build"})
    for tool in ("ip", "tc", "ethtool", "bpftool", "clang", "ptp4l", "pmc"):
        path = shutil.which(tool)
        findings.append({"check": f"tool:{tool}", "ok": bool(path), "evidence": path or "not on PATH",
                         "fix": "" if path else "make setup (installs the Debian packages)"})
    return (0 if all(f["ok"] for f in findings) else 1), findings


def render_doctor(report: Report) -> None:
    table = Table("check", "", "evidence / fix", box=None)
    for f in report:
        table.add_row(f["check"], "[green]ok[/]" if f["ok"] else "[red]FAIL[/]",
                      f["evidence"] if f["ok"] else f"{f['evidence']}\n[yellow]fix:[/] {f['fix']}")
    console.print(table)


# ---- lab ---------------------------------------------------------------------------


def _lab(args: argparse.Namespace):
    from appliance.lab import topology

    try:
        return topology.plan(args.prefix or os.environ.get("TICKWIRE_LAB_PREFIX") or topology.DEFAULT_PREFIX)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def cmd_lab_up(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance.lab import net

    lab = _lab(args)
    need_root("tickwire lab up")
    return 0, net.up(lab)


def render_lab_up(report: Report) -> None:
    created = report["created"]
    if created:
        console.print(f"lab [bold]{report['prefix']}[/] is up; created {len(created)} object(s):")
        for c in created:
            console.print(f"  + {c}")
    else:
        console.print(f"lab [bold]{report['prefix']}[/] is up; nothing to create")


def cmd_lab_down(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance.lab import net

    lab = _lab(args)
    need_root("tickwire lab down")
    return 0, net.down(lab.prefix)


def render_lab_down(report: Report) -> None:
    for p in report["stopped_processes"]:
        console.print(f"  stopped {p['name']} (pid {p['pid']}) in {p['namespace']}"
                      + (" [yellow](killed)[/]" if p["killed"] else ""))
    ns = report["removed_namespaces"]
    console.print(f"lab [bold]{report['prefix']}[/] is down; removed {', '.join(ns) if ns else 'nothing (was down)'}")


def cmd_lab_status(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance.lab import net

    lab = _lab(args)
    need_root("tickwire lab status")
    if args.watch and not args.json:
        with Live(console=console, auto_refresh=False) as live:
            try:
                while True:
                    live.update(status_table(net.status(lab)), refresh=True)
                    time.sleep(args.watch)
            except KeyboardInterrupt:
                pass
        return 0, {}
    report = net.status(lab)
    return (0 if report["state"] == "up" else 1), report


def status_table(report: dict[str, Any]) -> Table:
    t = Table(title=f"lab {report['prefix']}: {report['state']}", title_justify="left")
    for col in ("link", "namespace:ifname", "state", "addresses", "xdp", "impairment"):
        t.add_column(col)
    imp = {(i["link"], i["direction"]): i for i in report["impairments"]}
    for lk in report["links"]:
        for d in ("down", "up"):
            end = lk[d]
            x = end.get("xdp")
            i = imp.get((lk["name"], d))
            desc = ""
            if i:
                p = i["params"] or {}
                desc = " ".join(f"{k.split('_')[0]}={v:g}" for k, v in p.items() if k != "seed" and v)
                if i["stats"]:
                    desc += f" (seen {i['stats']['seen']}, lost {i['stats']['lost']})"
                if i["problem"]:
                    desc += f" [red]{i['problem']}[/]"
            t.add_row(lk["name"] if d == "down" else "", f"{end['namespace']}:{end['ifname']}",
                      (end.get("state") or "") if end["exists"] else "[red]missing[/]",
                      " ".join(end.get("addresses") or []) or ("bridge " + lk["bridge"] if lk["bridge"] and d == "down"
                                                               else ""),
                      f"{x['name']} ({x['mode']}, id {x['prog_id']})" if x else "", desc)
    return t


def render_lab_status(report: Report) -> None:
    if not report:
        return
    console.print(status_table(report))
    for ns in report["namespaces"]:
        procs = ", ".join(f"{p['name']}[{p['pid']}]" for p in ns["processes"]) or "none"
        routes = " ".join(ns["multicast_routes"]) or "-"
        console.print(f"  {ns['name']}: {'present' if ns['exists'] else '[red]absent[/]'}; "
                      f"multicast routes {routes}; processes {procs}")
    if report["stray_namespaces"]:
        console.print(f"  [yellow]stray namespaces with this prefix:[/] {', '.join(report['stray_namespaces'])}")


def _link(lab, name: str) -> None:
    try:
        lab.link(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _impairment(args: argparse.Namespace):
    from appliance.lab.impair import Impairment

    try:
        return Impairment(loss=args.loss, delay=args.delay, jitter=args.jitter, reorder=args.reorder,
                          duplicate=args.duplicate, seed=args.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def cmd_lab_impair(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance.lab import impair

    lab = _lab(args)
    _link(lab, args.link)
    imp = _impairment(args)
    need_root("tickwire lab impair")
    return 0, {"link": args.link, "applied": impair.apply(lab, args.link, imp, args.direction or "down")}


def render_lab_impair(report: Report) -> None:
    for a in report["applied"]:
        p = a["params"]
        console.print(f"impaired {a['link']} ({a['direction']}, {a['namespace']}:{a['ifname']} egress): "
                      f"loss {p['loss_pct']:g}% delay {p['delay_ms']:g} ms jitter {p['jitter_ms']:g} ms "
                      f"reorder {p['reorder_pct']:g}% duplicate {p['duplicate_pct']:g}%; relay pid {a['pid']}")


def cmd_lab_clear(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance.lab import impair

    lab = _lab(args)
    _link(lab, args.link)
    need_root("tickwire lab clear")
    return 0, {"link": args.link, "cleared": impair.clear(lab, args.link, args.direction or "both")}


def render_lab_clear(report: Report) -> None:
    if not report["cleared"]:
        console.print(f"{report['link']}: no impairment to clear")
    for c in report["cleared"]:
        console.print(f"cleared {c['link']} ({c['direction']}); relay counters: {c['final_stats']}")


def cmd_decode(args: argparse.Namespace) -> tuple[int, Report | None]:
    from appliance import decode

    stats = decode.Stats()
    types = set(args.type.split(",")) if args.type else None
    shown = 0
    try:
        for item in decode.decode_file(args.file, stats):
            if isinstance(item, decode.Problem):
                print(f"tickwire decode: {args.file}: {item.where}: {item.kind}: {item.detail}", file=sys.stderr)
                continue
            if args.stats or (types and item.get("type") not in types):
                continue
            print(json.dumps(item, separators=(",", ":")))
            shown += 1
            if args.limit and shown >= args.limit:
                break
    except BrokenPipeError:  # `| head`: the reader has seen enough
        sys.stderr.close()
        return 0, None
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc}") from exc
    code = 1 if stats.problems else 0
    return code, (dict(stats.to_dict(), file=args.file) if args.stats else None)


def render_decode_stats(report: Report) -> None:
    console.print(f"{report['file']}: {report['messages']:,} messages")
    t = Table("type", "messages")
    for k, v in report["by_type"].items():
        t.add_row(k, f"{v:,}")
    console.print(t)
    for k, v in report["packets"].items():
        console.print(f"  {k}: {v:,} packets")
    for s, info in report["mold_sessions"].items():
        console.print(f"  MoldUDP64 session {s!r}: sequence {info['first_sequence']}..{info['next_sequence'] - 1}, "
                      f"{info['packets']:,} packets")
    if report["malformed"]:
        console.print(f"  [red]malformed: {report['malformed']}[/] " + ", ".join(
            f"{k} {v}" for k, v in report["malformed_by_kind"].items()))
    for k, v in report["skipped_frames"].items():
        console.print(f"  skipped frames ({k}): {v}")


def cmd_exchange_gen(args: argparse.Namespace) -> tuple[int, Report]:
    import pathlib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from appliance.lab.exchange import gen

    out = pathlib.Path(args.out)
    if not out.parent.is_dir():
        raise UsageError(f"--out {args.out}: folder {out.parent} does not exist")
    try:
        gen.symbol_names(args.symbols)
        if args.messages < 1:
            raise ValueError(f"--messages {args.messages}: must be at least 1")
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.json or not sys.stderr.isatty():
        report = gen.generate(out, args.symbols, args.messages, args.seed, args.rate)
    else:
        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("generating", total=args.messages)
            report = gen.generate(out, args.symbols, args.messages, args.seed, args.rate,
                                  progress=lambda n: bar.update(task, completed=n))
    return 0, dataclasses.asdict(report)


def render_exchange_gen(report: Report) -> None:
    console.print(f"wrote {report['path']}: {report['messages']:,} messages ({report['book_messages']:,} book "
                  f"messages) for {report['symbols']} symbols, {report['bytes']:,} bytes, seed {report['seed']}")
    flow = {t: n for t, n in report["by_type"].items() if t in "AFECXDUPQ"}
    total = sum(flow.values()) or 1
    console.print("  " + "  ".join(f"{t} {n:,} ({100 * n / total:.1f}%)" for t, n in flow.items()))
    console.print(f"  sha256 {report['sha256']}")


def cmd_exchange_run(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance.lab import net
    from appliance.lab.exchange import config as xconfig

    try:
        cfg = xconfig.load(args.config)
    except xconfig.ConfigError as exc:
        raise UsageError(str(exc)) from exc
    updates = {k: v for k, v in (("duration", args.duration), ("record", args.record)) if v is not None}
    if updates:
        cfg = cfg.model_copy(update=updates)
    lab = _lab(args)
    namespace = lab.ns("exch")
    if not _inside(namespace):
        need_root("tickwire exchange run")
        if not os.path.exists(os.path.join(net.NETNS_DIR, namespace)):
            raise UsageError(f"namespace {namespace} does not exist: run `tickwire lab up --prefix {lab.prefix}`")
        argv = [sys.executable, "-m", "appliance.cli", "exchange", "run", "--prefix", lab.prefix]
        for flag, value in (("--config", args.config), ("--duration", args.duration), ("--record", args.record)):
            if value is not None:
                argv += [flag, str(value)]
        if args.json:
            argv.append("--json")
        sys.stdout.flush()
        # exec, not a child: the caller's signals (SIGTERM, Ctrl-C) reach the exchange itself
        os.execvp("ip", ["ip", "netns", "exec", namespace, *argv])
    from appliance.lab.exchange import sim

    if not args.json:
        console.print(f"exchange up in {namespace}: ITCH on {cfg.feed.line_a.group}:{cfg.feed.line_a.port} (A) and "
                      f"{cfg.feed.line_b.group}:{cfg.feed.line_b.port} (B), retransmission on "
                      f"{cfg.feed.line_a.source}:{cfg.feed.retransmission_port}, OUCH on "
                      f"{cfg.order_entry.address}:{cfg.order_entry.port}; "
                      + (f"{cfg.duration:g} s" if cfg.duration else "Ctrl-C stops it"))
    return 0, sim.run(cfg)


def _inside(namespace: str) -> bool:
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat(f"/run/netns/{namespace}").st_ino
    except OSError:
        return False


def render_exchange_run(report: Report) -> None:
    feed = report["feed"]
    console.print(f"exchange stopped after {report['elapsed']:.1f} s: {report['events']:,} events, "
                  f"{feed['messages']:,} ITCH messages in {feed['packets']:,} packets "
                  f"({report['messages_per_s']:,} messages/s), {feed['heartbeats']} heartbeats")
    for name, line in feed["lines"].items():
        console.print(f"  line {name}: sent {line['sent']:,}, dropped {line['dropped']:,}, "
                      f"duplicated {line['duplicated']:,}, reordered {line['reordered']:,}")
    r, oe = report["retransmission"], report["order_entry"]
    console.print(f"  retransmission: {r['requests']} requests, {r['messages_resent']:,} messages resent")
    console.print(f"  order entry: {oe['logins']} logins, {oe['fills']} fills, rejects {oe['rejects'] or 'none'}")
    if report["events_skipped"]:
        console.print(f"  [yellow]fell behind: {report['events_skipped']:,} events skipped[/]")


def _xdp(fn, *a, **kw):
    from appliance.lab.net import LabError
    from xdp import commands
    from xdp.filter import BpfError

    need_root("tickwire xdp")
    try:
        return fn(*a, **kw)
    except (commands.XdpError, BpfError, ValueError, LabError) as exc:
        raise UsageError(str(exc)) from exc


def cmd_xdp_load(args: argparse.Namespace) -> tuple[int, Report]:
    from xdp import commands

    return 0, _xdp(commands.load, args.iface, args.netns, args.mode, args.hw_timestamps)


def render_xdp_load(r: Report) -> None:
    where = f" in {r['netns']}" if r["netns"] else ""
    console.print(f"feed filter on {r['iface']}{where}: {r['mode']} mode"
                  + (" [yellow](native refused: generic fallback)[/]" if r["fallback"] else "")
                  + f", program id {r['prog_id']}, maps pinned in {r['pin_dir']}")
    hw = r["hw_timestamps"]
    console.print("  arrival times: " + (
        "the device takes the hardware-timestamp build: a packet with a hardware receive time carries it "
        "(flag TW_META_HW_TS), one without falls back to bpf_ktime_get_ns()" if hw["available"]
        else f"bpf_ktime_get_ns() (hardware timestamps unavailable: {hw['reason']})"))


def cmd_xdp_unload(args: argparse.Namespace) -> tuple[int, Report]:
    from xdp import commands

    return 0, _xdp(commands.unload, args.iface, args.netns)


def render_xdp_unload(r: Report) -> None:
    d = r["detached"]
    console.print(f"{r['iface']}: " + (f"detached {d['name']} (id {d['prog_id']})" if d else "nothing attached")
                  + ("; pinned maps removed" if r["unpinned"] else ""))


def cmd_xdp_status(args: argparse.Namespace) -> tuple[int, Report]:
    from xdp import commands

    return 0, _xdp(commands.status, args.netns)


def render_xdp_status(r: Report) -> None:
    if not r["attached"]:
        console.print(f"no XDP program attached{' in ' + r['netns'] if r['netns'] else ''}")
    for a in r["attached"]:
        console.print(f"{a['iface']}: {a['name']} ({a['mode']}, id {a['prog_id']})")
    for p in r["pinned_filters"]:
        console.print(f"pinned filter maps: {p}")


def cmd_xdp_rules_add(args: argparse.Namespace) -> tuple[int, Report]:
    from xdp import commands

    return 0, _xdp(commands.rules_add, args.iface, args.netns, args.group, args.port, args.action, args.feed,
                   args.line)


def cmd_xdp_rules_del(args: argparse.Namespace) -> tuple[int, Report]:
    from xdp import commands

    return 0, _xdp(commands.rules_del, args.iface, args.netns, args.group, args.port)


def cmd_xdp_rules_list(args: argparse.Namespace) -> tuple[int, Report]:
    from xdp import commands

    return 0, _xdp(commands.rules_list, args.iface, args.netns)


def render_rules(r: Report) -> None:
    rows = r if isinstance(r, list) else [r]
    t = Table("id", "group:port", "action", "feed", "line")
    for x in rows:
        t.add_row(str(x["rule_id"]), f"{x['group']}:{x['port']}", x["action"], str(x["feed"]), x["line"])
    console.print(t)


def cmd_xdp_stats(args: argparse.Namespace) -> tuple[int, Report]:
    from xdp import commands

    if args.watch and not args.json:
        last, last_t = None, time.monotonic()
        with Live(console=console, auto_refresh=False) as live:
            try:
                while True:
                    now = _xdp(commands.stats, args.iface, args.netns)
                    t = time.monotonic()
                    live.update(xdp_stats_table(now, last, t - last_t), refresh=True)
                    last, last_t = now, t
                    time.sleep(args.watch)
            except KeyboardInterrupt:
                pass
        return 0, None
    return 0, _xdp(commands.stats, args.iface, args.netns)


def xdp_stats_table(now: dict, last: dict | None, dt: float) -> Table:
    prev = {r["rule"]: r for r in (last or {}).get("rules", [])}
    t = Table(title=f"feed filter on {now['iface']}", title_justify="left")
    for col in ("rule", "action", "feed", "line", "matched", "redirected", "passed", "dropped", "redirect failed",
                "packets/s"):
        t.add_column(col, justify="left" if col in ("rule", "action", "feed", "line") else "right")
    for r in now["rules"]:
        p = prev.get(r["rule"])
        rate = f"{(r['matched'] - p['matched']) / dt:,.0f}" if p and dt > 0 else ""
        t.add_row(r["rule"], r["action"], str(r["feed"]), r["line"], f"{r['matched']:,}", f"{r['redirected']:,}",
                  f"{r['passed']:,}", f"{r['dropped']:,}", f"{r['redirect_failed']:,}", rate)
    u = now["unmatched"]
    t.caption = (f"all packets {u['seen']:,}; not feed {u['not_feed']:,}; fragments {u['fragments']:,}; "
                 f"malformed {u['malformed']:,}")
    return t


def render_xdp_stats(r: Report) -> None:
    console.print(xdp_stats_table(r, None, 0))


def _nic(fn, *a, **kw):
    from tuning import nic

    need_root("tickwire nic")
    try:
        return fn(*a, **kw)
    except nic.NicError as exc:
        raise UsageError(str(exc)) from exc


def cmd_nic_show(args: argparse.Namespace) -> tuple[int, Report]:
    from tuning import nic

    return 0, _nic(nic.show, args.iface, args.netns)


def render_nic_show(r: Report) -> None:
    d = r["driver"]
    console.print(f"[bold]{r['iface']}[/]{' in ' + r['netns'] if r['netns'] else ''}: driver {d.get('driver', '?')} "
                  f"{d.get('version', '')}, bus {d.get('bus_info') or 'none (virtual)'}")

    def section(name: str, body: dict) -> None:
        if body.get("status") != "ok":
            console.print(f"  {name}: [yellow]unsupported[/] ({body.get('reason', '')})")
        else:
            console.print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in body.items() if k != "status"))

    for name in ("channels", "rings", "coalesce"):
        section(name, r[name])
    o = r["offloads"]
    console.print("  offloads on: " + (", ".join(o["enabled"]) if o.get("status") == "ok" else "unsupported"))
    ts = r["timestamping"]
    if ts.get("status") == "ok":
        console.print(f"  timestamping: {', '.join(ts['capabilities']) or 'none'}; PTP hardware clock "
                      f"{'/dev/ptp' + str(ts['phc_index']) if ts['phc_index'] is not None else 'none'}"
                      + ("" if ts["hardware"] else " [yellow](software timestamping only)[/]"))
    console.print(f"  NUMA node: {r['numa_node'] if r['numa_node'] is not None else 'none'}; IRQs: "
                  + (", ".join(f"{i['irq']} ({i['name']}) on CPUs {i['cpus']}" for i in r["irqs"])
                     or r.get("note", "none")))


def cmd_nic_set(args: argparse.Namespace) -> tuple[int, Report]:
    from tuning import nic

    coalesce = None
    if args.coalesce:
        coalesce = {}
        for item in args.coalesce:
            key, _, value = item.partition("=")
            if not value.isdigit():
                raise UsageError(f"--coalesce {item!r}: write it as NAME=N, e.g. rx-usecs=10")
            coalesce[key.replace("-", "_")] = int(value)
    if not any((args.channels, args.rx_ring, coalesce, args.ntuple)):
        raise UsageError("nothing to set: give --channels, --rx-ring, --coalesce or --ntuple")
    report = _nic(nic.set_, args.iface, args.netns, args.channels, args.rx_ring, coalesce, args.ntuple)
    failed = any(r["status"] == "failed" for r in report["results"].values())
    return (1 if failed else 0), report


def render_nic_set(r: Report) -> None:
    for name, res in r["results"].items():
        colour = {"ok": "green", "unsupported": "yellow"}.get(res["status"], "red")
        console.print(f"  {name}: [{colour}]{res['status']}[/]" + (f" ({res['reason']})" if res.get("reason") else ""))


def _feed(fn, *a, **kw):
    from appliance.feed import FeedError
    from dpdk.worker import DpdkError
    from xdp.filter import BpfError

    try:
        return fn(*a, **kw)
    except (FeedError, DpdkError, BpfError) as exc:
        raise UsageError(str(exc)) from exc


EVENT_TEXT = {
    "gap": lambda e: f"gap: {e['count']:,} missing from {e['first']:,}",
    "recovered": lambda e: f"recovered: {e['messages']:,} messages; next {e['next_seq']:,}",
    "unrecoverable": lambda e: f"[red]unrecoverable gap[/]: {e['count']:,} skipped from {e['first']:,}; books stale",
    "end_of_session": lambda e: f"end of session at {e['next_seq']:,}",
    "retransmission_request": lambda e: f"asked for {e['count']:,} from {e['first']:,}",
    "risk_denied": lambda e: f"risk denied order {e['user_ref']} ({e['qty']:,} shares, locate {e['locate']}): "
                             f"{e['denial']}",
    "order": lambda e: order_text(e),
}
OUCH_ANSWERS = {"A": "accepted", "E": "executed", "C": "canceled", "J": "rejected", "U": "replaced",
                "X": "cancel sent"}


def order_text(e: dict[str, Any]) -> str:
    if e["type"] == "O":
        after = (f", {e['tick_to_trade_ns'] / 1000:.1f} µs after the arrival of line {e['line']} packet {e['seq']:,}"
                 if "tick_to_trade_ns" in e else "")
        return f"order {e['user_ref']} sent: {e['qty']:,} {e.get('symbol', '')}{after}"
    if e["type"] == "N":
        return f"order {e['user_ref']} [red]not sent[/]: the link broke before it was written"
    return f"order {e['user_ref']} {OUCH_ANSWERS.get(e['type'], e['type'])}: {e['qty']:,}"


def event_text(e: dict[str, Any]) -> str:
    fn = EVENT_TEXT.get(e["event"])
    if fn:
        return fn(e)
    who = f" {e['symbol']} ({e['locate']})" if "locate" in e else ""
    return f"{e['event'].replace('_', ' ')}{who}: {e.get('code', '')}"


# ---- journal -----------------------------------------------------------------------------

JOURNAL_DIR = arg("--dir", default="/var/lib/tickwire/journal", metavar="DIR",
                  help="the journal's folder (default /var/lib/tickwire/journal)")


def _journal(fn, *a):
    from appliance.journal import JournalError

    try:
        return fn(*a)
    except JournalError as exc:
        raise UsageError(str(exc)) from exc


def cmd_journal_verify(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance import journal

    if not journal.segments(args.dir):
        raise UsageError(f"{args.dir}: no journal here (no journal-*.twj)")
    scan = journal.verify(args.dir)
    return (1 if scan.corrupt else 0), {"dir": args.dir, **scan.as_dict()}


def render_journal_verify(r: Report) -> None:
    console.print(f"{r['dir']}: {r['records']:,} records, sequence {r['first_seq']} to {r['last_seq']}, "
                  f"{len(r['segments'])} segment(s)")
    if r["torn_tail"]:
        t = r["torn_tail"]
        console.print(f"[yellow]torn tail[/]: {t['bytes']:,} bytes at {t['file']}:{t['offset']} ({t['why']}); "
                      "the next writer cuts it off")
    for c in r["corrupt"]:
        console.print(f"[red]corrupt[/]: {c['why']} in {c['file']} at byte {c['offset']}")


def cmd_journal_export(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance import journal

    if not journal.segments(args.dir):
        raise UsageError(f"{args.dir}: no journal here (no journal-*.twj)")
    return 0, {"dir": args.dir, "parquet": args.parquet, "counts": _journal(journal.export_parquet, args.dir,
                                                                             args.parquet)}


def cmd_journal_query(args: argparse.Namespace) -> tuple[int, Report]:
    import tempfile

    from appliance import journal

    if args.parquet:
        return 0, _journal(journal.query, args.parquet, args.sql)
    if not journal.segments(args.dir):
        raise UsageError(f"{args.dir}: no journal here; give --dir, or --parquet with exported files")
    with tempfile.TemporaryDirectory(prefix="tw-journal-") as tmp:
        _journal(journal.export_parquet, args.dir, tmp)
        return 0, _journal(journal.query, tmp, args.sql)


def cmd_journal_orders(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance import journal
    from appliance.oms import Oms

    if not journal.segments(args.dir):
        raise UsageError(f"{args.dir}: no journal here (no journal-*.twj)")
    oms = Oms.from_journal(args.dir)
    listed = oms.orders.values() if args.all else oms.open_orders()
    return (1 if oms.anomalies else 0), {"dir": args.dir, **oms.summary(),
                                         "listed": [o.as_dict() for o in listed]}


def render_journal_orders(r: Report) -> None:
    console.print(f"{r['dir']}: {r['orders']:,} orders, {r['open']:,} open; "
                  + ", ".join(f"{k} {v:,}" for k, v in sorted(r["by_state"].items())))
    for sym, p in r["pnl"].items():
        console.print(f"  {sym}: position {p['position']:,} (bought {p['bought']:,}, sold {p['sold']:,}), "
                      f"realized P&L {p['realized']:,.2f}")
    if r["listed"]:
        t = Table()
        for c in ("user_ref", "symbol", "side", "qty", "price", "state", "filled", "avg_price"):
            t.add_column(c)
        for o in r["listed"]:
            t.add_row(str(o["user_ref"]), o["symbol"], o["side"], f"{o['qty']:,}", f"{o['price'] / 10000:.4f}",
                      o["state"], f"{o['filled']:,}", str(o["avg_price"] or ""))
        console.print(t)
    for a in r["anomalies"]:
        console.print(f"[red]{a['why']}[/] (order {a['user_ref']}, {a['event']}, journal record {a['where']})")


def render_journal_query(r: Report) -> None:
    t = Table()
    for c in r["columns"]:
        t.add_column(c)
    for row in r["rows"]:
        t.add_row(*(str(v) for v in row))
    console.print(t)


def cmd_run(args: argparse.Namespace) -> tuple[int, Report]:
    """feed run --config, with the service's defaults."""
    argv = ["feed", "run", "--config", args.file, "--name", args.name, "--duration", str(args.duration),
            "--quiet-events", "--top", "3"]
    if args.strategy:
        argv += ["--strategy", args.strategy]
    feed_args = build_parser().parse_args(argv)
    feed_args.json = getattr(args, "json", False)
    return cmd_feed_run(feed_args)


def cmd_status(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance import feed

    r = _feed(feed.status, args.name)
    return (0 if r["running"] else 1), r


def status_view(r: Report) -> Group:
    h = r["health"]
    ok = {"in sequence": "green", "up": "green", "watching": "green"}

    def tint(v: Any) -> str:
        return f"[{ok.get(v, 'red') if isinstance(v, str) else 'red'}]{v}[/]"

    def money(v: Any) -> str:
        return f"{v:,.2f}" if isinstance(v, (int, float)) else "-"

    def tripped(t: Any) -> str:
        return tint(t) if isinstance(t, str) else f"[red]tripped: {t['breach']} {t['value']} (limit {t['limit']})[/]"

    kills = h["kill_switch"]
    killed = (["the whole worker"] if kills["global"] else []) + [f"strategy {n}" for n in kills["strategies"]] + \
        [f"instrument {i}" for i in kills["instruments"]]
    names = ", ".join(s["name"] for s in r["strategies"]) or "none"
    t = Table(title=f"{r['name']}: {'[green]running[/]' if r['running'] else '[yellow]stopped[/]'}, pid {r['pid']}, "
              f"up {r['uptime_s']:.0f} s, strategies {names}", title_justify="left")
    t.add_column("")
    t.add_column("")
    rows = [
        ("feed / session", f"{tint(h['feed'])} / {tint(h['session'])}"),
        ("kill switch", "[red]" + ", ".join(killed) + " thrown[/]" if killed else "[green]clear[/]"),
        ("risk manager", tripped(h["risk_manager"])),
        ("clock", h["clock"]),
        ("P&L / drawdown (all)", f"{money(r['pnl'])} / {money(r['drawdown'])}"),
        ("orders (open)", f"{r['orders'].get('orders', 0):,} ({r['orders'].get('open', 0):,}); "
         + ", ".join(f"{k} {v:,}" for k, v in sorted(r["orders"].get("by_state", {}).items()))),
        ("sent / cancels / denied / failed", " / ".join(f"{r['counts'][k]:,}" for k in (
            "orders_sent", "cancels_sent", "orders_denied", "send_failed"))),
        ("messages a second", f"{r['messages_per_s'] or 0:,}"),
        ("feed applied / gaps", f"{r['feed']['applied']:,} / {r['feed']['gaps']:,}"),
        ("tick to trade p50 / p99 (µs)", " / ".join(str(r["latency_us"]["tick_to_trade"].get(q, "-"))
                                                      for q in ("p50", "p99"))),
        ("OMS anomalies", f"{r['anomalies']:,}"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    per = Table(title="strategies", title_justify="left")
    for col in ("strategy", "instrument", "position", "mark", "P&L", "drawdown", "open", "state"):
        per.add_column(col, justify="left" if col in ("strategy", "instrument", "state") else "right")
    for s in r["strategies"]:
        state = "[red]killed[/]" if s["killed"] else ("[red]instrument killed[/]" if s["instrument_killed"] else
                                                     tripped(s["risk_manager"]))
        per.add_row(s["name"], f"{s['symbol'] or s['locate']} ({s['kind']})",
                    f"{s['position']:,}" if s["position"] is not None else "-",
                    f"{s['mark']:.4f}" if s["mark"] is not None else "-", money(s["pnl"]), money(s["drawdown"]),
                    f"{s['open_orders']:,}", state if state != tint("watching") else
                    ("[yellow]stopped (the whole worker is killed)[/]" if kills["global"] else "[green]active[/]"))
    return Group(t, per)


def render_status(r: Report) -> None:
    console.print(status_view(r))


def cmd_top(args: argparse.Namespace) -> tuple[int, Report]:
    import contextlib

    from appliance import feed

    with contextlib.ExitStack() as stack:
        if args.json:  # one JSON document per line, per refresh
            show = lambda r: print(json.dumps(r, default=str), flush=True)  # noqa: E731
        else:
            live = stack.enter_context(Live(console=console, auto_refresh=False))
            show = lambda r: live.update(status_view(r), refresh=True)  # noqa: E731
        repeat(lambda: show(_feed(feed.status, args.name)), args.interval, args.count)
    return 0, None


def repeat(fn: Callable[[], Any], interval: float, count: int = 0, stop: Callable[[], bool] | None = None) -> None:
    """fn() every interval seconds until Ctrl-C, count calls (0: no end), or stop() says so: the
    live views' and the watchers' loop."""
    n = 0
    try:
        while not (stop and stop()):
            fn()
            n += 1
            if count and n >= count:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        pass


def cmd_reload(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance import feed

    need_root("tickwire reload")
    r = _feed(feed.reload, args.name, args.timeout)
    return (0 if r["ok"] else 1), r


def render_reload(r: Report) -> None:
    if r["ok"]:
        changes = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in r["changed"].items()) or "nothing changed"
        console.print(f"worker {r['name']} reloaded {r['file']}: {changes}")
    else:
        console.print(f"worker {r['name']} [red]refused[/] the reload of {r['file']}; nothing changed:")
        for p in r["problems"]:
            console.print(f"  {p}", markup=False, highlight=False)


# ---- config ------------------------------------------------------------------------------

CONFIG_FILE = arg("file", metavar="FILE", help="the appliance YAML (see examples/market_maker.yaml)")


def cmd_config_check(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance import config

    try:
        cfg = config.load(args.file)
    except config.ConfigError as exc:
        return 1, {"file": args.file, "valid": False, "problems": [p.as_dict(exc.file) for p in exc.problems],
                   "warnings": []}
    warnings = []
    try:
        cfg.venue.password()
    except config.ConfigError as exc:  # the secret may live only on the box: a warning here
        warnings = [p.text(args.file) for p in exc.problems]
    return 0, {"file": args.file, "valid": True, "problems": [], "warnings": warnings,
               "instruments": [i.symbol for i in cfg.instruments],
               "strategies": [f"{s.name} ({s.kind} on {s.instrument})" for s in cfg.strategies]}


def render_config_check(r: Report) -> None:
    for w in r["warnings"]:
        console.print(f"[yellow]warning[/]: {w}")
    if r["valid"]:
        console.print(f"{r['file']}: [green]valid[/]; instruments {', '.join(r['instruments'])}; strategies "
                      + (", ".join(r["strategies"]) or "none"))
        return
    n = len(r["problems"])
    console.print(f"{r['file']}: [red]{n} problem{'s' if n != 1 else ''}[/]")
    for p in r["problems"]:
        at = f"{p['file']}:{p['line']}" if p["line"] else p["file"]
        value = f" {p['value']!r}" if p["value"] is not None else ""
        where = f"{p['path']}{value}: " if p["path"] else ""
        console.print(f"  {at}: {where}{p['message']}", markup=False, highlight=False)


def cmd_config_explain(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance import config

    try:
        return 0, {"file": args.file, "settings": config.explain(args.file)}
    except config.ConfigError as exc:
        raise UsageError(f"{exc}\n(tickwire config check {args.file} lists the problems)") from exc


def render_config_explain(r: Report) -> None:
    t = Table(title=f"{r['file']}: effective settings", title_justify="left")
    t.add_column("setting")
    t.add_column("value")
    t.add_column("from")
    for row in r["settings"]:
        src = row["source"]
        if src.startswith(f"{r['file']}:"):
            src = f"line {src.rsplit(':', 1)[1]}"
        t.add_row(row["path"], str(row["value"]), src if src != "default" else "[dim]default[/]")
    console.print(t)


def cmd_feed_run(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance import feed

    need_root("tickwire feed run", RUN_CAPABILITIES)
    quiet = args.json
    say = (lambda m: None) if quiet else (lambda m: console.print(f"[dim]{m}[/]"))
    on_event = None if quiet or args.quiet_events else (lambda e: console.print(f"  event: {event_text(e)}"))
    report = _feed(feed.run, args, say, on_event)
    st = report["stats"]
    code = 1 if st["feed"]["stale"] or st["feed"]["unrecoverable"] else 0
    return code, report


def render_feed_run(r: Report) -> None:
    render_feed_stats({**r["stats"], "name": r["name"], "info": {}, "recent_events": []})
    console.print(f"stopped by: {r['stopped_by']}; events: "
                  + (", ".join(f"{k} {v}" for k, v in sorted(r["events"].items())) or "none"))
    render_books(r["books"])


def cmd_feed_stats(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance import feed

    if args.watch and not args.json:
        with Live(console=console, auto_refresh=False) as live:
            try:
                while True:
                    live.update(feed_stats_view(_feed(feed.stats, args.name)), refresh=True)
                    time.sleep(args.watch)
            except KeyboardInterrupt:
                pass
        return 0, None
    if args.watch:  # --json --watch: one JSON document per line
        try:
            while True:
                print(json.dumps(_feed(feed.stats, args.name)), flush=True)
                time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0, None
    return 0, _feed(feed.stats, args.name, args.events)


def cmd_feed_kill(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance import feed

    need_root("tickwire feed kill")
    return 0, _feed(feed.kill, args.name, args.release, 2.0, "global", None, "tickwire feed kill")


def _kill_level(args: argparse.Namespace) -> tuple[str, str | None]:
    if args.strategy and args.instrument:
        raise UsageError("give --strategy or --instrument, not both (neither: the whole worker)")
    if args.strategy:
        return "strategy", args.strategy
    if args.instrument:
        return "instrument", args.instrument
    return "global", None


def cmd_kill(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance import feed

    need_root("tickwire kill")
    level, target = _kill_level(args)
    return 0, _feed(feed.kill, args.name, False, args.timeout, level, target, args.reason)


def cmd_resume(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance import feed

    need_root("tickwire resume")
    level, target = _kill_level(args)
    return 0, _feed(feed.kill, args.name, True, args.timeout, level, target, args.reason)


def render_kill(r: Report) -> None:
    what = {"global": "the whole worker", "strategy": f"strategy {r['target']}",
            "instrument": f"instrument {r['target']} (locate {r['locate']})"}[r["level"]]
    if r["kill"]:
        console.print(f"killed {what} of {r['name']}: acted {r['acted_after_us']:,} µs after the request; "
                      f"{r['cancels']:,} open orders cancelled in one send {r['cancels_sent_after_us']:,} µs after it "
                      f"(by {r['who']}: {r['reason']})")
    else:
        console.print(f"resumed {what} of {r['name']} after {r['acted_after_us']:,} µs (by {r['who']}: {r['reason']})")


def render_feed_kill(r: Report) -> None:
    what = "thrown: no new orders, open orders cancelled" if r["kill"] else "released: quoting resumes"
    console.print(f"kill switch of {r['name']} {what}; the worker acted {r['acted_after_us']:,} µs after the request "
                  f"({r['orders_sent']:,} orders and {r['cancels_sent']:,} cancels sent so far)")


def feed_stats_view(r: Report) -> Table:
    f = r["feed"]
    state = ("[green]running[/]" if r["running"] else "[yellow]stopped[/]")
    health = "[red]STALE[/]" if f["stale"] else ("[yellow]in gap[/]" if f["in_gap"] else "[green]in sequence[/]")
    t = Table(title=f"feed worker {r['name']}: {state}, pid {r['pid']}, up {r['uptime_s']:.1f} s; books {health}",
              title_justify="left")
    t.add_column("")
    t.add_column("", justify="right")
    rows = [
        ("packets A / B / retransmission", " / ".join(f"{v:,}" for v in f["packets"].values())),
        ("first copies A / B / retransmission", " / ".join(f"{v:,}" for v in f["first_copy"].values())),
        ("messages applied", f"{f['applied']:,}"), ("next sequence", f"{f['next_seq']:,}"),
        ("duplicates", f"{f['duplicates']:,}"), ("gaps / recovered", f"{f['gaps']:,} / {f['recovered']:,}"),
        ("unrecoverable (messages skipped)", f"{f['unrecoverable']:,} ({f['skipped']:,})"),
        ("retransmission requests / answers", f"{r['retrans_requests']:,} / {r['retrans_answers']:,}"),
        ("malformed / other session", f"{f['malformed']:,} / {f['other_session']:,}"),
        ("book errors", ", ".join(f"{k} {v:,}" for k, v in r["book"]["errors"].items()) or "0"),
        ("live orders", f"{r['live_orders']:,}"),
        ("not UDP / no arrival stamp / socket errors", f"{r['not_udp']:,} / {r['no_meta']:,} / {r['sock_errors']:,}"),
        ("polls (with packets)", f"{r['polls']:,} ({r['busy_polls']:,})"),
        ("events (dropped)", f"{r['events']:,} ({r['events_dropped']:,})"),
        ("end of session", "yes" if f["end_of_session"] else "no"),
    ]
    if r.get("decisions"):
        rows += [
            ("strategy decisions", f"{r['decisions']:,}"),
            ("orders sent / denied by risk / send failed",
             f"{r['orders_sent']:,} / {r['orders_denied']:,} / {r['send_failed']:,}"),
            ("cancels sent; exchange answers; shares executed",
             f"{r['cancels_sent']:,}; {r['order_events']:,}; {r['executed']:,}"),
        ]
    for k, v in rows:
        t.add_row(k, v)
    for stage, h in r["latency_ns"].items():
        if h.get("count"):
            t.add_row(f"latency {stage} (ns)", f"p50 {h['p50']:,}  p99 {h['p99']:,}  p99.9 {h['p99.9']:,}  "
                                               f"max {h['max']:,}  n {h['count']:,}")
    if r.get("recent_events"):
        t.caption = "recent events: " + "; ".join(event_text(e) for e in r["recent_events"][-5:])
    return t


def render_feed_stats(r: Report) -> None:
    console.print(feed_stats_view(r))


def render_books(books: list[dict[str, Any]]) -> None:
    def px(p: int) -> str:
        return f"{p / 10_000:,.4f}"

    for b in books:
        if not (b["bids"] or b["asks"]):
            continue
        t = Table(title=f"{b['symbol'] or '?'} (locate {b['locate']}), trading state {b['trading_state'] or '?'}"
                  + (", [red]operational halt[/]" if b["operational_halt"] else ""), title_justify="left")
        for col in ("bid orders", "bid shares", "bid", "ask", "ask shares", "ask orders"):
            t.add_column(col, justify="right")
        for i in range(max(len(b["bids"]), len(b["asks"]))):
            bid = b["bids"][i] if i < len(b["bids"]) else None
            ask = b["asks"][i] if i < len(b["asks"]) else None
            t.add_row(f"{bid[2]:,}" if bid else "", f"{bid[1]:,}" if bid else "", px(bid[0]) if bid else "",
                      px(ask[0]) if ask else "", f"{ask[1]:,}" if ask else "", f"{ask[2]:,}" if ask else "")
        console.print(t)


def cmd_book(args: argparse.Namespace) -> tuple[int, Report]:
    import pathlib

    from appliance import feed
    from appliance.decode import file_kind

    if not pathlib.Path(args.file).is_file():
        raise UsageError(f"{args.file}: no such file")
    if file_kind(pathlib.Path(args.file)) != "binaryfile":
        need_root("tickwire book on a capture (DPDK's pcap port)")
        out = _feed(feed.book_capture, args.file, args.top, args.max_orders, args.levels, args.retrans_port)
    else:
        out = _feed(feed.book_file, args.file, args.top, args.max_orders, args.levels)
    return 0, out


def render_book(r: Report) -> None:
    b = r["book"]
    console.print(f"{r['file']}: {r['messages']:,} messages through the C books ({r['mode']}); "
                  f"{b['applied']:,} book messages applied, {r['live_orders']:,} orders open, "
                  f"last system event {r['system_event'] or 'none'}"
                  + (f"; refused: {', '.join(f'{k} {v:,}' for k, v in b['errors'].items())}" if b["errors"] else ""))
    render_books(r["books"])


def cmd_demo(args: argparse.Namespace) -> tuple[int, Report]:
    from appliance import demo

    need_root("tickwire demo")
    return demo.run(args, console=None if args.json else console)


IFACE = arg("iface", metavar="IFACE", help="the interface, e.g. feed-a")
NETNS = arg("--netns", metavar="NS", help="the interface's network namespace (e.g. tw-app in the lab)")

DIRECTION = arg("--direction", default=None, choices=("down", "up", "both"),
                help="which way to impair: down = from the exchange (or app, for ha) towards the host, "
                     "up = back, both (impair default: down; clear default: both)")

KILL_ARGS = (
    arg("--name", default="tw", help="the worker's name (default tw)"),
    arg("--strategy", metavar="NAME", help="only this strategy"),
    arg("--instrument", metavar="SYMBOL", help="only this instrument (a symbol from the config, or a stock locate)"),
    arg("--reason", required=True, metavar="TEXT", help="why: kept in the journal with who did it"),
    arg("--timeout", type=float, default=2.0, metavar="SECONDS", help="how long to wait for the worker to act"),
)

COMMANDS: tuple[Command, ...] = (
    Command(("version",), "show the versions of tickwire, Python, the kernel and the DPDK it was built with",
            cmd_version),
    Command(("doctor",), "check this host and the build: root, Debian 12, kernel features, built objects, tools",
            cmd_doctor, render=render_doctor),
    Command(("lab",), "the network lab: namespaces and veth pairs standing in for the colo network", None),
    Command(("lab", "up"), "build the lab (idempotent: completes a partial lab, changes nothing on a full one)",
            cmd_lab_up, (PREFIX,), render_lab_up, root=True),
    Command(("lab", "down"), "remove everything the prefix owns: processes, namespaces, links, state",
            cmd_lab_down, (PREFIX,), render_lab_down, root=True),
    Command(("lab", "status"), "namespaces, links, addresses, XDP programs, impairments and processes "
            "(exit 0 when the lab is complete, 1 otherwise)",
            cmd_lab_status, (PREFIX, arg("--watch", type=float, metavar="SECONDS", default=0.0,
                                          help="refresh every SECONDS until Ctrl-C")),
            render_lab_status, root=True),
    Command(("lab", "impair"), "impair a link: loss, delay, jitter, reordering, duplication (netem's meanings)",
            cmd_lab_impair, (
                PREFIX,
                arg("link", metavar="LINK", help="feed-a-app, feed-a-standby, feed-b-app, feed-b-standby, "
                                                  "order-app, order-standby or ha"),
                arg("--loss", type=float, default=0.0, metavar="PCT", help="percent of frames dropped"),
                arg("--delay", type=float, default=0.0, metavar="MS", help="delay in milliseconds"),
                arg("--jitter", type=float, default=0.0, metavar="MS", help="delay varies uniformly by +- MS"),
                arg("--reorder", type=float, default=0.0, metavar="PCT",
                    help="percent of frames sent without the delay (needs --delay)"),
                arg("--duplicate", type=float, default=0.0, metavar="PCT", help="percent of frames sent twice"),
                arg("--seed", type=int, default=0, help="random seed for repeatable runs (0: random)"),
                DIRECTION,
            ), render_lab_impair, root=True),
    Command(("lab", "clear"), "remove a link's impairments (queued frames are still delivered)",
            cmd_lab_clear, (PREFIX, arg("link", metavar="LINK", help="the link, as for impair"), DIRECTION),
            render_lab_clear, root=True),
    Command(("decode",), "decode a BinaryFILE of ITCH or a pcap/pcapng of MoldUDP64 (ITCH) and SoupBinTCP (OUCH): "
            "one JSON object per message on stdout, problems with their offsets on stderr "
            "(exit 1 when anything was malformed)",
            cmd_decode, (
                arg("file", metavar="FILE", help="a BinaryFILE (e.g. 08222023.NASDAQ_ITCH50) or a .pcap/.pcapng"),
                arg("--stats", action="store_true", help="print counts per message type instead of the messages "
                    "(with --json: as one JSON object)"),
                arg("--type", metavar="T[,T...]", help="only these message types (e.g. A,D,U)"),
                arg("--limit", type=int, default=0, metavar="N", help="stop after N messages"),
            ), render_decode_stats),
    Command(("exchange",), "the exchange simulator: a deterministic day as a file, or the live exchange in the lab",
            None),
    Command(("exchange", "gen"), "write a deterministic trading day as a NASDAQ BinaryFILE of ITCH 5.0: directory, "
            "pre-open, opening cross, order flow (A F E X D U P), closing cross, end of day",
            cmd_exchange_gen, (
                arg("--symbols", type=int, default=10, metavar="N", help="instruments (default 10)"),
                arg("--messages", type=int, default=100_000, metavar="M",
                    help="book messages before the close (default 100000)"),
                arg("--seed", type=int, default=1, metavar="S", help="random seed: same seed, same bytes (default 1)"),
                arg("--rate", type=float, default=100_000.0, metavar="R",
                    help="events per second, which spaces the timestamps (default 100000)"),
                arg("--out", required=True, metavar="FILE.itch", help="where to write the BinaryFILE"),
            ), render_exchange_gen),
    Command(("exchange", "run"), "run the live exchange in the lab's exch namespace: ITCH on lines A and B, "
            "retransmission, OUCH order entry, faults and recording from a YAML config",
            cmd_exchange_run, (
                arg("--config", metavar="FILE", help="exchange YAML (see examples/exchange.yaml; default: built-in)"),
                PREFIX,
                arg("--duration", type=float, metavar="SECONDS", help="stop after this long (overrides the config)"),
                arg("--record", metavar="DIR", help="record everything into DIR (overrides the config)"),
            ), render_exchange_run),
    Command(("xdp",), "the XDP feed filter: load it on an interface, manage its rules, read its counters", None),
    Command(("xdp", "load"), "load the feed filter on an interface (native, generic as a reported fallback); "
            "maps pinned under /sys/fs/bpf/tickwire", cmd_xdp_load, (
                IFACE, NETNS,
                arg("--mode", choices=("native", "generic"), default="native", help="XDP mode (default native)"),
                arg("--hw-timestamps", choices=("auto", "on", "off"), default="auto",
                    help="use the NIC's receive timestamps: auto (when the device takes them), on (or fail), off"),
            ), render_xdp_load, root=True),
    Command(("xdp", "unload"), "detach the feed filter and remove its pinned maps", cmd_xdp_unload,
            (IFACE, NETNS), render_xdp_unload, root=True),
    Command(("xdp", "status"), "interfaces with an XDP program, and pinned feed filters", cmd_xdp_status,
            (NETNS,), render_xdp_status, root=True),
    Command(("xdp", "rules"), "the feed rules of a loaded filter: (group, port) -> redirect, pass or drop", None),
    Command(("xdp", "rules", "add"), "add or replace a rule (takes effect at once, no reload)", cmd_xdp_rules_add, (
        IFACE, NETNS,
        arg("--group", required=True, help="destination address, e.g. 239.198.1.1"),
        arg("--port", type=int, required=True, help="destination UDP port"),
        arg("--action", required=True, choices=("redirect", "pass", "drop")),
        arg("--feed", required=True, metavar="NAME", help="the feed's name (given a numeric id in the metadata)"),
        arg("--line", choices=("A", "B"), default="A", help="which line of the feed (default A)"),
    ), render_rules, root=True),
    Command(("xdp", "rules", "del"), "delete a rule", cmd_xdp_rules_del, (
        IFACE, NETNS, arg("--group", required=True), arg("--port", type=int, required=True)), None, root=True),
    Command(("xdp", "rules", "list"), "the rules of a loaded filter", cmd_xdp_rules_list, (IFACE, NETNS),
            render_rules, root=True),
    Command(("xdp", "stats"), "per-rule counters (matched, redirected, passed, dropped, redirect failed) and the "
            "unmatched ones", cmd_xdp_stats, (
                IFACE, NETNS, arg("--watch", type=float, metavar="SECONDS", default=0.0,
                                  help="a live table with per-rule packet rates, refreshed every SECONDS")),
            render_xdp_stats, root=True),
    Command(("feed",), "the feed worker: DPDK on the feed interfaces (af_xdp behind the XDP filter) or a capture, "
            "building order books in C", None),
    Command(("feed", "run"), "run the C worker on a feed: A/B arbitration, gaps and retransmission, ITCH into "
            "order books; events as they come, then the final report (exit 1 if the books ended stale)",
            cmd_feed_run, (
                arg("--config", metavar="FILE.yaml", help="the appliance YAML: feed lines, host, venue and the "
                    "strategy to trade, instead of the options below (see examples/market_maker.yaml)"),
                arg("--strategy", metavar="NAME", help="with --config: only this strategy (default: all of them, in "
                    "one worker)"),
                arg("--journal", metavar="DIR", help="keep every event, order, answer and kill in this journal "
                    "(with --config: the config's journal.dir unless given)"),
                arg("--journal-fsync", choices=("always", "batch", "none"), default="batch",
                    help="without --config: fsync every record, every 10 ms (default), or never"),
                arg("--prefix", help="take interfaces, groups and the retransmission server from this lab "
                    "(e.g. tw)"),
                arg("--role", default="app", choices=("app", "standby"), help="the lab host (default app)"),
                NETNS,
                arg("--iface", action="append", metavar="LINE=IFACE", help="a feed line's interface, e.g. A=feed-a"),
                arg("--group", action="append", metavar="LINE=ADDR:PORT", help="a line's multicast group"),
                arg("--retrans", metavar="ADDR:PORT", help="the MoldUDP64 retransmission (re-request) server"),
                arg("--give-up", type=float, default=5.0, metavar="SECONDS",
                    help="skip a gap still open after this long; the books stay stale (default 5; 0: never)"),
                arg("--pcap", metavar="FILE", help="replay this capture instead (DPDK's pcap port)"),
                arg("--input", choices=("af_xdp", "socket", "asyncio"), default="af_xdp",
                    help="how a live feed is read: af_xdp (default: DPDK's AF_XDP ports behind our XDP filter), "
                    "socket (kernel UDP sockets read with recvmmsg by the same C worker: for a box without "
                    "AF_XDP), asyncio (Python reads the sockets and hands each datagram to the C path: the "
                    "tick-to-trade benchmark's baseline, not for trading)"),
                arg("--busy-budget", type=int, default=0, metavar="N",
                    help="af_xdp: packets per preferred busy-poll syscall on each rx burst (0, the default: "
                    "no syscall per burst, best where another CPU's NAPI fills the ring, as on veth; try 64 "
                    "with a NIC whose NAPI runs on the worker's core)"),
                arg("--retrans-port", type=int, default=26401, metavar="PORT",
                    help="with --pcap: source port of retransmission answers (default 26401)"),
                arg("--name", default="tw", help="the worker's name, for feed stats (default tw)"),
                arg("--duration", type=float, default=0.0, metavar="SECONDS", help="stop after this long"),
                arg("--until-end", action="store_true", help="stop once the session has ended and no gap is open"),
                arg("--idle-stop", type=float, default=0.5, metavar="SECONDS",
                    help="with --pcap: stop when nothing came for this long (default 0.5)"),
                arg("--lcores", default="0,1", help="EAL lcores: Python's, then the worker's (default 0,1)"),
                arg("--hugepages", choices=("auto", "on", "off"), default="auto",
                    help="auto: use reserved hugepages, else --no-huge with a warning"),
                arg("--burst", type=int, default=32, help="rx burst size (default 32, at most 64)"),
                arg("--idle-sleep-us", type=int, default=0, metavar="US",
                    help="sleep after an empty poll (default 0: busy-poll the core)"),
                arg("--max-locate", type=int, default=16383,
                    help="instruments: the highest stock locate (default 16383; NASDAQ's stay below about 12,000)"),
                arg("--max-orders", type=int, default=1_000_000, help="live orders the books hold"),
                arg("--levels", type=int, default=1024, help="price levels per instrument side"),
                arg("--top", type=int, default=5, metavar="N", help="levels a side in the report (0: all)"),
                arg("--books-out", metavar="FILE", help="also write the final books as JSON to FILE"),
                arg("--record", metavar="PATH", help="keep every frame the worker receives (a socket's datagrams "
                    "with made-up headers, retransmission answers too): FILE.pcap is one capture (tickwire book "
                    "replays it); a folder gets a capture per line, rotated at --record-rotate-mb. Written by a "
                    "thread of its own: the worker only copies each frame into a ring. --config: its journal's "
                    "market-data folder, unless journal.market_data is false"),
                arg("--record-rotate-mb", type=float, default=256.0, metavar="MB",
                    help="with --record FOLDER: start a line's next capture past this size (default 256)"),
                arg("--quiet-events", action="store_true", help="do not print events as they come"),
                arg("--cpu-latency-us", type=int, metavar="US",
                    help="hold PM QoS (/dev/cpu_dma_latency) at US while running: idle CPUs wake within US "
                    "µs (0: they poll, as tuned's latency-performance holds); machine-wide, dropped on exit"),
                arg("--cancel-timeout", type=float, default=2.0, metavar="SECONDS",
                    help="trading: on the way out every open order is cancelled; wait this long for the venue to "
                    "confirm (default 2)"),
                arg("--cancel-each", action="store_true", help="a kill sends each cancel in a send() of its own "
                    "(the kill benchmark's baseline; by default they all leave in one)"),
                arg("--trade", metavar="FILE.yaml", help="also trade: a strategy, risk limits and the order-entry "
                    "session (see examples/trading.yaml)"),
            ), render_feed_run, root=True),
    Command(("feed", "stats"), "a feed worker's counters, gaps, retransmissions and latency percentiles per stage, "
            "read from its shared statistics while it runs (or after it stopped)",
            cmd_feed_stats, (
                arg("--name", default="tw", help="the worker's name (default tw)"),
                arg("--watch", type=float, metavar="SECONDS", default=0.0,
                    help="refresh every SECONDS until Ctrl-C (with --json: a JSON line each time)"),
                arg("--events", type=int, default=10, metavar="N", help="recent events to include (default 10)"),
            ), render_feed_stats),
    Command(("feed", "kill"), "throw a trading worker's kill switch: its loop refuses every new order and "
            "cancels every open order before its next rx burst (--release to resume)",
            cmd_feed_kill, (
                arg("--name", default="tw", help="the worker's name (default tw)"),
                arg("--release", action="store_true", help="release the switch: quoting resumes"),
            ), render_feed_kill, root=True),
    Command(("book",), "replay a BinaryFILE or a pcap/pcapng through the C path and print each instrument's final "
            "book (top N levels a side: shares and order counts)",
            cmd_book, (
                arg("file", metavar="FILE", help="a BinaryFILE of ITCH or a capture of MoldUDP64"),
                arg("--top", type=int, default=5, metavar="N", help="levels a side (default 5; 0: all)"),
                arg("--max-orders", type=int, default=4_000_000, help="live orders the books hold"),
                arg("--levels", type=int, default=4096, help="price levels per instrument side"),
                arg("--retrans-port", type=int, default=26401, metavar="PORT",
                    help="source port of retransmission answers in the capture (default 26401)"),
            ), render_book),
    Command(("run",), "the appliance as a foreground service, everything from its YAML: XDP, the DPDK worker, "
            "the order-entry session, every strategy, risk, the journal and hot reload (SIGHUP); SIGTERM cancels "
            "every open order, flushes the journal and exits 0; tells systemd READY and pings its watchdog "
            "(Type=notify, WatchdogSec=)", cmd_run, (
                arg("file", metavar="CONFIG", help="the appliance YAML (see examples/market_maker.yaml)"),
                arg("--strategy", metavar="NAME", help="only this strategy (default: every strategy of the config, "
                    "in one worker)"),
                arg("--name", default="tw", help="the worker's name, for stats, kill and reload (default tw)"),
                arg("--duration", type=float, default=0.0, metavar="SECONDS", help="stop after this long "
                    "(default: until SIGTERM)"),
            ), render_feed_run, root=True),
    Command(("status",), "a trading worker at a glance: health of feed, session, kill switches and risk "
            "manager; P&L; each strategy's position, P&L, drawdown, open orders and state; orders by state; counts, "
            "message rate and latency", cmd_status,
            (arg("--name", default="tw", help="the worker's name (default tw)"),), render_status),
    Command(("top",), "the same, live: refreshed every --interval seconds until Ctrl-C (with --json: a JSON "
            "line each time)", cmd_top, (
        arg("--name", default="tw", help="the worker's name (default tw)"),
        arg("--interval", type=float, default=0.5, metavar="SECONDS", help="refresh period (default 0.5)"),
        arg("--count", type=int, default=0, metavar="N", help="stop after N refreshes (default: until Ctrl-C)"),
    ), None),
    Command(("kill",), "the kill switch: the whole worker, one strategy or one instrument stops taking new "
            "orders and its open orders are cancelled at the venue, before the worker's next rx burst; who and why "
            "are journaled", cmd_kill, KILL_ARGS, render_kill, root=True),
    Command(("resume",), "release a kill switch (the same level: whole worker, --strategy or --instrument); an "
            "explicit operator action, journaled with who and why", cmd_resume, KILL_ARGS, render_kill, root=True),
    Command(("reload",), "reload a running worker's strategy parameters and risk limits from its config (as "
            "SIGHUP does): validated first, swapped whole into its tables, journaled; an invalid file or a changed "
            "structure changes nothing and says why (exit 1)", cmd_reload, (
                arg("--name", default="tw", help="the worker's name (default tw)"),
                arg("--timeout", type=float, default=5.0, metavar="SECONDS", help="how long to wait for its answer"),
            ), render_reload, root=True),
    Command(("config",), "the appliance YAML: check it, explain its effective values", None),
    Command(("config", "check"), "validate an appliance YAML: every problem at once, each with its line, the "
            "value and the fix (exit 0 valid, 1 not)", cmd_config_check, (CONFIG_FILE,), render_config_check),
    Command(("config", "explain"), "every effective setting of an appliance YAML, defaults included, and where "
            "each came from (its line, or the default); then each strategy's effective risk limits and the level "
            "that set each", cmd_config_explain, (CONFIG_FILE,), render_config_explain),
    Command(("journal",), "the journal: every order, ack, fill, risk event, operator action and config change",
            None),
    Command(("journal", "verify"), "read the whole journal: records, sequence numbers, a torn tail (reported, "
            "not an error), corruption (exit 1)", cmd_journal_verify, (JOURNAL_DIR,), render_journal_verify),
    Command(("journal", "export"), "write the journal as Parquet: one file per kind (order, ack, fill, ...) with "
            "the record's fields as columns, and records.parquet", cmd_journal_export, (
                JOURNAL_DIR, arg("--parquet", metavar="DIR", required=True, help="where the Parquet files go")),
            lambda r: console.print(f"{r['parquet']}: " + ", ".join(f"{k} {v:,}" for k, v in r["counts"].items()))),
    Command(("journal", "orders"), "every order rebuilt from the journal through the OMS's transition table: "
            "counts by state, the open ones, positions and realized P&L, and any illegal step or unknown order "
            "(exit 1 when there is one)", cmd_journal_orders, (
                JOURNAL_DIR, arg("--all", action="store_true", help="list every order, not only the open ones")),
            render_journal_orders),
    Command(("journal", "query"), "SQL (DuckDB) over the exported Parquet files, each a table named after its "
            "file: records, order, ack, fill, cancel, reject, risk, operator, config, event", cmd_journal_query, (
                arg("sql", metavar="SQL", help='e.g. "select kind, count(*) from records group by kind"'),
                arg("--parquet", metavar="DIR", help="exported files (default: export --dir to a temporary "
                    "folder first)"),
                JOURNAL_DIR), render_journal_query),
    Command(("nic",), "NIC queues: channels, rings, coalescing, offloads, timestamping, NUMA and IRQs", None),
    Command(("nic", "show"), "what the device has: channels, rings, coalescing, offloads, timestamping and its PTP "
            "clock, NUMA node, each queue's IRQ and CPU affinity (unsupported parts say so)",
            cmd_nic_show, (IFACE, NETNS), render_nic_show, root=True),
    Command(("nic", "set"), "change channels, rx ring, coalescing or add an ntuple rule; what the device does not "
            "support is reported as unsupported (exit 1 only if something failed)", cmd_nic_set, (
                IFACE, NETNS,
                arg("--channels", type=int, metavar="N", help="queues (combined, or rx and tx)"),
                arg("--rx-ring", type=int, metavar="N", help="rx ring size"),
                arg("--coalesce", action="append", metavar="NAME=N", help="e.g. rx-usecs=10 (repeatable)"),
                arg("--ntuple", metavar="'udp dst G:P queue Q'", help="steer a feed to a queue"),
            ), render_nic_set, root=True),
    Command(("demo",), "bring the lab up, send a MoldUDP64 feed on lines A and B from exch, show it arriving "
            "at app and standby (then again with line A impaired), build order books in the C feed worker from the "
            "live exchange over lossy lines, trade the market maker with tickwire run and check its report against "
            "the exchange's records, tear the lab down",
            cmd_demo, (
                arg("--prefix", default="twdemo", help="lab prefix for the demo (default twdemo)"),
                arg("--messages", type=int, default=300_000, help="ITCH messages per line (default 300000)"),
                arg("--rate", type=int, default=20_000, help="packets per second per line (default 20000)"),
                arg("--loss", type=float, default=2.0, metavar="PCT",
                    help="loss on feed-a-app in the second round (default 2; 0 skips that round)"),
                arg("--books-seconds", type=float, default=5.0, metavar="S",
                    help="how long the live exchange trades in the order-book round (default 5; 0 skips it)"),
                arg("--books-loss", type=float, default=5.0, metavar="PCT",
                    help="loss on both of app's feed lines in the order-book round, so that some messages only "
                         "retransmission can bring (default 5)"),
                arg("--trade-seconds", type=float, default=30.0, metavar="S",
                    help="how long tickwire run trades the market maker in the last round (default 30; 0 skips "
                         "it)"),
                arg("--keep", action="store_true", help="leave the lab up afterwards"),
            ), lambda report: None, root=True),  # the demo prints its own live view
) + ptp_commands(Command, arg) + tune_commands(Command, arg) + provision_commands(Command, arg)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tickwire",
        description="tickwire: a low-latency trading appliance (XDP, DPDK, Python control plane).",
        epilog="Every command takes --help; commands that report take --json.",
    )
    parser.add_argument("--version", action="version", version=f"tickwire {__version__}")
    subparsers: dict[tuple[str, ...], argparse._SubParsersAction] = {
        (): parser.add_subparsers(dest="command", metavar="COMMAND", required=True)}
    for cmd in COMMANDS:
        parent = subparsers[cmd.path[:-1]]
        p = parent.add_parser(cmd.path[-1], help=cmd.help, description=cmd.help)
        if cmd.handler is None:
            subparsers[cmd.path] = p.add_subparsers(dest="_".join(cmd.path), metavar="VERB", required=True)
            continue
        for a in cmd.args:
            p.add_argument(*a.flags, **a.kwargs)
        if cmd.json:
            p.add_argument("--json", action="store_true", help="print the report as JSON")
        p.set_defaults(_command=cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cmd: Command = args._command
    try:
        code, report = cmd.handler(args)
    except UsageError as exc:
        print(f"tickwire: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # an operation failed: say what, not a traceback
        from appliance.lab.net import LabError

        if isinstance(exc, (LabError, FileNotFoundError, ValueError, OSError)):
            print(f"tickwire {' '.join(cmd.path)}: {exc}", file=sys.stderr)
            return 2
        raise
    if report is None:  # the command printed its own output as it went
        return code
    if getattr(args, "json", False):
        print(json.dumps(report, indent=2, default=str))
    elif cmd.render is not None:
        cmd.render(report)
    elif report:
        console.print_json(json.dumps(report, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
