"""``tickwire feed ...`` and ``tickwire book``: the C feed worker on live lines or a capture, its
counters and its kill switch, and a file replayed through the C books."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

from rich.live import Live

from appliance.commands.kit import NETNS, Command, Report, UsageError, arg, console, need_root
from appliance.service import RUN_CAPABILITIES
from appliance.views import books_tables, event_text, feed_stats_view
from common import lockdown, paths


def feed_call(fn, *a, **kw):
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.feed import FeedError
    from dpdk.worker import DpdkError
    from xdp.filter import BpfError

    try:
        return fn(*a, **kw)
    except (FeedError, DpdkError, BpfError) as exc:
        raise UsageError(str(exc)) from exc


def cmd_feed_run(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feed

    return run_worker(lambda: feed.from_flags(args), args.json, args.quiet_events)


def run_worker(settings: Callable[[], Any], quiet: bool, quiet_events: bool) -> tuple[int, Report]:
    """feed run and run: the worker with the settings made (from the YAML, or feed run's options), its events
    printed as they come unless quiet; exit 1 when the books ended stale."""
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feed

    need_root("tickwire feed run", RUN_CAPABILITIES)
    say = (lambda m: None) if quiet else (lambda m: console.print(f"[dim]{m}[/]"))
    # umask 0027, no core file, the runtime folders 0750 (common/lockdown.py; the rest once the ports are up)
    for narrowed in lockdown.close_up([paths.RUN_DIR, paths.RUN_DIR / "feed", paths.RUN_DIR / "ptp"]):
        print(f"tickwire: {narrowed}", file=sys.stderr)  # said even with --json, whose stdout is the report
    on_event = None if quiet or quiet_events else (lambda e: console.print(f"  event: {event_text(e)}"))
    report = feed_call(lambda: feed.run(settings(), say, on_event))
    st = report["stats"]
    code = 1 if st["feed"]["stale"] or st["feed"]["unrecoverable"] else 0
    return code, report


def render_feed_stats(r: Report) -> None:
    console.print(feed_stats_view(r))


def render_books(books: list[dict[str, Any]]) -> None:
    for t in books_tables(books):
        console.print(t)


def render_feed_run(r: Report) -> None:
    render_feed_stats({**r["stats"], "name": r["name"], "info": {}, "recent_events": []})
    console.print(f"stopped by: {r['stopped_by']}; events: "
                  + (", ".join(f"{k} {v}" for k, v in sorted(r["events"].items())) or "none"))
    render_books(r["books"])


def cmd_feed_stats(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feed

    if args.watch and not args.json:
        with Live(console=console, auto_refresh=False) as live:
            try:
                while True:
                    live.update(feed_stats_view(feed_call(feed.stats, args.name)), refresh=True)
                    time.sleep(args.watch)
            except KeyboardInterrupt:
                pass
        return 0, None
    if args.watch:  # --json --watch: one JSON document per line
        try:
            while True:
                print(json.dumps(feed_call(feed.stats, args.name)), flush=True)
                time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0, None
    return 0, feed_call(feed.stats, args.name, args.events)


def cmd_feed_kill(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feed

    need_root("tickwire feed kill")
    return 0, feed_call(feed.kill, args.name, args.release, 2.0, "global", None, "tickwire feed kill")


def render_feed_kill(r: Report) -> None:
    what = "thrown: no new orders, open orders cancelled" if r["kill"] else "released: quoting resumes"
    console.print(f"kill switch of {r['name']} {what}; the worker acted {r['acted_after_us']:,} µs after the request "
                  f"({r['orders_sent']:,} orders and {r['cancels_sent']:,} cancels sent so far)")


def cmd_book(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance import feed
    from appliance.decode import file_kind

    if not pathlib.Path(args.file).is_file():
        raise UsageError(f"{args.file}: no such file")
    if file_kind(pathlib.Path(args.file)) != "binaryfile":
        need_root("tickwire book on a capture (DPDK's pcap port)")
        out = feed_call(feed.book_capture, args.file, args.top, args.max_orders, args.levels, args.retrans_port)
    else:
        out = feed_call(feed.book_file, args.file, args.top, args.max_orders, args.levels)
    return 0, out


def render_book(r: Report) -> None:
    b = r["book"]
    console.print(f"{r['file']}: {r['messages']:,} messages through the C books ({r['mode']}); "
                  f"{b['applied']:,} book messages applied, {r['live_orders']:,} orders open, "
                  f"last system event {r['system_event'] or 'none'}"
                  + (f"; refused: {', '.join(f'{k} {v:,}' for k, v in b['errors'].items())}" if b["errors"] else ""))
    render_books(r["books"])


COMMANDS: tuple[Command, ...] = (
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
                arg("--source", action="append", metavar="LINE=ADDR:PORT", help="a line's publisher (the "
                    "exchange's address and UDP port): datagrams to the line's group from anyone else are dropped "
                    "(XDP) and refused (the worker), and counted (default: any source; --prefix: the lab's)"),
                arg("--session", metavar="SESSION", help="the MoldUDP64 session to take (10 characters at most); "
                    "another session's datagrams are refused and counted (default: the first seen)"),
                arg("--give-up", type=float, default=5.0, metavar="SECONDS",
                    help="skip a gap still open after this long; the books stay stale (default 5; 0: never). A jump "
                    "only one line shows (neither the other line nor the retransmission server) is dropped "
                    "instead: the expected sequence stays"),
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
)
