"""MoldUDP64 framing and NASDAQ BinaryFILE, against the layouts in PROTOCOLS.md."""

from __future__ import annotations

import itertools
import re
import struct

import pytest

from appliance.protocols import binaryfile, moldudp64
from common import paths


def test_a_packet_round_trips_with_its_header_fields():
    raw = moldudp64.pack("SESS1", 42, [b"Sabc", b"Axyz12"])
    assert raw[:10] == b"SESS1     "
    assert struct.unpack(">QH", raw[10:20]) == (42, 2)
    p = moldudp64.unpack(raw)
    assert (p.session, p.sequence, p.count, p.messages) == (b"SESS1     ", 42, 2, (b"Sabc", b"Axyz12"))


def test_heartbeat_and_end_of_session_carry_no_messages():
    assert moldudp64.unpack(moldudp64.heartbeat("S", 7)).count == moldudp64.HEARTBEAT
    eos = moldudp64.unpack(moldudp64.end_of_session("S", 9))
    assert (eos.sequence, eos.count, eos.messages) == (9, 0xFFFF, ())


def test_packetize_batches_under_the_payload_limit_and_continues_sequences():
    msgs = [bytes([65]) * 36 for _ in range(100)]
    packets = [moldudp64.unpack(p) for p in moldudp64.packetize("S", 1000, msgs, max_payload=400)]
    assert all(len(moldudp64.pack("S", 0, p.messages)) - 20 <= 400 for p in packets)
    assert packets[0].sequence == 1000
    for a, b in itertools.pairwise(packets):
        assert b.sequence == a.sequence + a.count
    assert sum(p.count for p in packets) == 100


@pytest.mark.parametrize("raw, message", [
    (b"short", "shorter than its 20-byte header"),
    (moldudp64.pack("S", 1, [b"abcd"])[:-1], "message 0 (4 bytes) at offset 20 runs past the end"),
    (moldudp64.HEADER.pack(b"S" * 10, 1, 2) + b"\x00\x01a", "message 1 of 2 starts past the end"),
], ids=["short", "truncated-message", "count-overruns"])
def test_malformed_packets_say_where(raw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        moldudp64.unpack(raw)


def test_a_session_longer_than_ten_bytes_is_refused():
    with pytest.raises(ValueError, match="at most 10"):
        moldudp64.pack("ELEVENCHARS", 1, [])


def test_binaryfile_round_trips():
    msgs = [b"S" + bytes(11), b"A" + bytes(35)]
    assert list(binaryfile.iter_messages(binaryfile.encode(msgs))) == msgs


def test_binaryfile_truncation_names_the_offset():
    data = binaryfile.encode([b"abc"]) + b"\x00\x05ab"
    with pytest.raises(binaryfile.TruncatedRecord, match="offset 5: record of 5 bytes"):
        list(binaryfile.iter_messages(data))


def test_the_genuine_nasdaq_sample_reads_as_1000_itch_messages():
    sample = paths.sample_itch()
    if sample is None:
        pytest.skip("../shared/data/nasdaq/sample-first-1000.itch is absent (set TICKWIRE_SHARED_DATA)")
    msgs = list(binaryfile.iter_messages(sample.read_bytes()))
    assert len(msgs) == 1000
    assert msgs[0][:1] == b"S" and len(msgs[0]) == 12  # the day opens with a system event
    assert {m[:1] for m in msgs} >= {b"S", b"R"}
