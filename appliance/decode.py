"""``tickwire decode FILE``: every message in a BinaryFILE or a pcap/pcapng capture.

* BinaryFILE (``[u16 length][ITCH message]``...): each ITCH message, with its
  record's file offset.
* pcap/pcapng: every UDP payload is read as MoldUDP64 (downstream packets,
  heartbeats, end of session, retransmission requests) carrying ITCH; every TCP
  stream is reassembled per direction and read as SoupBinTCP, whose ``U`` and
  ``S`` packets carry OUCH 5.0 (inbound and outbound).

Each message becomes one JSON object; Mold session and sequence number are
included when present. Malformed input (a truncated record or packet, a length
that does not match the type, an unknown type, a count that overruns its packet)
is reported with where it is, counted by kind, and decoding goes on.
"""

from __future__ import annotations

import collections
import dataclasses
import pathlib
from collections.abc import Iterator
from typing import Any

from appliance.protocols import capture, itch, moldudp64, ouch, soupbintcp

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d", capture.PCAPNG_MAGIC}


@dataclasses.dataclass
class Problem:
    kind: str     # truncated, unknown type, length mismatch, overrun, bad packet
    where: str    # "offset 1234" or "frame 7 (udp 1.2.3.4:5 > ...), byte 42"
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"error": self.kind, "where": self.where, "detail": self.detail}


@dataclasses.dataclass
class Stats:
    by_type: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    problems: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    sessions: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    packets: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    skipped_frames: dict[str, int] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"messages": sum(self.by_type.values()), "by_type": dict(sorted(self.by_type.items())),
                "malformed": sum(self.problems.values()), "malformed_by_kind": dict(self.problems),
                "packets": dict(self.packets), "mold_sessions": self.sessions, "skipped_frames": self.skipped_frames}


def file_kind(path: pathlib.Path) -> str:
    with open(path, "rb") as f:
        head = f.read(4)
    return "capture" if head in PCAP_MAGICS else "binaryfile"


def _itch_problem(msg: bytes, where: str, exc: Exception) -> Problem:
    if not msg:
        kind = "empty message"
    elif msg[0] not in itch.BY_TYPE_BYTE:
        kind = "unknown type"
    else:
        kind = "length mismatch"
    return Problem(kind, where, str(exc))


def decode_binaryfile(path: pathlib.Path, stats: Stats) -> Iterator[dict[str, Any] | Problem]:
    data = path.read_bytes()
    off = 0
    while off < len(data):
        if len(data) - off < 2:
            yield Problem("truncated", f"offset {off}", f"{len(data) - off} byte(s) left, a length field needs 2")
            return
        n = int.from_bytes(data[off:off + 2], "big")
        if off + 2 + n > len(data):
            yield Problem("truncated", f"offset {off}",
                          f"record of {n} bytes runs past the end ({len(data) - off - 2} left)")
            return
        msg = data[off + 2:off + 2 + n]
        try:
            rec = itch.decode(msg)
        except itch.ItchError as exc:
            yield _itch_problem(msg, f"offset {off}", exc)
        else:
            stats.by_type[rec.TYPE] += 1
            yield {"offset": off, **itch.to_json(rec)}
        off += 2 + n


def _frame_where(fr: capture.Frame) -> str:
    return f"frame {fr.index} ({fr.proto} {fr.src}:{fr.sport} > {fr.dst}:{fr.dport})"


def _decode_mold(fr: capture.Frame, stats: Stats) -> Iterator[dict[str, Any] | Problem]:
    data = fr.payload
    base = {"frame": fr.index, "ts_ns": fr.ts_ns}
    if len(data) < moldudp64.HEADER.size:
        yield Problem("truncated", _frame_where(fr), f"MoldUDP64 packet of {len(data)} bytes is shorter than 20")
        return
    session_raw, seq, count = moldudp64.HEADER.unpack_from(data)
    session = session_raw.decode("ascii", "replace")
    base.update(session=session)
    sess = stats.sessions.setdefault(session, {"first_sequence": seq, "next_sequence": seq, "packets": 0})
    sess["packets"] += 1
    if len(data) == moldudp64.HEADER.size and count not in (moldudp64.HEARTBEAT, moldudp64.END_OF_SESSION):
        stats.packets["retransmission request"] += 1
        yield {**base, "mold": "request", "sequence": seq, "count": count}
        return
    if count == moldudp64.HEARTBEAT or count == moldudp64.END_OF_SESSION:
        kind = "heartbeat" if count == moldudp64.HEARTBEAT else "end of session"
        stats.packets[kind] += 1
    try:
        for i, off, msg in moldudp64.iter_blocks(data):
            where = f"{_frame_where(fr)}, byte {off}"
            try:
                rec = itch.decode(msg)
            except itch.ItchError as exc:
                yield _itch_problem(msg, where, exc)
                continue
            stats.by_type[rec.TYPE] += 1
            yield {**base, "sequence": seq + i, **itch.to_json(rec)}
        if count in (moldudp64.HEARTBEAT, moldudp64.END_OF_SESSION):
            yield {**base, "mold": "heartbeat" if count == moldudp64.HEARTBEAT else "end_of_session",
                   "next_sequence": seq}
        else:
            stats.packets["data"] += 1
            sess["next_sequence"] = max(sess["next_sequence"], seq + count)
    except moldudp64.MoldError as exc:
        yield Problem("overrun" if "past the end" in str(exc) else "bad packet", _frame_where(fr), str(exc))


