"""The feed filter from Python: load it, manage its rules, read its counters,
attach it, and run packets through it, all through the system libbpf (xdp's own
cffi binding, :mod:`xdp.libbpf`, declared in ``xdp/include/libbpf.cdef``; bcc
cannot load a prebuilt object).

Maps are pinned by name under ``pin_dir`` (by default ``/sys/fs/bpf/tickwire/<iface>``)
so rules and counters outlive the loader. Rules are keyed by (group, port) and
can change while traffic flows: the program reads the map per packet.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import pathlib
import socket
from typing import Any

import xdp
from xdp.libbpf import binding

BPFFS = pathlib.Path("/sys/fs/bpf")
PIN_ROOT = BPFFS / "tickwire"
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)
VERDICTS = {XDP_ABORTED: "aborted", XDP_DROP: "drop", XDP_PASS: "pass", XDP_TX: "tx", XDP_REDIRECT: "redirect"}
LINES = {"A": 0, "B": 1}
# Linux 6.3's uapi value; Debian 12's kernel headers (6.1) do not define it yet.
BPF_F_XDP_DEV_BOUND_ONLY = 1 << 6
PROGRAM = "tw_feed_filter"
PINNED_MAPS = ("feed_rules", "rule_stats", "filter_stats")
DPDK_LINKS = PIN_ROOT / "dpdk"  # the default root's links point here: what we share is in our own folder


class BpfError(OSError):
    """A libbpf call failed; the message names the call and the errno."""


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = -rc
        raise BpfError(err, f"{what}: {os.strerror(err)} (errno {err})")
    return rc


def ensure_bpffs() -> None:
    """Mount bpffs on /sys/fs/bpf when it is not (Debian does not at boot)."""
    with open("/proc/mounts") as f:
        if any(line.split()[1] == str(BPFFS) and line.split()[2] == "bpf" for line in f):
            return
    import subprocess

    res = subprocess.run(["mount", "-t", "bpf", "bpf", str(BPFFS)], capture_output=True, text=True)
    if res.returncode:
        raise BpfError(1, f"mount -t bpf bpf {BPFFS} failed: {res.stderr.strip()}")


@dataclasses.dataclass(frozen=True)
class Rule:
    group: str
    port: int
    action: str   # redirect, pass, drop
    feed_id: int
    line: str     # A or B
    rule_id: int
    source: str | None = None  # ADDR:PORT, the only publisher taken (None: any source)


@dataclasses.dataclass(frozen=True)
class TestRun:
    verdict: int
    meta: bytes      # the metadata area the program left (empty if none)
    data: bytes      # the packet after the program
    duration_ns: int

    @property
    def verdict_name(self) -> str:
        return VERDICTS.get(self.verdict, str(self.verdict))


ACTIONS = {"redirect": "TW_ACT_REDIRECT", "pass": "TW_ACT_PASS", "drop": "TW_ACT_DROP"}
RULE_STATS_FIELDS = ("matched", "redirected", "passed", "dropped", "redirect_failed", "wrong_source")
FILTER_STATS_FIELDS = ("seen", "not_feed", "fragments", "malformed")


class FilterMaps:
    """Rules and counters, over the filter's maps (loaded here or found pinned)."""

    pin_dir: pathlib.Path

    def __init__(self) -> None:
        self.ffi, self.lib = binding()
        self.ncpus = self.lib.libbpf_num_possible_cpus()

    def map_fd(self, name: str) -> int:
        raise NotImplementedError

    def unpin(self) -> None:
        """Remove the pinned maps (and the folder if it is then empty)."""
        for name in PINNED_MAPS:
            (self.pin_dir / name).unlink(missing_ok=True)
        try:
            self.pin_dir.rmdir()
        except OSError:
            pass

    # ---- rules --------------------------------------------------------------------------

    def _key(self, group: str, port: int) -> Any:
        key = self.ffi.new("struct tw_rule_key *")
        key.daddr = int.from_bytes(ipaddress.IPv4Address(group).packed, "little")  # network order in memory
        key.dport = socket.htons(port)
        return key

    def rules(self) -> list[Rule]:
        fd = self.map_fd("feed_rules")
        out = []
        key, nxt = self.ffi.new("struct tw_rule_key *"), self.ffi.new("struct tw_rule_key *")
        val = self.ffi.new("struct tw_rule *")
        cur = self.ffi.NULL
        names = {getattr(self.lib, v): k for k, v in ACTIONS.items()}
        while self.lib.bpf_map_get_next_key(fd, cur, nxt) == 0:
            key[0] = nxt[0]
            cur = key
            if self.lib.bpf_map_lookup_elem(fd, key, val) == 0:
                group = str(ipaddress.IPv4Address(int(key.daddr).to_bytes(4, "little")))
                source = (f"{ipaddress.IPv4Address(int(val.saddr).to_bytes(4, 'little'))}:{socket.ntohs(val.sport)}"
                          if val.saddr else None)
                out.append(Rule(group, socket.ntohs(key.dport), names.get(val.action, str(val.action)), val.feed_id,
                                "A" if val.line == 0 else "B", val.rule_id, source))
        return sorted(out, key=lambda r: r.rule_id)

    def add_rule(self, group: str, port: int, action: str, feed_id: int = 0, line: str = "A",
                 source: tuple[str, int] | None = None) -> Rule:
        """Add or replace the rule for (group, port); with ``source`` (the exchange's publisher
        address and port) a packet from anyone else is dropped and counted as wrong_source."""
        if action not in ACTIONS:
            raise ValueError(f"--action {action!r}: choose redirect, pass or drop")
        if line not in LINES:
            raise ValueError(f"--line {line!r}: choose A or B")
        if not 0 <= port <= 65535 or not 0 <= feed_id <= 65535:
            raise ValueError(f"--port {port} / --feed {feed_id}: must be within 0..65535")
        if source is not None:
            try:
                saddr = ipaddress.IPv4Address(source[0])
            except ValueError:
                raise ValueError(f"--source {source[0]}:{source[1]}: {source[0]!r} is not an IPv4 address; "
                                 "give the exchange's publisher as ADDR:PORT, e.g. 198.18.1.1:26400") from None
            if not 0 < source[1] <= 65535 or int(saddr) == 0:
                raise ValueError(f"--source {source[0]}:{source[1]}: give the exchange's publisher as ADDR:PORT "
                                 "with a port within 1..65535 and an address other than 0.0.0.0")
        existing = {(r.group, r.port): r for r in self.rules()}
        used = {r.rule_id for r in existing.values()}
        old = existing.get((str(ipaddress.IPv4Address(group)), port))
        rule_id = old.rule_id if old else next((i for i in range(self.lib.TW_MAX_RULES) if i not in used), None)
        if rule_id is None:
            raise ValueError(f"the filter holds {self.lib.TW_MAX_RULES} rules already: delete one first")
        val = self.ffi.new("struct tw_rule *")
        val.rule_id, val.feed_id, val.line = rule_id, feed_id, LINES[line]
        val.action = getattr(self.lib, ACTIONS[action])
        if source is not None:
            val.saddr = int.from_bytes(ipaddress.IPv4Address(source[0]).packed, "little")  # network order in memory
            val.sport = socket.htons(source[1])
        _check(self.lib.bpf_map_update_elem(self.map_fd("feed_rules"), self._key(group, port), val,
                                            self.lib.BPF_ANY), "bpf_map_update_elem(feed_rules)")
        return Rule(str(ipaddress.IPv4Address(group)), port, action, feed_id, line, rule_id,
                    f"{ipaddress.IPv4Address(source[0])}:{source[1]}" if source else None)

    def del_rule(self, group: str, port: int) -> bool:
        return self.lib.bpf_map_delete_elem(self.map_fd("feed_rules"), self._key(group, port)) == 0

    # ---- counters -------------------------------------------------------------------------

    def _percpu(self, map_name: str, ctype: str, key: int, fields: tuple[str, ...]) -> dict[str, Any]:
        size = self.ffi.sizeof(ctype)
        stride = (size + 7) // 8 * 8
        buf = self.ffi.new("char[]", stride * self.ncpus)
        k = self.ffi.new("uint32_t *", key)
        _check(self.lib.bpf_map_lookup_elem(self.map_fd(map_name), k, buf), f"bpf_map_lookup_elem({map_name})")
        per_cpu = []
        for cpu in range(self.ncpus):
            rec = self.ffi.cast(f"{ctype} *", buf + cpu * stride)
            per_cpu.append({f: getattr(rec, f) for f in fields})
        total = {f: sum(c[f] for c in per_cpu) for f in fields}
        return {"total": total, "per_cpu": per_cpu}

    def rule_stats(self, rule_id: int) -> dict[str, Any]:
        return self._percpu("rule_stats", "struct tw_rule_stats", rule_id, RULE_STATS_FIELDS)

    def filter_stats(self) -> dict[str, Any]:
        return self._percpu("filter_stats", "struct tw_filter_stats", 0, FILTER_STATS_FIELDS)



