"""Bulk ITCH decoding into numpy arrays, against the per-message Python decoder.

The data is a BinaryFILE in a realistic message mix (mostly adds, deletes and
cancels, some executions and replaces, a few trades and admin messages), built
from 10,000 distinct messages repeated to --messages. The bulk decoder (C index +
numpy) decodes all of it; the per-message decoder (appliance.protocols.itch.decode)
decodes the first --baseline messages of the same data. Prints messages/second
for each and the ratio; the target is >= 5 M messages/s for bulk.

    .venv/bin/python bench/bench_itch_bulk.py [--messages N] [--baseline N] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from appliance.protocols import binaryfile, bulk, itch

# shares of each type in the mix (per 1000), roughly those of a TotalView day
MIX = {"A": 420, "D": 380, "U": 60, "X": 40, "E": 40, "F": 20, "C": 5, "P": 20, "I": 10, "S": 1, "H": 2,
       "R": 2}


def build(messages: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    types = rng.choices(list(MIX), weights=list(MIX.values()), k=10_000)
    block = binaryfile.encode(itch.encode(itch.example(t, i)) for i, t in enumerate(types))
    reps, rest = divmod(messages, 10_000)
    tail = binaryfile.encode(itch.encode(itch.example(t, i)) for i, t in enumerate(types[:rest]))
    return block * reps + tail


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=5_000_000)
    ap.add_argument("--baseline", type=int, default=200_000, help="messages the Python decoder decodes")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    data = build(args.messages)
    head = data[:len(build(args.baseline))]
    bulk_rates, py_rates = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = bulk.decode_binaryfile(data)
        bulk_rates.append(result.messages / (time.perf_counter() - t0))
        assert result.messages == args.messages and result.malformed == 0
        t0 = time.perf_counter()
        n = sum(1 for m in binaryfile.iter_messages(head) if itch.decode(m))
        py_rates.append(n / (time.perf_counter() - t0))
    b, p = statistics.median(bulk_rates), statistics.median(py_rates)
    out = {"benchmark": "itch_bulk", "messages": args.messages, "bytes": len(data), "bulk_msgs_per_s": round(b),
           "python_msgs_per_s": round(p), "ratio": round(b / p, 1), "target_msgs_per_s": 5_000_000,
           "meets_target": b >= 5_000_000}
    if args.json:
        print(json.dumps(out))
        return
    print(f"ITCH decode, {args.messages:,} messages ({len(data) / 1e6:.0f} MB), median of {args.repeat}:")
    print(f"  bulk (C index + numpy):           {b:>12,.0f} messages/s  (target >= 5,000,000)")
    print(f"  per-message Python decoder:       {p:>12,.0f} messages/s  (baseline, {args.baseline:,} messages)")
    print(f"  ratio: {b / p:.1f}x")


if __name__ == "__main__":
    main()
