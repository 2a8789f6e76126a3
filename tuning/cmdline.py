"""The kernel command line: what only a reboot changes (provisioning's
tickwire_kernel_cmdline role writes it), after the kernel's CPU-isolation
guide and tuned's cpu-partitioning profile.

    isolcpus=managed_irq,domain,CPUS   no scheduler load balancing, no managed IRQs on them
    nohz_full=CPUS                     no scheduler tick while one task runs
    rcu_nocbs=CPUS                     RCU callbacks done elsewhere
    irqaffinity=HOUSEKEEPING           IRQs start on the housekeeping cores
    skew_tick=1                        the cores' ticks do not all fire at once
    tsc=reliable                       no clocksource watchdog on the TSC
    nosoftlockup                       no soft-lockup watchdog thread on a polling core
"""

from __future__ import annotations

from typing import Any

from tuning.findings import Finding, cpulist, cpus_text, read

PATH = "/proc/cmdline"


def params(text: str) -> dict[str, str]:
    out = {}
    for word in text.split():
        if word == "--":
            break  # what follows is init's
        k, _, v = word.partition("=")
        out[k] = v
    return out


def _cpus_of(value: str) -> set[int]:
    """isolcpus' value without its flags: 'managed_irq,domain,1-3' -> {1, 2, 3}."""
    return cpulist(",".join(p for p in value.split(",") if p and (p[0].isdigit())))


def wanted(plan: Any) -> dict[str, str]:
    iso, hk = cpus_text(plan.isolated), cpus_text(plan.housekeeping)
    return {"isolcpus": f"managed_irq,domain,{iso}", "nohz_full": iso, "rcu_nocbs": iso, "irqaffinity": hk,
            "skew_tick": "1", "tsc": "reliable", "nosoftlockup": ""}


def audit(plan: Any) -> list[Finding]:
    text = read(PATH) or ""
    have = params(text)
    out = []
    want = wanted(plan)
    for key, value in want.items():
        got = have.get(key)
        ev = f"{PATH}: " + (f"{key}={got}" if got else f"no {key}") if key != "nosoftlockup" else \
            f"{PATH}: {'nosoftlockup' if key in have else 'no nosoftlockup'}"
        fix = f"add {key}{'=' + value if value else ''} to the kernel command line (provisioning: " \
              "tickwire_kernel_cmdline, then a reboot)"
        if key in ("isolcpus", "nohz_full", "rcu_nocbs"):
            ok = got is not None and plan.isolated <= _cpus_of(got)
            status = "ok" if ok else ("fail" if key == "isolcpus" else "warn")
        elif key == "irqaffinity":
            ok = got is not None and cpulist(got) and not (cpulist(got) & plan.isolated)
            status = "ok" if ok else "warn"
        elif key == "nosoftlockup":
            ok = key in have
            status = "ok" if ok else "warn"
        else:
            ok = got == value
            status = "ok" if ok else "warn"
        out.append(Finding("cmdline", key, status, ev, None if ok else fix, got, boot=True))
    return out