class PinnedFilter(FilterMaps):
    """The maps of a filter some other process loaded, through their pins."""

    def __init__(self, pin_dir: str | pathlib.Path):
        super().__init__()
        ensure_bpffs()
        self.pin_dir = pathlib.Path(pin_dir)
        self._fds: dict[str, int] = {}
        missing = [n for n in PINNED_MAPS if not (self.pin_dir / n).exists()]
        if missing:
            raise BpfError(2, f"no feed filter is pinned at {self.pin_dir} (missing {', '.join(missing)}): "
                              "load one with `tickwire xdp load`")

    def map_fd(self, name: str) -> int:
        if name not in self._fds:
            self._fds[name] = _check(self.lib.bpf_obj_get(str(self.pin_dir / name).encode()), f"bpf_obj_get({name})")
        return self._fds[name]

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


class FeedFilter(FilterMaps):
    """One loaded copy of the filter object, its maps pinned under ``pin_dir``."""

    def __init__(self, pin_dir: str | pathlib.Path, obj: str | pathlib.Path | None = None, ifindex: int = 0,
                 program: str = PROGRAM):
        super().__init__()
        ensure_bpffs()
        self.pin_dir = pathlib.Path(pin_dir)
        self.pin_dir.mkdir(parents=True, exist_ok=True)
        path = str(obj or xdp.object_path("feed_filter"))
        opts = self.ffi.new("struct bpf_object_open_opts *")
        opts.sz = self.ffi.sizeof("struct bpf_object_open_opts")
        self._pin = self.ffi.new("char[]", str(self.pin_dir).encode())
        opts.pin_root_path = self._pin
        self.obj = self.lib.bpf_object__open_file(path.encode(), opts)
        if self.obj == self.ffi.NULL:
            err = self.ffi.errno or 22
            raise BpfError(err, f"bpf_object__open_file({path}): {os.strerror(err)}")
        prog = self.lib.bpf_object__find_program_by_name(self.obj, program.encode())
        if prog == self.ffi.NULL:
            self.close()
            raise BpfError(2, f"{path} has no program {program}")
        if ifindex:  # hardware-timestamp build: bound to its device (kfuncs need that)
            self.lib.bpf_program__set_ifindex(prog, ifindex)
            _check(self.lib.bpf_program__set_flags(prog, BPF_F_XDP_DEV_BOUND_ONLY), "bpf_program__set_flags")
        try:
            _check(self.lib.bpf_object__load(self.obj), f"bpf_object__load({path})")
        except BpfError:
            self.close()
            raise
        self.prog_fd = self.lib.bpf_program__fd(prog)

    def map_fd(self, name: str) -> int:
        m = self.lib.bpf_object__find_map_by_name(self.obj, name.encode())
        if m == self.ffi.NULL:
            raise BpfError(2, f"the filter has no map {name}")
        return self.lib.bpf_map__fd(m)

    def close(self) -> None:
        if getattr(self, "obj", None) is not None and self.obj != self.ffi.NULL:
            self.lib.bpf_object__close(self.obj)
        self.obj = None

    def __enter__(self) -> FeedFilter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- running ----------------------------------------------------------------------------

    def test_run(self, frame: bytes, repeat: int = 1, rx_queue: int = 0) -> TestRun:
        """Run one frame through the program in the kernel (bpf_prog_test_run_opts)."""
        opts = self.ffi.new("struct bpf_test_run_opts *")
        opts.sz = self.ffi.sizeof("struct bpf_test_run_opts")
        data_in = self.ffi.from_buffer(frame)
        out = self.ffi.new("char[]", len(frame) + 256)
        ctx_in = self.ffi.new("struct xdp_md *")
        ctx_in.data_end = len(frame)
        ctx_in.rx_queue_index = rx_queue
        ctx_out = self.ffi.new("struct xdp_md *")
        opts.data_in, opts.data_size_in = data_in, len(frame)
        opts.data_out, opts.data_size_out = out, len(frame) + 256
        opts.ctx_in, opts.ctx_size_in = ctx_in, self.ffi.sizeof("struct xdp_md")
        opts.ctx_out, opts.ctx_size_out = ctx_out, self.ffi.sizeof("struct xdp_md")
        opts.repeat = repeat
        _check(self.lib.bpf_prog_test_run_opts(self.prog_fd, opts), "bpf_prog_test_run_opts")
        raw = bytes(self.ffi.buffer(out, opts.data_size_out))
        meta_len = ctx_out.data - ctx_out.data_meta
        return TestRun(opts.retval, raw[:meta_len], raw[meta_len:], opts.duration)

    def attach(self, ifindex: int, mode: str = "native") -> str:
        """Attach in native (driver) mode, falling back to generic; returns the mode used."""
        flags = {"native": self.lib.XDP_FLAGS_DRV_MODE, "generic": self.lib.XDP_FLAGS_SKB_MODE}[mode]
        rc = self.lib.bpf_xdp_attach(ifindex, self.prog_fd, flags, self.ffi.NULL)
        if rc < 0 and mode == "native":
            _check(self.lib.bpf_xdp_attach(ifindex, self.prog_fd, self.lib.XDP_FLAGS_SKB_MODE, self.ffi.NULL),
                   "bpf_xdp_attach(generic)")
            return "generic"
        _check(rc, f"bpf_xdp_attach({mode})")
        return mode


