"""``tickwire decode`` and ``tickwire exchange ...``: the exchange's files read back, a trading day
written as one, and the live exchange in the lab."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys

from rich.console import Console
from rich.table import Table

from appliance.commands.kit import PREFIX, Command, Report, UsageError, arg, console, need_root
from appliance.commands.lab import lab_plan
from common import netns


def cmd_decode(args: argparse.Namespace) -> tuple[int, Report | None]:
    # lazy: the library loads with its verb, not at every tickwire start
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
    # lazy: the library loads with its verb, not at every tickwire start
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
    # lazy: the library loads with its verb, not at every tickwire start
    from appliance.lab.exchange import config as xconfig

    try:
        cfg = xconfig.load(args.config)
    except xconfig.ConfigError as exc:
        raise UsageError(str(exc)) from exc
    updates = {k: v for k, v in (("duration", args.duration), ("record", args.record)) if v is not None}
    if updates:
        cfg = cfg.model_copy(update=updates)
    lab = lab_plan(args)
    namespace = lab.ns("exch")
    if not _inside(namespace):
        need_root("tickwire exchange run")
        if not netns.exists(namespace):
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
    # lazy: the library loads with its verb, not at every tickwire start
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
        return os.stat("/proc/self/ns/net").st_ino == os.stat(netns.netns_path(namespace)).st_ino
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


COMMANDS: tuple[Command, ...] = (
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
)
