"""``tickwire version`` and ``tickwire doctor``: what this build is, and whether this host can run it."""

from __future__ import annotations

import argparse
import dataclasses
import platform
import shutil

from rich.table import Table

from appliance import __version__, preflight
from appliance.commands.kit import Command, Report, console


def cmd_version(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    from dpdk import NativeMissing, dpdk_version

    try:
        dpdk = dpdk_version()
    except NativeMissing as exc:
        dpdk = f"not built ({exc})"
    return 0, {"tickwire": __version__, "python": platform.python_version(), "kernel": platform.release(),
               "dpdk": dpdk}


def cmd_doctor(args: argparse.Namespace) -> tuple[int, Report]:
    # lazy: the library loads with its verb, not at every tickwire start
    import xdp
    from dpdk import NativeMissing, native

    findings = [dataclasses.asdict(f) for f in preflight.run_checks(preflight.gather())]
    for name in xdp.PROGRAMS:
        try:
            findings.append({"check": f"build:{name}.bpf.o", "ok": True, "evidence": str(xdp.object_path(name)),
                             "fix": ""})
        except FileNotFoundError as exc:
            findings.append({"check": f"build:{name}.bpf.o", "ok": False, "evidence": str(exc),
                             "fix": "make build"})
    try:
        native()
        findings.append({"check": "build:dpdk._native", "ok": True, "evidence": "imports", "fix": ""})
    except NativeMissing as exc:
        findings.append({"check": "build:dpdk._native", "ok": False, "evidence": str(exc), "fix": "make build"})
    for tool in ("ip", "tc", "ethtool", "bpftool", "clang", "ptp4l", "pmc"):
        path = shutil.which(tool)
        findings.append({"check": f"tool:{tool}", "ok": bool(path), "evidence": path or "not on PATH",
                         "fix": "" if path else "make setup (installs the Debian packages)"})
    return (0 if all(f["ok"] for f in findings) else 1), findings


def render_doctor(report: Report) -> None:
    table = Table("check", "", "evidence / fix", box=None)
    for f in report:
        table.add_row(f["check"], "[green]ok[/]" if f["ok"] else "[red]FAIL[/]",
                      f["evidence"] if f["ok"] else f"{f['evidence']}\n[yellow]fix:[/] {f['fix']}")
    console.print(table)


COMMANDS: tuple[Command, ...] = (
    Command(("version",), "show the versions of tickwire, Python, the kernel and the DPDK it was built with",
            cmd_version),
    Command(("doctor",), "check this host and the build: root, Debian 12, kernel features, built objects, tools",
            cmd_doctor, render=render_doctor),
)
