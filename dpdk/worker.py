"""The DPDK side from Python: EAL start-up, ports, the worker lcore, its shared
statistics and its events. Python sets up and reads; the packets never come
here: the lcore runs ``tw_worker_run`` (dpdk/src/worker.c) over af_xdp ports
(live, behind our XDP filter) or a pcap port (replay), the same code for both.
It can also read kernel UDP sockets (``recvmmsg``, the input a box without
AF_XDP has), and, as the benchmarks' Python baseline only, an asyncio loop can
read them and hand each datagram to the same C path (:class:`AsyncioDriver`).

The worker's counters and histograms live in a file under ``/run/tickwire/feed``
mapped into the process, so ``tickwire feed stats`` in another process reads
them while the worker runs, and the last figures stay after it stops.
"""

from __future__ import annotations

import asyncio
import glob
import json
import mmap
import os
import pathlib
import socket
import struct
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from common.operator import user_name
from common.paths import RUN_DIR
from dpdk import native
from dpdk.books import Books, Feed, event_dict
from dpdk.ouch import bad_answer_bytes

STATE_DIR = RUN_DIR / "feed"
STAGES = ("wire", "queue", "apply", "total", "decide", "risk", "send", "tick_to_trade")
STAGE_HELP = {
    "wire": "arrival stamp (XDP, or the kernel's for sockets) -> rx burst returned",
    "queue": "rx burst returned -> packet decoded",
    "apply": "decoded -> messages applied to the books",
    "total": "arrival stamp -> books applied",
    "decide": "books applied -> the strategy's answer",
    "risk": "the risk chain, per new order",
    "send": "an order passed risk -> its decision's one send() returned",
    "tick_to_trade": "arrival stamp of the triggering packet -> send() returned",
}
INPUTS = ("af_xdp", "socket", "asyncio")
SO_TIMESTAMPNS = 35  # <asm-generic/socket.h>; the socket module does not name it
PERCENTILES = (50.0, 90.0, 99.0, 99.9, 99.99)
_eal_done: list[str] = []


class DpdkError(RuntimeError):
    pass


