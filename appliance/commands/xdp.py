"""``tickwire xdp ...``: the XDP feed filter on an interface, its rules and counters (the work is
appliance/feedfilter.py's)."""

from __future__ import annotations

import argparse
import time

from rich.live import Live
from rich.table import Table

from appliance.commands.kit import IFACE, NETNS, Command, Report, UsageError, arg, console, need_root


def _xdp(fn, *a, **kw):
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feedfilter
    from appliance.lab.net import LabError
    from xdp.filter import BpfError

    need_root("tickwire xdp")
    try:
        return fn(*a, **kw)
    except (feedfilter.XdpError, BpfError, ValueError, LabError) as exc:
        raise UsageError(str(exc)) from exc


def cmd_xdp_load(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feedfilter

    return 0, _xdp(feedfilter.load, args.iface, args.netns, args.mode, args.hw_timestamps)


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
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feedfilter

    return 0, _xdp(feedfilter.unload, args.iface, args.netns)


def render_xdp_unload(r: Report) -> None:
    d = r["detached"]
    console.print(f"{r['iface']}: " + (f"detached {d['name']} (id {d['prog_id']})" if d else "nothing attached")
                  + ("; pinned maps removed" if r["unpinned"] else ""))


def cmd_xdp_status(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feedfilter

    return 0, _xdp(feedfilter.status, args.netns)


def render_xdp_status(r: Report) -> None:
    if not r["attached"]:
        console.print(f"no XDP program attached{' in ' + r['netns'] if r['netns'] else ''}")
    for a in r["attached"]:
        console.print(f"{a['iface']}: {a['name']} ({a['mode']}, id {a['prog_id']})")
    for p in r["pinned_filters"]:
        console.print(f"pinned filter maps: {p}")


def cmd_xdp_rules_add(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feedfilter

    return 0, _xdp(feedfilter.rules_add, args.iface, args.netns, args.group, args.port, args.action, args.feed,
                   args.line, args.source)


def cmd_xdp_rules_del(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feedfilter

    return 0, _xdp(feedfilter.rules_del, args.iface, args.netns, args.group, args.port)


def cmd_xdp_rules_list(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feedfilter

    return 0, _xdp(feedfilter.rules_list, args.iface, args.netns)


def render_rules(r: Report) -> None:
    rows = r if isinstance(r, list) else [r]
    t = Table("id", "group:port", "action", "feed", "line", "source")
    for x in rows:
        t.add_row(str(x["rule_id"]), f"{x['group']}:{x['port']}", x["action"], str(x["feed"]), x["line"],
                  x.get("source") or "any")
    console.print(t)


def cmd_xdp_stats(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feedfilter

    if args.watch and not args.json:
        last, last_t = None, time.monotonic()
        with Live(console=console, auto_refresh=False) as live:
            try:
                while True:
                    now = _xdp(feedfilter.stats, args.iface, args.netns)
                    t = time.monotonic()
                    live.update(xdp_stats_table(now, last, t - last_t), refresh=True)
                    last, last_t = now, t
                    time.sleep(args.watch)
            except KeyboardInterrupt:
                pass
        return 0, None
    return 0, _xdp(feedfilter.stats, args.iface, args.netns)


def xdp_stats_table(now: dict, last: dict | None, dt: float) -> Table:
    prev = {r["rule"]: r for r in (last or {}).get("rules", [])}
    t = Table(title=f"feed filter on {now['iface']}", title_justify="left")
    for col in ("rule", "source", "action", "feed", "line", "matched", "redirected", "passed", "dropped",
                "redirect failed", "wrong source", "packets/s"):
        t.add_column(col, justify="left" if col in ("rule", "source", "action", "feed", "line") else "right")
    for r in now["rules"]:
        p = prev.get(r["rule"])
        rate = f"{(r['matched'] - p['matched']) / dt:,.0f}" if p and dt > 0 else ""
        t.add_row(r["rule"], r.get("source") or "any", r["action"], str(r["feed"]), r["line"], f"{r['matched']:,}",
                  f"{r['redirected']:,}", f"{r['passed']:,}", f"{r['dropped']:,}", f"{r['redirect_failed']:,}",
                  f"{r['wrong_source']:,}", rate)
    u = now["unmatched"]
    t.caption = (f"all packets {u['seen']:,}; not feed {u['not_feed']:,}; fragments {u['fragments']:,}; "
                 f"malformed {u['malformed']:,}")
    return t


def render_xdp_stats(r: Report) -> None:
    console.print(xdp_stats_table(r, None, 0))


COMMANDS: tuple[Command, ...] = (
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
    Command(("xdp", "rules"), "the feed rules of a loaded filter: (group, port) -> redirect, pass or drop; a rule "
            "with a source drops packets from anyone else", None),
    Command(("xdp", "rules", "add"), "add or replace a rule (takes effect at once, no reload)", cmd_xdp_rules_add, (
        IFACE, NETNS,
        arg("--group", required=True, help="destination address, e.g. 239.198.1.1"),
        arg("--port", type=int, required=True, help="destination UDP port"),
        arg("--action", required=True, choices=("redirect", "pass", "drop")),
        arg("--feed", required=True, metavar="NAME", help="the feed's name (given a numeric id in the metadata)"),
        arg("--line", choices=("A", "B"), default="A", help="which line of the feed (default A)"),
        arg("--source", metavar="ADDR:PORT", help="the exchange's publisher: packets to the group from any other "
            "address or port are dropped and counted as wrong source (default: any source)"),
    ), render_rules, root=True),
    Command(("xdp", "rules", "del"), "delete a rule", cmd_xdp_rules_del, (
        IFACE, NETNS, arg("--group", required=True), arg("--port", type=int, required=True)), None, root=True),
    Command(("xdp", "rules", "list"), "the rules of a loaded filter", cmd_xdp_rules_list, (IFACE, NETNS),
            render_rules, root=True),
    Command(("xdp", "stats"), "per-rule counters (matched, redirected, passed, dropped, redirect failed, wrong "
            "source) and the unmatched ones", cmd_xdp_stats, (
                IFACE, NETNS, arg("--watch", type=float, metavar="SECONDS", default=0.0,
                                  help="a live table with per-rule packet rates, refreshed every SECONDS")),
            render_xdp_stats, root=True),
)
