"""Is the box's clock right? The checks over one snapshot of ptp4l's datasets
(appliance.ptp.client.PtpClient.snapshot) and, when a monitor keeps one, the
history of the last window.

Each check is a small function named for what it checks; it returns a Check:
``ok``, ``warn`` (degraded: trading may go on, somebody should look), ``fail``
(the clock cannot be trusted), or ``skip`` (not applicable here, with the
reason), always with its evidence (the dataset and value read) and, when not
ok, the fix. ``verdict`` is the worst of them; ``tickwire ptp check`` exits 0
healthy, 1 degraded, 2 failed.

Thresholds come from a profile: ``hft`` warns above 100 ns and fails above 1 µs
from the master; ``rts25`` (MiFID II RTS 25 for a high-frequency trader: 100 µs
to UTC) fails above 100 µs. The config's ``ptp.warn_offset`` and
``ptp.max_offset`` override them.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

STATUSES = ("ok", "skip", "warn", "fail")
RANK = {"ok": 0, "skip": 0, "warn": 1, "fail": 2}
VERDICTS = {0: "healthy", 1: "degraded", 2: "failed"}


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    warn_offset_ns: float | None
    fail_offset_ns: float
    fail_path_delay_ns: float
    what: str


PROFILES = {
    "hft": Profile("hft", 100.0, 1_000.0, 100_000.0,
                   "high-frequency trading: warn above 100 ns, fail above 1 µs from the master"),
    "rts25": Profile("rts25", None, 100_000.0, 1_000_000.0,
                     "MiFID II RTS 25, high-frequency trader: fail above 100 µs (the divergence from UTC allowed)"),
}


@dataclasses.dataclass(frozen=True)
class Limits:
    """The thresholds one check run uses (from the config's ptp section)."""
    profile: Profile
    warn_offset_ns: float | None
    fail_offset_ns: float
    fail_path_delay_ns: float
    max_sync_age_s: float
    window_s: float
    max_gm_changes: int
    max_state_changes: int
    timestamping: str        # what the config expects
    free_running: bool
    domain: int
    phc2sys: bool

    @classmethod
    def from_config(cls, ptp: Any) -> Limits:
        p = PROFILES[ptp.profile]
        sync_s = 2.0 ** ptp.sync_interval
        return cls(profile=p,
                   warn_offset_ns=ptp.warn_offset * 1e9 if ptp.warn_offset is not None else p.warn_offset_ns,
                   fail_offset_ns=ptp.max_offset * 1e9 if ptp.max_offset is not None else p.fail_offset_ns,
                   fail_path_delay_ns=ptp.max_path_delay * 1e9 if ptp.max_path_delay is not None
                   else p.fail_path_delay_ns,
                   max_sync_age_s=ptp.max_sync_age if ptp.max_sync_age is not None else max(8 * sync_s, 1.0),
                   window_s=ptp.window, max_gm_changes=ptp.max_gm_changes, max_state_changes=ptp.max_state_changes,
                   timestamping=ptp.timestamping, free_running=ptp.free_running, domain=ptp.domain,
                   phc2sys=ptp.phc2sys.enabled)


@dataclasses.dataclass
class Check:
    name: str
    status: str
    evidence: str
    fix: str | None = None
    value: Any = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _ns(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:,.3f} ms"
    if a >= 1e3:
        return f"{v / 1e3:,.3f} µs"
    return f"{v:,.0f} ns"


def _port(snap: dict[str, Any]) -> dict[str, Any] | None:
    """The port that matters: the SLAVE one, else the first."""
    ports = snap.get("PORT_DATA_SET") or []
    return next((p for p in ports if p["port_state"] == "SLAVE"), ports[0] if ports else None)


FOLLOWING = ("SLAVE", "UNCALIBRATED")  # a port taking a master's time (locked, or not yet)


def _not_following(snap: dict[str, Any]) -> str | None:
    """Why the figures are stale (no port follows a master), or None."""
    p = _port(snap)
    if p is None or p["port_state"] not in FOLLOWING:
        return f"no port follows a master (port {p['port_state'] if p else 'missing'}): the figure is the last one " \
               "measured"
    return None


# ---- the checks, in the order they are reported --------------------------------------------------


def check_port_state(snap: dict[str, Any], lim: Limits, history: Any) -> Check:
    p = _port(snap)
    if p is None:
        return Check("port state", "fail", "PORT_DATA_SET: no port answered", "start ptp4l on the PTP interface")
    state, ev = p["port_state"], f"PORT_DATA_SET {p['port_identity']}: portState {p['port_state']}"
    if state == "SLAVE":
        return Check("port state", "ok", ev, value=state)
    if state == "UNCALIBRATED" and lim.free_running:
        return Check("port state", "ok", ev + " (free_running: ptp4l measures the offset and never locks its "
                     "servo, so the port stays UNCALIBRATED while it follows its master)", value=state)
    if state == "UNCALIBRATED":
        return Check("port state", "warn", ev + ": a master is selected, the servo has not locked yet",
                     "wait for the servo to lock (seconds); if it never does, look at ptp4l's log", value=state)
    fix = {"LISTENING": "no master is heard: check the PTP network (announce messages reach this interface?) and "
                        "the grandmaster", "MASTER": "this clock thinks it is the best master: no better master is "
                        "heard; slave_only should be set on a trading host", "PASSIVE": "another port is the slave",
           "FAULTY": "the port failed: see ptp4l's log (link down, timestamping errors)",
           "DISABLED": "the port is disabled"}.get(state, "see ptp4l's log")
    return Check("port state", "fail", ev + ": not following a master", fix, value=state)


def check_grandmaster(snap: dict[str, Any], lim: Limits, history: Any) -> Check:
    ts, parent, own = snap.get("TIME_STATUS_NP"), snap.get("PARENT_DATA_SET"), snap.get("DEFAULT_DATA_SET")
    if not ts or not parent:
        return Check("grandmaster", "fail", "TIME_STATUS_NP / PARENT_DATA_SET: no answer", "start ptp4l")
    gm = parent["gm_identity"]
    ev = (f"TIME_STATUS_NP gmPresent {str(ts['gm_present']).lower()}; PARENT_DATA_SET grandmasterIdentity {gm}, "
          f"clockClass {parent['gm_clock_class']}, priority1 {parent['gm_priority1']}")
    if not ts["gm_present"] or (own and gm == own["clock_identity"]):
        return Check("grandmaster", "fail", ev + ": no grandmaster but this clock itself",
                     "no master is heard: check the grandmaster and the PTP network", value=None)
    stale = _not_following(snap)
    if stale:
        return Check("grandmaster", "fail", ev + ": the last one known; " + stale.split(":")[0],
                     "no master is heard: check the grandmaster and the PTP network", value=None)
    cls = parent["gm_clock_class"]
    if cls in (6, 7, 13, 14):  # locked to a primary reference (GNSS), or in holdover within spec
        return Check("grandmaster", "ok", ev, value=gm)
    if cls in (52, 58, 187, 193):
        return Check("grandmaster", "warn", ev + ": the grandmaster is in degraded holdover",
                     "the grandmaster lost its reference (GNSS): tell the colo", value=gm)
    return Check("grandmaster", "warn", ev + f": clock class {cls} is not locked to a primary reference",
                 "the grandmaster's time is not traceable (class 248: free-running default); ask the colo",
                 value=gm)


def check_offset(snap: dict[str, Any], lim: Limits, history: Any) -> Check:
    cur = snap.get("CURRENT_DATA_SET")
    if not cur:
        return Check("offset from master", "fail", "CURRENT_DATA_SET: no answer", "start ptp4l")
    off = cur["offset_from_master_ns"]
    ev = f"CURRENT_DATA_SET offsetFromMaster {_ns(off)} (profile {lim.profile.name}: fail above " \
         f"{_ns(lim.fail_offset_ns)}" + (f", warn above {_ns(lim.warn_offset_ns)})" if lim.warn_offset_ns else ")")
    stale = _not_following(snap)
    if stale:
        return Check("offset from master", "fail", f"{ev}: {stale}", "no master is heard: the offset is unknown",
                     value=None)
    if abs(off) > lim.fail_offset_ns:
        return Check("offset from master", "fail", ev, "the clock is off: look at the path (asymmetry, congestion), "
                     "the timestamping mode and the servo", value=off)
    if lim.warn_offset_ns is not None and abs(off) > lim.warn_offset_ns:
        return Check("offset from master", "warn", ev, "watch it: the offset is past the profile's warning",
                     value=off)
    return Check("offset from master", "ok", ev, value=off)


def check_path_delay(snap: dict[str, Any], lim: Limits, history: Any) -> Check:
    cur = snap.get("CURRENT_DATA_SET")
    if not cur:
        return Check("mean path delay", "fail", "CURRENT_DATA_SET: no answer", "start ptp4l")
    d = cur["mean_path_delay_ns"]
    ev = f"CURRENT_DATA_SET meanPathDelay {_ns(d)} (fail above {_ns(lim.fail_path_delay_ns)})"
    if _not_following(snap):
        return Check("mean path delay", "skip", f"{ev}: {_not_following(snap)}")
    if d > lim.fail_path_delay_ns:
        return Check("mean path delay", "fail", ev, "the path to the master is long or congested: PTP on a "
                     "dedicated, quiet path (or a boundary clock nearer)", value=d)
    if d < 0:
        return Check("mean path delay", "warn", ev + ": negative, the timestamps are inconsistent",
                     "check the timestamping (a transparent clock's correction, asymmetry)", value=d)
    return Check("mean path delay", "ok", ev, value=d)


def check_last_sync(snap: dict[str, Any], lim: Limits, history: Any) -> Check:
    ts = snap.get("TIME_STATUS_NP")
    if not ts or not ts["ingress_time_ns"]:
        return Check("last sync", "fail", "TIME_STATUS_NP ingress_time 0: no sync since the master was lost (or "
                     "ever)", "check the grandmaster and the PTP network")
    # software timestamps are CLOCK_REALTIME; a PHC's are its own time (read beside the snapshot)
    now = snap.get("phc_now_ns") or int(snap["at"] * 1e9)
    age = (now - ts["ingress_time_ns"]) / 1e9
    ev = f"TIME_STATUS_NP ingress_time {ts['ingress_time_ns']}: the last sync arrived {age * 1000:,.0f} ms ago " \
         f"(fail above {lim.max_sync_age_s * 1000:,.0f} ms)"
    if age > lim.max_sync_age_s:
        return Check("last sync", "fail", ev, "syncs stopped: the master or the path to it is gone", value=age)
    return Check("last sync", "ok", ev, value=age)


def check_servo(snap: dict[str, Any], lim: Limits, history: Any) -> Check:
    if lim.free_running:
        return Check("servo", "skip", "free_running: ptp4l steers nothing (the lab, where the clock is the host's; "
                     "never step or steer it)")
    p = _port(snap)
    if p is None:
        return Check("servo", "fail", "PORT_DATA_SET: no port answered", "start ptp4l")
    # ptp4l moves a port from UNCALIBRATED to SLAVE exactly when its servo locks
    if p["port_state"] == "SLAVE":
        return Check("servo", "ok", "PORT_DATA_SET portState SLAVE: the servo is locked", value="locked")
    return Check("servo", "fail" if p["port_state"] != "UNCALIBRATED" else "warn",
                 f"PORT_DATA_SET portState {p['port_state']}: the servo is not locked",
                 "wait for it to lock; if it does not, look at ptp4l's log (step threshold, frequency limit)",
                 value="unlocked")


def check_traceable(snap: dict[str, Any], lim: Limits, history: Any) -> Check:
    tp = snap.get("TIME_PROPERTIES_DATA_SET")
    if not tp:
        return Check("traceable to UTC", "fail", "TIME_PROPERTIES_DATA_SET: no answer", "start ptp4l")
    ev = (f"TIME_PROPERTIES_DATA_SET timeTraceable {int(tp['time_traceable'])}, currentUtcOffsetValid "
          f"{int(tp['current_utc_offset_valid'])}, currentUtcOffset {tp['current_utc_offset']}, ptpTimescale "
          f"{int(tp['ptp_timescale'])}, timeSource {tp['time_source']}")
    if tp["time_traceable"] and tp["current_utc_offset_valid"]:
        return Check("traceable to UTC", "ok", ev, value=True)
    return Check("traceable to UTC", "warn", ev + ": the grandmaster does not claim time traceable to UTC",
                 "RTS 25 asks for UTC traceability: the grandmaster must be locked to a UTC source (GNSS)",
                 value=False)


def check_timestamping(snap: dict[str, Any], lim: Limits, history: Any) -> Check:
    props = snap.get("PORT_PROPERTIES_NP") or []
    p = _port(snap)
    mine = next((x for x in props if p and x["port_identity"] == p["port_identity"]), props[0] if props else None)
    if mine is None:
        return Check("timestamping", "fail", "PORT_PROPERTIES_NP: no port answered", "start ptp4l")
    ev = f"PORT_PROPERTIES_NP {mine['port_identity']} on {mine['interface']}: timestamping {mine['timestamping']}"
    if mine["timestamping"] == "software":
        return Check("timestamping", "warn", ev + ": software timestamps carry the kernel's jitter (µs), not the "
                     "NIC's (ns)", "a NIC with hardware timestamping and a PTP hardware clock, and ptp.timestamping "
                     "hardware" + (" (this host has none)" if lim.timestamping == "software" else ""),
                     value="software")
    return Check("timestamping", "ok", ev, value=mine["timestamping"])


def check_domain(snap: dict[str, Any], lim: Limits, history: Any) -> Check:
    dds = snap.get("DEFAULT_DATA_SET")
    if not dds:
        return Check("domain", "fail", "DEFAULT_DATA_SET: no answer", "start ptp4l")
    ev = f"DEFAULT_DATA_SET domainNumber {dds['domain']} (the config's ptp.domain {lim.domain})"
    if dds["domain"] != lim.domain:
        return Check("domain", "fail", ev, "ptp4l runs another domain than the config says: fix one of them",
                     value=dds["domain"])
    return Check("domain", "ok", ev, value=dds["domain"])


def check_gm_changes(snap: dict[str, Any], lim: Limits, history: Any) -> Check:
    if history is None:
        return Check("grandmaster changes", "skip", "no history: counted by a running monitor "
                     "(tickwire ptp monitor, or tickwire run)")
    changes = history.gm_changes(lim.window_s)
    ev = f"{len(changes)} grandmaster change(s) in the last {lim.window_s:g} s" + (
        ": " + "; ".join(f"{c['from']} -> {c['to']} at {time.strftime('%H:%M:%S', time.gmtime(c['at']))}"
                         for c in changes[-3:]) if changes else "")
    if len(changes) > lim.max_gm_changes:
        return Check("grandmaster changes", "fail", ev, "the best master keeps changing: the grandmasters' "
                     "priorities or quality flap; ask the colo", value=len(changes))
    if changes:
        return Check("grandmaster changes", "warn", ev, "a new grandmaster was chosen: check it is the one "
                     "expected (its identity and clock class)", value=len(changes))
    return Check("grandmaster changes", "ok", ev, value=0)


def check_state_flaps(snap: dict[str, Any], lim: Limits, history: Any) -> Check:
    if history is None:
        return Check("port-state flaps", "skip", "no history: counted by a running monitor")
    n = history.state_changes(lim.window_s)
    ev = f"{n} port-state change(s) in the last {lim.window_s:g} s (a warning above {lim.max_state_changes})"
    if n > lim.max_state_changes:
        return Check("port-state flaps", "warn", ev, "the port keeps changing state: announce timeouts? look at "
                     "the path to the master", value=n)
    return Check("port-state flaps", "ok", ev, value=n)


def check_phc2sys(snap: dict[str, Any], lim: Limits, history: Any) -> Check:
    if lim.free_running:
        return Check("phc2sys", "skip", "free_running: nothing is steered, phc2sys has nothing to do")
    if lim.timestamping != "hardware":
        return Check("phc2sys", "skip", "software timestamping: no PTP hardware clock, ptp4l steers the system "
                     "clock itself")
    if not lim.phc2sys:
        return Check("phc2sys", "warn", "ptp.phc2sys.enabled false: nothing disciplines the system clock from the "
                     "PHC", "enable phc2sys (the system clock is what the appliance stamps with)")
    running = _running("phc2sys")
    if not running:
        return Check("phc2sys", "fail", "no phc2sys process: the system clock is not disciplined from the PHC",
                     "systemctl start tickwire-phc2sys")
    off = snap.get("phc2sys_offset_ns")
    if off is None:
        return Check("phc2sys", "ok", f"phc2sys running (pid {running[0]}); its offset is not readable here "
                     "(ptp.phc2sys.log)", value=None)
    state = snap.get("phc2sys_state")
    status = "fail" if abs(off) > lim.fail_offset_ns else (
        "warn" if (lim.warn_offset_ns is not None and abs(off) > lim.warn_offset_ns) or state != 2 else "ok")
    return Check("phc2sys", status, f"phc2sys offset (CLOCK_REALTIME to the PHC) {_ns(off)}, servo s{state}",
                 None if status == "ok" else "the system clock does not follow the PHC closely (s2 is locked)",
                 value=off)


def check_service_stats(snap: dict[str, Any], lim: Limits, history: Any) -> Check:
    stats = snap.get("PORT_SERVICE_STATS_NP")
    if stats is None:
        return Check("service stats", "skip", "PORT_SERVICE_STATS_NP: this ptp4l does not answer it (linuxptp "
                     "before 4.0)")
    first = stats[0] if stats else {}
    grown = history.service_growth(lim.window_s) if history is not None else {}
    ev = "PORT_SERVICE_STATS_NP " + ", ".join(f"{k} {first.get(k, 0)}" for k in ("announce_timeout", "sync_timeout",
                                                                                 "delay_timeout", "sync_mismatch"))
    if any(grown.get(k, 0) for k in ("announce_timeout", "sync_timeout")):
        return Check("service stats", "warn", ev + f"; in the window: {grown}", "timeouts: messages from the master "
                     "go missing", value=grown)
    return Check("service stats", "ok", ev, value=first)


CHECKS: tuple[Callable[[dict[str, Any], Limits, Any], Check], ...] = (
    check_port_state, check_grandmaster, check_offset, check_path_delay, check_last_sync, check_servo,
    check_traceable, check_timestamping, check_domain, check_gm_changes, check_state_flaps, check_phc2sys,
    check_service_stats)


def evaluate(snap: dict[str, Any] | None, lim: Limits, history: Any = None, error: str | None = None) -> dict[str, Any]:
    """Every check over one snapshot (None with error: ptp4l did not answer): the checks and the verdict."""
    if snap is None:
        checks = [Check("ptp4l", "fail", error or "no answer", "start ptp4l (systemctl start tickwire-ptp4l) and "
                        "check ptp.uds_address")]
    else:
        checks = [c(snap, lim, history) for c in CHECKS]
    worst = max(RANK[c.status] for c in checks)
    return {"verdict": VERDICTS[worst], "exit": worst, "profile": lim.profile.name,
            "checks": [c.as_dict() for c in checks],
            "failed": [c.name for c in checks if c.status == "fail"],
            "degraded": [c.name for c in checks if c.status == "warn"]}


def _running(name: str) -> list[int]:
    if not shutil.which("pgrep"):
        return []
    res = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
    return [int(x) for x in res.stdout.split()]


# ---- what the host adds to a snapshot: the PHC's time, phc2sys's offset --------------------------

_PHC2SYS_LINE = __import__("re").compile(r"phc offset\s+(-?\d+)\s+s(\d)")


def phc2sys_offset(lines: list[str]) -> tuple[int, int] | None:
    """The last offset phc2sys printed (``CLOCK_REALTIME phc offset -12 s2 freq ...``) and its servo
    state (0 unlocked, 1 stepped, 2 locked), or None."""
    for line in reversed(lines):
        m = _PHC2SYS_LINE.search(line)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def _phc2sys_lines(ptp: Any) -> list[str]:
    log = ptp.phc2sys.log
    if log is not None:
        try:
            with open(log, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 8192))
                return f.read().decode("ascii", "replace").splitlines()
        except OSError:
            return []
    if shutil.which("journalctl"):
        res = subprocess.run(["journalctl", "-u", "tickwire-phc2sys.service", "-n", "20", "-o", "cat", "--no-pager"],
                             capture_output=True, text=True, timeout=5)
        return res.stdout.splitlines()
    return []


