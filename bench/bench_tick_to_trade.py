"""Tick to trade in the lab: the market maker fed three ways in the same run.

    af_xdp   XDP filter -> AF_XDP -> the C worker (DPDK's af_xdp ports): the appliance
    socket   kernel UDP sockets read by the same C worker with recvmmsg
    asyncio  kernel UDP sockets read by a Python asyncio loop, which hands each
             datagram to the same C path (books, strategy, risk, OUCH send)

Everything after the read is the same C code, the same strategy parameters and
the same risk limits; the exchange simulator sends the same kind of day. For
each input, every order a packet triggered carries its stage timestamps (the
worker's order events): from the packet's arrival stamp (the XDP program's, or
the kernel's SO_TIMESTAMPNS receive stamp for sockets) to the return of the
send() that carried the order. Beside that, the wire-to-wire figure is measured
outside the appliance: tcpdump on the exchange's side of the lab links, from the
triggering feed packet leaving the exchange (its line and MoldUDP64 sequence
number are in the order event) to the order's OUCH Enter Order arriving back.

Inputs alternate for --rounds; the samples of all rounds are pooled. Ratios are
the Python asyncio input's figure over each input's (higher is better). Idle
CPUs are held polling (PM QoS 0, --cpu-latency-us) for all three alike: on this
VM an idle vCPU halts, and waking it costs a hypervisor exit. Needs root.

    sudo .venv/bin/python bench/bench_tick_to_trade.py [--seconds 20] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import struct
import subprocess
import sys
import tempfile
import time

import yaml

from appliance.feed import FeedError, wait_started
from appliance.lab import topology
from appliance.protocols import soupbintcp
from appliance.protocols.capture import read_frames
from dpdk.worker import STATE_DIR, remove_state

TICKWIRE = str(pathlib.Path(sys.executable).parent / "tickwire")
INPUTS = ("af_xdp", "socket", "asyncio")
OE_PORT = 15000

# examples/trading.yaml's market maker at half a cent either side of the micro-price, no throttle: as the
# sizes at the touch shift, a quote moves a cent, so packets, not the timer, trigger most orders
PARAMS = {"half_spread": 0.005, "quote_size": 100, "skew": 0.0001, "min_move": 0.01, "refresh": "0s",
          "max_position": 1000}
RISK = {"state": "active", "max_order_qty": 500, "max_order_notional": 100_000, "max_position": 2000,
        "max_gross": 5000, "collar_bps": 100, "max_open_orders": 20, "order_rate": 5000, "order_burst": 100,
        "message_rate": 10000, "message_burst": 200}
TRADING = pathlib.Path(__file__).resolve().parents[1] / "examples" / "trading.yaml"


def tw(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([TICKWIRE, *args], capture_output=True, text=True, timeout=timeout)


def pct(values: list[int], p: float) -> int | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100.0 * len(s)))]


def summary(values: list[int]) -> dict:
    return {"n": len(values), "p50": pct(values, 50), "p99": pct(values, 99), "p99.9": pct(values, 99.9),
            "max": max(values) if values else None}


class Capture:
    """tcpdump on the exchange's ends of the app's feed and order-entry links."""

    def __init__(self, lab: topology.Lab, folder: pathlib.Path):
        self.files = {}
        self.procs = []
        for link in ("feed-a-app", "feed-b-app", "order-app"):
            ifname = lab.link(link).down.ifname
            path = folder / f"{link}.pcap"
            flt = f"tcp port {OE_PORT}" if link == "order-app" else "udp"
            direction = "in" if link == "order-app" else "out"  # orders come in, the feed goes out
            self.procs.append(subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{lab.ns('exch')}", "tcpdump", "-Z", "root", "-i", ifname, "-n",
                 "-w", str(path), "--time-stamp-precision=nano", "-B", "32768", "-s", "256", "-Q", direction, flt],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
            self.files[link] = path
        deadline = time.monotonic() + 10
        while not all(p.exists() for p in self.files.values()):  # tcpdump writes the header once listening
            if time.monotonic() > deadline:
                self.stop()
                sys.exit("tcpdump did not start")
            time.sleep(0.05)
        time.sleep(0.3)

    def stop(self) -> list[str]:
        notes = []
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                _, err = p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
            notes += [line for line in (err or "").splitlines() if "dropped by kernel" in line]
        return notes

    def feed_departures(self) -> dict[tuple[str, int], int]:
        """(line, first sequence number) -> when the packet left the exchange (ns, first copy)."""
        out: dict[tuple[str, int], int] = {}
        for line, link in (("A", "feed-a-app"), ("B", "feed-b-app")):
            for f in read_frames(self.files[link]):
                if f.proto == "udp" and len(f.payload) >= 20:
                    out.setdefault((line, struct.unpack_from(">Q", f.payload, 10)[0]), f.ts_ns)
        return out

    def order_arrivals(self) -> dict[int, int]:
        """UserRefNum -> when the segment completing its Enter Order reached the exchange (ns)."""
        out: dict[int, int] = {}
        for f, pkt in soupbintcp.capture_packets(self.files["order-app"]):
            if f.dport == OE_PORT and len(pkt) >= 6 and pkt[:2] == b"UO":
                out.setdefault(struct.unpack_from(">I", pkt, 2)[0], f.ts_ns)
        return out


def one(lab: topology.Lab, inp: str, args, folder: pathlib.Path) -> dict:
    name = lab.prefix
    trade = folder / "trading.yaml"
    cfg = yaml.safe_load(TRADING.read_text())  # an appliance YAML: --trade takes its venue, strategy and risk
    cfg["venue"].update(address=lab.network("order").address("exch"), port=OE_PORT)
    cfg["strategies"][0]["params"] = PARAMS
    cfg["risk"]["global"] = RISK
    trade.write_text(yaml.safe_dump(cfg))
    exchange = folder / "exchange.yaml"
    exchange.write_text(yaml.safe_dump({"duration": args.seconds, "rate": args.rate, "symbols": 1,
                                        "record": str(folder / f"record-{inp}")}))
    cmd = [TICKWIRE, "feed", "run", "--prefix", lab.prefix, "--name", name, "--input", inp, "--until-end",
           "--duration", str(args.seconds + 60), "--top", "0", "--json", "--quiet-events", "--trade", str(trade)]
    if args.cpu_latency_us >= 0:
        cmd += ["--cpu-latency-us", str(args.cpu_latency_us)]
    worker = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "TW_OUCH_PASSWORD": "lab-secret"})  # the lab venue's
    try:
        try:
            wait_started(name, worker, timeout=60)
        except FeedError as exc:
            sys.exit(f"the {inp} worker: {exc}")
        cap = Capture(lab, folder) if args.capture else None
        ex = tw("exchange", "run", "--prefix", lab.prefix, "--config", str(exchange), "--json",
                timeout=args.seconds + 120)
        if ex.returncode:
            sys.exit(f"the exchange failed: {ex.stderr[-2000:]}")
        out, err = worker.communicate(timeout=120)
        if worker.returncode:
            sys.exit(f"the {inp} worker failed: {err[-2000:]}")
        drops = cap.stop() if cap else []
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.communicate(timeout=30)
    report = json.loads(out)
    events = [json.loads(x) for x in (STATE_DIR / f"{name}.events.jsonl").read_text().splitlines()]
    sent = [e for e in events if e["event"] == "order" and e["type"] == "O" and "tick_to_trade_ns" in e]
    res = {"input": inp, "orders_sent": report["stats"]["orders_sent"], "triggered": sent,
           "histogram": report["stats"]["latency_ns"]["tick_to_trade"], "wire_to_wire": [], "capture_drops": drops}
    if cap:
        left = cap.feed_departures()
        arrived = cap.order_arrivals()
        for e in sent:
            t0, t1 = left.get((e["line"], e["seq"])), arrived.get(e["user_ref"])
            if t0 is not None and t1 is not None:
                res["wire_to_wire"].append(t1 - t0)
        res["unmatched"] = len(sent) - len(res["wire_to_wire"])
    remove_state(name)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=20, help="exchange day length per input and round (default 20)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=int, default=8000, help="exchange ITCH messages per second (default 8000)")
    ap.add_argument("--cpu-latency-us", type=int, default=0,
                    help="PM QoS held during each run (default 0: idle CPUs poll; -1: not held)")
    ap.add_argument("--no-capture", dest="capture", action="store_false", help="skip the tcpdump wire-to-wire figure")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_tick_to_trade needs root (the lab, XDP, DPDK, tcpdump)")
    lab = topology.plan(f"tt{os.getpid() % 100000}")
    res = tw("lab", "up", "--prefix", lab.prefix)
    if res.returncode:
        sys.exit(f"lab up failed: {res.stderr}")
    pooled: dict[str, dict] = {i: {"t2t": [], "decision": [], "w2w": [], "stages": [], "orders": 0, "unmatched": 0,
                                   "drops": []} for i in INPUTS}
    try:
        with tempfile.TemporaryDirectory(prefix="tw-t2t-") as tmp:
            for r in range(args.rounds):
                for inp in INPUTS:
                    folder = pathlib.Path(tmp) / f"{inp}-{r}"
                    folder.mkdir()
                    print(f"round {r + 1}/{args.rounds}: {inp} ...", file=sys.stderr, flush=True)
                    got = one(lab, inp, args, folder)
                    p = pooled[inp]
                    p["t2t"] += [e["tick_to_trade_ns"] for e in got["triggered"]]
                    p["decision"] += [e["tick_to_trade_ns"] - e["stages_ns"]["send"] for e in got["triggered"]]
                    p["stages"] += [e["stages_ns"] for e in got["triggered"]]
                    p["w2w"] += got["wire_to_wire"]
                    p["orders"] += got["orders_sent"]
                    p["unmatched"] += got.get("unmatched", 0)
                    p["drops"] += got["capture_drops"]
    finally:
        tw("lab", "down", "--prefix", lab.prefix)
    out: dict = {"seconds": args.seconds, "rounds": args.rounds, "rate": args.rate,
                 "cpu_latency_us": args.cpu_latency_us, "inputs": {}}
    base = pooled["asyncio"]
    for inp in INPUTS:
        p = pooled[inp]
        stages = {k: pct([s[k] for s in p["stages"]], 50) for k in (p["stages"][0] if p["stages"] else {})}
        t2t, w2w, dec = summary(p["t2t"]), summary(p["w2w"]), summary(p["decision"])
        row = {"orders_sent": p["orders"], "tick_to_trade_ns": t2t, "to_send_call_ns": dec, "wire_to_wire_ns": w2w,
               "stage_p50_ns": stages, "unmatched_in_capture": p["unmatched"], "capture_drops": p["drops"]}
        for what, mine, theirs in (("tick_to_trade", t2t, summary(base["t2t"])),
                                   ("to_send_call", dec, summary(base["decision"])),
                                   ("wire_to_wire", w2w, summary(base["w2w"]))):
            for q in ("p50", "p99"):
                if mine[q] and theirs[q]:
                    row[f"{what}_{q}_vs_asyncio"] = round(theirs[q] / mine[q], 1)
        out["inputs"][inp] = row
    if args.json:
        print(json.dumps(out, indent=1))
        return

    def us(v):
        return f"{v / 1000:8.1f}" if v is not None else "       -"

    print(f"tick to trade, market maker in the lab: {args.rounds} rounds x {args.seconds} s at {args.rate:,} msg/s"
          f" per input; PM QoS {args.cpu_latency_us} us")
    print(f"{'input':8} {'what':27} {'n':>6} {'p50 us':>8} {'p99 us':>8} {'p99.9 us':>8} {'max us':>8}"
          f"  {'x asyncio p50':>13} {'p99':>6}")
    for inp, row in out["inputs"].items():
        for what, key in (("arrival stamp -> send() ret", "tick_to_trade"),
                          ("arrival -> send() called", "to_send_call"), ("wire to wire (tcpdump)", "wire_to_wire")):
            s = row[f"{key}_ns"]
            print(f"{inp:8} {what:27} {s['n']:6} {us(s['p50'])} {us(s['p99'])} {us(s['p99.9'])} {us(s['max'])}"
                  f"  {row.get(f'{key}_p50_vs_asyncio', '-'):>13} {row.get(f'{key}_p99_vs_asyncio', '-'):>6}")
        print(f"{'':8} stage medians (ns): " + ", ".join(f"{k} {v}" for k, v in row["stage_p50_ns"].items())
              + f"; orders sent {row['orders_sent']:,}; not found in the capture {row['unmatched_in_capture']}"
              + (f"; tcpdump: {'; '.join(row['capture_drops'])}" if any(
                  not d.startswith("0 ") for d in row["capture_drops"]) else ""))


if __name__ == "__main__":
    main()
