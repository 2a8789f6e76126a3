"""NIC queues: what a device has (``tickwire nic show``) and changing it
(``tickwire nic set``).

Channels, rings, coalescing and features go through pyroute2's ethtool support
(netlink); timestamping, the PTP hardware clock, driver facts and ntuple rules go
through the ``ethtool`` command, which pyroute2 does not cover; the NUMA node and
the queues' IRQs come from sysfs and /proc. Whatever a device does not support
is reported as ``unsupported`` with the reason, never as a failure: veth, the
lab's device, supports channels and features and little else.

An interface in another network namespace is reached with ``netns``: netlink
from this thread inside it, commands and sysfs through ``ip netns exec``.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Iterator
from typing import Any

from common.netns import in_netns
from tuning.findings import Finding

UNSUPPORTED = "unsupported"


class NicError(RuntimeError):
    """A request that cannot be carried out at all (no such interface, bad value)."""


@contextlib.contextmanager
def _ethtool(netns: str | None) -> Iterator[Any]:
    from pyroute2.ethtool import Ethtool  # pyroute2 costs about 170 ms to import: only who reads a NIC pays it

    with in_netns(netns):
        e = Ethtool()
        try:
            yield e
        finally:
            e.close()


def _run(netns: str | None, argv: list[str]) -> subprocess.CompletedProcess:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run(prefix + argv, capture_output=True, text=True)


def _unsupported(exc: Exception) -> dict[str, str]:
    detail = str(exc).replace("\x00", "").strip()  # pyroute2 pads the interface name with NULs
    return {"status": UNSUPPORTED, "reason": f"the driver does not support it ({type(exc).__name__}: {detail})"}


def _fields(obj: Any) -> dict[str, Any]:
    return {k: v for k, v in obj._asdict().items()} if hasattr(obj, "_asdict") else dict(vars(obj))


def _check_iface(iface: str, netns: str | None) -> None:
    res = _run(netns, ["ip", "link", "show", "dev", iface])
    if res.returncode:
        where = f" in namespace {netns}" if netns else ""
        raise NicError(f"interface {iface} does not exist{where} (ip link)")


def driver_info(iface: str, netns: str | None) -> dict[str, str]:
    res = _run(netns, ["ethtool", "-i", iface])
    info = {}
    for line in res.stdout.splitlines():
        key, _, value = line.partition(":")
        if value:
            info[key.strip().replace("-", "_")] = value.strip()
    return info


def timestamping(iface: str, netns: str | None) -> dict[str, Any]:
    """``ethtool -T``: capabilities, and the PTP hardware clock's index (or none)."""
    res = _run(netns, ["ethtool", "-T", iface])
    if res.returncode:
        return {"status": UNSUPPORTED, "reason": res.stderr.strip()}
    caps, section = {"capabilities": [], "tx_types": [], "rx_filters": []}, None
    phc = None
    for line in res.stdout.splitlines():
        m = re.match(r"\s*PTP Hardware Clock:\s*(\S+)", line)
        if m:
            phc = None if m.group(1).lower() == "none" else int(m.group(1))
            continue
        head = line.strip().rstrip(":").lower()
        if head in ("capabilities", "hardware transmit timestamp modes", "hardware receive filter modes"):
            section = {"capabilities": "capabilities", "hardware transmit timestamp modes": "tx_types",
                       "hardware receive filter modes": "rx_filters"}[head]
            continue
        if section and line.startswith(("\t", " ")) and line.strip():
            caps[section].append(line.strip().split()[0])
    hardware = "hardware-receive" in caps["capabilities"] and phc is not None
    return {"status": "ok", "phc_index": phc, "hardware": hardware, **caps}


def numa_and_irqs(iface: str, netns: str | None, bus_info: str) -> dict[str, Any]:
    """NUMA node of the device and, per queue IRQ, its CPU affinity. A virtual
    device (no bus) has neither."""
    if not bus_info:
        return {"numa_node": None, "irqs": [], "note": "virtual device: no bus, so no NUMA node and no IRQs"}
    res = _run(netns, ["cat", f"/sys/class/net/{iface}/device/numa_node"])
    numa = int(res.stdout.strip()) if res.returncode == 0 and res.stdout.strip().lstrip("-").isdigit() else None
    irqs = []
    with open("/proc/interrupts") as f:
        for line in f:
            parts = line.split()
            if parts and parts[0].rstrip(":").isdigit() and (iface in line or bus_info in line):
                irq = int(parts[0].rstrip(":"))
                try:
                    with open(f"/proc/irq/{irq}/smp_affinity_list") as a:
                        cpus = a.read().strip()
                except OSError:
                    cpus = "?"
                irqs.append({"irq": irq, "name": parts[-1], "cpus": cpus})
    return {"numa_node": numa if numa is not None and numa >= 0 else None, "irqs": irqs}


