"""``tickwire tune apply`` and ``tickwire tune revert``: what the running kernel
can change (sysctls, IRQ affinity, the workqueues' mask, the governor,
transparent hugepages, hugepages, NIC rings and coalescing), shown as a diff,
applied only with --yes, each old value saved first; revert writes back exactly
what was saved. What only a reboot changes (the kernel command line) is left to
provisioning and reported as such.

The saved state (/var/lib/tickwire/tune/applied.json) keeps, for each setting,
the value it had before tickwire first changed it: a second apply adds to it and
never overwrites an older "before", so one revert always goes back to the host
as it was.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
from typing import Any

from tuning import cmdline, cpu, irq, memory, nic, sysctl
from tuning.findings import read

STATE = pathlib.Path(os.environ.get("TICKWIRE_TUNE_STATE", "/var/lib/tickwire/tune/applied.json"))
SOURCES = (sysctl.changes, irq.changes, cpu.changes, memory.changes, nic.changes)


def planned(plan: Any) -> list[dict[str, Any]]:
    out = []
    for fn in SOURCES:
        out += fn(plan)
    return out


def boot_items(plan: Any) -> list[dict[str, Any]]:
    return [{"what": f.check, "evidence": f.evidence, "fix": f.fix} for f in cmdline.audit(plan) + cpu.audit(plan)
            if f.boot and f.status != "ok"]


def _key(ch: dict[str, Any]) -> str:
    return ch["path"] if ch.get("kind", "file") == "file" else f"nic:{ch['netns'] or ''}:{ch['iface']}:{ch['field']}"


def _write(ch: dict[str, Any], value: Any) -> str | None:
    """Set one setting to value; None when it took (read back), else why not."""
    if ch.get("kind", "file") == "nic":
        r = nic.apply_change(ch, value)
        return None if r["status"] == "ok" else r.get("reason", r["status"])
    try:
        with open(ch["path"], "w") as f:
            f.write(f"{value}\n")
    except OSError as exc:
        return f"the kernel refused it ({exc.strerror})"
    got = read(ch["path"]) or ""
    if ch["path"].endswith(("/enabled", "/defrag")):
        got = memory._selected(got) or ""
    if got.split() != str(value).split() and not _same_mask(got, str(value)):
        return f"wrote {value!r}, reads back {got!r}"
    return None


def _same_mask(a: str, b: str) -> bool:
    try:
        return int(a.replace(",", ""), 16) == int(b.replace(",", ""), 16)
    except ValueError:
        return False


def load_state() -> dict[str, Any]:
    try:
        return json.loads(STATE.read_text())
    except (OSError, ValueError):
        return {"changes": []}


def apply(plan: Any, dry_run: bool = True, who: str = "") -> dict[str, Any]:
    changes = planned(plan)
    out: dict[str, Any] = {"dry_run": dry_run, "changes": changes, "left_to_provisioning": boot_items(plan),
                           "state": str(STATE), "applied": [], "failed": [], "skipped": []}
    if dry_run or not changes:
        return out
    state = load_state()
    saved = {_key(c): c for c in state["changes"]}
    for ch in changes:
        key = _key(ch)
        why = _write(ch, ch["after"])
        if why is None:
            out["applied"].append(ch)
            if key not in saved:  # the oldest "before" stays: revert goes back to the host as it was
                saved[key] = {**ch, "at": datetime.datetime.now(datetime.UTC).isoformat(), "who": who}
        elif ch["concern"] == "irq" and "refused" in why:
            # a managed or per-CPU interrupt: the kernel keeps its affinity (isolcpus=managed_irq keeps it
            # off the isolated cores at boot)
            out["skipped"].append({**ch, "why": why + ": the kernel manages this IRQ's affinity"})
        else:
            out["failed"].append({**ch, "why": why})
    STATE.parent.mkdir(parents=True, exist_ok=True)
    tmp = STATE.with_suffix(".tmp")
    tmp.write_text(json.dumps({"changes": list(saved.values())}, indent=2))
    tmp.replace(STATE)
    return out


def revert() -> dict[str, Any]:
    state = load_state()
    out: dict[str, Any] = {"state": str(STATE), "restored": [], "failed": []}
    left = []
    for ch in reversed(state["changes"]):
        why = _write(ch, ch["before"])
        if why is None:
            out["restored"].append(ch)
        else:
            out["failed"].append({**ch, "why": why})
            left.append(ch)
    if left:
        STATE.write_text(json.dumps({"changes": list(reversed(left))}, indent=2))
    else:
        STATE.unlink(missing_ok=True)
    return out