def _decode_soup(fr: capture.Frame, offset: int, body: bytes, stats: Stats) -> Iterator[dict[str, Any] | Problem]:
    where = f"{_frame_where(fr)}, stream byte {offset}"
    base = {"frame": fr.index, "ts_ns": fr.ts_ns, "src": f"{fr.src}:{fr.sport}", "dst": f"{fr.dst}:{fr.dport}"}
    try:
        pkt = soupbintcp.decode(body)
    except soupbintcp.SoupError as exc:
        yield Problem("unknown type" if "unknown" in str(exc) else "length mismatch", where, str(exc))
        return
    stats.packets[f"soupbintcp {type(pkt).__name__}"] += 1
    if isinstance(pkt, (soupbintcp.UnsequencedData, soupbintcp.SequencedData)):
        dec = ouch.decode_inbound if isinstance(pkt, soupbintcp.UnsequencedData) else ouch.decode_outbound
        try:
            rec = dec(pkt.message)
        except ouch.OuchError as exc:
            kind = "unknown type" if "unknown" in str(exc) else "length mismatch"
            yield Problem(kind, where, str(exc))
            return
        stats.by_type[f"ouch {rec.DIRECTION} {rec.TYPE}"] += 1
        yield {**base, "soupbintcp": pkt.TYPE, **ouch.to_json(rec)}
        return
    fields = {k: v for k, v in dataclasses.asdict(pkt).items() if k != "password"}
    yield {**base, "soupbintcp": pkt.TYPE, "packet": type(pkt).__name__, **fields}


def decode_capture(path: pathlib.Path, stats: Stats) -> Iterator[dict[str, Any] | Problem]:
    skipped = capture.Skipped()
    flows: dict[tuple, tuple[capture.TcpReassembler, soupbintcp.Framer]] = {}
    broken: set[tuple] = set()
    frames = capture.read_frames(path, skipped)
    while True:
        try:
            fr = next(frames)
        except StopIteration:
            break
        except capture.CaptureError as exc:  # a damaged or cut capture: keep what came before
            yield Problem("bad capture", str(path), str(exc))
            break
        if fr.proto == "udp":
            yield from _decode_mold(fr, stats)
            continue
        if fr.flow in broken:
            continue
        asm, framer = flows.setdefault(fr.flow, (capture.TcpReassembler(), soupbintcp.Framer()))
        data = asm.add(fr.tcp_seq, fr.tcp_flags, fr.payload)
        try:
            for offset, body in framer.feed(data):
                yield from _decode_soup(fr, offset, body, stats)
        except soupbintcp.SoupError as exc:
            broken.add(fr.flow)  # a zero length cannot be resynchronised: skip the rest of this direction
            yield Problem("bad packet", _frame_where(fr), f"{exc}; the rest of this TCP direction is skipped")
    for flow, (asm, framer) in flows.items():
        if framer.pending and flow not in broken:
            yield Problem("truncated", f"tcp {flow[0]}:{flow[1]} > {flow[2]}:{flow[3]}",
                          f"the stream ends inside a SoupBinTCP packet ({framer.pending} bytes held)")
        if asm.held:
            yield Problem("truncated", f"tcp {flow[0]}:{flow[1]} > {flow[2]}:{flow[3]}",
                          f"{len(asm.held)} segment(s) after a hole in the capture were never placed")
    stats.skipped_frames = skipped.counts


def decode_file(path: str | pathlib.Path, stats: Stats | None = None) -> Iterator[dict[str, Any] | Problem]:
    """Decoded messages (dicts) and problems, in file order; ``stats`` is filled as it goes."""
    path = pathlib.Path(path)
    stats = stats if stats is not None else Stats()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    gen = decode_capture(path, stats) if file_kind(path) == "capture" else decode_binaryfile(path, stats)
    for item in gen:
        if isinstance(item, Problem):
            stats.problems[item.kind] += 1
        yield item


__all__ = ["decode_file", "Stats", "Problem", "file_kind"]
