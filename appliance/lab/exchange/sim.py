"""The live exchange: the engine and the synthetic flow driving the ITCH feed on
lines A and B, the retransmission server and the OUCH order entry, on one asyncio
loop, until ``duration`` ends or SIGTERM/SIGINT.

Mode ``live`` (default) runs the engine in Python: about 50 k messages/s on this
machine. Mode ``blast`` publishes a day precomputed by ``exchange gen`` at ``rate``
messages per second through the C sender (sendmmsg), for throughput runs; the
retransmission server serves what has gone out, order entry stays closed.

The day runs as :mod:`gen` writes it (directory, trading actions, market open,
flow; at the end market close, end of day, end of messages, then end-of-session
packets). Order flow is paced against the monotonic clock: each tick publishes
the events due since the last one and flushes the feed, so packets batch what
arrived in one tick. Everything sent and received is recorded when ``record``
names a folder: ``feed.pcapng`` (both lines and retransmissions), ``orders.pcapng``
(each order-entry connection), ``orders.jsonl`` (OUCH in and out, and fills) and
``status.json`` (counters, rewritten every second).
"""

from __future__ import annotations

import asyncio
import bisect
import datetime
import json
import pathlib
import signal
import socket
import time
from typing import Any

from appliance.lab.exchange.book import Engine
from appliance.lab.exchange.config import ExchangeConfig
from appliance.lab.exchange.feed import Fault, Line, Publisher, RetransmissionServer
from appliance.lab.exchange.flow import FlowGenerator, FlowParams
from appliance.lab.exchange.gen import symbol_names
from appliance.lab.exchange.orderentry import OrderEntry, OrderEntryServer, json_log
from appliance.protocols import binaryfile, capture, itch
from dpdk import lab_native

MAX_EVENTS_PER_TICK = 5_000  # a stall is not made up in one burst


def ns_since_midnight() -> int:
    now = datetime.datetime.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return int((now - midnight).total_seconds() * 1e9)


def _mcast_socket(source: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(source))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.bind((source, port))  # a fixed publisher port, as a venue's: appliances filter on (address, port)
    s.setblocking(False)
    return s


