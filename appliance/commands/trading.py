"""``tickwire run``, ``status``, ``top``, ``kill``, ``resume`` and ``reload``: a trading worker as a
service, watched and steered by its operator."""

from __future__ import annotations

import argparse
import contextlib
import json

from rich.live import Live

from appliance.commands.feed import feed_call, render_feed_run, run_worker
from appliance.commands.kit import Command, Report, UsageError, arg, console, need_root, repeat
from appliance.views import status_view


def cmd_run(args: argparse.Namespace) -> tuple[int, Report]:
    """feed run --config, with the service's defaults: the YAML makes the settings."""
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feed

    return run_worker(lambda: feed.from_config(args.file, args.strategy, name=args.name, duration=args.duration,
                                               top=3), getattr(args, "json", False), quiet_events=True)


def cmd_status(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feed

    r = feed_call(feed.status, args.name)
    return (0 if r["running"] else 1), r


def render_status(r: Report) -> None:
    console.print(status_view(r))


def cmd_top(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feed

    with contextlib.ExitStack() as stack:
        if args.json:  # one JSON document per line, per refresh
            show = lambda r: print(json.dumps(r, default=str), flush=True)  # noqa: E731
        else:
            live = stack.enter_context(Live(console=console, auto_refresh=False))
            show = lambda r: live.update(status_view(r), refresh=True)  # noqa: E731
        repeat(lambda: show(feed_call(feed.status, args.name)), args.interval, args.count)
    return 0, None


def cmd_reload(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feed

    need_root("tickwire reload")
    r = feed_call(feed.reload, args.name, args.timeout)
    return (0 if r["ok"] else 1), r


def render_reload(r: Report) -> None:
    if r["ok"]:
        changes = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in r["changed"].items()) or "nothing changed"
        console.print(f"worker {r['name']} reloaded {r['file']}: {changes}")
    else:
        console.print(f"worker {r['name']} [red]refused[/] the reload of {r['file']}; nothing changed:")
        for p in r["problems"]:
            console.print(f"  {p}", markup=False, highlight=False)


def _kill_level(args: argparse.Namespace) -> tuple[str, str | None]:
    if args.strategy and args.instrument:
        raise UsageError("give --strategy or --instrument, not both (neither: the whole worker)")
    if args.strategy:
        return "strategy", args.strategy
    if args.instrument:
        return "instrument", args.instrument
    return "global", None


def cmd_kill(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feed

    need_root("tickwire kill")
    level, target = _kill_level(args)
    return 0, feed_call(feed.kill, args.name, False, args.timeout, level, target, args.reason)


def cmd_resume(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feed

    need_root("tickwire resume")
    level, target = _kill_level(args)
    return 0, feed_call(feed.kill, args.name, True, args.timeout, level, target, args.reason)


def render_kill(r: Report) -> None:
    what = {"global": "the whole worker", "strategy": f"strategy {r['target']}",
            "instrument": f"instrument {r['target']} (locate {r['locate']})"}[r["level"]]
    # who: the user the kernel named to the worker; SUDO_USER only as a claim beside it
    by = r["who"] + (f", claiming to act for {r['claimed']}" if r.get("claimed") else "")
    if r["kill"]:
        console.print(f"killed {what} of {r['name']}: acted {r['acted_after_us']:,} µs after the request; "
                      f"{r['cancels']:,} open orders cancelled in one send {r['cancels_sent_after_us']:,} µs after it "
                      f"(by {by}: {r['reason']})")
    else:
        console.print(f"resumed {what} of {r['name']} after {r['acted_after_us']:,} µs (by {by}: {r['reason']})")


KILL_ARGS = (
    arg("--name", default="tw", help="the worker's name (default tw)"),
    arg("--strategy", metavar="NAME", help="only this strategy"),
    arg("--instrument", metavar="SYMBOL", help="only this instrument (a symbol from the config, or a stock locate)"),
    arg("--reason", required=True, metavar="TEXT", help="why: kept in the journal with who did it"),
    arg("--timeout", type=float, default=2.0, metavar="SECONDS", help="how long to wait for the worker to act"),
)


COMMANDS: tuple[Command, ...] = (
    Command(("run",), "the appliance as a foreground service, everything from its YAML: XDP, the DPDK worker, "
            "the order-entry session, every strategy, risk, the journal and hot reload (SIGHUP); SIGTERM, SIGINT, "
            "the watchdog's SIGABRT and an error each cancel every open order first (SIGTERM then flushes the "
            "journal and exits 0; a journal that cannot write ends the run, naming it); the worker throws its own "
            "kill switch when this loop falls silent for watchdog.deadman; tells systemd READY and pings its "
            "watchdog (Type=notify, WatchdogSec=)", cmd_run, (
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
            "orders and its open orders are cancelled at the venue, before the worker's next rx burst; the worker "
            "journals who (the kernel's uid, not SUDO_USER) and why", cmd_kill, KILL_ARGS, render_kill, root=True),
    Command(("resume",), "release a kill switch (the same level: whole worker, --strategy or --instrument); an "
            "explicit operator action, journaled with who and why", cmd_resume, KILL_ARGS, render_kill, root=True),
    Command(("reload",), "reload a running worker's strategy parameters and risk limits from its config (a "
            "command on its socket: no pid file; SIGHUP does the same): validated first, swapped whole into its "
            "tables, journaled; an invalid file or a changed structure changes nothing and says why (exit 1)",
            cmd_reload, (
                arg("--name", default="tw", help="the worker's name (default tw)"),
                arg("--timeout", type=float, default=5.0, metavar="SECONDS", help="how long to wait for its answer"),
            ), render_reload, root=True),
)
