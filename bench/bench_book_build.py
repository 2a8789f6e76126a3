"""Book build: ns per ITCH message for the C order book (dpdk/src/book.c), beside
the Python reference book (appliance/protocols/itchbook.py) in the same run.

The day: `exchange gen` makes --chunk book messages over --symbols symbols (about
70 k messages/s here, so the chunk is cached under build/bench/ and made once).
A day of --messages is that chunk laid end to end as many times as needed, each
copy with its own stock locates (copy k trades locates k*S+1 .. k*S+S) and its
own order references, so the copies are separate instruments and orders: a
--messages 50000000 day is 1,000 instruments whose open orders pile up as the
day goes on. The C book builds it from the BinaryFILE image in one call
(length-prefix walk, decode, L3 + L2 update per message), median of --runs; the
Python reference decodes and applies the first --baseline messages. The
issue's target is >= 16 M messages/s (<= 61 ns/message) on one core.

    .venv/bin/python bench/bench_book_build.py [--messages 50000000] [--chunk 5000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

import numpy as np

from appliance.lab.exchange import gen
from appliance.protocols import binaryfile, itch
from appliance.protocols.itchbook import ItchBook
from dpdk.books import Books

CACHE = pathlib.Path(__file__).resolve().parents[1] / "build" / "bench"
REF_AT_11 = b"AFECXDU"   # order reference at offset 11
NEW_REF_AT_19 = b"U"     # the replacement's new reference at offset 19


def chunk_day(symbols: int, messages: int, seed: int) -> pathlib.Path:
    path = CACHE / f"day-{symbols}s-{messages}m-seed{seed}.itch"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        print(f"generating the {messages:,}-message chunk once (cached in {path}) ...", file=sys.stderr)
        t0 = time.monotonic()
        gen.generate(tmp, symbols, messages, seed=seed,
                     progress=lambda n: print(f"\r  {n:,} messages", end="", file=sys.stderr))
        tmp.replace(path)
        print(f"\r  done in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return path


def replicate(data: bytes, symbols: int, total: int) -> tuple[bytes, int]:
    """Copies of the chunk, end to end, with shifted locates and references,
    until ``total`` messages; returns the image and the number of copies."""
    starts, types = [], []
    off = 0
    n = len(data)
    while off + 2 <= n:
        ln = int.from_bytes(data[off:off + 2], "big")
        starts.append(off + 2)
        types.append(data[off + 2])
        off += 2 + ln
    starts_a = np.array(starts, dtype=np.int64)
    types_a = np.array(types, dtype=np.uint8)
    base = np.frombuffer(data, dtype=np.uint8)
    loc_pos = starts_a + 1
    ref_pos = starts_a[np.isin(types_a, np.frombuffer(REF_AT_11, np.uint8))] + 11
    new_pos = starts_a[types_a == ord("U")] + 19
    all_ref = np.concatenate([ref_pos, new_pos])
    max_ref = int(read_be(base, all_ref, 8).max()) if len(all_ref) else 0
    per = len(starts)
    copies = -(-total // per)
    out = []
    for k in range(copies):
        arr = base.copy()
        if k:
            loc = read_be(arr, loc_pos, 2)
            loc = np.where(loc > 0, loc + k * symbols, 0)
            write_be(arr, loc_pos, loc, 2)
            write_be(arr, all_ref, read_be(arr, all_ref, 8) + np.uint64(k * (max_ref + 1)), 8)
        out.append(arr.tobytes())
    return b"".join(out), copies


def read_be(arr: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    idx = pos[:, None] + np.arange(width)
    b = arr[idx].astype(np.uint64)
    v = np.zeros(len(pos), dtype=np.uint64)
    for i in range(width):
        v = (v << np.uint64(8)) | b[:, i]
    return v


def write_be(arr: np.ndarray, pos: np.ndarray, values: np.ndarray, width: int) -> None:
    v = values.astype(np.uint64)
    for i in range(width - 1, -1, -1):
        arr[pos + i] = (v & np.uint64(0xFF)).astype(np.uint8)
        v = v >> np.uint64(8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=50_000_000, help="messages in the day (default 50 M)")
    ap.add_argument("--chunk", type=int, default=5_000_000, help="book messages of the generated chunk")
    ap.add_argument("--symbols", type=int, default=100, help="symbols of the chunk")
    ap.add_argument("--baseline", type=int, default=300_000, help="messages the Python reference builds")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-orders", type=int, default=0,
                    help="order table size (default: 2x the open orders at the day's end, at least 400 k)")
    ap.add_argument("--levels", type=int, default=1024, help="price levels per instrument side")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    chunk = chunk_day(args.symbols, args.chunk, seed=1).read_bytes()
    t0 = time.monotonic()
    data, copies = replicate(chunk, args.symbols, args.messages) if args.messages > args.chunk else (chunk, 1)
    build_s = time.monotonic() - t0
    n_locates = args.symbols * copies + 1
    probe = Books(max_locate=args.symbols + 1, max_orders=4_000_000, levels_per_side=args.levels)
    probe.apply_binaryfile(chunk)
    max_orders = args.max_orders or max(400_000, 2 * probe.live_orders * copies)
    del probe
    c_ns = []
    for _ in range(args.runs):
        books = Books(max_locate=n_locates, max_orders=max_orders, levels_per_side=args.levels, prefault=True)
        t0 = time.perf_counter_ns()
        n = books.apply_binaryfile(data)
        c_ns.append((time.perf_counter_ns() - t0) / n)
        stats = books.stats()
        assert not stats["errors"], stats
        live = books.live_orders
        del books
    msgs = []
    for raw in binaryfile.iter_messages(chunk):
        msgs.append(raw)
        if len(msgs) == args.baseline:
            break
    ref = ItchBook()
    t0 = time.perf_counter_ns()
    for raw in msgs:
        ref.apply(itch.decode(raw))
    py_ns = (time.perf_counter_ns() - t0) / len(msgs)
    c = statistics.median(c_ns)
    out = {"benchmark": "book_build", "messages": n, "instruments": n_locates - 1, "replicate_s": round(build_s, 1),
           "max_orders": max_orders, "open_orders_at_end": live, "levels_per_side": args.levels,
           "c_ns_per_msg": round(c, 1), "c_runs_ns": [round(x, 1) for x in c_ns], "c_msgs_per_s": round(1e9 / c),
           "python_ns_per_msg": round(py_ns, 1), "ratio": round(py_ns / c, 1), "target_ns_per_msg": 61,
           "meets_target": c <= 61}
    if args.json:
        print(json.dumps(out))
        return
    print(f"book build, {n:,} messages over {n_locates - 1:,} instruments, {live:,} orders open at the end "
          f"(order table {max_orders:,}, {args.levels} levels a side):")
    print(f"  C book (walk + decode + L3/L2):  {c:7.1f} ns/message  ({1e9 / c:,.0f} messages/s; target <= 61 ns; "
          f"runs {', '.join(f'{x:.1f}' for x in c_ns)})")
    print(f"  Python reference book:           {py_ns:7.1f} ns/message  (baseline, first {len(msgs):,} messages)")
    print(f"  ratio: {py_ns / c:.1f}x")


if __name__ == "__main__":
    main()
