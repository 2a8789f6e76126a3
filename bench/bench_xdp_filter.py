"""Cost per packet of the XDP feed filter, beside an empty XDP_PASS program, in the
same run (bpf_prog_test_run_opts with repeat: the kernel times the program alone).

Rows: the packet-fixture table the filter's tests run (xdp/fixtures.py: feed
packets on both lines with and without VLAN tags and IPv4 options, drop and pass
rules, unmatched UDP, TCP, ARP, IPv6, fragments, malformed and truncated frames),
under the rules that table is written against. Each row is the median of --runs
runs of --repeat iterations; --rows picks rows whose description contains a word.
Needs root.

    sudo .venv/bin/python bench/bench_xdp_filter.py [--repeat 1000000] [--runs 5] [--rows WORD] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import secrets
import statistics
import subprocess
import tempfile

from xdp.filter import PIN_ROOT, FeedFilter
from xdp.fixtures import ROWS, add_rules

PASS_PROGRAM = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp") int xdp_pass_baseline(struct xdp_md *ctx) { return XDP_PASS; }
char _license[] SEC("license") = "GPL";
"""


def per_packet(f: FeedFilter, frame: bytes, repeat: int, runs: int) -> float:
    return statistics.median(f.test_run(frame, repeat=repeat).duration_ns for _ in range(runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rows", default="", metavar="WORD", help="only the rows whose description contains WORD")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_xdp_filter needs root (it loads BPF programs)")
    frames = {r.desc: r.frame for r in ROWS if args.rows in r.desc}
    if not frames:
        raise SystemExit(f"--rows {args.rows!r}: no row's description contains it (see xdp/fixtures.py)")
    tag = secrets.token_hex(3)
    with tempfile.TemporaryDirectory() as d:
        src, obj = pathlib.Path(d) / "pass.bpf.c", pathlib.Path(d) / "pass.bpf.o"
        src.write_text(PASS_PROGRAM)
        subprocess.run(["clang", "-O2", "-g", "-target", "bpf", f"-I/usr/include/{os.uname().machine}-linux-gnu",
                        "-c", str(src), "-o", str(obj)], check=True)
        baseline = FeedFilter(PIN_ROOT / f"bench-pass-{tag}", obj, program="xdp_pass_baseline")
        flt = FeedFilter(PIN_ROOT / f"bench-filter-{tag}")
        try:
            add_rules(flt)
            rows = {}
            for name, frame in frames.items():
                rows[name] = {"filter_ns": per_packet(flt, frame, args.repeat, args.runs),
                              "baseline_ns": per_packet(baseline, frame, args.repeat, args.runs)}
        finally:
            for f in (flt, baseline):
                f.close()
                f.unpin()
    for r in rows.values():
        r["ratio"] = round(r["filter_ns"] / r["baseline_ns"], 2) if r["baseline_ns"] else None
    if args.json:
        print(json.dumps({"benchmark": "xdp_filter", "repeat": args.repeat, "runs": args.runs, "rows": rows}))
        return
    print(f"XDP feed filter, ns per packet (bpf_prog_test_run, {args.repeat:,} repeats, median of {args.runs}):")
    width = max(len(name) for name in rows)
    for name, r in rows.items():
        print(f"  {name:{width}s} filter {r['filter_ns']:5.0f} ns   empty XDP_PASS {r['baseline_ns']:5.0f} ns   "
              f"ratio {r['ratio']}")


if __name__ == "__main__":
    main()
