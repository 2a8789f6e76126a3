"""Market data kept (dpdk/src/recorder.c): frames handed over as the worker hands
them go to pcap files, one per line, with nanosecond timestamps, rotated at a
size; a datagram read from a socket is written behind valid Ethernet/IPv4/UDP
headers; a full ring drops and counts, never blocks; one-file mode takes every
line. The files read back through scapy and the project's own capture reader."""

from __future__ import annotations

import os
import socket
import struct

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from appliance.protocols import capture
from dpdk.recorder import Recorder, RecorderError


def frame(n: int, size: int = 100) -> bytes:
    """A UDP frame of the feed's shape, its payload marked with n."""
    return bytes(Ether() / IP(src="198.18.1.1", dst="239.198.1.1") / UDP(sport=30000, dport=26400)
                 / (n.to_bytes(4, "big") * (size // 4)))


def test_each_line_gets_its_own_capture_with_its_frames_in_order_and_their_nanoseconds(tmp_path):
    r = Recorder(directory=tmp_path, prefix="feed")
    r.start()
    t0 = 1_780_000_000_123_456_789
    for i in range(50):
        assert r.frame("AB"[i % 2], t0 + i, frame(i))
    r.stop()
    st = r.stats()
    assert st["frames"] == {"A": 25, "B": 25, "R": 0} and st["dropped"] == 0 and st["write_errors"] == 0
    files = r.files()
    assert [p.name.split("-")[1] for p in files] == ["A", "B"]
    for line, path in zip("AB", files, strict=True):
        assert path.name.startswith(f"feed-{line}-") and path.name.endswith("-0001.pcap")
        magic, major, minor, _, _, snaplen, link = struct.unpack("<IHHiIII", path.read_bytes()[:24])
        assert (magic, major, minor, link) == (0xa1b23c4d, 2, 4, 1)  # nanosecond pcap, Ethernet
        got = list(capture.read_frames(path))
        first = 0 if line == "A" else 1
        assert [f.ts_ns for f in got] == [t0 + i for i in range(first, 50, 2)]
        assert [int.from_bytes(f.payload[:4], "big") for f in got] == list(range(first, 50, 2))


def test_a_lines_capture_is_rotated_past_its_size(tmp_path):
    r = Recorder(directory=tmp_path, rotate_mb=0.01)  # 10,485 bytes
    r.start()
    for i in range(300):
        r.frame("A", 1_000 + i, frame(i, 200))
    r.stop()
    files = r.files()
    assert len(files) >= 6 and r.stats()["rotations"] == len(files) - 1
    biggest = 16 + len(frame(0, 200))  # a file passes the size by at most the record that passed it
    assert all(10_485 <= p.stat().st_size <= 10_485 + biggest for p in files[:-1])
    assert [p.name[-9:-5] for p in files] == [f"{i:04d}" for i in range(1, len(files) + 1)]
    assert sum(1 for p in files for _ in capture.read_frames(p)) == 300  # nothing lost at a rotation


def test_a_socket_datagram_is_written_behind_headers_a_reader_takes(tmp_path):
    path = tmp_path / "one.pcap"
    r = Recorder(single=path)
    payload = b"TWLAB00001" + (7).to_bytes(8, "big") + (1).to_bytes(2, "big") + b"\x00\x05hello"
    src, dst = socket.inet_aton("198.18.1.1"), socket.inet_aton("239.198.1.1")
    assert r.lib.tw_recorder_datagram(r._r, 0, 5, int.from_bytes(src, "little"), 30000,
                                      int.from_bytes(dst, "little"), 26400, payload, len(payload)) == 0
    r.frame("B", 6, frame(1))
    r.stop()
    got = list(capture.read_frames(path))
    assert len(got) == 2 and got[0].proto == "udp" and got[0].payload == payload
    assert (got[0].src, got[0].sport, got[0].dst, got[0].dport) == ("198.18.1.1", 30000, "239.198.1.1", 26400)
    raw = path.read_bytes()[24 + 16:]  # the first record's frame
    assert raw[:6] == bytes.fromhex("01005e460101")  # the group's multicast MAC
    ip = raw[14:34]
    words = sum(struct.unpack("!10H", ip))
    while words >> 16:
        words = (words & 0xFFFF) + (words >> 16)
    assert words == 0xFFFF  # the header checksum adds up
    assert struct.unpack("!H", ip[2:4])[0] == 28 + len(payload)


def test_a_full_ring_drops_and_counts_and_the_producer_never_waits(tmp_path):
    r = Recorder(directory=tmp_path, ring_mb=0)  # the smallest ring, 4 KiB; no writer running
    took = sum(r.frame("A", i, frame(i, 500)) for i in range(100))
    st = r.stats()
    assert 0 < took < 100 and st["dropped"] == 100 - took and st["queued_bytes"] > 0
    r.stop()  # what it held is written
    assert r.stats()["frames"]["A"] == took and r.stats()["queued_bytes"] == 0


def test_mistakes_are_named(tmp_path):
    with pytest.raises(RecorderError, match="no such folder"):
        Recorder(directory=tmp_path / "nope")
    with pytest.raises(RecorderError, match="not both"):
        Recorder(directory=tmp_path, single=tmp_path / "x.pcap")
    with pytest.raises(RecorderError, match="does not exist"):
        Recorder(single=tmp_path / "no" / "x.pcap")


def test_a_cut_datagram_keeps_its_wire_length_and_one_file_goes_on_after_a_restart(tmp_path):
    path = tmp_path / "one.pcap"
    r = Recorder(single=path, snaplen=128)
    payload = bytes(range(200))
    assert r.lib.tw_recorder_datagram(r._r, 0, 5, 0, 1, 0, 2, payload, len(payload)) == 0
    r.start()
    r.stop()
    raw = path.read_bytes()
    caplen, orig = struct.unpack_from("<II", raw, 24 + 8)
    assert (caplen, orig) == (128, 242)  # kept what fits, says what came (a reader sees the cut)
    assert struct.unpack_from(">H", raw, 24 + 16 + 14 + 2)[0] == 228  # the IP header says the whole datagram
    r.frame("A", 6, frame(1))
    r.start()  # the same recorder again: its one file goes on, not started anew
    r.stop()
    assert path.read_bytes().startswith(raw) and len(path.read_bytes()) > len(raw)


def test_the_kept_captures_are_capped_the_oldest_closed_files_deleted_never_an_open_one(tmp_path, capfd):
    earlier = tmp_path / "B-20200101T000000Z-0001.pcap"  # an earlier run's capture: the oldest, it goes first
    earlier.write_bytes(b"\0" * 20_000)
    os.utime(earlier, (1_600_000_000, 1_600_000_000))
    foreign = [tmp_path / "feed-A-20200101T000000Z-0001.pcap", tmp_path / "notes.txt"]  # not ours: left alone
    for p in foreign:
        p.write_bytes(b"\0" * 50_000)
        os.utime(p, (1_500_000_000, 1_500_000_000))
    r = Recorder(directory=tmp_path, rotate_mb=0.01, keep_mb=0.05)  # a file ~10 KiB, ~51 KiB in all
    r.start()
    for i in range(1200):
        r.frame("AB"[i % 2], 1_000 + i, frame(i, 200))
    r.stop()
    st = r.stats()
    files = r.files()
    assert not earlier.exists() and all(p.exists() for p in foreign)
    assert st["deleted_files"] >= 10 and st["rotations"] >= 20
    total = sum(p.stat().st_size for p in files)
    assert total <= 52_428 + 2 * (10_485 + 300)  # the cap, plus what the two open files took since
    for line in "AB":  # the newest files of each line are kept, unbroken, up to the one open at the end
        mine = [p for p in files if p.name.startswith(f"{line}-")]
        idx = [int(p.name[-9:-5]) for p in mine]
        assert idx == list(range(idx[0], idx[0] + len(idx))) and idx[-1] == st["files"] // 2
        got = list(capture.read_frames(mine[-1]))
        assert got and int.from_bytes(got[-1].payload[:4], "big") == 1198 + (line == "B")  # the last frames
    err = capfd.readouterr().err
    assert err.count("tickwire recorder: deleted ") == st["deleted_files"] and str(earlier) in err
    assert "journal.market_data_keep_mb" in err
    r = Recorder(directory=tmp_path, rotate_mb=0.01, keep_mb=0.001)  # less than one file: only open ones stay
    r.start()
    for i in range(200):
        r.frame("A", 5_000 + i, frame(i, 200))
    r.stop()
    assert len(r.files()) == 1 and r.stats()["frames"]["A"] == 200 and r.stats()["deleted_files"] >= 3
    got = list(capture.read_frames(r.files()[0]))
    assert int.from_bytes(got[-1].payload[:4], "big") == 199
    with pytest.raises(RecorderError, match="keep -1 MB of captures: .*journal.market_data_keep_mb"):
        Recorder(directory=tmp_path, keep_mb=-1)
