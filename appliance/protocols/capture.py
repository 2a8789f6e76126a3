"""pcap and pcapng files of MoldUDP64 and SoupBinTCP traffic: read and write.

Reading: scapy's raw readers (pcap and pcapng, any timestamp resolution) give
frames and exact nanosecond times; this module parses Ethernet (up to two VLAN
tags), Linux cooked capture and raw IPv4, then UDP or TCP. TCP payloads are put
back in stream order per direction (:class:`TcpReassembler`: retransmissions
trimmed, segments after a hole held until it fills).

Writing: frames are built here (Ethernet/IPv4/UDP or TCP with correct checksums)
and written by :class:`PcapWriter` (nanosecond pcap, magic a1b23c4d) or
:class:`PcapNgWriter` (``if_tsresol`` = 9), by hand: scapy's pcapng writer keeps
only microseconds, a trading capture needs nanoseconds, and its pcap writer only
starts a file from a scapy Packet, not from raw frames. Both formats are a few
fixed headers; the tests read what these write back through scapy and tshark.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import pathlib
import struct
import time
from collections.abc import Iterator
from typing import BinaryIO

from scapy.utils import RawPcapNgReader, RawPcapReader

# scapy logs a warning per damaged block; this module raises CaptureError instead
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL = 1, 101, 113
ETH_IPV4, ETH_VLAN, ETH_QINQ = 0x0800, 0x8100, 0x88A8
PROTO_TCP, PROTO_UDP = 6, 17
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


class CaptureError(ValueError):
    """A capture file that cannot be read."""


@dataclasses.dataclass(frozen=True)
class Frame:
    """One UDP datagram or TCP segment from a capture."""

    index: int         # frame number in the file, from 1 (as tshark counts)
    ts_ns: int         # capture time, nanoseconds since the epoch
    proto: str         # "udp" or "tcp"
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes
    tcp_seq: int = 0
    tcp_flags: int = 0

    @property
    def flow(self) -> tuple[str, int, str, int]:
        return (self.src, self.sport, self.dst, self.dport)


@dataclasses.dataclass
class Skipped:
    """Frames a reader passed over, by reason (so nothing is dropped silently)."""

    counts: dict[str, int] = dataclasses.field(default_factory=dict)

    def add(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1


def _raw_frames(path: pathlib.Path) -> Iterator[tuple[bytes, int, int]]:
    """(frame bytes, ts in ns, linktype) for each record of a pcap or pcapng file."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if len(magic) < 4:
        raise CaptureError(f"{path}: too short to be a capture ({len(magic)} bytes)")
    # our own file object: a scapy reader that fails in its constructor would leave its own open
    with open(path, "rb") as fd:
        try:
            if magic == PCAPNG_MAGIC:
                reader = RawPcapNgReader(fd)
                for data, meta in reader:
                    ts = (meta.tshigh << 32) | meta.tslow
                    yield data, ts * 1_000_000_000 // meta.tsresol, meta.linktype
            else:
                reader = RawPcapReader(fd)
                scale = 1 if reader.nano else 1_000
                for data, meta in reader:
                    yield data, meta.sec * 1_000_000_000 + meta.usec * scale, reader.linktype
        except CaptureError:
            raise
        except Exception as exc:  # scapy raises Scapy_Exception and struct errors on bad files
            raise CaptureError(f"{path}: not a readable pcap or pcapng file ({exc})") from exc


def _ipv4(data: bytes, off: int, index: int, ts: int, skipped: Skipped) -> Frame | None:
    if len(data) < off + 20 or data[off] >> 4 != 4:
        skipped.add("not IPv4")
        return None
    ihl = (data[off] & 0x0F) * 4
    total = struct.unpack_from(">H", data, off + 2)[0]
    frag = struct.unpack_from(">H", data, off + 6)[0]
    if frag & 0x3FFF:
        skipped.add("IPv4 fragment")
        return None
    proto = data[off + 9]
    src, dst = str(ipaddress.IPv4Address(data[off + 12:off + 16])), str(ipaddress.IPv4Address(data[off + 16:off + 20]))
    end = min(len(data), off + total) if total else len(data)
    l4 = off + ihl
    if proto == PROTO_UDP and end - l4 >= 8:
        sport, dport = struct.unpack_from(">HH", data, l4)
        return Frame(index, ts, "udp", src, sport, dst, dport, bytes(data[l4 + 8:end]))
    if proto == PROTO_TCP and end - l4 >= 20:
        sport, dport, seq = struct.unpack_from(">HHI", data, l4)
        doff = (data[l4 + 12] >> 4) * 4
        return Frame(index, ts, "tcp", src, sport, dst, dport, bytes(data[l4 + doff:end]), seq, data[l4 + 13])
    skipped.add(f"IP protocol {proto}")
    return None


