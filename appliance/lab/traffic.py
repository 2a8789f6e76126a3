"""Lab traffic: send a MoldUDP64 feed to a multicast group, and receive one.

Run inside a lab namespace (``tickwire`` starts them with ``ip netns exec``)::

    python -m appliance.lab.traffic send --group 239.198.1.1 --port 26400 --ifaddr 198.18.1.1 ...
    python -m appliance.lab.traffic sink --group 239.198.1.1 --port 26400 --ifaddr 198.18.1.11 ...

The per-datagram work is C (``tw_udp_send`` / ``tw_udp_sink``); Python builds the
packets beforehand and reports. Both print JSON: the sink one line per
``--progress`` interval (``"final": false``) and a last one (``"final": true``),
starting with ``{"ready": true}`` once it has joined the group.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import socket
import struct
import sys
from collections.abc import Iterator

import numpy as np

from appliance.lab.topology import PUBLISHER_PORT
from appliance.protocols import binaryfile, moldudp64
from dpdk import lab_native

SINK_FIELDS = ("packets", "bytes", "mold_packets", "messages", "first_seq", "next_seq", "gaps",
               "gap_messages", "duplicates", "first_ns", "last_ns")


def system_event(n: int) -> bytes:
    """A synthetic ITCH 5.0 System Event ('S', 12 bytes); the event code cycles
    through O S Q M E C as a trading day does."""
    code = b"OSQMEC"[n % 6:n % 6 + 1]
    return b"S" + struct.pack(">HH", 0, n & 0xFFFF) + (n * 1000).to_bytes(6, "big") + code


def feed_messages(count: int, source: pathlib.Path | None) -> Iterator[bytes]:
    """``count`` ITCH messages: the BinaryFILE ``source`` replayed in a loop, or
    synthetic system events when there is none."""
    if source is None:
        for i in range(count):
            yield system_event(i)
        return
    msgs = list(binaryfile.iter_messages(source.read_bytes()))
    if not msgs:
        raise ValueError(f"{source} holds no messages")
    for i in range(count):
        yield msgs[i % len(msgs)]


def build_packets(session: str, first_seq: int, messages: Iterator[bytes],
                  max_payload: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Pack MoldUDP64 packets into one buffer with a fixed stride, as the C sender takes them."""
    kw = {"max_payload": max_payload} if max_payload else {}
    packets = list(moldudp64.packetize(session, first_seq, messages, **kw))
    stride = max(len(p) for p in packets)
    buf = np.zeros((len(packets), stride), dtype=np.uint8)
    lengths = np.zeros(len(packets), dtype=np.uint16)
    for i, p in enumerate(packets):
        buf[i, :len(p)] = np.frombuffer(p, dtype=np.uint8)
        lengths[i] = len(p)
    return buf, lengths, stride


def send(args: argparse.Namespace) -> dict:
    ffi, lib = lab_native()
    buf, lengths, stride = build_packets(args.session, args.first_seq,
                                         feed_messages(args.messages, args.source), args.max_payload)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(args.ifaddr))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    if args.sport:
        sock.bind((args.ifaddr, args.sport))  # a fixed source port, as an exchange's publisher has
    sock.connect((args.group, args.port))
    stats = ffi.new("struct tw_send_stats *")
    rc = lib.tw_udp_send(sock.fileno(), ffi.from_buffer("uint8_t[]", buf), stride,
                         ffi.from_buffer("uint16_t[]", lengths), len(lengths), args.batch, args.rate, stats)
    sock.close()
    out = {f: getattr(stats, f) for f in ("packets", "bytes", "calls", "errors", "elapsed_ns")}
    out.update(rc=rc, messages=args.messages, group=args.group, port=args.port,
               pps=round(stats.packets / (stats.elapsed_ns / 1e9)) if stats.elapsed_ns else 0)
    return out


def open_sink(group: str, port: int, ifaddr: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE (root): no drops in bursts
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    sock.bind((group, port))
    mreq = socket.inet_aton(group) + socket.inet_aton(ifaddr)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    return sock


def sink(args: argparse.Namespace) -> None:
    ffi, lib = lab_native()
    sock = open_sink(args.group, args.port, args.ifaddr)
    print(json.dumps({"ready": True}), flush=True)
    stats = ffi.new("struct tw_sink_stats *")
    stop = ffi.new("int32_t *")
    waited_ns = 0
    total_ns = int(args.timeout * 1e9)
    step_ns = int(args.progress * 1e9)
    while True:
        rc = lib.tw_udp_sink(sock.fileno(), args.max_packets, int(args.idle * 1e9), step_ns, stop, stats)
        waited_ns += step_ns
        finished = rc != 0 or waited_ns >= total_ns
        out = {f: getattr(stats, f) for f in SINK_FIELDS}
        out.update(session=bytes(ffi.buffer(stats.session)).decode("ascii", "replace").rstrip(),
                   rc=rc, final=bool(finished), group=args.group)
        print(json.dumps(out), flush=True)
        if finished:
            break
    sock.close()


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m appliance.lab.traffic", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    s = sub.add_parser("send", help="send MoldUDP64 packets of ITCH messages to a multicast group")
    r = sub.add_parser("sink", help="receive from a multicast group and count MoldUDP64 sequence numbers")
    for p in (s, r):
        p.add_argument("--group", required=True, help="multicast group, e.g. 239.198.1.1")
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--ifaddr", required=True, help="address of the interface to send from / join on")
    s.add_argument("--messages", type=int, default=10_000, help="ITCH messages to send (default 10000)")
    s.add_argument("--source", type=pathlib.Path, help="BinaryFILE of ITCH messages to replay (default synthetic)")
    s.add_argument("--session", default="TWLAB00001", help="MoldUDP64 session (10 characters at most)")
    s.add_argument("--first-seq", type=int, default=1)
    s.add_argument("--sport", type=int, default=PUBLISHER_PORT,
                   help=f"send from this UDP port (default {PUBLISHER_PORT}: the lab exchange's publisher port, which "
                   "the appliance's feed rules take; 0: any port)")
    s.add_argument("--rate", type=int, default=0, help="packets per second (0: as fast as possible)")
    s.add_argument("--batch", type=int, default=64, help="datagrams per sendmmsg (1..1024)")
    s.add_argument("--max-payload", type=int, default=0, metavar="BYTES",
                   help="largest MoldUDP64 packet (default 0: MoldUDP64's usual 1400)")
    r.add_argument("--max-packets", type=int, default=0, help="stop after this many (0: no limit)")
    r.add_argument("--idle", type=float, default=1.0, help="stop after this many seconds without a packet")
    r.add_argument("--timeout", type=float, default=30.0, help="stop after this many seconds in all")
    r.add_argument("--progress", type=float, default=0.25, help="seconds between progress lines")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.verb == "send":
        out = send(args)
        print(json.dumps(out), flush=True)
        return 0 if out["rc"] == 0 else 1
    sink(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
