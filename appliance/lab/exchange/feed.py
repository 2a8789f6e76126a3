"""The exchange's market-data side: MoldUDP64 on lines A and B, and the
retransmission server.

:class:`Publisher` batches ITCH messages into MoldUDP64 packets (at most
``max_payload`` bytes of blocks; the caller flushes once per tick, so a packet
holds what arrived in that tick, as a real feed batches), numbers them, keeps
every message for retransmission, and sends each packet on both lines through
:class:`FaultInjector`: drop, duplicate, reorder, a gap on both lines (only the
retransmission server can fill it), or a line down for a stretch of packets.
Idle lines get a heartbeat every ``heartbeat_interval``; ``end_session`` sends
end-of-session packets. Each line is published from a fixed address and UDP port
(topology.PUBLISHER_PORT by default), as a venue's: the appliance drops anyone else's.
Every datagram that leaves is written to the recorder.

:class:`RetransmissionServer` answers 20-byte requests by unicast with ordinary
downstream packets holding the wanted messages (at most ``max_messages``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import socket
import time
from collections.abc import Callable
from typing import Any

from appliance.protocols import moldudp64

FAULT_KINDS = ("drop", "duplicate", "reorder", "gap", "line_down")


@dataclasses.dataclass(frozen=True)
class Fault:
    kind: str                   # one of FAULT_KINDS
    line: str = "both"          # A, B or both (gap is always both)
    probability: float = 0.0    # drop / duplicate / reorder: per packet
    at_sequence: int = 0        # gap / line_down: from the first packet at or after this sequence
    packets: int = 1            # gap / line_down: for this many packets


@dataclasses.dataclass
class Line:
    name: str
    sock: socket.socket
    dest: tuple[str, int]
    source: tuple[str, int]
    sent: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    held: bytes | None = None   # a packet held back by a reorder fault


class FaultInjector:
    """Decides, per line and packet, what goes out: deterministic for a seed."""

    def __init__(self, faults: list[Fault], seed: int):
        self.faults = faults
        self.rng = random.Random(seed)
        self.windows: dict[int, int] = {}  # fault index -> packets still affected

    def plan(self, line: str, seq: int, count: int) -> str:
        """``send``, ``drop``, ``duplicate`` or ``reorder`` for this line."""
        for i, f in enumerate(self.faults):
            applies = f.line in ("both", line) or f.kind == "gap"
            if not applies:
                continue
            if f.kind in ("gap", "line_down"):
                key = (i, line)
                left = self.windows.get(key)
                if left is None and seq >= f.at_sequence > 0 and count:
                    left = self.windows[key] = f.packets
                if left:
                    self.windows[key] = left - 1
                    return "drop"
            elif f.probability and self.rng.random() < f.probability:
                return f.kind
        return "send"


class Publisher:
    def __init__(self, session: str, lines: list[Line], max_payload: int = moldudp64.MAX_PAYLOAD,
                 heartbeat_interval: float = 1.0, faults: list[Fault] | None = None, seed: int = 0,
                 record: Callable[[bytes, tuple[str, int], tuple[str, int]], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.session = moldudp64.session_bytes(session)
        self.lines = lines
        self.max_payload = max_payload
        self.heartbeat_interval = heartbeat_interval
        self.faults = FaultInjector(faults or [], seed)
        self.record = record
        self.clock = clock
        self.history: list[bytes] = []   # message i has sequence i + 1
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.packets = 0
        self.heartbeats = 0
        self.last_send = clock()

    @property
    def next_sequence(self) -> int:
        return len(self.history) + len(self.pending) + 1

    def add(self, message: bytes) -> None:
        if self.pending and self.pending_size + 2 + len(message) > self.max_payload:
            self.flush()
        self.pending.append(message)
        self.pending_size += 2 + len(message)

    def flush(self) -> None:
        if not self.pending:
            return
        seq = len(self.history) + 1
        packet = moldudp64.pack(self.session, seq, self.pending)
        self.history.extend(self.pending)
        self.pending, self.pending_size = [], 0
        self.packets += 1
        self._send(packet, seq, len(self.history) - seq + 1)

    def _send(self, packet: bytes, seq: int, count: int) -> None:
        for line in self.lines:
            action = self.faults.plan(line.name, seq, count)
            if action == "drop":
                line.dropped += 1
                continue
            if action == "reorder" and line.held is None:
                line.held = packet  # goes out after the next packet
                line.reordered += 1
                continue
            self._emit(line, packet)
            if action == "duplicate":
                self._emit(line, packet)
                line.duplicated += 1
            self._release(line)
        self.last_send = self.clock()

    def _release(self, line: Line) -> None:
        """Send a packet a reorder fault held back (late, never lost)."""
        if line.held is not None:
            held, line.held = line.held, None
            self._emit(line, held)

    def _emit(self, line: Line, packet: bytes) -> None:
        try:
            line.sock.sendto(packet, line.dest)
            line.sent += 1
        except (BlockingIOError, OSError):
            line.dropped += 1  # the kernel's queue is full: a real NIC would drop too
            return
        if self.record:
            self.record(packet, line.source, line.dest)

    def heartbeat_if_idle(self) -> bool:
        if self.clock() - self.last_send < self.heartbeat_interval:
            return False
        packet = moldudp64.heartbeat(self.session, self.next_sequence)
        for line in self.lines:
            self._release(line)
            self._emit(line, packet)
        self.heartbeats += 1
        self.last_send = self.clock()
        return True

    def end_session(self, packets: int = 3) -> None:
        self.flush()
        for line in self.lines:
            self._release(line)
        for _ in range(packets):
            packet = moldudp64.end_of_session(self.session, self.next_sequence)
            for line in self.lines:
                self._emit(line, packet)
        self.last_send = self.clock()

    def messages(self, sequence: int, count: int) -> list[bytes]:
        """Messages ``sequence`` .. ``sequence + count - 1`` that have been published."""
        if sequence < 1:
            return []
        return self.history[sequence - 1:sequence - 1 + count]

    def stats(self) -> dict[str, Any]:
        return {"next_sequence": self.next_sequence, "messages": len(self.history), "packets": self.packets,
                "heartbeats": self.heartbeats,
                "lines": {ln.name: {"sent": ln.sent, "dropped": ln.dropped, "duplicated": ln.duplicated,
                                    "reordered": ln.reordered} for ln in self.lines}}


class RetransmissionServer(asyncio.DatagramProtocol):
    def __init__(self, publisher: Publisher, max_messages: int = 1000,
                 record: Callable[[bytes, tuple[str, int], tuple[str, int]], None] | None = None,
                 address: tuple[str, int] = ("0.0.0.0", 0)):
        self.publisher = publisher
        self.max_messages = max_messages
        self.record = record
        self.address = address
        self.requests = 0
        self.bad_requests = 0
        self.messages_resent = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        if self.record:
            self.record(data, addr, self.address)
        try:
            req = moldudp64.unpack_request(data)
        except moldudp64.MoldError:
            self.bad_requests += 1
            return
        self.requests += 1
        if req.session != self.publisher.session:
            self.bad_requests += 1
            return
        msgs = self.publisher.messages(req.sequence, min(req.count, self.max_messages))
        seq = req.sequence
        for packet in moldudp64.packetize(self.publisher.session, seq, msgs, self.publisher.max_payload):
            assert self.transport is not None
            self.transport.sendto(packet, addr)
            if self.record:
                self.record(packet, self.address, addr)
        self.messages_resent += len(msgs)

    def stats(self) -> dict[str, int]:
        return {"requests": self.requests, "bad_requests": self.bad_requests, "messages_resent": self.messages_resent}
