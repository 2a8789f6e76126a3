"""pcap and pcapng: written with exact nanosecond times, read back, reassembled."""

from __future__ import annotations

import random

import pytest

from appliance.protocols import capture, moldudp64, soupbintcp

SRC, GROUP = ("198.18.1.1", 5000), ("239.198.1.1", 26400)


@pytest.mark.parametrize("suffix", [".pcap", ".pcapng"])
def test_udp_frames_round_trip_with_nanosecond_times(tmp_path, suffix):
    path = tmp_path / f"feed{suffix}"
    payloads = [moldudp64.pack("S", 1 + i, [b"x" * i]) for i in range(5)]
    times = [1_692_711_000_000_000_001 + 999 * i for i in range(5)]
    with capture.CaptureWriter(path) as w:
        for p, t in zip(payloads, times, strict=True):
            w.udp(p, SRC, GROUP, t)
    frames = list(capture.read_frames(path))
    assert [f.payload for f in frames] == payloads
    assert [f.ts_ns for f in frames] == times
    assert frames[0].flow == ("198.18.1.1", 5000, "239.198.1.1", 26400)
    assert [f.index for f in frames] == [1, 2, 3, 4, 5]


def test_checksums_are_valid():
    frame = capture.udp_frame(SRC, GROUP, b"payload")
    ip = frame[14:34]
    assert capture._checksum(ip) == 0  # a correct header sums to zero
    tcp = capture.tcp_frame(SRC, ("198.18.3.1", 8000), 1, 2, capture.TCP_ACK, b"abc")
    pseudo = bytes([198, 18, 1, 1, 198, 18, 3, 1, 0, 6, 0, 23])
    assert capture._checksum(pseudo + tcp[34:]) == 0


def test_a_tcp_session_reassembles_in_order_despite_reordering_and_retransmission(tmp_path):
    stream = b"".join(soupbintcp.encode(soupbintcp.SequencedData(bytes([i]) * (i + 1))) for i in range(40))
    chunks, i = [], 0
    rng = random.Random(4)
    while i < len(stream):
        n = rng.randint(1, 30)
        chunks.append((i, stream[i:i + n]))
        i += n
    order = chunks[:]
    rng.shuffle(order)
    order += chunks[5:8]  # retransmissions of data already delivered
    asm = capture.TcpReassembler()
    asm.add(999, capture.TCP_SYN, b"")
    out = b"".join(asm.add(1000 + off, capture.TCP_ACK, data) for off, data in order)
    assert out == stream
    assert asm.retransmitted == 3 and not asm.held


def test_a_retransmission_carrying_new_bytes_delivers_only_those():
    asm = capture.TcpReassembler()
    assert asm.add(100, 0, b"abcd") == b"abcd"
    assert asm.add(102, 0, b"cdef") == b"ef"


def test_the_writer_numbers_a_tcp_connection_for_both_sides(tmp_path):
    path = tmp_path / "oe.pcapng"
    with capture.CaptureWriter(path, clock=lambda: 5) as w:
        conn = w.tcp_connection(("198.18.3.11", 40000), ("198.18.3.1", 8000))
        conn.send("client", soupbintcp.encode(soupbintcp.LoginRequest("U", "P")))
        conn.send("server", soupbintcp.encode(soupbintcp.LoginAccepted("S1", 1)))
        conn.send("client", soupbintcp.encode(soupbintcp.ClientHeartbeat()))
    got: dict = {}
    for f, body in soupbintcp.capture_packets(path):
        got.setdefault(f.flow, []).append(soupbintcp.decode(body))
    client = got[("198.18.3.11", 40000, "198.18.3.1", 8000)]
    server = got[("198.18.3.1", 8000, "198.18.3.11", 40000)]
    assert client == [soupbintcp.LoginRequest("U", "P"), soupbintcp.ClientHeartbeat()]
    assert server == [soupbintcp.LoginAccepted("S1", 1)]


def test_vlan_tags_and_non_ipv4_frames(tmp_path):
    frame = capture.udp_frame(SRC, GROUP, b"hi")
    tagged = frame[:12] + b"\x81\x00\x00\x8d" + frame[12:]
    arp = frame[:12] + b"\x08\x06" + bytes(28)
    path = tmp_path / "mixed.pcap"
    with capture.CaptureWriter(path, clock=lambda: 1) as w:
        w.frame(tagged)
        w.frame(arp)
    skipped = capture.Skipped()
    frames = list(capture.read_frames(path, skipped))
    assert [f.payload for f in frames] == [b"hi"]
    assert skipped.counts == {"ethertype 0x0806": 1}


def test_a_file_that_is_not_a_capture_says_so(tmp_path):
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"\xd4\xc3\xb2\xa1garbage")
    with pytest.raises(capture.CaptureError, match="not a readable pcap"):
        list(capture.read_frames(bad))