def show(iface: str, netns: str | None = None) -> dict[str, Any]:
    _check_iface(iface, netns)
    out: dict[str, Any] = {"iface": iface, "netns": netns}
    drv = driver_info(iface, netns)
    out["driver"] = drv
    with _ethtool(netns) as e:
        for name, fn in (("channels", e.get_channels), ("rings", e.get_rings), ("coalesce", e.get_coalesce)):
            try:
                out[name] = {"status": "ok", **_fields(fn(iface))}
            except Exception as exc:  # pyroute2 raises NotSupportedError and NetlinkError variants
                out[name] = _unsupported(exc)
        try:
            feats = e.get_features(iface).features
            out["offloads"] = {"status": "ok", "enabled": sorted(k for k, f in feats.items() if k and f.enable),
                               "changeable": sorted(k for k, f in feats.items() if k and f.available)}
        except Exception as exc:
            out["offloads"] = _unsupported(exc)
    out["timestamping"] = timestamping(iface, netns)
    out.update(numa_and_irqs(iface, netns, drv.get("bus_info", "")))
    return out


def set_(iface: str, netns: str | None = None, channels: int | None = None, rx_ring: int | None = None,
         coalesce: dict[str, int] | None = None, ntuple: str | None = None) -> dict[str, Any]:
    """Apply what was asked; each change reports ok, unsupported (with why) or failed."""
    _check_iface(iface, netns)
    results: dict[str, Any] = {}
    with _ethtool(netns) as e:
        if channels is not None:
            results["channels"] = _apply(lambda: _set_channels(e, iface, channels))
        if rx_ring is not None:
            results["rx_ring"] = _apply(lambda: e.set_rings(iface, rx=rx_ring))
        if coalesce:
            results["coalesce"] = _apply(lambda: e.set_coalesce(iface, coalesce))
    if ntuple:
        results["ntuple"] = _ntuple(iface, netns, ntuple)
    return {"iface": iface, "netns": netns, "results": results}


def _set_channels(e: Any, iface: str, n: int) -> None:
    cur = e.get_channels(iface)
    if cur.max_combined:
        e.set_channels(iface, {"combined_count": n})
    else:  # devices with separate rx and tx queues (veth)
        e.set_channels(iface, {"rx_count": n, "tx_count": n})


def _apply(fn: Any) -> dict[str, str]:
    try:
        fn()
        return {"status": "ok"}
    except Exception as exc:
        name = type(exc).__name__
        if "NotSupported" in name or "Operation not supported" in str(exc) or getattr(exc, "code", None) == 95:
            return _unsupported(exc)
        return {"status": "failed", "reason": f"{name}: {exc}"}


NTUPLE_RE = re.compile(r"^udp dst (?P<ip>\d+\.\d+\.\d+\.\d+):(?P<port>\d+) queue (?P<queue>\d+)$")


def _ntuple(iface: str, netns: str | None, spec: str) -> dict[str, str]:
    m = NTUPLE_RE.match(spec.strip())
    if not m:
        raise NicError(f"--ntuple {spec!r}: write it as 'udp dst GROUP:PORT queue Q', e.g. 'udp dst 239.198.1.1:26400 "
                       "queue 1'")
    res = _run(netns, ["ethtool", "-N", iface, "flow-type", "udp4", "dst-ip", m["ip"], "dst-port", m["port"],
                       "action", m["queue"]])
    if res.returncode == 0:
        return {"status": "ok"}
    if "Operation not supported" in res.stderr or "not supported" in res.stderr.lower():
        return {"status": UNSUPPORTED, "reason": res.stderr.strip()}
    return {"status": "failed", "reason": res.stderr.strip()}


# ---- the audit and what apply changes: the plan's interfaces -------------------------------------------

