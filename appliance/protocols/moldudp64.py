"""MoldUDP64 framing (PROTOCOLS.md).

Downstream packet::

    offset  size  field
    0       10    session (ASCII, space padded)
    10      8     sequence number of the first message (big-endian u64)
    18      2     message count (u16; 0 = heartbeat, 0xFFFF = end of session)
    20      ...   count x ([u16 length][message])

A retransmission request (sent unicast to the re-request server) is the bare
20-byte header: sequence = the first message wanted, count = how many. The answer
is an ordinary downstream packet sent back unicast.

Errors are :class:`MoldError`, naming the sequence number and the message index.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable, Iterator, Sequence

HEADER = struct.Struct(">10sQH")
HEARTBEAT = 0
END_OF_SESSION = 0xFFFF
MAX_PAYLOAD = 1400  # bytes of messages per packet: stays under a 1500-byte MTU with IP/UDP


class MoldError(ValueError):
    """A packet that is not valid MoldUDP64."""


@dataclasses.dataclass(frozen=True)
class Request:
    """A retransmission request: ``count`` messages from ``sequence``."""

    session: bytes
    sequence: int
    count: int


@dataclasses.dataclass(frozen=True)
class Packet:
    session: bytes
    sequence: int
    count: int
    messages: tuple[bytes, ...]


def session_bytes(session: str | bytes) -> bytes:
    raw = session.encode("ascii") if isinstance(session, str) else session
    if len(raw) > 10:
        raise MoldError(f"MoldUDP64 session {raw!r} is {len(raw)} bytes; it must be at most 10")
    return raw.ljust(10, b" ")


def pack(session: str | bytes, sequence: int, messages: Sequence[bytes]) -> bytes:
    body = b"".join(struct.pack(">H", len(m)) + m for m in messages)
    return HEADER.pack(session_bytes(session), sequence, len(messages)) + body


def heartbeat(session: str | bytes, next_sequence: int) -> bytes:
    return HEADER.pack(session_bytes(session), next_sequence, HEARTBEAT)


def end_of_session(session: str | bytes, next_sequence: int) -> bytes:
    return HEADER.pack(session_bytes(session), next_sequence, END_OF_SESSION)


def iter_blocks(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """``(index, offset, message)`` for each message block of a downstream packet,
    in order; raises :class:`MoldError` at the first block that does not fit,
    after yielding the ones before it (so a decoder keeps what is good)."""
    if len(data) < HEADER.size:
        raise MoldError(f"MoldUDP64 packet of {len(data)} bytes is shorter than its 20-byte header")
    _, seq, count = HEADER.unpack_from(data)
    if count in (HEARTBEAT, END_OF_SESSION):
        if len(data) != HEADER.size:
            kind = "heartbeat" if count == HEARTBEAT else "end of session"
            raise MoldError(f"MoldUDP64 packet seq {seq}: a {kind} has no messages, got "
                            f"{len(data) - HEADER.size} bytes after the header")
        return
    off = HEADER.size
    for i in range(count):
        if off + 2 > len(data):
            raise MoldError(f"MoldUDP64 packet seq {seq}: message {i} of {count} starts past the end (offset {off})")
        (n,) = struct.unpack_from(">H", data, off)
        if off + 2 + n > len(data):
            raise MoldError(f"MoldUDP64 packet seq {seq}: message {i} ({n} bytes) at offset {off} runs past the end")
        yield i, off, data[off + 2:off + 2 + n]
        off += 2 + n
    if off != len(data):
        raise MoldError(f"MoldUDP64 packet seq {seq}: {len(data) - off} bytes after its {count} messages")


def unpack(data: bytes) -> Packet:
    """A whole downstream packet; :class:`MoldError` if any part is malformed."""
    msgs = tuple(m for _, _, m in iter_blocks(data))
    session, seq, count = HEADER.unpack_from(data)
    return Packet(session, seq, count, msgs)


def request(session: str | bytes, sequence: int, count: int) -> bytes:
    """A retransmission request for ``count`` messages starting at ``sequence``."""
    if not 1 <= count < END_OF_SESSION:
        raise MoldError(f"MoldUDP64 request count {count} must be within 1..65534")
    return HEADER.pack(session_bytes(session), sequence, count)


def unpack_request(data: bytes) -> Request:
    if len(data) != HEADER.size:
        raise MoldError(f"MoldUDP64 request is 20 bytes, got {len(data)}")
    session, seq, count = HEADER.unpack(data)
    if not 1 <= count < END_OF_SESSION:
        raise MoldError(f"MoldUDP64 request seq {seq}: count {count} must be within 1..65534")
    return Request(session, seq, count)


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
