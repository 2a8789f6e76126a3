"""How fast the exchange simulator feeds the lab, sustained: the target is
>= 100,000 ITCH messages/s for a minute without falling behind. Needs root.

Two ways of publishing are measured in one run, in a lab of their own:
* baseline: mode live (the matching engine and the flow in Python), asked for
  more than it can do for --live-seconds; its messages/s is its ceiling;
* mode blast: a day precomputed by `exchange gen` (rate x seconds messages),
  published at --rate messages/s by the C sender (sendmmsg), received by
  receivers on lines A and B in the app namespace.
Prints the receivers' counts and rates, the sender's lag behind its schedule,
and the ratio of blast to live.

    sudo .venv/bin/python bench/bench_exchange_feed.py [--rate 100000] [--seconds 60] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import secrets
import subprocess
import sys
import tempfile
import time

import yaml

from appliance.lab import net, topology
from appliance.lab.exchange import gen

TICKWIRE = str(pathlib.Path(sys.executable).parent / "tickwire")


def exchange(prefix: str, cfg: dict, tmp: pathlib.Path) -> dict:
    path = tmp / f"x{secrets.token_hex(2)}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = subprocess.run([TICKWIRE, "exchange", "run", "--prefix", prefix, "--config", str(path), "--json"],
                         capture_output=True, text=True, timeout=3600)
    if out.returncode:
        raise SystemExit(f"exchange run failed: {out.stderr}")
    return json.loads(out.stdout)


def sink(lab: topology.Lab, line: str, timeout: float) -> subprocess.Popen:
    n = lab.network(line)
    p = net.run_in(lab.ns("app"), [sys.executable, "-m", "appliance.lab.traffic", "sink", "--group", n.group,
                                   "--port", str(n.group_port), "--ifaddr", n.address("app"), "--idle", "3",
                                   "--timeout", str(timeout), "--progress", "5"],
                   stdout=subprocess.PIPE, text=True)
    assert json.loads(p.stdout.readline())["ready"]
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=100_000, help="ITCH messages per second to sustain")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--live-seconds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_exchange_feed needs root (it builds a lab)")
    lab = topology.plan("b" + secrets.token_hex(3))
    say = (lambda *a: None) if args.json else print
    with tempfile.TemporaryDirectory() as d:
        tmp = pathlib.Path(d)
        try:
            net.up(lab)
            live = exchange(lab.prefix, {"rate": 3 * args.rate, "symbols": 50, "duration": args.live_seconds}, tmp)
            say(f"baseline, mode live: {live['messages_per_s']:,} messages/s (Python engine, asked for "
                f"{3 * args.rate:,} events/s)")
            messages = args.rate * args.seconds
            t0 = time.monotonic()
            day = gen.generate(tmp / "day.itch", 50, messages, 1)
            say(f"generated {day.messages:,} messages in {time.monotonic() - t0:.0f} s")
            sinks = {line: sink(lab, line, args.seconds * 3 + 60) for line in ("feed-a", "feed-b")}
            blast = exchange(lab.prefix, {"mode": "blast", "day": str(tmp / "day.itch"), "rate": args.rate}, tmp)
            got = {}
            for line, p in sinks.items():
                out, _ = p.communicate(timeout=args.seconds * 3 + 90)
                got[line] = json.loads(out.strip().splitlines()[-1])
        finally:
            net.down(lab.prefix)
    schedule = day.messages / args.rate
    result = {"benchmark": "exchange_feed", "target_msgs_per_s": args.rate, "seconds": args.seconds,
              "live_msgs_per_s": live["messages_per_s"], "blast_schedule_s": round(schedule, 3),
              "blast_sender_total_s": blast["elapsed"],  # includes building the packets before pacing starts
              "receivers": {}}
    for line, r in got.items():
        span = (r["last_ns"] - r["first_ns"]) / 1e9
        result["receivers"][line] = {"messages": r["messages"], "gaps": r["gaps"], "duplicates": r["duplicates"],
                                     "span_s": round(span, 3), "lag_s": round(span - schedule, 3),
                                     "msgs_per_s": round(r["messages"] / span) if span else 0}
    rates = [v["msgs_per_s"] for v in result["receivers"].values()]
    result["ratio_blast_to_live"] = round(min(rates) / live["messages_per_s"], 2)
    result["meets_target"] = (min(rates) >= 0.99 * args.rate and all(
        v["messages"] == day.messages and v["gaps"] == 0 for v in result["receivers"].values()))
    if args.json:
        print(json.dumps(result))
        return
    for line, v in result["receivers"].items():
        print(f"mode blast, {line}: {v['messages']:,} messages, {v['gaps']} gaps, {v['msgs_per_s']:,} messages/s "
              f"at the receiver, first to last in {v['span_s']:.2f} s for a {schedule:.2f} s schedule "
              f"(behind by {v['lag_s']:+.2f} s)")
    print(f"sender: {blast['elapsed']:.1f} s in all, building the packets included")
    print(f"ratio blast / live: {result['ratio_blast_to_live']:.2f}x; target {args.rate:,}/s for {args.seconds} s: "
          f"{'met' if result['meets_target'] else 'NOT met'}")


if __name__ == "__main__":
    main()
