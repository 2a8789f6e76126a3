"""NASDAQ BinaryFILE: a sequence of ``[u16 big-endian length][message]`` records.

Layout (PROTOCOLS.md)::

    offset  size  field
    0       2     message length N (big-endian)
    2       N     the message (ITCH: first byte is the message type)
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

_LEN = struct.Struct(">H")


class TruncatedRecord(ValueError):
    """A record's length runs past the end of the data."""


def iter_messages(data: bytes) -> Iterator[bytes]:
    """Yield each message; raise :class:`TruncatedRecord` naming the offset if the
    data ends inside a record."""
    off, end = 0, len(data)
    while off < end:
        if end - off < _LEN.size:
            raise TruncatedRecord(f"offset {off}: {end - off} byte(s) left, a length field needs 2")
        (n,) = _LEN.unpack_from(data, off)
        if off + 2 + n > end:
            raise TruncatedRecord(f"offset {off}: record of {n} bytes runs past the end ({end - off - 2} left)")
        yield data[off + 2:off + 2 + n]
        off += 2 + n


def encode(messages: Iterable[bytes]) -> bytes:
    return b"".join(_LEN.pack(len(m)) + m for m in messages)
