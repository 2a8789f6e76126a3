"""Memory: the feed worker's resident size holding 10 k instruments and 10 M live
orders, beside the same worker holding almost nothing, in the same run. Needs
root (DPDK).

A capture of --orders add-order messages over --instruments instruments (100
price levels a side each) is built once with numpy under build/bench/, then
replayed by `tickwire feed run --pcap` (DPDK's pcap port, the worker loop, the
C books sized for it). The worker reports its peak resident size (VmHWM) at the
end; the baseline run replays 1,000 of the orders into books sized for them.

    sudo .venv/bin/python bench/bench_worker_memory.py [--orders 10000000] [--instruments 10000] [--json]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import struct
import subprocess
import sys

import numpy as np

from dpdk.worker import remove_state

ROOT = pathlib.Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "bench"
TICKWIRE = str(pathlib.Path(sys.executable).parent / "tickwire")
PER_PACKET = 25
LEVELS = 100


def build_capture(path: pathlib.Path, orders: int, instruments: int) -> None:
    """Add orders i = 0 .. orders-1: instrument 1 + i % instruments, side and
    price level from i // instruments, reference i + 1; 25 to a MoldUDP64 packet."""
    n = -(-orders // PER_PACKET) * PER_PACKET
    i = np.arange(n, dtype=np.int64)
    m = np.zeros((n, 38), dtype=np.uint8)
    m[:, 1] = 36
    m[:, 2] = ord("A")
    loc = 1 + i % instruments
    m[:, 3], m[:, 4] = loc >> 8, loc & 0xFF
    ref = i + 1
    for k in range(8):
        m[:, 13 + k] = (ref >> (8 * (7 - k))) & 0xFF
    row = i // instruments
    sell = row % 2 == 1
    m[:, 21] = np.where(sell, ord("S"), ord("B"))
    m[:, 22:26] = np.array([0, 0, 0, 100], dtype=np.uint8)
    m[:, 26:34] = np.frombuffer(b"TWMEM   ", dtype=np.uint8)
    step = (row // 2) % LEVELS
    price = np.where(sell, 1_000_100 + 100 * step, 1_000_000 - 100 * step)
    for k in range(4):
        m[:, 34 + k] = (price >> (8 * (3 - k))) & 0xFF
    packets = n // PER_PACKET
    payload = 20 + PER_PACKET * 38
    frame = 14 + 20 + 8 + payload
    rec = np.zeros((packets, 16 + frame), dtype=np.uint8)
    rec[:, 8:12] = np.frombuffer(np.uint32(frame).tobytes(), np.uint8)
    rec[:, 12:16] = rec[:, 8:12]
    eth = bytes.fromhex("01005e460101" "020000000001" "0800")
    ip = bytes([0x45, 0, *(20 + 8 + payload).to_bytes(2, "big"), 0, 0, 0, 0, 1, 17, 0, 0,
                198, 18, 1, 1, 239, 198, 1, 1])
    udp = (30000).to_bytes(2, "big") + (26400).to_bytes(2, "big") + (8 + payload).to_bytes(2, "big") + b"\0\0"
    hdr = np.frombuffer(eth + ip + udp, np.uint8)
    rec[:, 16:16 + len(hdr)] = hdr
    o = 16 + len(hdr)
    rec[:, o:o + 10] = np.frombuffer(b"TWMEM00001", np.uint8)
    seq = 1 + np.arange(packets, dtype=np.int64) * PER_PACKET
    for k in range(8):
        rec[:, o + 10 + k] = (seq >> (8 * (7 - k))) & 0xFF
    rec[:, o + 19] = PER_PACKET
    rec[:, o + 20:] = m.reshape(packets, PER_PACKET * 38)
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # pcap, microseconds, Ethernet
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(head)
        rec.tofile(f)
    tmp.replace(path)


def worker(pcap: pathlib.Path, name: str, instruments: int, orders: int) -> dict:
    res = subprocess.run([TICKWIRE, "feed", "run", "--pcap", str(pcap), "--name", name, "--json", "--top", "1",
                          "--max-locate", str(instruments), "--max-orders", str(orders), "--levels", "128",
                          "--idle-stop", "1", "--quiet-events"], capture_output=True, text=True, timeout=900)
    remove_state(name)
    if res.returncode:
        sys.exit(f"the worker failed: {res.stderr[-3000:]}")
    rep = json.loads(res.stdout)
    return {"live_orders": rep["stats"]["live_orders"], "instruments": len(rep["books"]),
            "peak_rss": rep["memory"]["peak_rss"], "rss": rep["memory"]["rss"],
            "book_errors": rep["stats"]["feed"]["book_errors"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=10_000_000)
    ap.add_argument("--instruments", type=int, default=10_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    big = CACHE / f"adds-{args.orders}o-{args.instruments}i.pcap"
    small = CACHE / "adds-1000o-10i.pcap"
    if not big.exists():
        print(f"building {big} once ...", file=sys.stderr)
        build_capture(big, args.orders, args.instruments)
    if not small.exists():
        build_capture(small, 1000, 10)
    base = worker(small, "benchmem-small", 10, 1000)
    full = worker(big, "benchmem", args.instruments, args.orders)
    assert full["live_orders"] >= args.orders and full["book_errors"] == 0, full
    per_order = (full["peak_rss"] - base["peak_rss"]) / full["live_orders"]
    out = {"benchmark": "worker_memory", "instruments": full["instruments"], "live_orders": full["live_orders"],
           "peak_rss_bytes": full["peak_rss"], "baseline_peak_rss_bytes": base["peak_rss"],
           "bytes_per_live_order": round(per_order, 1), "ratio": round(full["peak_rss"] / base["peak_rss"], 1)}
    if args.json:
        print(json.dumps(out))
        return
    mib = 1 << 20
    print(f"feed worker memory (books sized for {args.instruments:,} instruments, {args.orders:,} orders, "
          f"128 levels a side):")
    print(f"  holding {full['instruments']:,} instruments, {full['live_orders']:,} live orders: "
          f"peak resident {full['peak_rss'] / mib:,.0f} MiB")
    print(f"  baseline, holding 1,000 orders:       peak resident {base['peak_rss'] / mib:,.0f} MiB "
          f"(Python, DPDK, mbufs)")
    print(f"  {per_order:.0f} bytes per live order above the baseline (order table + levels); "
          f"ratio {out['ratio']}x")


if __name__ == "__main__":
    main()
