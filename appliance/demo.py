"""``tickwire demo``: the lab carrying a market-data feed, end to end.

1. The lab comes up (a leftover demo lab is removed first).
2. Round "clean": the exchange namespace publishes the same MoldUDP64 stream of
   ITCH messages on line A and line B (the genuine NASDAQ sample from
   ../shared/data when present, looped; synthetic system events otherwise); app
   and standby each join both lines. A live table shows packets, messages,
   sequence numbers, gaps and duplicates arriving at each of the four receivers.
3. Round "line A impaired": the same with loss on feed-a-app only, which shows
   why a feed has two lines: app's line A has gaps, its line B and standby do not.
4. Round "order books": the C feed worker runs in app (XDP filter -> AF_XDP ->
   DPDK -> books), the live exchange trades for --books-seconds with both of
   app's lines losing --books-loss percent, the worker fills the holes from the
   exchange's retransmission server; a live view shows its counters and
   latency, then its books are checked against the exchange's own.
5. Round "trading": the appliance as it runs on a box, `tickwire run` from
   examples/market_maker.yaml (in the lab's app namespace, one worker with a
   market maker quoting a ladder on each of TAAA, TAAB and TAAC), against the
   live exchange for --trade-seconds, with a live status view, on a watched
   clock (the lab's PTP first: a grandmaster in exch, app's slave following it
   free-running); then SIGTERM,
   which cancels every open order before it exits. The report (feed messages
   and gaps, orders, fills, positions and P&L per instrument, risk denials,
   tick-to-trade percentiles, XDP counters, the market data kept) is checked
   against the exchange's own records, instrument by instrument.
6. The lab is torn down (unless --keep).

Exit 0 when round one arrived complete everywhere, round two lost only where
the impairment was, the worker's books equal the exchange's, and the exchange
saw exactly the orders and fills the appliance reports.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from appliance import feed, feedfilter
from appliance.lab import impair, net, topology
from appliance.lab import ptp as lab_ptp
from appliance.lab.topology import APP, EXCH, STANDBY
from appliance.oms import Oms
from appliance.views import books_tables, feed_stats_view, status_view
from common import paths
from dpdk.worker import remove_state

SESSION = "TWDEMO0001"
RECEIVERS = ((APP, "feed-a"), (APP, "feed-b"), (STANDBY, "feed-a"), (STANDBY, "feed-b"))


def _traffic(verb: str, net_: topology.Network, ifaddr: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "appliance.lab.traffic", verb, "--group", net_.group, "--port",
            str(net_.group_port), "--ifaddr", ifaddr, *extra]


def feed_round(lab: topology.Lab, args: argparse.Namespace, console: Console | None, title: str) -> dict[str, Any]:
    source = paths.sample_itch()
    sinks: dict[tuple[str, str], subprocess.Popen] = {}
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        for role, netname in RECEIVERS:
            n = lab.network(netname)
            sinks[(role, netname)] = net.run_in(
                lab.ns(role), _traffic("sink", n, n.address(role), "--idle", "1.5", "--timeout", "120"),
                stdout=subprocess.PIPE, text=True)
        for key, proc in sinks.items():
            line = proc.stdout.readline()
            if not line or not json.loads(line).get("ready"):
                raise net.LabError(f"receiver {key} did not start")
        readers = [threading.Thread(target=_follow, args=(proc, key, latest), daemon=True)
                   for key, proc in sinks.items()]
        for r in readers:
            r.start()
        senders = {}
        for netname in ("feed-a", "feed-b"):
            n = lab.network(netname)
            extra = ["--messages", str(args.messages), "--rate", str(args.rate), "--session", SESSION]
            if source:
                extra += ["--source", str(source)]
            senders[netname] = net.run_in(lab.ns(EXCH), _traffic("send", n, n.address(EXCH), *extra),
                                          stdout=subprocess.PIPE, text=True)
        live = Live(console=console, auto_refresh=False) if console else None
        if live:
            live.start()
        try:
            while any(r.is_alive() for r in readers):
                if live:
                    live.update(_table(title, latest), refresh=True)
                time.sleep(0.2)
            if live:
                live.update(_table(title, latest), refresh=True)
        finally:
            if live:
                live.stop()
        sent = {}
        for netname, proc in senders.items():
            out, _ = proc.communicate(timeout=60)
            if proc.returncode != 0 or not out.strip():
                raise net.LabError(f"the sender on {netname} failed (exit {proc.returncode}); its error is above")
            sent[netname] = json.loads(out.strip().splitlines()[-1])
        if console:
            console.print()
            for netname, s in sent.items():
                console.print(f"  exch sent {s['packets']:,} packets ({s['messages']:,} messages) on {netname} "
                              f"to {s['group']}:{s['port']} at {s['pps']:,} packets/s")
    finally:
        for proc in sinks.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    return {
        "title": title,
        "source": str(source) if source else "synthetic system events",
        "sent": sent,
        "received": {f"{role}/{netname}": latest.get((role, netname), {}) for role, netname in RECEIVERS},
    }


def _follow(proc: subprocess.Popen, key: tuple[str, str], latest: dict) -> None:
    for line in proc.stdout:
        rec = json.loads(line)
        latest[key] = rec
        if rec.get("final"):
            return


def _table(title: str, latest: dict) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("receiver", no_wrap=True)
    for col in ("packets", "messages", "sequence", "gaps (msgs)", "dups", "msgs/s"):
        t.add_column(col, justify="right", no_wrap=True)
    for role, netname in RECEIVERS:
        r = latest.get((role, netname), {})
        span = (r.get("last_ns", 0) - r.get("first_ns", 0)) / 1e9
        rate = f"{r['messages'] / span:,.0f}" if r.get("messages") and span > 0 else ""
        seq = f"{r['first_seq']}..{r['next_seq'] - 1}" if r.get("mold_packets") else ""
        gaps = f"{r.get('gaps', 0)} ({r.get('gap_messages', 0)})"
        if r.get("gaps"):
            gaps = f"[yellow]{gaps}[/]"
        t.add_row(f"{role}/{netname}", f"{r.get('packets', 0):,}", f"{r.get('messages', 0):,}", seq, gaps,
                  str(r.get("duplicates", 0)), rate)
    return t


def books_round(lab: topology.Lab, args: argparse.Namespace, console: Console | None) -> dict[str, Any]:
    """The feed worker in app against the live exchange, both of app's lines lossy."""
    cli = [sys.executable, "-m", "appliance.cli"]
    name = f"{lab.prefix}-demo"
    lossy = ("feed-a-app", "feed-b-app") if args.books_loss else ()
    for seed, link in enumerate(lossy, start=11):
        impair.apply(lab, link, impair.Impairment(loss=args.books_loss, seed=seed))
    worker = subprocess.Popen([*cli, "feed", "run", "--prefix", lab.prefix, "--name", name, "--until-end",
                               "--duration", str(args.books_seconds + 30), "--top", "0", "--max-locate", "64",
                               "--json", "--quiet-events"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    exchange = None
    ex_cfg: str | None = None
    try:
        try:
            feed.wait_started(name, worker)
        except feed.FeedError as exc:
            raise net.LabError(str(exc)) from exc
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump({"duration": args.books_seconds, "rate": 3000, "symbols": 4}, f)
        ex_cfg = f.name
        exchange = subprocess.Popen([*cli, "exchange", "run", "--prefix", lab.prefix, "--config", f.name, "--json"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if console:
            with Live(console=console, auto_refresh=False) as live:
                while worker.poll() is None:
                    live.update(feed_stats_view(feed.stats(name, events=5)), refresh=True)
                    time.sleep(0.25)
            console.print()
        ex_out, ex_err = exchange.communicate(timeout=args.books_seconds + 60)
        w_out, w_err = worker.communicate(timeout=60)
    finally:
        for proc in (worker, exchange):
            if proc and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        for link in lossy:
            impair.clear(lab, link)
        if not args.keep:  # the worker's statistics and events, unless the lab stays for a look
            remove_state(name)
        if ex_cfg:
            pathlib.Path(ex_cfg).unlink(missing_ok=True)
    if exchange.returncode or not w_out:
        raise net.LabError(f"round 3 failed: exchange {ex_err[-1000:]} worker {w_err[-1000:]}")
    ex, wr = json.loads(ex_out), json.loads(w_out)
    got = {b["symbol"]: b for b in wr["books"]}
    same = all(sym in got and got[sym]["bids"] == b["bids"] and got[sym]["asks"] == b["asks"]
               for sym, b in ex["books"].items())
    f = wr["stats"]["feed"]
    if console:
        for t in books_tables([{**b, "bids": b["bids"][:3], "asks": b["asks"][:3]} for b in wr["books"]]):
            console.print(t)
        console.print(f"worker: {f['applied']:,} messages applied (the exchange sent {ex['feed']['messages']:,}); "
                      f"{f['gaps']} gaps, {f['recovered']} recovered, {wr['stats']['retrans_requests']} "
                      f"retransmission requests; books {'equal' if same else '[red]DIFFERENT from[/]'} "
                      f"the exchange's")
    return {"worker": {k: wr["stats"][k] for k in ("feed", "retrans_requests", "retrans_answers", "latency_ns")},
            "exchange_messages": ex["feed"]["messages"], "instruments": len(ex["books"]), "books_equal": same}


def trading_round(lab: topology.Lab, args: argparse.Namespace, console: Console | None) -> dict[str, Any]:
    """`tickwire run` on the example config (a market maker on each of TAAA, TAAB and TAAC,
    in one worker) against the live exchange; its report beside the exchange's records."""



    cli = [sys.executable, "-m", "appliance.cli"]
    name = f"{lab.prefix}-trade"
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="tw-demo-"))
    raw = yaml.safe_load((paths.ROOT / "examples" / "market_maker.yaml").read_text())
    raw["host"]["netns"] = lab.ns(APP)
    raw["journal"]["dir"] = str(tmp / "journal")
    raw["ptp"]["uds_address"] = str(lab_ptp.socket_path(lab.prefix, "app"))  # the appliance trades on a watched clock
    lab_ptp.up(lab, ("gm", "app"))
    lab_ptp.wait_state(lab.prefix, "app")
    for strategy in raw["strategies"]:
        strategy["params"].update(half_spread=0, levels=2, refresh="2ms")  # at the touch: fills
    config = tmp / "appliance.yaml"
    config.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "TW_OUCH_PASSWORD": "lab-secret"}
    worker = subprocess.Popen([*cli, "run", str(config), "--name", name, "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    exchange = None
    xdp: dict[str, Any] = {}
    try:
        try:
            feed.wait_started(name, worker)
        except feed.FeedError as exc:
            raise net.LabError(str(exc)) from exc
        ex_cfg = tmp / "exchange.yaml"
        ex_cfg.write_text(yaml.safe_dump({"duration": args.trade_seconds + 30, "rate": 3000, "symbols": 4,
                                          "record": str(tmp / "exchange")}))
        exchange = subprocess.Popen([*cli, "exchange", "run", "--prefix", lab.prefix, "--config", str(ex_cfg),
                                     "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        end = time.monotonic() + args.trade_seconds
        if console:
            with Live(console=console, auto_refresh=False) as live:
                while time.monotonic() < end and worker.poll() is None:
                    try:
                        live.update(Group(status_view(feed.status(name)),
                                          f"[dim]{end - time.monotonic():.0f} s to go[/]"), refresh=True)
                    except (feed.FeedError, OSError, ValueError, KeyError):
                        pass
                    time.sleep(0.5)
            console.print()
        else:
            time.sleep(max(0.0, end - time.monotonic()))

        for iface in ("feed-a", "feed-b"):
            try:
                xdp[iface] = feedfilter.stats(iface, lab.ns(APP))
            except Exception as exc:  # noqa: BLE001 - the counters are a figure of the report, not its point
                xdp[iface] = {"error": str(exc)}
        worker.send_signal(signal.SIGTERM)  # cancels every open order, then exits
        w_out, w_err = worker.communicate(timeout=60)
        time.sleep(1.2)  # the exchange's status is written about every second
        exchange.send_signal(signal.SIGTERM)
        ex_out, ex_err = exchange.communicate(timeout=60)
    finally:
        for proc in (worker, exchange):
            if proc and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        if not args.keep:
            remove_state(name)
            lab_ptp.down(lab)
    try:
        if worker.returncode or not w_out:
            raise net.LabError(f"round 4: tickwire run failed: {w_err[-2000:]}")
        wr, ex = json.loads(w_out), json.loads(ex_out)
        log = [json.loads(x) for x in (tmp / "exchange" / "orders.jsonl").read_text().splitlines()]
        ours = _journal_by_symbol(tmp / "journal")
    finally:
        if not args.keep:  # else the config, the journal and the exchange's records stay for a look

            shutil.rmtree(tmp, ignore_errors=True)
    out = trading_report(wr, ex, log, ours, xdp)
    out["kept"] = str(tmp) if args.keep else None
    if console:
        _print_trading(console, out)
    return out


def _journal_by_symbol(directory: pathlib.Path) -> dict[str, dict[str, int]]:
    """What the journal says the appliance did, per instrument: orders sent, shares filled, position."""
    oms = Oms.from_journal(directory)
    out: dict[str, dict[str, int]] = {}
    for o in oms.orders.values():
        row = out.setdefault(o.symbol, {"orders_sent": 0, "filled": 0, "position": 0})
        row["orders_sent"] += 1
        row["filled"] += o.filled
    for sym, p in oms.positions.items():
        out.setdefault(sym, {"orders_sent": 0, "filled": 0, "position": 0})["position"] = p.shares
    return out


def trading_report(wr: dict[str, Any], ex: dict[str, Any], log: list[dict[str, Any]],
                   ours: dict[str, dict[str, int]], xdp: dict[str, Any]) -> dict[str, Any]:
    """The appliance's report (its run --json output and its journal) beside the exchange's
    own records (its status and its log of every OUCH message), per instrument and in all."""
    entered = {m["user_ref_num"]: m["symbol"].strip() for m in log if m.get("name") == "enter_order"}
    theirs: dict[str, dict[str, int]] = {}
    for sym in entered.values():
        theirs.setdefault(sym, {"orders_received": 0, "filled": 0})["orders_received"] += 1
    for m in log:
        if m.get("name") == "order_executed" and m.get("user_ref_num") in entered:
            theirs[entered[m["user_ref_num"]]]["filled"] += m["quantity"]
    account = ex["order_entry"]["accounts"].get("TWAPP1", {})
    st, tr, ctl = wr["stats"], wr["trading"], wr.get("control", {})
    rm = ctl.get("risk_manager") or {}
    views = rm.get("strategies") or {}
    instruments = {}
    for sym in sorted(set(ours) | set(theirs)):
        pnl = next((v.get("pnl") for v in views.values() if v.get("symbol") == sym), None)
        instruments[sym] = {**ours.get(sym, {"orders_sent": 0, "filled": 0, "position": 0}), "pnl": pnl,
                            "exchange": {**theirs.get(sym, {"orders_received": 0, "filled": 0}),
                                         "position": account.get("position", {}).get(sym, 0),
                                         "open_at_end": account.get("open_by_symbol", {}).get(sym, 0)}}
    lat = st["latency_ns"]["tick_to_trade"]
    rec = wr.get("recorder") or {}
    return {
        "strategies": {n: {k: s[k] for k in ("locate", "orders", "cancels", "executions", "position")}
                       for n, s in tr["strategies"].items()},
        "instruments": instruments,
        "orders_sent": st["orders_sent"], "cancels_sent": st["cancels_sent"], "executed": st["executed"],
        "pnl": rm.get("pnl"), "risk_denials": tr["risk"]["denied"],
        "tick_to_trade_us": {q: round(lat[q] / 1000, 1) for q in ("p50", "p99", "p99.9") if q in lat},
        "tick_to_trade_orders": lat.get("count", 0),
        "feed": {"messages": st["feed"]["applied"], "gaps": st["feed"]["gaps"],
                 "recovered": st["feed"]["recovered"], "packets": st["feed"]["packets"]},
        "xdp": {i: {k: v for k, v in x.items() if k in ("rules", "unmatched", "error")} for i, x in xdp.items()},
        "market_data": {"frames": rec.get("frames"), "dropped": rec.get("dropped"),
                        "files": [pathlib.Path(c["file"]).name for c in rec.get("captures", [])]},
        "exchange": {"orders_received": len(entered), "filled": sum(t["filled"] for t in theirs.values()),
                     "position": account.get("position", {}), "open_orders_at_end": account.get("open_orders")},
        "clock": {k: (wr.get("clock") or {}).get(k) for k in ("verdict", "failed", "degraded", "offset_ns", "gm",
                                                               "timestamping")},
        "oms": ctl.get("oms"), "stopped_by": wr.get("stopped_by"), "journal": wr.get("journal"),
    }


def _print_trading(console: Console, out: dict[str, Any]) -> None:
    t = Table(title="round 4: the appliance's orders beside the exchange's records", title_justify="left")
    for col in ("instrument", "orders sent / received", "shares filled (ours / theirs)", "position (ours / theirs)",
                "P&L", "open after SIGTERM"):
        t.add_column(col, justify="left" if col == "instrument" else "right")
    for sym, r in out["instruments"].items():
        e = r["exchange"]
        t.add_row(sym, f"{r['orders_sent']:,} / {e['orders_received']:,}", f"{r['filled']:,} / {e['filled']:,}",
                  f"{r['position']:,} / {e['position']:,}", f"{r['pnl']:,.2f}" if r["pnl"] is not None else "-",
                  f"{e['open_at_end']:,}")
    console.print(t)
    f, lat, md = out["feed"], out["tick_to_trade_us"], out["market_data"]
    redirected = {i: sum(r.get("redirected", 0) for r in x.get("rules", [])) for i, x in out["xdp"].items()}
    console.print(f"feed: {f['messages']:,} messages, {f['gaps']} gaps ({f['recovered']} recovered); XDP redirected "
                  + ", ".join(f"{k} {v:,}" for k, v in redirected.items())
                  + f"; {out['orders_sent']:,} orders, {out['cancels_sent']:,} cancels, {out['executed']:,} shares "
                  f"filled, P&L {out['pnl']}; risk denials {out['risk_denials'] or 'none'}; tick to trade "
                  f"p50/p99/p99.9 {lat.get('p50')}/{lat.get('p99')}/{lat.get('p99.9')} µs over "
                  f"{out['tick_to_trade_orders']:,} orders; market data kept: {', '.join(md['files']) or 'none'} "
                  f"({md['dropped'] or 0} frames dropped)")
    c = out["clock"]
    if c.get("verdict"):
        console.print(f"clock (PTP, the lab's grandmaster over the order network): {c['verdict']}"
                      + (f" ({', '.join(c['failed'] or c['degraded'])})" if c["failed"] or c["degraded"] else "")
                      + (f", offset {c['offset_ns']:,.0f} ns" if c.get("offset_ns") is not None else "")
                      + f", {c['timestamping']} timestamping")


def _complete(rec: dict[str, Any], messages: int) -> bool:
    return rec.get("messages") == messages and rec.get("gaps") == 0


def run(args: argparse.Namespace, console: Console | None) -> tuple[int, dict[str, Any]]:
    lab = topology.plan(args.prefix)
    say = console.print if console else (lambda *a, **k: None)
    report: dict[str, Any] = {"prefix": lab.prefix, "rounds": []}
    net.down(lab.prefix)  # a clean start, even after an interrupted demo
    try:
        up = net.up(lab)
        say(f"[bold]lab {lab.prefix} up[/]: {len(up['created'])} objects in {', '.join(lab.namespaces)}")
        sample = paths.sample_itch()
        say(f"feed: {args.messages:,} ITCH messages per line, "
            + (f"the genuine NASDAQ sample {sample.name} replayed in a loop" if sample
               else "synthetic system events (../shared/data is absent)"))
        report["rounds"].append(feed_round(lab, args, console, "round 1: lines A and B, clean"))
        if args.loss:
            imp = impair.Impairment(loss=args.loss, seed=7)
            impair.apply(lab, "feed-a-app", imp)
            say(f"impaired feed-a-app: {args.loss:g}% loss (exch -> app on line A only)")
            try:
                report["rounds"].append(
                    feed_round(lab, args, console, f"round 2: feed-a-app losing {args.loss:g}%"))
            finally:
                impair.clear(lab, "feed-a-app")
        if args.books_seconds:
            say(f"round 3: the C feed worker in {lab.ns(APP)} builds order books from the live exchange "
                f"({args.books_seconds:g} s), both of app's lines losing {args.books_loss:g}%")
            report["books"] = books_round(lab, args, console)
        if args.trade_seconds:
            say(f"round 4: tickwire run trades examples/market_maker.yaml (a market maker on each of TAAA, TAAB "
                f"and TAAC, one worker) against the live exchange ({args.trade_seconds:g} s), then SIGTERM")
            report["trading"] = trading_round(lab, args, console)
    finally:
        if not args.keep:
            net.down(lab.prefix)
            say(f"lab {lab.prefix} down")
    checks = []
    first = report["rounds"][0]["received"]
    checks.append(("round 1: every receiver got every message, no gaps",
                   all(_complete(r, args.messages) for r in first.values())))
    if args.loss and len(report["rounds"]) > 1:
        second = report["rounds"][1]["received"]
        checks.append(("round 2: app line A shows the loss as gaps", second[f"{APP}/feed-a"].get("gaps", 0) > 0))
        checks.append(("round 2: app line B and standby unaffected",
                       all(_complete(second[k], args.messages)
                           for k in (f"{APP}/feed-b", f"{STANDBY}/feed-a", f"{STANDBY}/feed-b"))))
    if args.books_seconds and "books" in report:
        b = report["books"]
        f = b["worker"]["feed"]
        checks.append(("round 3: the worker's books equal the exchange's, every gap recovered",
                       b["books_equal"] and f["applied"] == b["exchange_messages"] and not f["stale"]))
    if args.trade_seconds and "trading" in report:
        t = report["trading"]
        e = t["exchange"]
        per = t["instruments"]
        checks.append(("round 4: on every instrument the exchange received every order sent, its fills and "
                       "positions are the appliance's, nothing left open",
                       t["orders_sent"] == e["orders_received"] > 0 and t["executed"] == e["filled"]
                       and {"TAAA", "TAAB", "TAAC"} <= {s for s, r in per.items() if r["orders_sent"]}
                       and all(r["orders_sent"] == r["exchange"]["orders_received"]
                               and r["filled"] == r["exchange"]["filled"]
                               and r["position"] == r["exchange"]["position"] for r in per.values())
                       and e["open_orders_at_end"] == 0))
        checks.append(("round 4: the appliance traded on a watched clock, healthy but for software timestamping",
                       t["clock"]["verdict"] == "degraded" and t["clock"]["degraded"] == ["timestamping"]
                       and not t["clock"]["failed"]))
    report["checks"] = [{"check": c, "ok": ok} for c, ok in checks]
    for c, ok in checks:
        say(("[green]ok[/]   " if ok else "[red]FAIL[/] ") + c)
    return (0 if all(ok for _, ok in checks) else 1), report
