"""The clock the worker reads: the clocksource (TSC: a read without a syscall's
cost or a hypervisor exit) and the TSC's invariance."""

from __future__ import annotations

from typing import Any

from tuning.findings import Finding, read

CS = "/sys/devices/system/clocksource/clocksource0"


def audit(plan: Any) -> list[Finding]:
    cur, avail = read(f"{CS}/current_clocksource"), read(f"{CS}/available_clocksource")
    out = [Finding("clock", "clocksource", "ok" if cur == "tsc" else "warn",
                   f"{CS}/current_clocksource: {cur} (available: {avail})",
                   None if cur == "tsc" else "tsc (clocksource=tsc tsc=reliable on the kernel command line; never "
                   "switched at run time by tickwire)", cur)]
    flags = set()
    for line in (read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    missing = [f for f in ("constant_tsc", "nonstop_tsc") if f not in flags]
    out.append(Finding("clock", "invariant TSC", "warn" if missing else "ok",
                       "/proc/cpuinfo flags: " + ("constant_tsc nonstop_tsc" if not missing else
                                                  f"no {' '.join(missing)}"),
                       "a CPU (and hypervisor) with an invariant TSC" if missing else None, not missing))
    return out