def detach(ifindex: int) -> None:
    ffi, lib = binding()
    for flags in (lib.XDP_FLAGS_DRV_MODE, lib.XDP_FLAGS_SKB_MODE):
        lib.bpf_xdp_detach(ifindex, flags, ffi.NULL)


def pin_dir_for(iface: str) -> pathlib.Path:
    return PIN_ROOT / iface


def hw_timestamps(ifindex: int, iface: str) -> dict[str, Any]:
    """Whether the hardware-timestamp build can run on this device: it is loaded
    bound to the device (its kfunc needs that), which the driver accepts only if
    it implements XDP receive-timestamp metadata. Returns the object to use and,
    when it is unavailable, why."""
    hw = xdp.object_path("feed_filter_hwts")
    probe_dir = PIN_ROOT / f"probe-{iface}-{os.getpid()}"  # bpffs refuses names starting with a dot
    try:
        FeedFilter(probe_dir, hw, ifindex=ifindex).close()
    except BpfError as exc:
        return {"available": False, "object": str(xdp.object_path("feed_filter")),
                "reason": f"{iface} does not take a device-bound program with bpf_xdp_metadata_rx_timestamp "
                          f"({exc.strerror}); arrival times come from bpf_ktime_get_ns()"}
    finally:
        for name in PINNED_MAPS:
            (probe_dir / name).unlink(missing_ok=True)
        try:
            probe_dir.rmdir()
        except OSError:
            pass
    return {"available": True, "object": str(hw), "reason": ""}


