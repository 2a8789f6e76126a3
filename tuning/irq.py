"""Interrupts: which IRQs may land on an isolated core (/proc/irq/N/smp_affinity_list),
the default affinity new ones get, and irqbalance (which moves them back unless it
is told to keep off: IRQBALANCE_BANNED_CPULIST)."""

from __future__ import annotations

import pathlib
import re
import subprocess
from typing import Any

from tuning.findings import Finding, cpulist, cpus_mask, cpus_text, mask_cpus, read

IRQ = pathlib.Path("/proc/irq")
DEFAULTS = pathlib.Path("/etc/default/irqbalance")


def irqs() -> dict[int, dict[str, Any]]:
    """Every IRQ with an affinity file: its CPUs and what /proc/interrupts calls it."""
    names: dict[int, str] = {}
    try:
        for line in pathlib.Path("/proc/interrupts").read_text().splitlines()[1:]:
            parts = line.split()
            if parts and parts[0].rstrip(":").isdigit():
                names[int(parts[0].rstrip(":"))] = " ".join(p for p in parts[1:] if not p.isdigit())
    except OSError:
        pass
    out = {}
    for d in IRQ.iterdir() if IRQ.exists() else ():
        if not d.name.isdigit():
            continue
        aff = read(d / "smp_affinity_list")
        if aff is None:
            continue
        out[int(d.name)] = {"cpus": cpulist(aff), "text": aff, "name": names.get(int(d.name), "")}
    return out


def on_isolated(plan: Any) -> dict[int, dict[str, Any]]:
    """The IRQs allowed on an isolated core (where the housekeeping ones would do)."""
    return {n: i for n, i in irqs().items() if i["cpus"] & plan.isolated}


def audit(plan: Any) -> list[Finding]:
    out = []
    bad = on_isolated(plan)
    if bad:
        listed = ", ".join(f"{n} {i['name'].split()[-1] if i['name'] else ''}({i['text']})"
                           for n, i in sorted(bad.items())[:8])
        out.append(Finding("irq", "IRQ affinity", "warn", f"{IRQ}/N/smp_affinity_list: {len(bad)} IRQ(s) may run on "
                           f"{cpus_text(plan.isolated)}: {listed}",
                           f"move them to {cpus_text(plan.housekeeping)} (tickwire tune apply; irqaffinity= on the "
                           "kernel command line for the ones that come later)", sorted(bad)))
    else:
        out.append(Finding("irq", "IRQ affinity", "ok", f"{IRQ}/N/smp_affinity_list: none on "
                           f"{cpus_text(plan.isolated)}", value=[]))
    dflt = read(IRQ / "default_smp_affinity")
    dcpus = mask_cpus(dflt)
    out.append(Finding("irq", "default IRQ affinity", "warn" if dcpus & plan.isolated else "ok",
                       f"{IRQ}/default_smp_affinity: {dflt} (CPUs {cpus_text(dcpus)})",
                       f"echo {cpus_mask(plan.housekeeping)} > {IRQ}/default_smp_affinity "
                       "(tickwire tune apply)" if dcpus & plan.isolated else None, dflt))
    out.append(_irqbalance(plan))
    return out


def _irqbalance(plan: Any) -> Finding:
    running = subprocess.run(["pgrep", "-x", "irqbalance"], capture_output=True, text=True).stdout.split()
    banned = None
    text = read(DEFAULTS) or ""
    m = re.search(r"^\s*IRQBALANCE_BANNED_CPULIST\s*=\s*\"?([0-9,\-]*)\"?", text, re.M)
    if m:
        banned = cpulist(m.group(1))
    if not running:
        return Finding("irq", "irqbalance", "ok", f"pgrep irqbalance: not running (the affinities set stay set); "
                       f"{DEFAULTS}: " + (f"banned {cpus_text(banned)}" if banned else "no banned CPUs"),
                       value="stopped")
    if banned is not None and plan.isolated <= banned:
        return Finding("irq", "irqbalance", "ok", f"irqbalance pid {running[0]}; {DEFAULTS}: "
                       f"IRQBALANCE_BANNED_CPULIST={cpus_text(banned)}", value="banned")
    return Finding("irq", "irqbalance", "warn", f"irqbalance pid {running[0]}; {DEFAULTS}: "
                   + (f"IRQBALANCE_BANNED_CPULIST={cpus_text(banned)}" if banned is not None else "no banned CPUs")
                   + ": it moves IRQs onto the isolated cores", f"IRQBALANCE_BANNED_CPULIST={cpus_text(plan.isolated)}"
                   f" in {DEFAULTS} (provisioning: tickwire_cpu_isolation)", value="unbanned")


def changes(plan: Any) -> list[dict[str, Any]]:
    """The affinities to move onto the housekeeping cores."""
    hk = cpus_text(plan.housekeeping)
    out = []
    for n, i in sorted(on_isolated(plan).items()):
        out.append({"concern": "irq", "what": f"IRQ {n} {i['name']}".strip(), "path": str(IRQ / str(n) /
                    "smp_affinity_list"), "before": i["text"], "after": hk})
    dflt = read(IRQ / "default_smp_affinity")
    want = cpus_mask(plan.housekeeping)
    if dflt is not None and mask_cpus(dflt) & plan.isolated:
        out.append({"concern": "irq", "what": "default IRQ affinity", "path": str(IRQ / "default_smp_affinity"),
                    "before": dflt, "after": want})
    return out
