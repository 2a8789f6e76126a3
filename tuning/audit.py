"""``tickwire tune audit``: every concern's checks against the plan (read only)."""

from __future__ import annotations

from typing import Any

from tuning import clock, cmdline, cpu, irq, memory, nic, sysctl
from tuning.findings import Finding, verdict

CONCERNS = (("cmdline", cmdline.audit), ("cpu", cpu.audit), ("irq", irq.audit), ("memory", memory.audit),
            ("sysctl", sysctl.audit), ("nic", nic.audit), ("clock", clock.audit))


def run(plan: Any) -> dict[str, Any]:
    findings = []
    for name, fn in CONCERNS:
        try:
            findings += fn(plan)
        except Exception as exc:  # noqa: BLE001 - one concern that cannot be read does not hide the rest
            findings.append(Finding(name, f"{name} audit", "warn", f"could not be read: {type(exc).__name__}: {exc}"))
    code, word = verdict(findings)
    return {"plan": plan.as_dict(), "verdict": word, "exit": code, "findings": [f.as_dict() for f in findings],
            "failed": [f"{f.concern}: {f.check}" for f in findings if f.status == "fail"],
            "warnings": [f"{f.concern}: {f.check}" for f in findings if f.status == "warn"]}
