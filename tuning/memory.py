"""Memory: transparent hugepages (the books ask for them with madvise), 2 MiB
hugepages reserved on the worker's NUMA node (DPDK's pools), hugetlbfs, and the
memlock limit (AF_XDP's UMEM and DPDK pin memory)."""

from __future__ import annotations

import resource
from typing import Any

from tuning.findings import Finding, read

THP = "/sys/kernel/mm/transparent_hugepage"


def _selected(text: str | None) -> str | None:
    """'always [madvise] never' -> 'madvise'."""
    if not text:
        return None
    for w in text.split():
        if w.startswith("["):
            return w.strip("[]")
    return text


def hugepages_path(node: int) -> str:
    return f"/sys/devices/system/node/node{node}/hugepages/hugepages-2048kB/nr_hugepages"


def audit(plan: Any) -> list[Finding]:
    out = []
    enabled = _selected(read(f"{THP}/enabled"))
    out.append(Finding("memory", "transparent hugepages", "ok" if enabled == "madvise" else "warn",
                       f"{THP}/enabled: {read(f'{THP}/enabled')}",
                       None if enabled == "madvise" else "madvise: the books ask for hugepages themselves, nothing "
                       "else gets them behind its back (tickwire tune apply)", enabled))
    defrag = _selected(read(f"{THP}/defrag"))
    out.append(Finding("memory", "hugepage defrag", "warn" if defrag == "always" else "ok",
                       f"{THP}/defrag: {read(f'{THP}/defrag')}",
                       "madvise: no synchronous compaction stalls for memory that did not ask" if defrag == "always"
                       else None, defrag))
    p = hugepages_path(plan.numa_node)
    got = read(p)
    have = int(got) if got and got.isdigit() else 0
    ok = have >= plan.hugepages_2mb
    status = "ok" if ok else ("fail" if plan.hugepages_required else "warn")
    out.append(Finding("memory", f"hugepages on node {plan.numa_node}", status,
                       f"{p}: {have} (planned {plan.hugepages_2mb} of 2 MiB)",
                       None if ok else f"echo {plan.hugepages_2mb} > {p} (tickwire tune apply; provisioning: "
                       "tickwire_hugepages, at boot)", have))
    mounts = [ln.split()[1] for ln in (read("/proc/mounts") or "").splitlines() if " hugetlbfs " in ln]
    out.append(Finding("memory", "hugetlbfs mounted", "ok" if mounts else "info",
                       "/proc/mounts: hugetlbfs at " + (", ".join(mounts) if mounts else "nowhere (DPDK runs "
                       "--in-memory and needs none)"), value=mounts))
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    unlimited = soft == resource.RLIM_INFINITY
    out.append(Finding("memory", "memlock limit", "ok" if unlimited else "warn",
                       f"getrlimit(RLIMIT_MEMLOCK): soft {_lim(soft)}, hard {_lim(hard)}",
                       None if unlimited else "LimitMEMLOCK=infinity for the service (provisioning's unit sets it)",
                       _lim(soft)))
    return out


def _lim(v: int) -> str:
    return "unlimited" if v == resource.RLIM_INFINITY else f"{v:,} bytes"


def changes(plan: Any) -> list[dict[str, Any]]:
    out = []
    raw = read(f"{THP}/enabled")
    if raw is not None and _selected(raw) != "madvise":
        out.append({"concern": "memory", "what": "transparent hugepages", "path": f"{THP}/enabled",
                    "before": _selected(raw), "after": "madvise"})
    raw = read(f"{THP}/defrag")
    if raw is not None and _selected(raw) == "always":
        out.append({"concern": "memory", "what": "hugepage defrag", "path": f"{THP}/defrag", "before": "always",
                    "after": "madvise"})
    p = hugepages_path(plan.numa_node)
    got = read(p)
    if got is not None and got.isdigit() and int(got) < plan.hugepages_2mb:
        out.append({"concern": "memory", "what": f"hugepages on node {plan.numa_node}", "path": p, "before": got,
                    "after": str(plan.hugepages_2mb)})
    return out