def phc_now_ns(iface: str | None) -> int | None:
    """The time of the interface's PTP hardware clock (ptp4l stamps with it under hardware
    timestamping), or None when it has none."""
    if not iface:
        return None
    ptp_dir = pathlib.Path("/sys/class/net") / iface / "device" / "ptp"
    try:
        dev = next(iter(sorted(ptp_dir.iterdir()))).name
        fd = os.open(f"/dev/{dev}", os.O_RDONLY)
    except (OSError, StopIteration):
        return None
    try:
        return time.clock_gettime_ns((~fd << 3) | 3)  # FD_TO_CLOCKID: a dynamic POSIX clock
    except OSError:
        return None
    finally:
        os.close(fd)


def observe_host(snap: dict[str, Any] | None, ptp: Any) -> None:
    """Add what ptp4l does not say: the PHC's time (for the last sync's age) and phc2sys's offset."""
    if snap is None or ptp.timestamping != "hardware" or ptp.free_running:
        return
    now = phc_now_ns(ptp.interface)
    if now is not None:
        snap["phc_now_ns"] = now
    if ptp.phc2sys.enabled and _running("phc2sys"):
        got = phc2sys_offset(_phc2sys_lines(ptp))
        if got is not None:
            snap["phc2sys_offset_ns"], snap["phc2sys_state"] = got
