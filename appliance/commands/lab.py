"""``tickwire lab ...``: the network lab (namespaces, veth pairs, impairments) standing in for the colo network."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from rich.live import Live
from rich.table import Table

from appliance.commands.kit import PREFIX, Command, Report, UsageError, arg, console, need_root

DIRECTION = arg("--direction", default=None, choices=("down", "up", "both"),
                help="which way to impair: down = from the exchange (or app, for ha) towards the host, "
                     "up = back, both (impair default: down; clear default: both)")


def lab_plan(args: argparse.Namespace):
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.lab import topology

    try:
        return topology.plan(args.prefix or os.environ.get("TICKWIRE_LAB_PREFIX") or topology.DEFAULT_PREFIX)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def cmd_lab_up(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.lab import net

    lab = lab_plan(args)
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
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.lab import net

    lab = lab_plan(args)
    need_root("tickwire lab down")
    return 0, net.down(lab.prefix)


def render_lab_down(report: Report) -> None:
    for p in report["stopped_processes"]:
        console.print(f"  stopped {p['name']} (pid {p['pid']}) in {p['namespace']}"
                      + (" [yellow](killed)[/]" if p["killed"] else ""))
    ns = report["removed_namespaces"]
    console.print(f"lab [bold]{report['prefix']}[/] is down; removed {', '.join(ns) if ns else 'nothing (was down)'}")


def cmd_lab_status(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.lab import net

    lab = lab_plan(args)
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
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.lab.impair import Impairment

    try:
        return Impairment(loss=args.loss, delay=args.delay, jitter=args.jitter, reorder=args.reorder,
                          duplicate=args.duplicate, seed=args.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def cmd_lab_impair(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.lab import impair

    lab = lab_plan(args)
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
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.lab import impair

    lab = lab_plan(args)
    _link(lab, args.link)
    need_root("tickwire lab clear")
    return 0, {"link": args.link, "cleared": impair.clear(lab, args.link, args.direction or "both")}


def render_lab_clear(report: Report) -> None:
    if not report["cleared"]:
        console.print(f"{report['link']}: no impairment to clear")
    for c in report["cleared"]:
        console.print(f"cleared {c['link']} ({c['direction']}); relay counters: {c['final_stats']}")


COMMANDS: tuple[Command, ...] = (
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
)
