"""MoldUDP64 framing (PROTOCOLS.md).

Downstream packet::

    offset  size  field
    0       10    session (ASCII, space padded)
    10      8     sequence number of the first message (big-endian u64)
    18      2     message count (u16; 0 = heartbeat, 0xFFFF = end of session)
    20      ...   count x ([u16 length][message])
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable, Iterator, Sequence

HEADER = struct.Struct(">10sQH")
HEARTBEAT = 0
END_OF_SESSION = 0xFFFF
MAX_PAYLOAD = 1400  # bytes of messages per packet: stays under a 1500-byte MTU with IP/UDP


@dataclasses.dataclass(frozen=True)
class Packet:
    session: bytes
    sequence: int
    count: int
    messages: tuple[bytes, ...]


def session_bytes(session: str | bytes) -> bytes:
    raw = session.encode("ascii") if isinstance(session, str) else session
    if len(raw) > 10:
        raise ValueError(f"MoldUDP64 session {raw!r} is {len(raw)} bytes; it must be at most 10")
    return raw.ljust(10, b" ")


def pack(session: str | bytes, sequence: int, messages: Sequence[bytes]) -> bytes:
    body = b"".join(struct.pack(">H", len(m)) + m for m in messages)
    return HEADER.pack(session_bytes(session), sequence, len(messages)) + body


def heartbeat(session: str | bytes, next_sequence: int) -> bytes:
    return HEADER.pack(session_bytes(session), next_sequence, HEARTBEAT)


def end_of_session(session: str | bytes, next_sequence: int) -> bytes:
    return HEADER.pack(session_bytes(session), next_sequence, END_OF_SESSION)


def unpack(data: bytes) -> Packet:
    if len(data) < HEADER.size:
        raise ValueError(f"MoldUDP64 packet of {len(data)} bytes is shorter than its 20-byte header")
    session, seq, count = HEADER.unpack_from(data)
    msgs = []
    if count not in (HEARTBEAT, END_OF_SESSION):
        off = HEADER.size
        for i in range(count):
            if off + 2 > len(data):
                raise ValueError(f"MoldUDP64 packet seq {seq}: message {i} of {count} starts past the end")
            (n,) = struct.unpack_from(">H", data, off)
            if off + 2 + n > len(data):
                raise ValueError(f"MoldUDP64 packet seq {seq}: message {i} ({n} bytes) runs past the end")
            msgs.append(data[off + 2:off + 2 + n])
            off += 2 + n
    return Packet(session, seq, count, tuple(msgs))


def packetize(session: str | bytes, first_sequence: int, messages: Iterable[bytes],
              max_payload: int = MAX_PAYLOAD) -> Iterator[bytes]:
    """Batch messages into packets of at most ``max_payload`` message bytes, as a
    feed does; sequence numbers continue from ``first_sequence``."""
    seq, batch, size = first_sequence, [], 0
    for m in messages:
        if batch and size + 2 + len(m) > max_payload:
            yield pack(session, seq, batch)
            seq += len(batch)
            batch, size = [], 0
        batch.append(m)
        size += 2 + len(m)
    if batch:
        yield pack(session, seq, batch)