def read_frames(path: str | pathlib.Path, skipped: Skipped | None = None) -> Iterator[Frame]:
    """Every UDP datagram and TCP segment in the file, in file order."""
    skipped = skipped if skipped is not None else Skipped()
    for index, (data, ts, linktype) in enumerate(_raw_frames(pathlib.Path(path)), start=1):
        if linktype == LINKTYPE_ETHERNET:
            if len(data) < 14:
                skipped.add("short Ethernet frame")
                continue
            off, ethertype = 14, struct.unpack_from(">H", data, 12)[0]
            for _ in range(2):
                if ethertype in (ETH_VLAN, ETH_QINQ) and len(data) >= off + 4:
                    ethertype = struct.unpack_from(">H", data, off + 2)[0]
                    off += 4
            if ethertype != ETH_IPV4:
                skipped.add(f"ethertype 0x{ethertype:04x}")
                continue
        elif linktype == LINKTYPE_LINUX_SLL:
            off = 16
        elif linktype == LINKTYPE_RAW:
            off = 0
        else:
            skipped.add(f"link type {linktype}")
            continue
        frame = _ipv4(data, off, index, ts, skipped)
        if frame is not None:
            yield frame


class TcpReassembler:
    """One direction of a TCP connection, put back into stream order."""

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.held: dict[int, bytes] = {}
        self.retransmitted = 0

    def add(self, seq: int, flags: int, payload: bytes) -> bytes:
        """The bytes this segment makes newly available in order (may be empty)."""
        if flags & TCP_SYN:
            self.next_seq = (seq + 1) & 0xFFFFFFFF
            return b""
        if not payload:
            return b""
        if self.next_seq is None:  # the capture began mid-stream
            self.next_seq = seq
        delta = (seq - self.next_seq) & 0xFFFFFFFF
        if delta >= 1 << 31:  # starts before next_seq: a retransmission, maybe with new bytes
            overlap = (self.next_seq - seq) & 0xFFFFFFFF
            if overlap >= len(payload):
                self.retransmitted += 1
                return b""
            payload, seq, delta = payload[overlap:], self.next_seq, 0
        if delta:
            self.held[seq] = payload
            return b""
        out = bytearray(payload)
        self.next_seq = (self.next_seq + len(payload)) & 0xFFFFFFFF
        while self.next_seq in self.held:
            chunk = self.held.pop(self.next_seq)
            out += chunk
            self.next_seq = (self.next_seq + len(chunk)) & 0xFFFFFFFF
        return bytes(out)


# ---- writing -----------------------------------------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _mac(ip: str) -> bytes:
    """A locally administered MAC derived from the address (02:74:77:a.b.c.d);
    IPv4 multicast groups get their 01:00:5e mapping."""
    raw = ipaddress.IPv4Address(ip).packed
    if ipaddress.IPv4Address(ip).is_multicast:
        return b"\x01\x00\x5e" + bytes((raw[1] & 0x7F, raw[2], raw[3]))
    return b"\x02\x74" + raw


def ipv4_frame(src: tuple[str, int], dst: tuple[str, int], proto: int, l4: bytes, ident: int = 0) -> bytes:
    s, d = ipaddress.IPv4Address(src[0]).packed, ipaddress.IPv4Address(dst[0]).packed
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident & 0xFFFF, 0x4000, 64, proto, 0, s, d)
    header = header[:10] + struct.pack(">H", _checksum(header)) + header[12:]
    return _mac(dst[0]) + _mac(src[0]) + struct.pack(">H", ETH_IPV4) + header + l4


