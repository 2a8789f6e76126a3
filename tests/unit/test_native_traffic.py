"""The C sender and sink (dpdk/lab/lab_traffic.c) through cffi, over loopback UDP:
the sink tells a gap from a duplicate by MoldUDP64 sequence numbers."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from appliance.protocols import moldudp64
from dpdk import lab_native


@pytest.fixture
def pair():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    yield tx, rx
    tx.close()
    rx.close()


def send_all(tx: socket.socket, packets: list[bytes], batch: int = 4) -> object:
    ffi, lib = lab_native()
    stride = max(len(p) for p in packets)
    buf = np.zeros((len(packets), stride), dtype=np.uint8)
    lengths = np.array([len(p) for p in packets], dtype=np.uint16)
    for i, p in enumerate(packets):
        buf[i, :len(p)] = np.frombuffer(p, dtype=np.uint8)
    stats = ffi.new("struct tw_send_stats *")
    rc = lib.tw_udp_send(tx.fileno(), ffi.from_buffer("uint8_t[]", buf), stride,
                         ffi.from_buffer("uint16_t[]", lengths), len(packets), batch, 0, stats)
    assert rc == 0
    assert stats.packets == len(packets) and stats.bytes == int(lengths.sum())
    return stats


def sink(rx: socket.socket, max_packets: int):
    ffi, lib = lab_native()
    stats = ffi.new("struct tw_sink_stats *")
    rc = lib.tw_udp_sink(rx.fileno(), max_packets, int(0.5e9), int(5e9), ffi.NULL, stats)
    assert rc == 1  # done: max_packets reached
    return stats


def test_an_in_order_stream_has_no_gaps(pair):
    tx, rx = pair
    packets = [moldudp64.pack("SESSION001", 1 + 3 * i, [b"S" + bytes(11)] * 3) for i in range(50)]
    send_all(tx, packets)
    s = sink(rx, 50)
    assert (s.packets, s.messages, s.first_seq, s.next_seq) == (50, 150, 1, 151)
    assert (s.gaps, s.gap_messages, s.duplicates) == (0, 0, 0)
    assert bytes(s.session) == b"SESSION001"


def test_a_gap_and_a_duplicate_are_told_apart(pair):
    tx, rx = pair
    msg = [b"A" + bytes(35)] * 2
    packets = [moldudp64.pack("S", 1, msg), moldudp64.pack("S", 3, msg),
               moldudp64.pack("S", 9, msg),   # 5..8 missing: one gap of 4 messages
               moldudp64.pack("S", 3, msg),   # already seen: a duplicate
               moldudp64.pack("S", 11, msg)]
    send_all(tx, packets, batch=2)
    s = sink(rx, len(packets))
    assert (s.gaps, s.gap_messages, s.duplicates, s.next_seq) == (1, 4, 1, 13)


def test_heartbeats_and_short_datagrams_are_counted_but_carry_no_sequence(pair):
    tx, rx = pair
    send_all(tx, [moldudp64.heartbeat("S", 1), b"tiny", moldudp64.pack("S", 1, [b"x"])])
    s = sink(rx, 3)
    assert (s.packets, s.mold_packets, s.messages, s.first_seq) == (3, 1, 1, 1)


def test_a_bad_batch_size_is_refused():
    ffi, lib = lab_native()
    stats = ffi.new("struct tw_send_stats *")
    assert lib.tw_udp_send(-1, ffi.NULL, 0, ffi.NULL, 0, 0, 0, stats) == -22  # -EINVAL
