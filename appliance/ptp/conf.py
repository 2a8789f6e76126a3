"""linuxptp's configuration from the appliance YAML's ``ptp:`` section: ptp4l's
config file, phc2sys's command line, and the systemd units that run them
(``tickwire ptp config FILE --out DIR`` writes them; provisioning installs them).

The slave disciplines the system clock in one of two ways. With hardware
timestamping, ptp4l steers the NIC's PTP hardware clock and phc2sys follows it
with CLOCK_REALTIME (``-a -r``: the PHC of the port ptp4l has in SLAVE, found
through ptp4l's own socket). With software timestamping there is no PHC:
ptp4l steers CLOCK_REALTIME itself and there is no phc2sys. ``free_running``
(the lab, tests) steers nothing: the offset is measured, never applied.
"""

from __future__ import annotations

import pathlib
import shlex
from typing import Any

PTP4L = "/usr/sbin/ptp4l"
PHC2SYS = "/usr/sbin/phc2sys"
CONF_DIR = pathlib.Path("/etc/tickwire")


def ptp4l_conf(ptp: Any, interface: str | None = None, **overrides: Any) -> str:
    """ptp4l.conf for the config's ``ptp`` section (a config.Ptp); overrides replace
    options by ptp4l's name (the lab's grandmaster: slaveOnly 0, priority1 ..., clockClass 6)."""
    iface = interface or ptp.interface
    if not iface:
        raise ValueError("ptp.interface: none given: name the interface PTP arrives on (e.g. the order-entry NIC)")
    s = ptp.servo
    options: dict[str, Any] = {
        "domainNumber": ptp.domain,
        "slaveOnly": int(ptp.slave_only),
        "priority1": ptp.priority1,
        "priority2": ptp.priority2,
        "clockClass": ptp.clock_class,
        "time_stamping": ptp.timestamping,
        "network_transport": ptp.transport,
        "delay_mechanism": ptp.delay_mechanism,
        "logSyncInterval": ptp.sync_interval,
        "logAnnounceInterval": ptp.announce_interval,
        "logMinDelayReqInterval": ptp.delay_req_interval,
        "announceReceiptTimeout": ptp.announce_receipt_timeout,
        "step_threshold": f"{s.step_threshold:.9f}".rstrip("0").rstrip(".") or "0",
        "first_step_threshold": f"{s.first_step_threshold:.9f}".rstrip("0").rstrip(".") or "0",
        "max_frequency": s.max_frequency,
        "pi_proportional_const": f"{s.pi_proportional_const:g}",
        "pi_integral_const": f"{s.pi_integral_const:g}",
        "free_running": int(ptp.free_running),
        "uds_address": str(ptp.uds_address),
        "summary_interval": 0,   # the servo's summary line (offset, state s0/s1/s2) once a second
        "logging_level": 6,
        "verbose": 1,            # to stdout, for journald or the lab's log file
        "use_syslog": 0,
    }
    unknown = [k for k in overrides if k not in options and k not in EXTRA_OPTIONS]
    if unknown:
        raise ValueError(f"ptp4l option {unknown[0]!r}: not one this generator writes")
    options.update(overrides)
    lines = ["# ptp4l configuration written by `tickwire ptp config` from the appliance YAML's ptp section.",
             "[global]"]
    width = max(len(k) for k in options)
    lines += [f"{k:<{width}} {v}" for k, v in options.items()]
    lines += ["", f"[{iface}]", ""]
    return "\n".join(lines)


EXTRA_OPTIONS = ("tx_timestamp_timeout", "clock_servo", "message_tag", "masterOnly")


def phc2sys_argv(ptp: Any) -> list[str] | None:
    """phc2sys's command line, or None when there is nothing for it to do (software
    timestamping: ptp4l steers the system clock itself; free_running: nothing is steered)."""
    if ptp.timestamping != "hardware" or not ptp.phc2sys.enabled or ptp.free_running:
        return None
    # -a: follow the port ptp4l has in SLAVE, -r: and discipline CLOCK_REALTIME from it, -z: ptp4l's socket,
    # -n: its domain, -m: to stdout (journald)
    return [PHC2SYS, "-a", "-r", "-n", str(ptp.domain), "-z", str(ptp.uds_address), "-m"]


def units(ptp: Any, conf_path: pathlib.Path = CONF_DIR / "ptp4l.conf", group: str | None = None) -> dict[str, str]:
    """The systemd units, by file name. With ``group``, ptp4l's management socket is that
    group's to use (ptp4l runs with it as its group, under umask 0007): the appliance,
    running as its own user in that group, watches the clock without being root."""
    iface = ptp.interface
    access = (f"# the management socket (and so the clock's health) is group {group}'s: tickwire run watches it\n"
              f"Group={group}\nUMask=0007\n") if group else ""
    out = {"tickwire-ptp4l.service": f"""# written by `tickwire ptp config` from the appliance YAML
[Unit]
Description=tickwire PTP {'slave' if ptp.slave_only else 'clock'} (ptp4l) on {iface}, domain {ptp.domain}
Documentation=man:ptp4l(8)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={PTP4L} -f {conf_path} -i {iface}
Restart=always
RestartSec=1
{access}# the management socket's folder (linuxptp 4 puts it under /var/run/ptp)
RuntimeDirectory=ptp
RuntimeDirectoryPreserve=yes

[Install]
WantedBy=multi-user.target
"""}
    argv = phc2sys_argv(ptp)
    if argv is not None:
        out["tickwire-phc2sys.service"] = f"""# written by `tickwire ptp config` from the appliance YAML
[Unit]
Description=tickwire system clock from the PTP hardware clock (phc2sys), domain {ptp.domain}
Documentation=man:phc2sys(8)
After=tickwire-ptp4l.service
Requires=tickwire-ptp4l.service

[Service]
Type=simple
ExecStart={shlex.join(argv)}
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
"""
    return out


def write(ptp: Any, out: pathlib.Path, conf_path: pathlib.Path | None = None,
          group: str | None = None) -> dict[str, str]:
    """Write ptp4l.conf and the units into out; returns what was written, by file name."""
    out.mkdir(parents=True, exist_ok=True)
    conf_path = conf_path or CONF_DIR / "ptp4l.conf"
    files = {"ptp4l.conf": ptp4l_conf(ptp), **units(ptp, conf_path, group)}
    for name, text in files.items():
        (out / name).write_text(text)
    return {name: str(out / name) for name in files}