def hugepages_free() -> int:
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("HugePages_Free:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class EalConfig:
    lcores: str = "0,1"                 # the main lcore (Python) and the worker's
    file_prefix: str = "tickwire"       # keeps instances apart
    memory_mb: int = 1024               # with --no-huge
    hugepages: str = "auto"             # auto: use them when reserved; on: require; off: --no-huge
    vdevs: list[str] = field(default_factory=list)
    log_level: int = 5                  # DPDK's: 4 error, 5 warning, 7 info

    def args(self) -> list[str]:
        argv = ["tickwire", "-l", self.lcores, "--no-pci", "--no-telemetry", "--log-level", str(self.log_level)]
        free = hugepages_free()
        if self.hugepages == "on" and not free:
            raise DpdkError("hugepages: on, but none are free; reserve some "
                            "(echo 256 > /proc/sys/vm/nr_hugepages) or use hugepages: auto")
        if self.hugepages != "off" and free:
            argv += ["--in-memory", "--file-prefix", self.file_prefix]
        else:
            if self.hugepages == "auto":
                warnings.warn("no hugepages are reserved: DPDK runs with --no-huge (4 KiB pages, slower TLB); "
                              "reserve some with: echo 256 > /proc/sys/vm/nr_hugepages", stacklevel=2)
            argv += ["--no-huge", "-m", str(self.memory_mb), "--file-prefix", self.file_prefix]
        for v in self.vdevs:
            argv += ["--vdev", v]
        return argv


def eal_init(cfg: EalConfig) -> list[str]:
    """rte_eal_init once per process (DPDK cannot start twice)."""
    ffi, lib = native()
    if _eal_done:
        raise DpdkError(f"EAL is already initialised in this process ({' '.join(_eal_done)})")
    argv = cfg.args()
    keep = [ffi.new("char[]", a.encode()) for a in argv]
    c_argv = ffi.new("char *[]", keep + [ffi.NULL])
    rc = lib.tw_eal_init(len(argv), c_argv)
    if rc < 0:
        raise DpdkError(f"rte_eal_init({' '.join(argv)}) failed: {ffi.string(lib.tw_eal_strerror(rc)).decode()}")
    _eal_done.extend(argv)
    return argv


def worker_lcores() -> list[int]:
    ffi, lib = native()
    out = ffi.new("uint32_t[]", 128)
    n = lib.tw_eal_worker_lcores(out, 128)
    return [out[i] for i in range(min(n, 128))]


def _check(rc: int, what: str) -> int:
    if rc < 0:
        ffi, lib = native()
        raise DpdkError(f"{what}: {ffi.string(lib.tw_eal_strerror(rc)).decode()} ({rc})")
    return rc


@dataclass
class Port:
    name: str        # the vdev name, e.g. net_af_xdp0
    line: str        # "A", "B" or "dest" (from the destination address)
    has_meta: bool   # frames carry our XDP metadata
    port_id: int = -1


def af_xdp_vdev(index: int, iface: str, xdp_object: str, busy_budget: int = 0) -> str:
    """busy_budget: packets per SO_PREFER_BUSY_POLL call the port makes on every rx
    burst (DPDK's default, 64); 0 makes no syscall per burst: the right choice where
    the kernel fills the ring from another CPU's NAPI (veth, copy mode), and what the
    lab measured faster (XDP stamp to rx burst p50 1.4 instead of 1.9 µs)."""
    return (f"net_af_xdp{index},iface={iface},start_queue=0,queue_count=1,xdp_prog={xdp_object},"
            f"busy_budget={busy_budget}")


def pcap_vdev(index: int, path: str) -> str:
    return f"net_pcap{index},rx_pcap={path}"


class SharedStats:
    """The worker's ``struct tw_worker_stats`` in a file both processes map."""

    def __init__(self, path: pathlib.Path, create: bool = False):
        self.ffi, self.lib = native()
        self.path = path
        size = self.ffi.sizeof("struct tw_worker_stats")
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                f.truncate(size)
        self._file = open(path, "r+b" if create else "rb")
        if os.fstat(self._file.fileno()).st_size != size:
            raise DpdkError(f"{path} is not the statistics of this tickwire build (size differs): "
                            "the worker that wrote it was built from other sources")
        access = mmap.ACCESS_WRITE if create else mmap.ACCESS_READ
        self._map = mmap.mmap(self._file.fileno(), size, access=access)
        self.ptr = self.ffi.cast("struct tw_worker_stats *", self.ffi.from_buffer(self._map))

    def snapshot(self) -> Any:
        """A copy (the worker goes on writing the original)."""
        copy = self.ffi.new("struct tw_worker_stats *")
        self.ffi.memmove(copy, self.ptr, self.ffi.sizeof("struct tw_worker_stats"))
        if copy.magic != self.lib.TW_STATS_MAGIC:
            raise DpdkError(f"{self.path} holds no worker statistics yet")
        return copy

    def close(self) -> None:
        del self.ptr
        self._map.close()
        self._file.close()


def histogram(h: Any) -> dict[str, Any]:
    """count, min, mean, max and percentiles (bucket lower bounds, about 6 % wide)."""
    ffi, lib = native()
    n = h.count
    out: dict[str, Any] = {"count": n}
    if not n:
        return out
    out.update(min=h.min, mean=round(h.sum / n, 1), max=h.max)
    targets = [(p, p / 100.0 * n) for p in PERCENTILES]
    seen, k = 0, 0
    nb = lib.tw_hist_nbuckets()
    for i in range(nb):
        c = h.buckets[i]
        if not c:
            continue
        seen += c
        while k < len(targets) and seen >= targets[k][1]:
            out[f"p{targets[k][0]:g}"] = min(max(lib.tw_hist_bucket_low(i), h.min), h.max)
            k += 1
        if k == len(targets):
            break
    return out


FEED_STATE_FIELDS = ("next_seq", "applied", "duplicates", "gaps", "recovered", "unrecoverable", "skipped",
                     "malformed", "other_session", "book_errors", "in_gap", "stale", "end_of_session")
COUNTERS = ("polls", "busy_polls", "rx_bytes", "not_udp", "multi_segment", "no_meta", "sock_errors",
            "retrans_requests", "retrans_answers", "retrans_errors", "events", "events_dropped", "live_orders",
            "recorded", "record_dropped", "decisions", "orders_sent", "cancels_sent", "orders_denied",
            "send_failed", "order_events", "executed", "unknown_orders", "kill_cancels", "killed_strategy",
            "killed_instrument", "killed", "bad_answers")


def stats_dict(st: Any, nports: int | None = None) -> dict[str, Any]:
    """A snapshot as plain data."""
    from dpdk.books import book_stats_dict, kill_reasons, refused_dict

    now = time.monotonic_ns()
    out: dict[str, Any] = {
        "pid": st.pid, "running": bool(st.running),
        "uptime_s": round(((st.heartbeat_ns if not st.running else now) - st.started_ns) / 1e9, 3),
        "heartbeat_age_ms": round((now - st.heartbeat_ns) / 1e6, 1) if st.running else None,
        "rx_packets": list(st.rx_packets)[:nports] if nports else list(st.rx_packets),
    }
    out.update({c: getattr(st, c) for c in COUNTERS})
    out["kill_reason"] = kill_reasons().get(st.kill_reason, st.kill_reason) if st.killed else None
    feed = {f: getattr(st.feed, f) for f in FEED_STATE_FIELDS}
    for f in ("in_gap", "stale", "end_of_session"):
        feed[f] = bool(feed[f])
    feed["packets"] = dict(zip(("A", "B", "retransmission"), list(st.feed.packets), strict=True))
    feed["first_copy"] = dict(zip(("A", "B", "retransmission"), list(st.feed.first_copy), strict=True))
    feed["refused"] = refused_dict(st.feed)  # issue 16 (B): by line and why, not the exchange's
    out["feed"] = feed
    out["book"] = book_stats_dict(st.book)
    out["latency_ns"] = {name: histogram(st.hist[i]) for i, name in enumerate(STAGES)}
    return out


@dataclass
class WorkerConfig:
    ports: list[Port]
    group: dict[str, tuple[str, int]] = field(default_factory=dict)  # line -> (address, port)
    retrans: tuple[str, int] | None = None      # the re-request server
    retrans_source: str | None = None           # bind the request socket to this address
    retrans_port: int = 0                       # answers' source port, to find them in a replay
    retrans_max: int = 1000
    retrans_delay_ms: float = 1.0
    retrans_interval_ms: float = 100.0
    give_up_s: float = 5.0                      # skip a gap open this long (books stay stale); 0: never
    burst: int = 32
    idle_stop_ms: float = 0.0
    idle_sleep_us: int = 0
    max_locate: int = 16383                     # NASDAQ's stock locates stay below about 12,000
    max_orders: int = 1_000_000
    levels: int = 1024
    prefault: bool = True                       # no page faults on the hot path (False for replays)
    max_held: int = 65536
    join_late: bool = False
    unsequenced: bool = False                   # apply in arrival order (zeroed sequence numbers)
    mbufs: int = 16383
    rx_desc: int = 4096                         # rx ring per port: absorbs the worker's stalls
    recorder: Any = None                        # a dpdk.recorder.Recorder: every frame received is kept
    trading: Any = None                         # a Trading: strategy, risk limits, order-entry session
    sockets: dict[str, socket.socket] = field(default_factory=dict)  # line -> a line_socket()
    driver: str = "lcore"                       # lcore: tw_worker_run reads; asyncio: Python reads the sockets
    cancel_each: bool = False                   # a kill sends each cancel on its own (a benchmark's baseline)
    deadman_s: float = 0.0                      # trading: the lcore throws its kill switch when the control
                                                # loop's stamp (stats.control_heartbeat_ns) is older; 0: off
    stop_cancel_s: float = 2.0                  # trading: a stop with orders open throws the kill switch and
                                                # waits this long for the venue's cancels
    event_ring_size: int = 8192                 # a power of two; a drop throws a trading worker's kill switch
    # issue 16 (B): who may speak for the feed
    sources: dict[str, tuple[str, int]] = field(default_factory=dict)  # line -> its publisher (address, port)
    session: str = ""                           # the MoldUDP64 session taken ("": the first seen)


class Worker:
    """The books, the feed and the C worker over started ports (EAL must be up)."""

    def __init__(self, cfg: WorkerConfig, name: str, stats_path: pathlib.Path | None = None):
        self.ffi, self.lib = ffi, lib = native()
        self.cfg, self.name = cfg, name
        self.stats_path = stats_path or STATE_DIR / f"{name}.stats"
        self.shared = SharedStats(self.stats_path, create=True)
        self.pool = lib.tw_pool_create(f"tw_{name}_pool".encode()[:30], cfg.mbufs)
        if self.pool == ffi.NULL:
            raise DpdkError(f"could not create the mbuf pool ({cfg.mbufs} mbufs): more memory (-m) or hugepages")
        self.started_ports: list[int] = []
        for p in cfg.ports:
            pid = ffi.new("uint16_t *")
            _check(lib.tw_port_find(p.name.encode(), pid), f"port {p.name} (is its --vdev given?)")
            p.port_id = pid[0]
            _check(lib.tw_port_start(p.port_id, self.pool, cfg.rx_desc, 512), f"starting port {p.name}")
            self.started_ports.append(p.port_id)
        self.books = Books(cfg.max_locate, cfg.max_orders, cfg.levels, prefault=cfg.prefault)
        self.feed = Feed(self.books, cfg.max_held)
        if cfg.join_late:
            lib.tw_feed_join_late(self.feed._f)
        if cfg.unsequenced:
            lib.tw_feed_unsequenced(self.feed._f)
        if cfg.session:  # issue 16 (B): another session is refused, never taken
            self.feed.expect_session(cfg.session)
        if cfg.retrans:  # answers only within the ranges asked
            self.feed.answers_asked_only()
        self.sock: socket.socket | None = None
        if cfg.retrans:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            if cfg.retrans_source:
                self.sock.bind((cfg.retrans_source, 0))
            self.sock.connect(cfg.retrans)
            self.sock.setblocking(False)
        c = ffi.new("struct tw_worker_config *")
        c.nports = len(cfg.ports)
        for i, p in enumerate(cfg.ports):
            c.ports[i].port_id = p.port_id
            c.ports[i].line = {"A": 0, "B": 1}.get(p.line, lib.TW_LINE_BY_DEST)
            c.ports[i].has_meta = p.has_meta
        for i, line in enumerate(("A", "B")):
            if line in cfg.group:
                addr, port = cfg.group[line]
                c.group[i] = int.from_bytes(socket.inet_aton(addr), "little")  # network order in memory
                c.udp_port[i] = port
        for i, line in enumerate(("A", "B")):  # issue 16 (B): the line's publisher, 0: any
            if line in cfg.sources:
                addr, port = cfg.sources[line]
                c.src_addr[i] = int.from_bytes(socket.inet_aton(addr), "little")  # network order in memory
                c.src_port[i] = port
        c.retrans_port = cfg.retrans_port
        c.burst = cfg.burst
        c.retrans_fd = self.sock.fileno() if self.sock else -1
        c.retrans_max = cfg.retrans_max
        c.retrans_delay_ns = int(cfg.retrans_delay_ms * 1e6)
        c.retrans_interval_ns = int(cfg.retrans_interval_ms * 1e6)
        c.give_up_ns = int(cfg.give_up_s * 1e9)
        c.idle_stop_ns = int(cfg.idle_stop_ms * 1e6)
        c.idle_sleep_us = cfg.idle_sleep_us
        c.event_ring_size = cfg.event_ring_size
        if cfg.driver == "lcore":
            for line, sock in cfg.sockets.items():
                c.sock_fd[{"A": 0, "B": 1}[line]] = sock.fileno()
        self.trading = cfg.trading
        self.strategy_names: list[str] = cfg.trading.names if cfg.trading is not None else []
        if cfg.trading is not None:
            strategies, c.risk, c.ouch = cfg.trading.pointers(cfg.max_locate)
            for i, ptr in enumerate(strategies):
                c.strategies[i] = ptr
            c.nstrategies = len(strategies)
            c.ouch_poll_ns = 20_000
            c.cancel_each = cfg.cancel_each
            c.deadman_ns = int(cfg.deadman_s * 1e9)
            c.stop_cancel_ns = int(cfg.stop_cancel_s * 1e9)
        if cfg.recorder is not None:
            c.recorder = cfg.recorder._r
        self.control_path = self.stats_path.with_name(f"{name}.control.sock")
        self.control_sock: socket.socket | None = None
        self._control = ffi.NULL
        if cfg.trading is not None:  # operators' commands, each with the sender's credentials (control.c)
            self.control_sock = control_socket(self.control_path)
            self._control = lib.tw_control_open(self.control_sock.fileno())
            c.control = self._control
        ptr = lib.tw_worker_create(c, self.books._b, self.feed._f, self.shared.ptr, f"tw_{name}_ev".encode()[:30])
        if ptr == ffi.NULL:
            raise DpdkError(f"could not create the worker (event ring tw_{name}_ev): is another worker named "
                            f"{name} running in this process?")
        self._w = ptr
        self._ev = ffi.new("struct tw_event[]", 256)
        self.lcore: int | None = None
        self.driver: AsyncioDriver | None = None

    def launch(self, lcore: int | None = None) -> int:
        """Run the worker on a worker lcore (or, with driver asyncio, an asyncio
        thread on that lcore's CPU); returns the lcore."""
        lcores = worker_lcores()
        if lcore is None:
            if not lcores:
                raise DpdkError("no worker lcore: give EAL at least two (--lcores 0,1)")
            lcore = lcores[0]
        if self.cfg.driver == "asyncio":
            self.driver = AsyncioDriver(self, lcore)
            self.driver.start()
            return lcore
        _check(self.lib.tw_worker_launch(self._w, lcore), f"launching the worker on lcore {lcore}")
        self.lcore = lcore
        return lcore

    def running(self) -> bool:
        return bool(self.shared.ptr.running)

    def stop(self) -> None:
        if self.driver is not None:
            self.driver.stop()
            self.driver = None
        self.lib.tw_worker_stop(self._w)
        if self.lcore is not None:
            self.lib.tw_worker_wait(self.lcore)
            self.lcore = None

    def events(self) -> Iterator[dict[str, Any]]:
        while True:
            n = self.lib.tw_worker_events(self._w, self._ev, len(self._ev))
            for i in range(n):
                ev = event_dict(self._ev[i], self.strategy_names)
                if ev["event"] == "command":  # who sent it, and the texts its datagram carried
                    self._command_texts(ev)
                if ev["event"] == "bad_answer":  # its bytes, from the stats' small ring, before later ones come
                    ev.update(bad_answer_bytes(self.shared.ptr, ev["number"]))
                yield ev
            if n < len(self._ev):
                return

    def _command_texts(self, ev: dict[str, Any]) -> None:
        """A command event completed: who sent it (the kernel's uid by name, or the risk manager from
        this process), and the target, claim and reason its datagram carried."""
        ev["who"] = "risk manager" if ev["by"] == "risk manager" else user_name(ev["uid"])
        m = self.ffi.new("struct tw_command *")
        if self._control == self.ffi.NULL or self.lib.tw_control_text(self._control, ev["number"], m) < 0:
            ev.update(target=None, claimed=None, reason=None)  # no longer kept (the loop fell far behind)
            return
        ev.update(target=_cstr(m.target) or None, claimed=_cstr(m.claim) or None, reason=_cstr(m.reason))

    def stats(self) -> dict[str, Any]:
        return stats_dict(self.shared.snapshot(), len(self.cfg.ports))

    def port_stats(self) -> dict[str, dict[str, int]]:
        out = {}
        st = self.ffi.new("struct tw_port_stats *")
        for p in self.cfg.ports:
            if self.lib.tw_port_stats(p.port_id, st) == 0:
                out[p.name] = {k: getattr(st, k) for k in ("ipackets", "ibytes", "imissed", "ierrors", "rx_nombuf")}
        return out

    def close(self) -> None:
        """Stop, destroy and close the ports (the af_xdp driver detaches its XDP program)."""
        if self.lcore is not None or self.driver is not None:
            self.stop()
        if self._w is not None:
            self.lib.tw_worker_destroy(self._w)
            self._w = None
        if self.control_sock is not None:
            self.lib.tw_control_close(self._control)
            self._control = self.ffi.NULL
            self.control_sock.close()
            self.control_sock = None
            self.control_path.unlink(missing_ok=True)
        for pid in self.started_ports:
            self.lib.tw_port_stop(pid)
        self.started_ports = []
        if self.sock:
            self.sock.close()
        for s in self.cfg.sockets.values():
            s.close()
        self.shared.close()


def control_socket(path: pathlib.Path) -> socket.socket:
    """The worker's command socket (control.c): a unix datagram socket at ``path``, mode 0600 from the
    start (bound in a private folder, then moved into place), SO_PASSCRED on so the kernel says who
    sent each command, non-blocking."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        private = pathlib.Path(tempfile.mkdtemp(prefix=".control-", dir=path.parent))  # 0700
        try:
            sock.bind(str(private / "s"))
            os.chmod(private / "s", 0o600)
            os.replace(private / "s", path)
        finally:
            (private / "s").unlink(missing_ok=True)
            private.rmdir()
    except OSError as exc:
        sock.close()
        raise DpdkError(f"the command socket {path}: {exc.strerror or exc}") from exc
    return sock


def _cstr(raw: Any) -> str:
    ffi, _ = native()
    return ffi.string(raw).decode(errors="replace")


def line_socket(group: str, port: int, iface: str) -> socket.socket:
    """A feed line as a kernel UDP socket: bound to the group and port, joined on
    ``iface`` (in the calling thread's network namespace), with the kernel's
    receive timestamp on every datagram (SO_TIMESTAMPNS) as its arrival stamp."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE (root): no drops in bursts
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
        sock.bind((group, port))
        mreqn = socket.inet_aton(group) + socket.inet_aton("0.0.0.0") + struct.pack("=i", socket.if_nametoindex(iface))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise DpdkError(f"line socket {group}:{port} on {iface}: {exc.strerror or exc}") from exc
    return sock


class AsyncioDriver:
    """The tick-to-trade benchmark's Python baseline: an asyncio event loop on the
    worker lcore's CPU reads the line sockets (``add_reader``, ``recvmsg`` with the
    kernel's receive stamp) and hands each datagram to the same C path the lcore
    runs from the books on (``tw_worker_datagram``): only the reading is Python.
    Not for trading: a packet waits for the event loop's wake-up and the interpreter."""

    SERVICE_S = 0.0005  # the session's answers, the strategy's timer, retransmission

    def __init__(self, worker: Worker, lcore: int):
        self.worker, self.lcore = worker, lcore
        self.lib = worker.lib
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"tw-asyncio-{worker.name}", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self.lib.tw_worker_service(self.worker._w)  # running from now, before the thread gets going
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self.error is not None:
            raise DpdkError(f"the asyncio driver failed: {self.error!r}") from self.error

    def _run(self) -> None:
        cpus = _lcore_cpus(self.lcore)
        if cpus:
            os.sched_setaffinity(0, cpus)  # this thread, where the lcore would run
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        w, lib = self.worker._w, self.lib
        for line, sock in self.worker.cfg.sockets.items():
            loop.add_reader(sock.fileno(), self._readable, {"A": 0, "B": 1}[line], sock)
        while not self._stop.is_set():
            await asyncio.sleep(self.SERVICE_S)
            lib.tw_worker_service(w)
        for sock in self.worker.cfg.sockets.values():
            loop.remove_reader(sock.fileno())

    def _readable(self, line: int, sock: socket.socket) -> None:
        w, lib = self.worker._w, self.lib
        anc_size = socket.CMSG_SPACE(16)
        publisher = self.worker.cfg.sources.get("AB"[line])  # issue 16 (B): as rx.c checks it
        while True:
            try:
                data, anc, _flags, addr = sock.recvmsg(2048, anc_size)
            except BlockingIOError:
                return
            if publisher is not None and addr != publisher:
                lib.tw_feed_refuse(self.worker.feed._f, line, lib.TW_REFUSED_SOURCE)
                continue
            stamp = 0
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
                    sec, nsec = struct.unpack_from("=qq", raw)
                    stamp = sec * 1_000_000_000 + nsec
            lib.tw_worker_datagram(w, line, data, len(data), stamp)


def _lcore_cpus(lcore: int) -> set[int]:
    """The CPU an EAL lcore runs on (-l maps lcore i to CPU i)."""
    return {lcore} if lcore < (os.cpu_count() or 1) else set()


def remove_state(name: str) -> None:
    """A worker's statistics, status, events and operator requests in STATE_DIR, and its clock monitor's
    history (when not wanted after it stopped: its journal keeps the clock's records)."""
    for suffix in (".stats", ".json", ".events.jsonl", ".operator.jsonl", ".control.sock"):
        (STATE_DIR / f"{name}{suffix}").unlink(missing_ok=True)
    for rotated in STATE_DIR.glob(f"{glob.escape(name)}.events.*.jsonl"):  # the events file's rotations
        rotated.unlink(missing_ok=True)
    (STATE_DIR.parent / "ptp" / f"{name}.jsonl").unlink(missing_ok=True)


def write_status(name: str, info: dict[str, Any]) -> pathlib.Path:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    path = STATE_DIR / f"{name}.json"
    tmp = STATE_DIR / f"{name}.json.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(path)
    return path
