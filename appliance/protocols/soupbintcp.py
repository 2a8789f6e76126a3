"""SoupBinTCP 3.00: the order-entry session's framing over TCP (PROTOCOLS.md).

Packet: ``[u16 length, counting the type byte][type][payload]``.

=====  ========  ====================  ==========================================
type   from      packet                payload
=====  ========  ====================  ==========================================
``L``  client    login request         username 6, password 10, session 10,
                                       sequence 20 (ASCII digits)
``A``  server    login accepted        session 10, sequence 20 (ASCII digits)
``J``  server    login rejected        reason 1 (``A`` not authorised,
                                       ``S`` session unavailable)
``U``  client    unsequenced data      one application message
``S``  server    sequenced data        one application message
``R``  client    client heartbeat      -
``H``  server    server heartbeat      -
``O``  client    logout request        -
``Z``  server    end of session        -
``+``  both      debug                 text
=====  ========  ====================  ==========================================

Numeric ASCII fields are padded differently by different implementations: this
parser trims spaces on both sides (and reads all spaces as 0); the encoder
right-justifies numbers and left-justifies text, as NASDAQ does.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterator
from typing import Any

from appliance.protocols import capture

_LEN = struct.Struct(">H")
HEARTBEAT_INTERVAL = 1.0   # seconds of silence before a side sends a heartbeat
LINK_TIMEOUT = 15.0        # seconds of silence after which the link is dead
MAX_PACKET = 0xFFFF


class SoupError(ValueError):
    """A packet that is not valid SoupBinTCP 3.00."""


@dataclasses.dataclass(frozen=True)
class LoginRequest:
    username: str
    password: str = dataclasses.field(repr=False)  # never in a repr (a log line, a traceback)
    session: str = ""          # blank: the current session
    sequence: int = 0          # next sequence number wanted; 0: start from the current end
    TYPE = "L"


@dataclasses.dataclass(frozen=True)
class LoginAccepted:
    session: str
    sequence: int              # the sequence number of the next sequenced packet
    TYPE = "A"


@dataclasses.dataclass(frozen=True)
class LoginRejected:
    reason: str                # A not authorised, S session not available
    TYPE = "J"


@dataclasses.dataclass(frozen=True)
class UnsequencedData:
    message: bytes
    TYPE = "U"


@dataclasses.dataclass(frozen=True)
class SequencedData:
    message: bytes
    TYPE = "S"


@dataclasses.dataclass(frozen=True)
class ClientHeartbeat:
    TYPE = "R"


@dataclasses.dataclass(frozen=True)
class ServerHeartbeat:
    TYPE = "H"


@dataclasses.dataclass(frozen=True)
class LogoutRequest:
    TYPE = "O"


@dataclasses.dataclass(frozen=True)
class EndOfSession:
    TYPE = "Z"


@dataclasses.dataclass(frozen=True)
class Debug:
    text: str
    TYPE = "+"


Packet = (LoginRequest | LoginAccepted | LoginRejected | UnsequencedData | SequencedData | ClientHeartbeat
          | ServerHeartbeat | LogoutRequest | EndOfSession | Debug)
EMPTY = {"R": ClientHeartbeat, "H": ServerHeartbeat, "O": LogoutRequest, "Z": EndOfSession}
CLIENT_TYPES = frozenset("LURO+")
SERVER_TYPES = frozenset("AJSHZ+")
REJECT_REASONS = {"A": "not authorized", "S": "session not available"}


def parse_number(raw: bytes, field: str) -> int:
    """An ASCII number padded with spaces on either side; all spaces is 0."""
    text = raw.strip(b" ")
    if not text:
        return 0
    if not text.isdigit():
        raise SoupError(f"SoupBinTCP {field}: {raw!r} is not a number")
    return int(text)


SECRET_FIELDS = frozenset({"password"})  # named in an error, its value never shown


def _shown(field: str, value: object) -> str:
    return f"({len(value)} characters)" if field in SECRET_FIELDS else repr(value)  # type: ignore[arg-type]


def _text(raw: bytes, field: str) -> str:
    try:
        return raw.decode("ascii").strip(" ")
    except UnicodeDecodeError:  # its message would quote the byte
        raise SoupError(f"SoupBinTCP {field}: {_shown(field, raw)} is not ASCII") from None


def _alpha(value: str, size: int, field: str) -> bytes:
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError:  # its message would quote the character
        raise SoupError(f"SoupBinTCP {field}: {_shown(field, value)} is not ASCII") from None
    if len(raw) > size:
        raise SoupError(f"SoupBinTCP {field}: {_shown(field, value)} is longer than {size} characters")
    return raw.ljust(size, b" ")


def _numeric(value: int, size: int, field: str) -> bytes:
    if value < 0 or len(str(value)) > size:
        raise SoupError(f"SoupBinTCP {field}: {value} does not fit {size} digits")
    return str(value).rjust(size).encode()


def encode_payload(p: Packet) -> bytes:
    if isinstance(p, LoginRequest):
        return (_alpha(p.username, 6, "username") + _alpha(p.password, 10, "password")
                + _alpha(p.session, 10, "session") + _numeric(p.sequence, 20, "sequence"))
    if isinstance(p, LoginAccepted):
        return _alpha(p.session, 10, "session") + _numeric(p.sequence, 20, "sequence")
    if isinstance(p, LoginRejected):
        return _alpha(p.reason, 1, "reject reason")
    if isinstance(p, (UnsequencedData, SequencedData)):
        return bytes(p.message)
    if isinstance(p, Debug):
        return p.text.encode("ascii")
    return b""


def encode(p: Packet) -> bytes:
    body = p.TYPE.encode() + encode_payload(p)
    if len(body) > MAX_PACKET:
        raise SoupError(f"SoupBinTCP packet of {len(body)} bytes exceeds {MAX_PACKET}")
    return _LEN.pack(len(body)) + body


_FIXED = {"L": 46, "A": 30, "J": 1}  # username 6 + password 10 + session 10 + sequence 20


def decode(body: bytes | memoryview) -> Packet:
    """One packet without its length prefix (type byte first)."""
    if not body:
        raise SoupError("SoupBinTCP packet with no type byte")
    t, payload = chr(body[0]), bytes(body[1:])
    if t in _FIXED and len(payload) != _FIXED[t]:
        raise SoupError(f"SoupBinTCP '{t}' payload is {_FIXED[t]} bytes, got {len(payload)}")
    if t == "L":
        return LoginRequest(_text(payload[0:6], "username"), _text(payload[6:16], "password"),
                            _text(payload[16:26], "session"), parse_number(payload[26:46], "sequence"))
    if t == "A":
        return LoginAccepted(_text(payload[0:10], "session"), parse_number(payload[10:30], "sequence"))
    if t == "J":
        return LoginRejected(_text(payload, "reject reason"))
    if t == "U":
        return UnsequencedData(payload)
    if t == "S":
        return SequencedData(payload)
    if t == "+":
        return Debug(payload.decode("ascii", "replace"))
    if t in EMPTY:
        if payload:
            raise SoupError(f"SoupBinTCP '{t}' carries no payload, got {len(payload)} bytes")
        return EMPTY[t]()
    raise SoupError(f"unknown SoupBinTCP packet type {t!r} (0x{body[0]:02x})")


class Framer:
    """Cut a TCP byte stream into packets, however it was segmented.

    ``feed(data)`` yields ``(offset, body)`` for each complete packet, ``offset``
    being its position in the whole stream; a zero length (no type byte) raises
    :class:`SoupError` with that offset, since the stream cannot be resynchronised.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        self._buf += data
        i = 0
        try:
            while len(self._buf) - i >= 2:
                (n,) = _LEN.unpack_from(self._buf, i)
                if n == 0:
                    raise SoupError(f"SoupBinTCP stream offset {self._base + i}: packet length 0")
                if len(self._buf) - i - 2 < n:
                    break
                yield self._base + i, bytes(self._buf[i + 2:i + 2 + n])
                i += 2 + n
        finally:
            del self._buf[:i]
            self._base += i

    @property
    def pending(self) -> int:
        """Bytes of an incomplete packet held back."""
        return len(self._buf)


def capture_packets(path: Any) -> Iterator[tuple[Any, bytes]]:
    """Each whole packet (type byte first) of each TCP direction of a pcap/pcapng, with
    the frame whose segment completed it: the TCP stream put back in order, then cut
    by :class:`Framer`. For tools that only read (``tickwire decode`` also reports
    the problems of a damaged capture)."""
    flows: dict[tuple, tuple[capture.TcpReassembler, Framer]] = {}
    for f in capture.read_frames(path):
        if f.proto != "tcp":
            continue
        asm, framer = flows.setdefault(f.flow, (capture.TcpReassembler(), Framer()))
        for _offset, body in framer.feed(asm.add(f.tcp_seq, f.tcp_flags, f.payload)):
            yield f, body
