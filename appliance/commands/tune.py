"""``tickwire tune ...``: the host audit, apply and revert, and the jitter probe."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from appliance.commands.kit import Command, UsageError, arg, console, need_root

COLOUR = {"ok": "green", "info": "dim", "warn": "yellow", "fail": "red", "tuned": "green", "degraded": "yellow",
          "not tuned": "red"}


def _plan(args: argparse.Namespace) -> Any:
    # lazy: the library loads with its verb, not at every tickwire start
    from tuning.plan import for_config

    path = getattr(args, "config", None)
    if not path:
        return for_config(None)  # this host's own plan: no config to read (nor the C extension it needs)
    from appliance import config  # lazy: only a --config needs it

    try:
        return for_config(config.load(path))
    except config.ConfigError as exc:
        raise UsageError(str(exc)) from exc


def cmd_audit(args: argparse.Namespace) -> tuple[int, Any]:
    # lazy: the library loads with its verb, not at every tickwire start
    from tuning import audit

    r = audit.run(_plan(args))
    return r["exit"], r


def render_audit(r: dict[str, Any]) -> None:
    p = r["plan"]
    t = Table(title=f"host: [{COLOUR[r['verdict']]}]{r['verdict']}[/] (worker CPU {p['worker']}, isolated "
              f"{p['isolated']}, housekeeping {p['housekeeping']}, NUMA node {p['numa_node']})", title_justify="left")
    for col in ("concern", "check", "", "evidence", "fix"):
        t.add_column(col, overflow="fold")
    for f in r["findings"]:
        t.add_row(f["concern"], f["check"], f"[{COLOUR[f['status']]}]{f['status']}[/]", escape(f["evidence"]),
                  escape(f["fix"] or "") + (" [dim](boot)[/]" if f["boot"] and f["status"] != "ok" else ""))
    console.print(t)


def cmd_apply(args: argparse.Namespace) -> tuple[int, Any]:
    # lazy: the library loads with its verb, not at every tickwire start
    from common.operator import operator
    from tuning import apply

    if args.dry_run == args.yes:
        raise UsageError("give --dry-run (show what would change) or --yes (change it)")
    if args.yes:
        need_root("tickwire tune apply --yes")
    r = apply.apply(_plan(args), dry_run=args.dry_run, who=operator())
    return (1 if r["failed"] else 0), r


def render_apply(r: dict[str, Any]) -> None:
    head = "would change" if r["dry_run"] else "changed"
    if not r["changes"]:
        console.print("nothing the running kernel can change is off the plan")
    for ch in r["changes"]:
        where = ch.get("path") or f"{ch['iface']} ({ch['field']})"
        failed = next((f for f in r["failed"] + r["skipped"] if f.get("what") == ch["what"]), None)
        mark = ("[red]failed[/]" if failed in r["failed"] else "[yellow]skipped[/]") if failed else (
            "[green]done[/]" if not r["dry_run"] else "")
        console.print(f"{head} {ch['what']}: [red]{ch['before']}[/] -> [green]{ch['after']}[/]  ({where}) {mark}"
                      + (f" {failed['why']}" if failed else ""), highlight=False)
    if r["left_to_provisioning"]:
        console.print("left to provisioning (the kernel command line: a reboot):")
        for b in r["left_to_provisioning"]:
            console.print(f"  {b['what']}: {b['fix']}", markup=False, highlight=False)
    if not r["dry_run"] and r["applied"]:
        console.print(f"what was there before is saved in {r['state']}: tickwire tune revert puts it back")


def cmd_revert(args: argparse.Namespace) -> tuple[int, Any]:
    # lazy: the library loads with its verb, not at every tickwire start
    from tuning import apply

    need_root("tickwire tune revert")
    r = apply.revert()
    return (1 if r["failed"] else 0), r


def render_revert(r: dict[str, Any]) -> None:
    if not r["restored"] and not r["failed"]:
        console.print(f"nothing to revert ({r['state']} holds no change)")
    for ch in r["restored"]:
        console.print(f"restored {ch['what']}: {ch['before']}", highlight=False)
    for ch in r["failed"]:
        console.print(f"[red]could not restore[/] {ch['what']} to {ch['before']}: {ch['why']}", highlight=False)


def cmd_jitter(args: argparse.Namespace) -> tuple[int, Any]:
    # lazy: the library loads with its verb, not at every tickwire start
    from dpdk import lab_native
    from tuning import jitter
    from tuning.findings import cpulist

    need_root("tickwire tune jitter")
    try:
        cpus = sorted(cpulist(args.cpus))
    except ValueError as exc:
        raise UsageError(f"--cpus {args.cpus!r}: write a CPU list such as 1 or 2-3,5") from exc
    try:
        r = jitter.run(cpus, args.seconds, args.budget_us, args.threshold_us, args.method, lab=lab_native())
    except jitter.JitterError as exc:
        raise UsageError(str(exc)) from exc
    return r["exit"], r


def render_jitter(r: dict[str, Any]) -> None:
    for n in r["notes"]:
        console.print(f"[yellow]{n}[/]", highlight=False)
    colour = "green" if r["exit"] == 0 else "red"
    console.print(f"[{colour}]{r['verdict']}[/]: the longest stall {r['max_gap_us']:,} µs (budget "
                  f"{r['budget_us']:,} µs), {r['seconds']:g} s on CPU {', '.join(map(str, r['cpus']))}, traced with "
                  f"{r['method']}")
    for c in r["per_cpu"]:
        t = Table(title=f"CPU {c['cpu']}: {c['gaps']:,} stalls over {r['threshold_us']:g} µs, {c['taken_us']:,} µs "
                  f"taken ({c['share'] * 100 if c['share'] is not None else 0:.3f} %), the longest {c['max_us']:,} µs",
                  title_justify="left")
        for col in ("source", "count", "total µs", "longest µs"):
            t.add_column(col, justify="left" if col == "source" else "right")
        for s in c["sources"][:15]:
            t.add_row(s["source"], f"{s['count']:,}", f"{s['total_us']:,}", f"{s['max_us']:,}")
        console.print(t)




CONFIG = arg("--config", metavar="FILE", help="the appliance YAML: its host, feed and ptp sections say the "
             "cores, NUMA node, hugepages and interfaces to check (default: the last CPU is the worker's)")

COMMANDS: tuple[Command, ...] = (
    Command(("tune",), "the host: audit it against the plan, apply what the running kernel can change, revert "
            "it, and probe what interrupts the worker's cores", None),
    Command(("tune", "audit"), "every tuning check (kernel command line, cores, IRQs, memory, sysctls, NICs, "
            "clock) with its evidence and fix; exit 0 tuned, 1 warnings, 2 failures", cmd_audit, (CONFIG,),
            render_audit),
    Command(("tune", "apply"), "change what the running kernel can (sysctls, IRQ affinity, workqueues, governor, "
            "hugepages, NIC rings and coalescing): --dry-run shows the diff, --yes applies it and saves what "
            "was there; the kernel command line is left to provisioning", cmd_apply,
            (CONFIG, arg("--dry-run", action="store_true", help="show what would change"),
             arg("--yes", action="store_true", help="change it")), render_apply),
    Command(("tune", "revert"), "put back exactly what tickwire tune apply changed", cmd_revert, (), render_revert,
            root=True),
    Command(("tune", "jitter"), "what interrupts the given cores (IRQs, softirqs, the timer, other tasks: counts "
            "and durations) and the longest stall a busy loop sees there, against a budget (exit 1 over it)",
            cmd_jitter, (arg("--cpus", required=True, metavar="LIST", help="e.g. 1 or 2-3"),
                         arg("--seconds", type=float, default=10.0, metavar="N"),
                         arg("--budget-us", type=float, default=50.0, metavar="US",
                             help="the longest stall allowed (default 50 µs)"),
                         arg("--threshold-us", type=float, default=1.0, metavar="US",
                             help="a gap longer than this counts as a stall (default 1 µs)"),
                         arg("--method", choices=("auto", "bcc", "tracefs"), default="auto",
                             help="the tracer: bcc when it can compile (kernel headers), else tracefs")),
            render_jitter, root=True),
)
