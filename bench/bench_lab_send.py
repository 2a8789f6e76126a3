"""How fast the lab's C sender pushes datagrams, against plain Python in the same run.

The lab's load generator (tw_udp_send: sendmmsg in batches) bounds every later
lab measurement, so its headroom over the obvious Python loop is worth knowing.
Both send the same MoldUDP64 packets to a UDP socket on 127.0.0.1 that nobody
reads (the kernel drops them at the receive buffer; the send path is what is
measured). Prints packets per second for each and the ratio; --json for machines.

    .venv/bin/python bench/bench_lab_send.py [--packets N] [--repeat R] [--json]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import time

import numpy as np

from appliance.lab.traffic import build_packets, feed_messages
from dpdk import lab_native


def c_sender(sock: socket.socket, buf, lengths, stride: int, batch: int) -> float:
    ffi, lib = lab_native()
    stats = ffi.new("struct tw_send_stats *")
    rc = lib.tw_udp_send(sock.fileno(), ffi.from_buffer("uint8_t[]", buf), stride,
                         ffi.from_buffer("uint16_t[]", lengths), len(lengths), batch, 0, stats)
    if rc != 0 or stats.packets != len(lengths):
        raise SystemExit(f"tw_udp_send failed: rc={rc}, sent {stats.packets} of {len(lengths)}")
    return stats.packets / (stats.elapsed_ns / 1e9)


def python_sender(sock: socket.socket, packets: list[bytes]) -> float:
    send = sock.send
    start = time.perf_counter()
    for p in packets:
        send(p)
    return len(packets) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5, help="runs of each; the median is reported")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    # about 1,000 full-size feed packets, repeated to --packets (the sender does not care
    # that sequence numbers repeat)
    base, base_len, stride = build_packets("BENCH00001", 1, feed_messages(100_000, None))
    reps = -(-args.packets // len(base_len))
    buf = np.ascontiguousarray(np.tile(base, (reps, 1))[:args.packets])
    lengths = np.ascontiguousarray(np.tile(base_len, reps)[:args.packets])
    packets = [bytes(buf[i, :lengths[i]]) for i in range(len(lengths))]
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())

    c_runs, py_runs = [], []
    for _ in range(args.repeat):  # interleaved, so machine noise hits both alike
        c_runs.append(c_sender(tx, buf, lengths, stride, args.batch))
        py_runs.append(python_sender(tx, packets))
    c_pps, py_pps = statistics.median(c_runs), statistics.median(py_runs)
    result = {"benchmark": "lab_send", "packets": len(packets), "bytes_per_packet": int(lengths.mean()),
              "c_sendmmsg_pps": round(c_pps), "python_send_pps": round(py_pps), "ratio": round(c_pps / py_pps, 2),
              "repeat": args.repeat, "batch": args.batch}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"lab sender, {result['packets']:,} packets of {result['bytes_per_packet']} bytes to loopback, "
              f"median of {args.repeat}:")
        print(f"  C tw_udp_send (sendmmsg x{args.batch}): {c_pps:>12,.0f} packets/s")
        print(f"  Python socket.send loop (baseline): {py_pps:>12,.0f} packets/s")
        print(f"  ratio: {c_pps / py_pps:.2f}x")


if __name__ == "__main__":
    main()