def share_with_dpdk(pin_dir: str | pathlib.Path) -> list[str]:
    """Let the copy of the filter that DPDK's af_xdp driver loads (``xdp_prog=``)
    use these pinned maps. The driver opens the object without options, so libbpf
    pins by name under its default root, ``/sys/fs/bpf/<map>``; a link there to
    our own folder's link to our pin (``PIN_ROOT/dpdk/<map>``) makes libbpf reuse
    our map (bpf_obj_get follows links), while the service user never writes the
    top of bpffs (the unit makes those links as root). One such set per host: the
    default root has one ``feed_rules``. Returns the links made in our folder."""
    ensure_bpffs()
    DPDK_LINKS.mkdir(parents=True, exist_ok=True)
    links = []
    for name in PINNED_MAPS:
        target = pathlib.Path(pin_dir) / name
        if not target.exists():
            raise BpfError(2, f"{target} is not pinned: load the filter first")
        top, ours = BPFFS / name, DPDK_LINKS / name
        if not (top.is_symlink() and os.readlink(top) == str(ours)):  # root (the lab) makes it; the unit made it
            if top.is_symlink() or top.exists():
                top.unlink()
            top.symlink_to(ours)
        if ours.is_symlink() or ours.exists():
            ours.unlink()
        ours.symlink_to(target)
        links.append(str(ours))
    return links


def unshare_with_dpdk() -> None:
    for name in PINNED_MAPS:
        ours, top = DPDK_LINKS / name, BPFFS / name
        if ours.is_symlink():
            ours.unlink()
        if top.is_symlink() and os.readlink(top) == str(ours) and os.access(BPFFS, os.W_OK):
            top.unlink()  # root's run tidies; the unit's links stay (they lead nowhere while nothing is shared)
