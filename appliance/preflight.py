"""Preflight: is this host one tickwire can be set up and run on?

Standard library only: ``scripts/setup.sh`` runs this file with the system Python
before the virtualenv exists, and ``tickwire doctor`` runs the same checks later.

Each check returns a :class:`Finding` naming what is missing and how to get it.
The host, the kernel config and the probes are injected so tests can pin every
message without a second machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import platform
import socket
import struct
import sys
from collections.abc import Callable, Mapping, Sequence

AF_XDP = 44  # include/linux/socket.h; Python's socket module has no name for it


# capability numbers (include/uapi/linux/capability.h) of the ones tickwire may need
CAPABILITIES = {"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_SYS_ADMIN": 21,
                "CAP_SYS_NICE": 23, "CAP_SYS_RESOURCE": 24, "CAP_PERFMON": 38, "CAP_BPF": 39}


def has_capability(name: str, status: str | None = None) -> bool:
    """Whether this process's effective set holds ``name`` (``/proc/self/status`` CapEff)."""
    if status is None:
        with open("/proc/self/status") as f:
            status = f.read()
    eff = next((int(line.split()[1], 16) for line in status.splitlines() if line.startswith("CapEff:")), 0)
    return bool(eff >> CAPABILITIES[name] & 1)


@dataclasses.dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    evidence: str
    fix: str = ""


@dataclasses.dataclass(frozen=True)
class Host:
    """What the checks read, gathered once so tests can replace any part."""

    euid: int
    os_release: Mapping[str, str]
    kernel_release: str
    kernel_config: Mapping[str, str] | None  # None: no config readable
    config_source: str
    python_version: tuple[int, int]
    probes: Mapping[str, Callable[[], str | None]]  # name -> None if fine, else why not


# Kernel options tickwire relies on, each with the reason, in the order reported.
KERNEL_FEATURES: tuple[tuple[str, str, str], ...] = (
    ("CONFIG_BPF_SYSCALL", "bpf", "the BPF system call, for the XDP filter and its maps"),
    ("CONFIG_DEBUG_INFO_BTF", "btf", "kernel BTF (/sys/kernel/btf/vmlinux), for CO-RE BPF objects"),
    ("CONFIG_XDP_SOCKETS", "af_xdp", "AF_XDP sockets, the path from XDP into the DPDK worker"),
    ("CONFIG_NET_NS", "netns", "network namespaces, for the lab"),
    ("CONFIG_VETH", None, "veth pairs, the lab's links"),
    ("CONFIG_BRIDGE", None, "bridges, the lab's feed networks"),
    ("CONFIG_IP_MULTICAST", None, "IP multicast, the market-data feed"),
    ("CONFIG_NET_SCH_INGRESS", None, "the clsact qdisc, for the lab's link impairments"),
    ("CONFIG_NET_CLS_BPF", None, "tc BPF classifiers, for the lab's link impairments"),
)


def _probe_bpf() -> str | None:
    """Create (and close) a one-slot BPF array map through the bpf(2) syscall."""
    import ctypes  # 2 ms of every command's start-up otherwise (the CLI imports this module): the probe's only

    libc = ctypes.CDLL(None, use_errno=True)
    # union bpf_attr for BPF_MAP_CREATE: map_type=BPF_MAP_TYPE_ARRAY, key 4, value 4, 1 entry
    attr = ctypes.create_string_buffer(struct.pack("=IIIII", 2, 4, 4, 1, 0), 64)
    fd = libc.syscall(321, 0, attr, 64)  # __NR_bpf on x86_64, BPF_MAP_CREATE
    if fd < 0:
        return f"bpf(BPF_MAP_CREATE) failed: {os.strerror(ctypes.get_errno())}"
    os.close(fd)
    return None


def _probe_btf() -> str | None:
    return None if os.path.exists("/sys/kernel/btf/vmlinux") else "/sys/kernel/btf/vmlinux is absent"


def _probe_af_xdp() -> str | None:
    try:
        socket.socket(AF_XDP, socket.SOCK_RAW, 0).close()
    except OSError as exc:
        return f"socket(AF_XDP) failed: {exc.strerror}"
    return None


def _probe_netns() -> str | None:
    return None if os.path.exists("/proc/self/ns/net") else "/proc/self/ns/net is absent"


# Probes that fail with EPERM for anyone but root, whatever the kernel has:
# run only as root, so a non-root run reports "not root", not a missing feature.
PRIVILEGED_PROBES = frozenset({"bpf", "af_xdp"})

