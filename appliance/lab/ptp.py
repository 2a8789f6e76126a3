"""PTP in the lab: real ptp4l instances in the lab's namespaces, software
timestamping over the veths.

- ``gm``: the exchange's grandmaster, in ``exch`` on its port of the order
  network (``gm``, 198.18.3.2). It announces itself as a colo's GNSS-locked
  grandmaster does (clock class 6, time and frequency traceable, UTC offset valid,
  source GPS; set through ptp4l's own management socket). It stands in for one:
  its time is this host's clock.
- ``app`` and ``standby``: the hosts' slaves on their ``order`` interfaces.
- ``gm2``: a second grandmaster on the standby's ``order`` interface with a better
  priority1, to make the slaves change grandmaster.

Every instance runs ``free_running 1`` and the grandmasters ``masterOnly 1``: the
lab's clocks are this machine's clock, which nothing here may step or steer (a
grandmaster that lost the best-master election would otherwise become a slave and
steer it). Configs, logs and management sockets live in
``/run/tickwire/lab/PREFIX/ptp``; ``lab down`` stops the processes with the rest.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time
from typing import Any

from appliance.config import Ptp
from appliance.lab import state, topology
from appliance.lab.net import LabError
from appliance.ptp import conf, mgmt
from appliance.ptp.client import PtpClient, PtpClientError
from common.netns import run_in

ROLES = {  # role -> (namespace role, interface)
    "gm": (topology.EXCH, "gm"),
    "app": (topology.APP, "order"),
    "standby": (topology.STANDBY, "order"),
    "gm2": (topology.STANDBY, "order"),
}
GM_PRIORITY1 = {"gm": 100, "gm2": 50}   # lower wins the best-master election
LAB_SYNC_INTERVAL = -3                   # 8 syncs a second
LAB_ANNOUNCE_INTERVAL = 0                # an announce a second: a master is given up after 3 s


def ptp_dir(prefix: str) -> pathlib.Path:
    return state.lab_dir(prefix) / "ptp"


def socket_path(prefix: str, role: str) -> pathlib.Path:
    return ptp_dir(prefix) / f"{role}.sock"


def lab_ptp(prefix: str, role: str = "app", profile: str = "rts25") -> Any:
    """The config.Ptp a lab instance runs with (and a slave's checks expect)."""
    ns_role, iface = ROLES[role]
    return Ptp(profile=profile, domain=0, interface=iface, timestamping="software", free_running=True,
               sync_interval=LAB_SYNC_INTERVAL, announce_interval=LAB_ANNOUNCE_INTERVAL,
               delay_req_interval=LAB_SYNC_INTERVAL,  # the path delay's filter follows a change in about a second
               slave_only=role not in GM_PRIORITY1, priority1=GM_PRIORITY1.get(role, 128),
               clock_class=6 if role in GM_PRIORITY1 else 255, uds_address=socket_path(prefix, role),
               log=ptp_dir(prefix) / f"{role}.log")


def start(lab: topology.Lab, role: str, ptp: Any = None) -> dict[str, Any]:
    """Start one instance (replacing one already running in that role)."""
    if role not in ROLES:
        raise LabError(f"ptp role {role!r}: give one of {', '.join(ROLES)}")
    stop(lab, role)
    ns_role, iface = ROLES[role]
    ptp = ptp or lab_ptp(lab.prefix, role)
    if not ptp.free_running:
        raise LabError(f"ptp role {role}: the lab runs free_running only (never steer this machine's clock)")
    d = ptp_dir(lab.prefix)
    d.mkdir(parents=True, exist_ok=True)
    cfg = d / f"{role}.conf"
    extra = {"masterOnly": 1} if role in GM_PRIORITY1 else {}
    cfg.write_text(conf.ptp4l_conf(ptp, iface, **extra))
    log = d / f"{role}.log"
    sock = pathlib.Path(ptp.uds_address)
    sock.unlink(missing_ok=True)
    with open(log, "w") as out:
        proc = run_in(lab.ns(ns_role), ["ptp4l", "-f", str(cfg), "-i", iface], stdout=out,
                      stderr=subprocess.STDOUT, start_new_session=True)
    (d / f"{role}.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + 5
    while not sock.exists():
        if proc.poll() is not None:
            raise LabError(f"ptp4l ({role}) in {lab.ns(ns_role)} exited ({proc.returncode}): {log.read_text()[-500:]}")
        if time.monotonic() > deadline:
            raise LabError(f"ptp4l ({role}) made no management socket at {sock} within 5 s")
        time.sleep(0.05)
    if role in GM_PRIORITY1:
        announce_gnss_locked(sock)
    return {"role": role, "pid": proc.pid, "namespace": lab.ns(ns_role), "interface": iface, "config": str(cfg),
            "log": str(log), "socket": str(sock)}


def announce_gnss_locked(sock: pathlib.Path) -> dict[str, Any]:
    """What a GNSS-locked grandmaster announces: class 6, time and frequency traceable, UTC offset
    37 s valid, source GPS. Not the PTP (TAI) timescale: the lab's grandmaster keeps this host's
    system clock, which is UTC, and a slave on the system clock would take 37 s off a PTP-timescale
    master's time."""
    flags = mgmt.TIME_TRACEABLE | mgmt.FREQ_TRACEABLE | mgmt.UTC_OFFSET_VALID
    with PtpClient(sock) as c:
        return c.set_grandmaster_settings(6, 0x21, 0x4E5D, 37, flags, 0x20)


def stop(lab: topology.Lab, role: str) -> bool:
    """Stop the instance in that role; False when none ran."""
    pid_file = ptp_dir(lab.prefix) / f"{role}.pid"
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return False
    pid_file.unlink(missing_ok=True)
    try:
        os.killpg(pid, signal.SIGTERM)  # ip netns exec and the ptp4l it became
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 3
    while _alive(pid):
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    return True


def _alive(pid: int) -> bool:
    """Whether the process still runs (one of ours that ended is reaped here, not left a zombie)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    except ChildProcessError:
        pass  # another process's child: ask the kernel
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def up(lab: topology.Lab, roles: tuple[str, ...] = ("gm", "app")) -> list[dict[str, Any]]:
    return [start(lab, r) for r in roles]


def down(lab: topology.Lab) -> list[str]:
    return [r for r in ROLES if stop(lab, r)]


def running(lab: topology.Lab) -> dict[str, int]:
    out = {}
    for role in ROLES:
        try:
            pid = int((ptp_dir(lab.prefix) / f"{role}.pid").read_text())
        except (OSError, ValueError):
            continue
        if _alive(pid):
            out[role] = pid
    return out


def wait_state(prefix: str, role: str, states: tuple[str, ...] = ("SLAVE", "UNCALIBRATED"),
               timeout: float = 15.0) -> dict[str, Any]:
    """Until the instance's port is in one of states (with a grandmaster): its PORT_DATA_SET."""
    deadline = time.monotonic() + timeout
    last: Any = None
    with PtpClient(socket_path(prefix, role)) as c:
        while time.monotonic() < deadline:
            try:
                last = c.get_one("PORT_DATA_SET")
                if last["port_state"] in states and c.get_one("TIME_STATUS_NP")["gm_present"]:
                    return last
            except PtpClientError as exc:
                last = str(exc)
            time.sleep(0.2)
    raise LabError(f"ptp4l ({role}) did not reach {' or '.join(states)} within {timeout:g} s: {last}")
