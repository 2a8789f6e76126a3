"""Market data kept: what the recorder costs the worker per frame, beside the
bare copy of the same bytes, in the same run; and whether its writer keeps up.

The worker's part of recording is one call per frame (dpdk/src/recorder.c,
tw_recorder_frame): room taken in the ring, a 16-byte header, the frame copied.
Its baseline is what no recording can do without: the same frame copied into a
ring of the same size (tw_copy_frames). Both run as loops in C, so no Python
call is timed. The ring holds every frame of a run (so each is really copied,
none is a cheap drop); the recorder's writer thread runs meanwhile, writing the
captures to --dir (default a temporary folder; put it on the disk the journal
uses), so the figure includes a live writer's cache traffic. Then the writer's
own rate: every frame of the run written, in MB/s and frames/s.

    .venv/bin/python bench/bench_recorder.py [--frames 250000] [--size 200] [--runs 5] [--dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time

from dpdk import native
from dpdk.recorder import Recorder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=250_000)
    ap.add_argument("--size", type=int, default=200, help="frame bytes (a MoldUDP64 packet of ~6 ITCH messages)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", help="where the captures go (default: a temporary folder)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ffi, lib = native()
    frame = bytes(range(256)) * (args.size // 256 + 1)
    frame = frame[:args.size]
    ring_mb = max(1, (args.frames * ((args.size + 16 + 7) // 8 * 8) + (1 << 20)) >> 20)  # every frame fits
    ring = ffi.new("uint8_t[]", ring_mb << 20)
    rec_ns, copy_ns, dropped, written, write_s = [], [], [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(dir=args.dir) as d:
            r = Recorder(directory=d, rotate_mb=256, ring_mb=ring_mb)
            r.start()
            t0 = time.perf_counter_ns()
            taken = lib.tw_recorder_frames(r._r, 0, frame, len(frame), args.frames)
            t1 = time.perf_counter_ns()
            r.stop()  # the writer writes what is left
            t2 = time.perf_counter_ns()
            st = r.stats()
            t3 = time.perf_counter_ns()
            lib.tw_copy_frames(ring, len(ring), frame, len(frame), args.frames)
            t4 = time.perf_counter_ns()
        rec_ns.append((t1 - t0) / args.frames)
        copy_ns.append((t4 - t3) / args.frames)
        dropped.append(args.frames - taken)
        written.append(st["frames"]["A"])
        write_s.append((t2 - t0) / 1e9)
    out = {"frames": args.frames, "size": args.size, "runs": args.runs,
           "recorder_ns_per_frame": round(statistics.median(rec_ns), 1),
           "copy_ns_per_frame": round(statistics.median(copy_ns), 1),
           "ratio": round(statistics.median(rec_ns) / statistics.median(copy_ns), 2),
           "dropped": dropped, "written": written,
           "writer_mb_per_s": round(statistics.median(w * (args.size + 16) / s / 1e6 for w, s in zip(written, write_s,
                                                                                                      strict=True)), 1),
           "writer_frames_per_s": round(statistics.median(w / s for w, s in zip(written, write_s, strict=True)))}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"recording a {args.size}-byte frame: {out['recorder_ns_per_frame']} ns on the worker (median of "
              f"{args.runs}), against {out['copy_ns_per_frame']} ns for the bare copy: {out['ratio']}x")
        print(f"  the writer wrote {statistics.median(written):,.0f} of {args.frames:,} frames a run at "
              f"{out['writer_frames_per_s']:,} frames/s ({out['writer_mb_per_s']} MB/s); dropped: {dropped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