PROBES: dict[str, Callable[[], str | None]] = {
    "bpf": _probe_bpf,
    "btf": _probe_btf,
    "af_xdp": _probe_af_xdp,
    "netns": _probe_netns,
}


def parse_os_release(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            out[key.strip()] = value.strip().strip('"')
    return out


def parse_kernel_config(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            out[key] = value
    return out


def read_kernel_config(release: str) -> tuple[dict[str, str] | None, str]:
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            return parse_kernel_config(f.read()), "/proc/config.gz"
    except OSError:
        pass
    path = f"/boot/config-{release}"
    try:
        with open(path) as f:
            return parse_kernel_config(f.read()), path
    except OSError:
        return None, "no kernel config (/proc/config.gz, /boot/config-*)"


def gather() -> Host:
    try:
        with open("/etc/os-release") as f:
            osr = parse_os_release(f.read())
    except OSError:
        osr = {}
    release = platform.release()
    config, source = read_kernel_config(release)
    return Host(
        euid=os.geteuid(),
        os_release=osr,
        kernel_release=release,
        kernel_config=config,
        config_source=source,
        python_version=sys.version_info[:2],
        probes=PROBES,
    )


def check_root(host: Host) -> Finding:
    if host.euid == 0:
        return Finding("root", True, "euid 0")
    return Finding(
        "root", False, f"running as uid {host.euid}",
        "tickwire installs packages, builds namespaces and loads BPF: run it as root (sudo make ...)",
    )


def check_debian(host: Host) -> Finding:
    distro = host.os_release.get("ID", "unknown")
    version = host.os_release.get("VERSION_ID", "unknown")
    evidence = f"/etc/os-release: ID={distro} VERSION_ID={version}"
    if distro == "debian" and version == "12":
        return Finding("debian", True, evidence)
    return Finding(
        "debian", False, evidence,
        "tickwire's setup installs Debian 12 (bookworm) packages by name: use a Debian 12 host",
    )


def check_python(host: Host) -> Finding:
    have = ".".join(map(str, host.python_version))
    if host.python_version >= (3, 11):
        return Finding("python", True, f"python {have}")
    return Finding("python", False, f"python {have}", "tickwire needs Python >= 3.11 (Debian 12's python3)")


def check_kernel(host: Host) -> list[Finding]:
    findings = []
    for option, probe_name, why in KERNEL_FEATURES:
        problem = None
        evidence = ""
        if host.kernel_config is not None:
            value = host.kernel_config.get(option)
            evidence = f"{host.config_source}: {option}={value or 'not set'}"
            if value not in ("y", "m"):
                problem = evidence
        if problem is None and probe_name in PRIVILEGED_PROBES and host.euid != 0:
            evidence = evidence or f"probe {probe_name}: not run (needs root)"
        elif problem is None and probe_name is not None:
            why_not = host.probes[probe_name]()
            if why_not:
                problem = why_not
            evidence = evidence or f"probe {probe_name}: ok"
        if problem is None and host.kernel_config is None and probe_name is None:
            evidence = f"{option}: unverified ({host.config_source})"
        findings.append(Finding(
            f"kernel:{option}", problem is None, problem or evidence,
            "" if problem is None else
            f"kernel {host.kernel_release} lacks {why}: boot a kernel built with {option}=y",
        ))
    return findings


def run_checks(host: Host) -> list[Finding]:
    return [check_root(host), check_debian(host), check_python(host), *check_kernel(host)]


def render(findings: Sequence[Finding]) -> str:
    bad = [f for f in findings if not f.ok]
    if not bad:
        return f"preflight: all {len(findings)} checks passed"
    lines = [f"preflight: this host cannot run tickwire ({len(bad)} problem{'s' if len(bad) > 1 else ''}):"]
    for f in bad:
        lines.append(f"  - {f.check}: {f.evidence}\n    fix: {f.fix}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, host: Host | None = None) -> int:
    ap = argparse.ArgumentParser(prog="preflight", description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print every check as JSON")
    ap.add_argument("--stage", default="run", help="who is asking (setup or run), for the message")
    args = ap.parse_args(argv)
    findings = run_checks(host or gather())
    if args.json:
        print(json.dumps([dataclasses.asdict(f) for f in findings], indent=2))
    elif not all(f.ok for f in findings) or args.stage != "setup":
        print(render(findings), file=sys.stderr if not all(f.ok for f in findings) else sys.stdout)
    return 0 if all(f.ok for f in findings) else 2


if __name__ == "__main__":
    sys.exit(main())
