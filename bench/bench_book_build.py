"""Book build: ns per ITCH message for the C order book (dpdk/src/book.c), beside
the Python reference book (appliance/protocols/itchbook.py) in the same run.

A day is generated with `exchange gen` (--messages book messages over --symbols
symbols), then built by the C book from its BinaryFILE image in one call
(length-prefix walk, decode, L3 + L2 update per message), median of --runs; the
Python reference decodes and applies the first --baseline messages. The issue's
target is >= 16 M messages/s (<= 61 ns/message) on one core.

    .venv/bin/python bench/bench_book_build.py [--messages 5000000] [--symbols 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import tempfile
import time

from appliance.lab.exchange import gen
from appliance.protocols import binaryfile, itch
from appliance.protocols.itchbook import ItchBook
from dpdk.books import Books


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=5_000_000)
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--baseline", type=int, default=300_000, help="messages the Python reference builds")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-orders", type=int, default=400_000, help="order table size (about 2x the live peak)")
    ap.add_argument("--levels", type=int, default=1024, help="price levels per instrument side")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = pathlib.Path(d) / "day.itch"
        t0 = time.monotonic()
        day = gen.generate(path, args.symbols, args.messages, seed=1)
        gen_s = time.monotonic() - t0
        data = path.read_bytes()
    c_ns = []
    for _ in range(args.runs):
        books = Books(max_locate=args.symbols + 1, max_orders=args.max_orders, levels_per_side=args.levels)
        t0 = time.perf_counter_ns()
        n = books.apply_binaryfile(data)
        c_ns.append((time.perf_counter_ns() - t0) / n)
        stats = books.stats()
        assert not stats["errors"], stats
    msgs = list(binaryfile.iter_messages(data))[:args.baseline]
    ref = ItchBook()
    t0 = time.perf_counter_ns()
    for raw in msgs:
        ref.apply(itch.decode(raw))
    py_ns = (time.perf_counter_ns() - t0) / len(msgs)
    c = statistics.median(c_ns)
    out = {"benchmark": "book_build", "messages": day.messages, "symbols": args.symbols, "generate_s": round(gen_s, 1),
           "max_orders": args.max_orders, "levels_per_side": args.levels,
           "c_ns_per_msg": round(c, 1), "c_msgs_per_s": round(1e9 / c), "python_ns_per_msg": round(py_ns, 1),
           "ratio": round(py_ns / c, 1), "target_ns_per_msg": 61, "meets_target": c <= 61}
    if args.json:
        print(json.dumps(out))
        return
    print(f"book build, {day.messages:,} messages over {args.symbols} symbols (generated in {gen_s:.0f} s):")
    print(f"  C book (walk + decode + L3/L2):  {c:7.1f} ns/message  ({1e9 / c:,.0f} messages/s; target <= 61 ns)")
    print(f"  Python reference book:           {py_ns:7.1f} ns/message  (baseline, {len(msgs):,} messages)")
    print(f"  ratio: {py_ns / c:.1f}x")


if __name__ == "__main__":
    main()