def audit(plan: Any) -> list[Any]:
    out = []
    if not plan.interfaces:
        return [Finding("nic", "interfaces", "info", "no interface planned (give --config: its feed lines and PTP "
                        "interface are checked)")]
    for itf in plan.interfaces:
        where = f"{itf.name}" + (f" (netns {itf.netns})" if itf.netns else "") + f", {itf.role}"
        try:
            s = show(itf.name, itf.netns)
        except Exception as exc:  # noqa: BLE001 - a namespace or interface not there: said, not raised
            out.append(Finding("nic", f"{itf.name}", "warn", f"{where}: {exc}", "bring the interface up (the lab: "
                               "tickwire lab up)"))
            continue
        numa = s.get("numa_node")
        if numa is None:
            out.append(Finding("nic", f"{itf.name} NUMA node", "info", f"{where}: {s.get('note', 'no NUMA node')}"))
        else:
            out.append(Finding("nic", f"{itf.name} NUMA node", "ok" if numa == plan.numa_node else "fail",
                               f"/sys/class/net/{itf.name}/device/numa_node: {numa} (the worker's node "
                               f"{plan.numa_node})", None if numa == plan.numa_node else "the worker on the NIC's "
                               "node (host.numa_node and lcores), or the NIC in a slot of the worker's", numa))
        ch = s["channels"]
        if ch["status"] == "ok":
            n = ch.get("combined_count") or ch.get("rx_count")
            out.append(Finding("nic", f"{itf.name} channels", "info", f"ethtool -l {itf.name}: {n} queue(s) "
                               f"(max {ch.get('max_combined') or ch.get('max_rx')})", value=n))
        rings = s["rings"]
        if rings["status"] == "ok":
            rx = rings.get("rx_pending")
            ok = (rx or 0) >= min(plan.rx_ring, rings.get("rx_max") or plan.rx_ring)
            out.append(Finding("nic", f"{itf.name} rx ring", "ok" if ok else "warn", f"ethtool -g {itf.name}: rx "
                               f"{rx} (max {rings.get('rx_max')}; planned {plan.rx_ring})",
                               None if ok else "a deeper rx ring absorbs the worker's stalls (tickwire tune apply)",
                               rx))
        else:
            out.append(Finding("nic", f"{itf.name} rx ring", "info", f"ethtool -g {itf.name}: {rings['reason']}"))
        co = s["coalesce"]
        if co["status"] == "ok":
            us = co.get("rx_coalesce_usecs")
            out.append(Finding("nic", f"{itf.name} coalescing", "ok" if not us else "warn",
                               f"ethtool -c {itf.name}: rx-usecs {us}", None if not us else "rx-usecs 0: interrupt at "
                               "once, not after a wait (tickwire tune apply)", us))
        else:
            out.append(Finding("nic", f"{itf.name} coalescing", "info", f"ethtool -c {itf.name}: {co['reason']}"))
        off = s["offloads"]
        if off["status"] == "ok":
            on = [f for f in ("rx-gro-hw", "large-receive-offload") if f in off["enabled"]]
            out.append(Finding("nic", f"{itf.name} offloads", "warn" if on else "ok",
                               f"ethtool -k {itf.name}: " + (", ".join(on) + " on" if on else "no receive "
                                                            "aggregation (LRO, hardware GRO) on"),
                               "ethtool -K IFACE lro off rx-gro-hw off: frames as they came" if on else None, on))
        ts = s["timestamping"]
        hw = ts.get("hardware", False)
        want_hw = plan.timestamping == "hardware"
        caps = ", ".join(ts.get("capabilities", [])) or ts.get("reason", "")
        out.append(Finding("nic", f"{itf.name} timestamping", "ok" if hw or not want_hw else "warn",
                           f"ethtool -T {itf.name}: " + (f"hardware, PTP hardware clock {ts.get('phc_index')}" if hw
                                                        else f"no hardware timestamps ({caps})"),
                           None if hw or not want_hw else "a NIC with hardware timestamps and a PHC (ptp.timestamping "
                           "hardware asks for one)", hw))
    return out


def changes(plan: Any) -> list[dict[str, Any]]:
    out = []
    for itf in plan.interfaces:
        try:
            s = show(itf.name, itf.netns)
        except Exception:  # noqa: BLE001 - not there: nothing to change (the audit says so)
            continue
        rings, co = s["rings"], s["coalesce"]
        if rings["status"] == "ok" and rings.get("rx_max"):
            want = min(plan.rx_ring, rings["rx_max"])
            if (rings.get("rx_pending") or 0) < want:
                out.append({"concern": "nic", "kind": "nic", "what": f"{itf.name} rx ring", "iface": itf.name,
                            "netns": itf.netns, "field": "rx_ring", "before": rings.get("rx_pending"), "after": want})
        if co["status"] == "ok" and co.get("rx_coalesce_usecs"):
            out.append({"concern": "nic", "kind": "nic", "what": f"{itf.name} rx-usecs", "iface": itf.name,
                        "netns": itf.netns, "field": "rx-usecs", "before": co["rx_coalesce_usecs"], "after": 0})
    return out


def apply_change(ch: dict[str, Any], value: Any) -> dict[str, Any]:
    """One NIC change (or its revert): rx_ring or rx-usecs to value."""
    if ch["field"] == "rx_ring":
        return set_(ch["iface"], ch["netns"], rx_ring=int(value))["results"]["rx_ring"]
    return set_(ch["iface"], ch["netns"], coalesce={"rx_usecs": int(value)})["results"]["coalesce"]
