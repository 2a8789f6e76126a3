"""What a run of the appliance closes up, in the process itself (systemd's unit says the same in
its own words, so a run outside systemd is as closed as one under it):

- ``close_up()`` at start: umask 0027 (what it writes is the service's to write, its group's to
  read, nobody else's), folders it writes into narrowed to 0750 when they are wider, files of its
  own narrowed to 0640, and no core file (RLIMIT_CORE 0: a core holds the venue's password and
  every open order).
- ``forget_env(NAME)``: a secret read from the environment leaves it: out of ``os.environ`` (so no
  child this process starts inherits it) and zeroed in the block the kernel shows as
  /proc/PID/environ.
- ``settle()`` once the ports are up: CAP_BPF and CAP_PERFMON go (the XDP programs are loaded and
  their maps pinned; what is left needs neither), and the process becomes non-dumpable (no core
  even through a core_pattern pipe that ignores RLIMIT_CORE; no ptrace or /proc/PID/mem by other
  processes of the same user). Only a process that ran ``close_up()`` (a run of its own, from the
  CLI) settles: a library caller, a test, keeps its capabilities.

Capabilities through capget/capset in glibc (ctypes): two syscalls do not need libcap or a package.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import resource
import stat

UMASK = 0o027
DIR_MODE = 0o750
FILE_MODE = 0o640
# linux/capability.h
CAPS = {"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_SYS_ADMIN": 21, "CAP_PERFMON": 38,
        "CAP_BPF": 39}
SETTLED_DROPS = ("CAP_BPF", "CAP_PERFMON")  # loading the XDP program and pinning its maps: start-up only
_CAP_V3 = 0x20080522
PR_SET_DUMPABLE = 4

_closed_up = False


def close_up(folders: list[pathlib.Path]) -> list[str]:
    """umask 0027, no core file, and each of ``folders`` that exists narrowed to 0750 (with the
    files of this user directly in it narrowed to 0640). Returns what it narrowed, said plainly."""
    global _closed_up
    os.umask(UMASK)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _closed_up = True
    told = []
    for folder in folders:
        told += _narrow(folder, DIR_MODE)
        if folder.is_dir():
            for f in folder.iterdir():
                if f.is_file() and not f.is_symlink():
                    told += _narrow(f, FILE_MODE)
    return told


def _narrow(path: pathlib.Path, most: int) -> list[str]:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return []
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != os.geteuid() or stat.S_ISLNK(st.st_mode) or mode & ~most & 0o777 == 0:
        return []
    try:
        os.chmod(path, mode & most)
    except OSError as exc:
        return [f"{path} is {mode:04o}, wider than {most:04o}, and cannot be narrowed ({exc.strerror})"]
    return [f"{path} was {mode:04o}: narrowed to {mode & most:04o} (only the service writes, its group reads)"]


def forget_env(name: str) -> str | None:
    """The value of environment variable ``name``, which then leaves this process: out of
    ``os.environ`` and the C environment (children do not get it), and zeroed where the kernel
    keeps the process's first environment (/proc/PID/environ). None if it is not set."""
    value = os.environ.pop(name, None)
    _zero_initial(name)
    return value


def _zero_initial(name: str) -> None:
    try:
        raw = pathlib.Path("/proc/self/environ").read_bytes()
        fields = pathlib.Path("/proc/self/stat").read_text().rpartition(")")[2].split()
        start, end = int(fields[47]), int(fields[48])  # env_start, env_end: proc(5) fields 50 and 51
    except (OSError, IndexError, ValueError):
        return
    if not start or end - start < len(raw):
        return
    key = name.encode() + b"="
    at = 0
    while at < len(raw):
        nul = raw.find(b"\0", at)
        nul = len(raw) if nul < 0 else nul
        if raw.startswith(key, at):
            ctypes.memset(start + at + len(key), 0, nul - at - len(key))
        at = nul + 1


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def effective_caps() -> set[str]:
    """The names (of CAPS) in this process's effective set."""
    eff = int(next(line.split()[1] for line in pathlib.Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("CapEff:")), 16)
    return {n for n, bit in CAPS.items() if eff >> bit & 1}


def drop_caps(names: tuple[str, ...]) -> None:
    """Take ``names`` out of the effective, permitted and inheritable sets (the ambient set follows
    the permitted one): for good, this process and what it starts."""
    libc = _libc()
    hdr = _CapHeader(_CAP_V3, 0)
    data = (_CapData * 2)()
    if libc.capget(ctypes.byref(hdr), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    for name in names:
        bit = CAPS[name]
        mask = ~(1 << (bit % 32)) & 0xFFFFFFFF
        d = data[bit // 32]
        d.effective &= mask
        d.permitted &= mask
        d.inheritable &= mask
    if libc.capset(ctypes.byref(hdr), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def settle() -> list[str]:
    """Once the ports are up: drop SETTLED_DROPS and become non-dumpable, when close_up() ran in
    this process. Returns what it did, said plainly (empty when it did nothing)."""
    if not _closed_up:
        return []
    held = [c for c in SETTLED_DROPS if c in effective_caps()]
    drop_caps(SETTLED_DROPS)
    if _libc().prctl(PR_SET_DUMPABLE, *(ctypes.c_ulong(0),) * 4) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0)")
    return ([f"the ports are up: dropped {', '.join(held)}"] if held else []) + ["no longer dumpable"]
