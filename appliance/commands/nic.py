"""``tickwire nic ...``: a NIC's queues, rings, coalescing, offloads, timestamping, NUMA node and IRQs
(the work is tuning/nic.py's)."""

from __future__ import annotations

import argparse

from appliance.commands.kit import IFACE, NETNS, Command, Report, UsageError, arg, console, need_root


def _nic(fn, *a, **kw):
    # lazy: the library loads with its verb, not at every tickwire start
    from tuning import nic

    need_root("tickwire nic")
    try:
        return fn(*a, **kw)
    except nic.NicError as exc:
        raise UsageError(str(exc)) from exc


def cmd_nic_show(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
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
    # lazy: the library loads with its verb, not at every tickwire start
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


COMMANDS: tuple[Command, ...] = (
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
)
