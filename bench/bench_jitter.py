"""The jitter probe's observer effect: what watching a core costs the core watched.

`tickwire tune jitter` runs its busy loop (dpdk/src/jitter.c: the gap between two
TSC reads) while a tracer counts what interrupts the core: a bcc program on the
irq, softirq, sched_switch and local-timer tracepoints, or the same tracepoints
written to a tracefs ring buffer. Each event the tracer handles runs on the core
being measured. Baseline: the same loop on the same core with no tracer, in the
same run, alternating, so the machine's own noise falls on all three alike.

Figures per mode (median over --runs): the share of the core taken by stalls over
1 µs, the stalls a second, and the longest stall; then each tracer's share beside
the bare loop's (a ratio: 1.0 means the probe adds nothing it could be blamed for).
Needs root (tracefs, bcc).

    .venv/bin/python bench/bench_jitter.py [--cpu N] [--seconds 2] [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

from dpdk import lab_native
from tuning import jitter


def once(cpu: int, seconds: float, mode: str) -> dict:
    tracer = None
    if mode == "bcc":
        jitter.mount_tracefs()
        tracer = jitter.BccTracer([cpu])
    elif mode == "tracefs":
        tracer = jitter.TracefsTracer([cpu])
    others = set(range(os.cpu_count() or 1)) - {cpu}
    before = os.sched_getaffinity(0)
    if others:
        os.sched_setaffinity(0, others)
    try:
        loop = jitter.gaps([cpu], seconds, 1000, lab=lab_native())[cpu]
    finally:
        events = tracer.stop() if tracer else []
        os.sched_setaffinity(0, before)
    return {"share": loop["share"], "gaps_per_s": loop["gaps"] / seconds, "max_us": loop["max_us"],
            "events": sum(s["count"] for s in events)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", type=int, default=(os.cpu_count() or 1) - 1, help="the core (default the last)")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_jitter: needs root (tracefs and bcc)", file=sys.stderr)
        return 2
    modes = ["bare", "tracefs"] + (["bcc"] if jitter.bcc_unavailable() is None else [])
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    for _ in range(args.runs):
        for m in modes:
            runs[m].append(once(args.cpu, args.seconds, m))
    out = {"cpu": args.cpu, "seconds": args.seconds, "runs": args.runs,
           "skipped": [] if "bcc" in modes else [f"bcc: {jitter.bcc_unavailable()}"]}
    for m in modes:
        out[m] = {k: statistics.median(r[k] for r in runs[m]) for k in ("share", "gaps_per_s", "max_us", "events")}
    base = out["bare"]["share"] or 1e-9
    out["ratio"] = {m: round(out[m]["share"] / base, 2) for m in modes if m != "bare"}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"CPU {args.cpu}, {args.runs} x {args.seconds:g} s per mode, alternating (medians)")
    print(f"{'mode':<9}{'taken %':>9}{'stalls/s':>10}{'longest µs':>12}{'events':>9}")
    for m in modes:
        r = out[m]
        print(f"{m:<9}{r['share'] * 100:>9.3f}{r['gaps_per_s']:>10.0f}{r['max_us']:>12.1f}{r['events']:>9.0f}")
    for m, ratio in out["ratio"].items():
        print(f"{m}: {ratio:.2f}x the bare loop's share taken")
    for s in out["skipped"]:
        print(f"not measured: {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