class Exchange:
    def __init__(self, cfg: ExchangeConfig):
        self.cfg = cfg
        names = symbol_names(cfg.symbols) if isinstance(cfg.symbols, int) else list(cfg.symbols)
        self.record_dir = pathlib.Path(cfg.record) if cfg.record else None
        self.feed_pcap = self.oe_pcap = None
        if self.record_dir:
            self.record_dir.mkdir(parents=True, exist_ok=True)
            self.feed_pcap = capture.CaptureWriter(self.record_dir / "feed.pcapng")
            self.oe_pcap = capture.CaptureWriter(self.record_dir / "orders.pcapng")
        f = cfg.feed
        self.lines = [Line("A", _mcast_socket(f.line_a.source, f.line_a.source_port), (f.line_a.group, f.line_a.port),
                           (f.line_a.source, f.line_a.source_port)),
                      Line("B", _mcast_socket(f.line_b.source, f.line_b.source_port), (f.line_b.group, f.line_b.port),
                           (f.line_b.source, f.line_b.source_port))]
        for line in self.lines:
            line.source = line.sock.getsockname()
        record = (lambda data, src, dst: self.feed_pcap.udp(data, src, dst)) if self.feed_pcap else None
        self.publisher = Publisher(f.session, self.lines, f.max_payload, f.heartbeat_interval,
                                   [Fault(**fc.model_dump()) for fc in cfg.faults], cfg.seed, record)
        self.engine = Engine(names, clock=ns_since_midnight,
                             emit=lambda rec: self.publisher.add(itch.encode(rec)))
        self.flow = FlowGenerator(self.engine, cfg.seed, FlowParams(rate=cfg.rate), start_ns=ns_since_midnight())
        oe_cfg = cfg.order_entry
        self.log = json_log(self.record_dir / "orders.jsonl") if self.record_dir else None
        self.oe = OrderEntry(self.engine, {a.username: a.password for a in oe_cfg.accounts}, oe_cfg.session,
                             ns_since_midnight, self.log,
                             cancel_on_disconnect={a.username for a in oe_cfg.accounts if a.cancel_on_disconnect},
                             faults=oe_cfg.faults)
        self.oe_server = OrderEntryServer(self.oe, oe_cfg.heartbeat_interval, oe_cfg.timeout,
                                          oe_cfg.login_timeout, self.oe_pcap, (oe_cfg.address, oe_cfg.port))
        self.retrans = RetransmissionServer(self.publisher, f.retransmission_max_messages, record,
                                            (f.line_a.source, f.retransmission_port))
        self.events = 0
        self.skipped = 0  # events the pacing dropped because the loop fell behind
        self.started = 0.0
        self.stopping = asyncio.Event()

    def status(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started if self.started else 0.0
        return {"elapsed": round(elapsed, 3), "events": self.events, "events_skipped": self.skipped,
                "events_per_s": round(self.events / elapsed) if elapsed else 0,
                "messages_per_s": round(len(self.publisher.history) / elapsed) if elapsed else 0,
                "feed": self.publisher.stats(), "retransmission": self.retrans.stats(),
                "order_entry": self.oe_server.stats()}

    def open_day(self) -> None:
        e = self.engine
        e.system_event("O")
        e.directory()
        e.system_event("S")
        for s in e.books:
            e.trading_action(s, "T")
        e.system_event("Q")
        self.oe.system_event("S")
        self.publisher.flush()

    def close_day(self) -> None:
        e = self.engine
        self.oe.open = False
        e.system_event("M")
        e.system_event("E")
        e.system_event("C")
        self.oe.system_event("E")
        self.oe_server.end_of_session()
        self.publisher.end_session(self.cfg.feed.end_of_session_packets)

    async def _flow(self) -> None:
        tick = self.cfg.tick
        while not self.stopping.is_set():
            due = int((time.monotonic() - self.started) * self.cfg.rate)
            behind = due - self.events - self.skipped
            n = min(behind, MAX_EVENTS_PER_TICK)
            for _ in range(n):
                self.flow.step()
            self.events += max(n, 0)
            self.skipped += max(behind - n, 0)  # too far behind: skip ahead rather than burst
            self.publisher.flush()
            self.publisher.heartbeat_if_idle()
            self.oe_server.heartbeats()
            await asyncio.sleep(tick)

    async def _blast(self) -> None:
        """Blast mode: publish the precomputed day's packets at ``rate`` messages per
        second, on both lines, through the C sender (sendmmsg in batches)."""
        # numpy (about 140 ms, with the traffic module's packet builder) for blast mode only
        import numpy as np

        from appliance.lab.traffic import build_packets

        ffi, lib = lab_native()
        msgs = list(binaryfile.iter_messages(pathlib.Path(self.cfg.day).read_bytes()))
        buf, lengths, stride = build_packets(self.cfg.feed.session, 1, iter(msgs))
        counts = np.array([int.from_bytes(buf[i, 18:20], "big") for i in range(len(lengths))])
        ends = np.cumsum(counts).tolist()  # messages published once packet i is out
        cbuf = ffi.from_buffer("uint8_t[]", buf)
        clen = ffi.from_buffer("uint16_t[]", lengths)
        socks = []
        for line in self.lines:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(line.source[0]))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
            s.connect(line.dest)
            socks.append((line, s))
        stats = ffi.new("struct tw_send_stats *")
        sent = 0  # packets out on both lines
        paced_from = time.monotonic()  # after the precomputation: no catch-up burst at the start
        while sent < len(lengths) and not self.stopping.is_set():
            due = (time.monotonic() - paced_from) * self.cfg.rate
            upto = min(bisect.bisect_right(ends, due) + 1, len(lengths))
            if upto > sent:
                for line, s in socks:
                    rc = lib.tw_udp_send(s.fileno(), cbuf + sent * stride, stride, clen + sent, upto - sent, 64, 0,
                                         stats)
                    line.sent += stats.packets
                    if rc < 0:
                        line.dropped += upto - sent - stats.packets
                    if self.feed_pcap:
                        for i in range(sent, upto):
                            self.feed_pcap.udp(bytes(buf[i, :lengths[i]]), line.source, line.dest)
                self.publisher.history.extend(msgs[ends[sent - 1] if sent else 0:ends[upto - 1]])
                self.publisher.packets += upto - sent
                self.publisher.last_send = time.monotonic()
                sent = upto
            self.events = len(self.publisher.history)
            self.publisher.heartbeat_if_idle()
            await asyncio.sleep(self.cfg.tick)
        for _, s in socks:
            s.close()
        self.stopping.set()  # the day is out: close it

    async def _status(self) -> None:
        while not self.stopping.is_set():
            if self.record_dir:
                tmp = self.record_dir / ".status.json.tmp"
                tmp.write_text(json.dumps(self.status(), indent=2))
                tmp.replace(self.record_dir / "status.json")
            try:
                await asyncio.wait_for(self.stopping.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    async def run(self, ready: asyncio.Event | None = None) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        oe = self.cfg.order_entry
        server = await asyncio.start_server(self.oe_server.handle, oe.address, oe.port, reuse_address=True)
        f = self.cfg.feed
        transport, _ = await loop.create_datagram_endpoint(lambda: self.retrans,
                                                           local_addr=(f.line_a.source, f.retransmission_port))
        self.started = time.monotonic()
        blast = self.cfg.mode == "blast"
        if not blast:
            self.open_day()  # a blasted day carries its own system events
        if ready:
            ready.set()
        tasks = [asyncio.create_task(self._blast() if blast else self._flow()), asyncio.create_task(self._status())]
        try:
            if self.cfg.duration:
                try:
                    await asyncio.wait_for(self.stopping.wait(), self.cfg.duration)
                except asyncio.TimeoutError:
                    pass
            else:
                await self.stopping.wait()
        finally:
            self.stopping.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            if blast:
                self.oe.open = False
                self.publisher.end_session(self.cfg.feed.end_of_session_packets)
            else:
                self.close_day()
            await asyncio.sleep(0.05)  # let the last writes reach the clients
            server.close()
            transport.close()
            report = self.status()
            report["books"] = {b.symbol: {"locate": b.locate, **b.displayed()} for b in self.engine.books.values()}
            if self.record_dir:
                (self.record_dir / "status.json").write_text(json.dumps(report, indent=2))
            for w in (self.feed_pcap, self.oe_pcap):
                if w:
                    w.close()
            if self.log:
                self.log.file.close()  # type: ignore[attr-defined]
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return report


def run(cfg: ExchangeConfig) -> dict[str, Any]:
    return asyncio.run(Exchange(cfg).run())