def udp_frame(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    s, d = ipaddress.IPv4Address(src[0]).packed, ipaddress.IPv4Address(dst[0]).packed
    length = 8 + len(payload)
    pseudo = s + d + struct.pack(">BBH", 0, PROTO_UDP, length)
    udp = struct.pack(">HHHH", src[1], dst[1], length, 0) + payload
    csum = _checksum(pseudo + udp) or 0xFFFF
    return ipv4_frame(src, dst, PROTO_UDP, udp[:6] + struct.pack(">H", csum) + udp[8:])


def tcp_frame(src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: int, payload: bytes) -> bytes:
    s, d = ipaddress.IPv4Address(src[0]).packed, ipaddress.IPv4Address(dst[0]).packed
    tcp = struct.pack(">HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
    pseudo = s + d + struct.pack(">BBH", 0, PROTO_TCP, len(tcp) + len(payload))
    csum = _checksum(pseudo + tcp + payload)
    return ipv4_frame(src, dst, PROTO_TCP, tcp[:16] + struct.pack(">H", csum) + tcp[18:] + payload)


class PcapWriter:
    """Classic pcap, nanosecond variant: a 24-byte file header (magic 0xa1b23c4d,
    version 2.4, snaplen, link type Ethernet), then per frame a 16-byte record
    header (seconds, nanoseconds, captured length, wire length) and the frame."""

    def __init__(self, f: BinaryIO):
        self.f = f
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))

    def write(self, frame: bytes, ts_ns: int) -> None:
        sec, nsec = divmod(ts_ns, 1_000_000_000)
        self.f.write(struct.pack("<IIII", sec, nsec, len(frame), len(frame)) + frame)


class PcapNgWriter:
    """pcapng with one Ethernet interface and nanosecond timestamps (if_tsresol 9).

    Blocks (little-endian, each padded to 4 bytes and closed by its length again):
    Section Header (0x0A0D0D0A), Interface Description (1) with option 9
    if_tsresol = 9, then one Enhanced Packet (6) per frame."""

    def __init__(self, f: BinaryIO):
        self.f = f
        self._block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
        options = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
        self._block(1, struct.pack("<HHI", LINKTYPE_ETHERNET, 0, 0) + options)

    def _block(self, btype: int, body: bytes) -> None:
        body += b"\x00" * (-len(body) % 4)
        total = 12 + len(body)
        self.f.write(struct.pack("<II", btype, total) + body + struct.pack("<I", total))

    def write(self, frame: bytes, ts_ns: int) -> None:
        self._block(6, struct.pack("<IIIII", 0, ts_ns >> 32, ts_ns & 0xFFFFFFFF, len(frame), len(frame)) + frame)


class CaptureWriter:
    """Write frames to ``path``: pcapng when it ends in ``.pcapng``, pcap otherwise.

    ``udp`` writes one datagram; ``tcp_connection`` returns a :class:`TcpConnection`
    that numbers segments for both directions (with a handshake, so tools see a
    whole stream)."""

    def __init__(self, path: str | pathlib.Path, clock=time.time_ns):
        self.path = pathlib.Path(path)
        self.clock = clock
        self._file = open(self.path, "wb")
        self._writer = PcapNgWriter(self._file) if self.path.suffix == ".pcapng" else PcapWriter(self._file)

    def frame(self, data: bytes, ts_ns: int | None = None) -> None:
        self._writer.write(data, self.clock() if ts_ns is None else ts_ns)

    def udp(self, payload: bytes, src: tuple[str, int], dst: tuple[str, int], ts_ns: int | None = None) -> None:
        self.frame(udp_frame(src, dst, payload), ts_ns)

    def tcp_connection(self, client: tuple[str, int], server: tuple[str, int],
                       ts_ns: int | None = None) -> TcpConnection:
        return TcpConnection(self, client, server, ts_ns)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TcpConnection:
    """Both directions of one TCP connection in a capture being written."""

    def __init__(self, w: CaptureWriter, client: tuple[str, int], server: tuple[str, int], ts_ns: int | None):
        self.w, self.client, self.server = w, client, server
        self.seq = {"client": 1000, "server": 5000}
        w.frame(tcp_frame(client, server, self.seq["client"], 0, TCP_SYN, b""), ts_ns)
        w.frame(tcp_frame(server, client, self.seq["server"], self.seq["client"] + 1, TCP_SYN | TCP_ACK, b""),
                ts_ns)
        self.seq = {"client": self.seq["client"] + 1, "server": self.seq["server"] + 1}

    def send(self, side: str, payload: bytes, ts_ns: int | None = None) -> None:
        """``side`` is "client" or "server"; the other side's next sequence is acked."""
        other = "server" if side == "client" else "client"
        src, dst = (self.client, self.server) if side == "client" else (self.server, self.client)
        self.w.frame(tcp_frame(src, dst, self.seq[side], self.seq[other], TCP_PSH | TCP_ACK, payload), ts_ns)
        self.seq[side] = (self.seq[side] + len(payload)) & 0xFFFFFFFF
