"""The kill switch in the lab: from the trip to the last cancel on the wire, with
100 open orders.

The market maker stands a ladder of 50 quotes a side (100 open orders at the
exchange). `tickwire kill` trips the worker's switch; tcpdump on the exchange's
end of the order-entry link sees the Cancel Orders arrive and the exchange's
Canceled answers leave. Figures per trip: the cancels sent, trip to the last
cancel on the wire, trip to the last confirmation from the venue. The baseline,
in the same run: the same worker sending each cancel in a send() of its own
(`feed run --cancel-each`) instead of all of them in one. Rounds alternate. Needs
root.

    sudo .venv/bin/python bench/bench_kill_switch.py [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

from appliance.feed import FeedError, wait_started
from appliance.lab import topology
from appliance.protocols import soupbintcp
from dpdk.worker import remove_state

ROOT = pathlib.Path(__file__).resolve().parents[1]
TICKWIRE = str(pathlib.Path(sys.executable).parent / "tickwire")
OE_PORT = 15000
LEVELS = 50


def tw(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([TICKWIRE, *args], capture_output=True, text=True, timeout=timeout)


def config(lab: topology.Lab, folder: pathlib.Path) -> pathlib.Path:
    raw = yaml.safe_load((ROOT / "examples" / "market_maker.yaml").read_text())
    raw["ptp"]["stop_trading_on_failure"] = False  # the benchmark's lab runs no ptp4l
    raw["host"]["netns"] = lab.ns("app")
    raw["journal"]["dir"] = str(folder / "journal")
    raw["strategies"][0]["params"].update(half_spread=0.05, levels=LEVELS, quote_size=10, refresh="50ms",
                                          min_move=0.05, max_position=5000)
    raw["risk"] = {"global": {"state": "active", "max_order_qty": 500, "max_order_notional": 100000,
                              "max_position": 5000, "max_gross": 10000, "collar_bps": 1000, "max_open_orders": 300,
                              "order_rate": 5000, "order_burst": 300, "message_rate": 10000, "message_burst": 600}}
    path = folder / "appliance.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def wire(pcap: pathlib.Path) -> tuple[list[int], list[int]]:
    """Times (ns) of the Cancel Orders that reached the exchange, and of its Canceled answers."""
    cancels, confirms = [], []
    for f, pkt in soupbintcp.capture_packets(pcap):
        if f.dport == OE_PORT and pkt[:2] == b"UX":
            cancels.append(f.ts_ns)
        elif f.sport == OE_PORT and pkt[:2] == b"SC":
            confirms.append(f.ts_ns)
    return cancels, confirms


def trip(lab: topology.Lab, folder: pathlib.Path, cancel_each: bool) -> dict:
    name = lab.prefix
    cfg = config(lab, folder)
    env = {**os.environ, "TW_OUCH_PASSWORD": "lab-secret"}
    cmd = [TICKWIRE, "feed", "run", "--config", str(cfg), "--strategy", "mm-taaa", "--name", name, "--duration",
           "120", "--top", "0", "--json", "--quiet-events"] + (["--cancel-each"] if cancel_each else [])
    worker = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ex_cfg = folder / "exchange.yaml"
    ex_cfg.write_text(yaml.safe_dump({"duration": 120, "rate": 300, "symbols": 2, "record": str(folder / "rec")}))
    ex = None
    dump = None
    try:
        try:
            wait_started(name, worker, timeout=60)
        except FeedError as exc:
            sys.exit(str(exc))
        ex = subprocess.Popen([TICKWIRE, "exchange", "run", "--prefix", lab.prefix, "--config", str(ex_cfg)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        status = folder / "rec" / "status.json"

        def open_orders() -> int:
            try:
                return json.loads(status.read_text())["order_entry"]["accounts"]["TWAPP1"]["open_orders"]
            except (OSError, ValueError, KeyError):
                return 0

        deadline = time.monotonic() + 60
        while open_orders() < 2 * LEVELS - 4:
            if time.monotonic() > deadline:
                sys.exit(f"the ladder did not stand: {open_orders()} open orders")
            time.sleep(0.2)
        standing = open_orders()
        pcap = folder / "oe.pcap"
        dump = subprocess.Popen(["nsenter", f"--net=/run/netns/{lab.ns('exch')}", "tcpdump", "-Z", "root", "-i",
                                 lab.link("order-app").down.ifname, "-n", "-w", str(pcap),
                                 "--time-stamp-precision=nano", "-B", "16384", f"tcp port {OE_PORT}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not pcap.exists():
            time.sleep(0.05)
        time.sleep(0.5)
        k = tw("kill", "--name", name, "--reason", "bench", "--json")
        if k.returncode:
            sys.exit(f"kill failed: {k.stderr}")
        killed = json.loads(k.stdout)
        deadline = time.monotonic() + 30
        while open_orders():
            if time.monotonic() > deadline:
                sys.exit(f"{open_orders()} orders still open after the kill")
            time.sleep(0.1)
        time.sleep(0.3)
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=10)
        cancels, confirms = wire(pcap)
        t0 = killed["asked_realtime_ns"]
        after = [t for t in cancels if t >= t0]
        return {"cancel_each": cancel_each, "standing": standing, "cancels": killed["cancels"],
                "on_wire": len(after), "acted_us": killed["acted_after_us"],
                "last_cancel_on_wire_us": round((max(after) - t0) / 1000, 1) if after else None,
                "last_confirm_us": round((max(confirms) - t0) / 1000, 1) if confirms else None}
    finally:
        for p in (dump, ex, worker):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.communicate(timeout=30) if p is not dump else p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        remove_state(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_kill_switch needs root (the lab, XDP, DPDK, tcpdump)")
    lab = topology.plan(f"tk{os.getpid() % 100000}")
    res = tw("lab", "up", "--prefix", lab.prefix)
    if res.returncode:
        sys.exit(f"lab up failed: {res.stderr}")
    runs = []
    try:
        with tempfile.TemporaryDirectory(prefix="tw-kill-") as tmp:
            for r in range(args.rounds):
                for each in (False, True):
                    folder = pathlib.Path(tmp) / f"{r}-{int(each)}"
                    folder.mkdir()
                    print(f"round {r + 1}/{args.rounds}: {'one send per cancel' if each else 'one send'} ...",
                          file=sys.stderr, flush=True)
                    runs.append(trip(lab, folder, each))
    finally:
        tw("lab", "down", "--prefix", lab.prefix)

    def med(each: bool, key: str) -> float | None:
        vals = [r[key] for r in runs if r["cancel_each"] == each and r[key] is not None]
        return statistics.median(vals) if vals else None

    out = {"runs": runs, "one_send": {k: med(False, k) for k in ("cancels", "last_cancel_on_wire_us",
                                                                  "last_confirm_us")},
           "send_each": {k: med(True, k) for k in ("cancels", "last_cancel_on_wire_us", "last_confirm_us")}}
    a, b = out["one_send"]["last_cancel_on_wire_us"], out["send_each"]["last_cancel_on_wire_us"]
    out["ratio_last_cancel"] = round(b / a, 1) if a and b else None
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"kill switch, {2 * LEVELS} open orders, {args.rounds} rounds (median):")
    for label, key in (("all cancels in one send()", "one_send"), ("a send() per cancel (baseline)", "send_each")):
        m = out[key]
        print(f"  {label:32} cancels {m['cancels']}, trip -> last cancel on the wire {m['last_cancel_on_wire_us']} us,"
              f" -> last confirmation from the venue {m['last_confirm_us']} us")
    print(f"  ratio (baseline / one send) to the last cancel on the wire: {out['ratio_last_cancel']}x")
    for r in runs:
        print(f"    {'each' if r['cancel_each'] else 'one '}: {r}")


if __name__ == "__main__":
    main()
