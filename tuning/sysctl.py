"""Sysctls: the values tuning asks for (tuning.plan.SYSCTLS), read from /proc/sys."""

from __future__ import annotations

from typing import Any

from tuning.findings import Finding, read
from tuning.plan import REPORTED_SYSCTLS, SYSCTLS


def path(name: str) -> str:
    return "/proc/sys/" + name.replace(".", "/")


def audit(plan: Any) -> list[Finding]:
    out = []
    for name, (want, why) in SYSCTLS.items():
        got = read(path(name))
        if got is None:
            out.append(Finding("sysctl", name, "info", f"{path(name)}: absent on this kernel"))
            continue
        ok = got.split() == want.split()
        out.append(Finding("sysctl", name, "ok" if ok else "warn", f"{path(name)}: {got} (wanted {want}: {why})",
                           None if ok else f"sysctl -w {name}={want} (tickwire tune apply; provisioning: "
                           "tickwire_sysctl keeps it)", got))
    for name, (_usual, why) in REPORTED_SYSCTLS.items():
        got = read(path(name))
        out.append(Finding("sysctl", name, "info", f"{path(name)}: {got} ({why})", value=got))
    return out


def changes(plan: Any) -> list[dict[str, Any]]:
    out = []
    for name, (want, _) in SYSCTLS.items():
        got = read(path(name))
        if got is not None and got.split() != want.split():
            out.append({"concern": "sysctl", "what": name, "path": path(name), "before": got, "after": want})
    return out
