"""What every audit module returns: findings, each with its status, its evidence
(the file or command read, and the value) and, when not ok, the fix; and the
small readers they share.

Statuses: ``ok``; ``warn`` (off the plan, costs latency or jitter); ``fail``
(the plan cannot hold: the worker's core is not isolated, no hugepages where
they are required); ``info`` (not applicable here, or only reported). The
audit's exit code is the worst: 0 ok, 1 warnings, 2 failures.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

RANK = {"ok": 0, "info": 0, "warn": 1, "fail": 2}


@dataclasses.dataclass
class Finding:
    concern: str          # the module: cmdline, cpu, irq, memory, sysctl, nic, clock
    check: str
    status: str
    evidence: str
    fix: str | None = None
    value: Any = None
    boot: bool = False    # only a reboot changes it (provisioning's kernel command line)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read(path: str | os.PathLike[str]) -> str | None:
    """A sysfs or procfs file's text, stripped; None when it is not there."""
    try:
        return pathlib.Path(path).read_text().strip()
    except OSError:
        return None


def cpulist(text: str | None) -> set[int]:
    """'0-2,5' -> {0, 1, 2, 5}; '' or None -> set()."""
    out: set[int] = set()
    for part in (text or "").replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


def cpus_text(cpus: set[int] | list[int]) -> str:
    """{0, 1, 2, 5} -> '0-2,5' (the kernel's way)."""
    s = sorted(set(cpus))
    runs, i = [], 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[j] + 1:
            j += 1
        runs.append(f"{s[i]}-{s[j]}" if j > i else str(s[i]))
        i = j + 1
    return ",".join(runs)


def cpus_mask(cpus: set[int] | frozenset[int] | list[int]) -> str:
    """{0, 1} -> '3'; {0, 40} -> '100,00000001': hex in 32-bit groups, most significant first, as the
    kernel's bitmap parser takes a CPU mask (more than 8 digits without a comma it refuses)."""
    value = sum(1 << c for c in set(cpus))
    groups = []
    while True:
        groups.append(value & 0xFFFFFFFF)
        value >>= 32
        if not value:
            break
    groups.reverse()
    return ",".join([f"{groups[0]:x}"] + [f"{g:08x}" for g in groups[1:]])


def mask_cpus(mask: str | None) -> set[int]:
    """A hex CPU mask as /proc and sysfs write it ('3', '00000000,00000003') -> {0, 1}."""
    if not mask:
        return set()
    value = int(mask.replace(",", ""), 16)
    return {i for i in range(value.bit_length()) if value >> i & 1}


def verdict(findings: list[Finding]) -> tuple[int, str]:
    worst = max((RANK[f.status] for f in findings), default=0)
    return worst, {0: "tuned", 1: "degraded", 2: "not tuned"}[worst]
