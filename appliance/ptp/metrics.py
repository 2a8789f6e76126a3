"""Prometheus metrics of the clock, named as the linuxptp exporters name theirs
(OpenShift's linuxptp-daemon: ``*_ptp_offset_ns``, ``*_ptp_max_offset_ns``,
``*_ptp_delay_ns``, ``*_ptp_clock_state``, ``*_ptp_clock_class``,
``*_ptp_process_status``, ``*_ptp_interface_role``), with tickwire's prefix and
the same labels (``process``, ``iface``), plus the health verdict and its checks.

Served by prometheus_client's own HTTP server (``tickwire ptp monitor --listen``,
loopback by default) or written once as text for node_exporter's textfile
collector (``tickwire ptp metrics``).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, start_http_server

# what openshift_ptp_clock_state and _interface_role mean, kept
CLOCK_STATE = {"FREERUN": 0, "LOCKED": 1, "HOLDOVER": 2}
INTERFACE_ROLE = {"PASSIVE": 0, "SLAVE": 1, "MASTER": 2, "FAULTY": 3, "UNKNOWN": 4, "LISTENING": 5}
VERDICT = {"healthy": 0, "degraded": 1, "failed": 2}


class Metrics:
    def __init__(self, iface: str, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.iface = iface
        r, labels = self.registry, ("process", "iface")
        self.offset = Gauge("tickwire_ptp_offset_ns", "Offset from the master (ns)", labels, registry=r)
        self.max_offset = Gauge("tickwire_ptp_max_offset_ns", "Largest |offset| over the last minute (ns)", labels,
                                registry=r)
        self.delay = Gauge("tickwire_ptp_delay_ns", "Mean path delay to the master (ns)", labels, registry=r)
        self.clock_state = Gauge("tickwire_ptp_clock_state", "0 FREERUN, 1 LOCKED, 2 HOLDOVER", labels, registry=r)
        self.clock_class = Gauge("tickwire_ptp_clock_class", "The grandmaster's clock class", labels, registry=r)
        self.process = Gauge("tickwire_ptp_process_status", "1 while the process answers, 0 when it does not",
                             labels, registry=r)
        self.role = Gauge("tickwire_ptp_interface_role", "0 PASSIVE, 1 SLAVE, 2 MASTER, 3 FAULTY, 4 UNKNOWN, "
                          "5 LISTENING", labels, registry=r)
        self.sync_age = Gauge("tickwire_ptp_sync_age_seconds", "Age of the last sync received", labels, registry=r)
        self.health = Gauge("tickwire_ptp_health", "0 healthy, 1 degraded, 2 failed", labels, registry=r)
        self.check = Gauge("tickwire_ptp_check", "Each health check: 0 ok or skipped, 1 warning, 2 failure",
                           (*labels, "check"), registry=r)
        self.hardware = Gauge("tickwire_ptp_hardware_timestamping", "1 hardware timestamping, 0 software", labels,
                              registry=r)
        self.traceable = Gauge("tickwire_ptp_time_traceable", "1 when the grandmaster claims time traceable to UTC",
                               labels, registry=r)
        self.gm_changes = Counter("tickwire_ptp_gm_changes", "Grandmaster changes seen", labels, registry=r)
        self.state_changes = Counter("tickwire_ptp_port_state_changes", "Port-state changes seen", labels,
                                     registry=r)

    def update(self, rec: dict[str, Any], result: dict[str, Any], history: Any) -> None:
        lab = {"process": "ptp4l", "iface": self.iface}
        up = rec["error"] is None
        self.process.labels(**lab).set(1 if up else 0)
        self.health.labels(**lab).set(VERDICT[result["verdict"]])
        for c in result["checks"]:
            self.check.labels(**lab, check=c["name"]).set({"ok": 0, "skip": 0, "warn": 1, "fail": 2}[c["status"]])
        for e in result.get("events", []):
            if e["event"] == "gm_change":
                self.gm_changes.labels(**lab).inc()
            elif e["event"] == "port_state":
                self.state_changes.labels(**lab).inc()
        if not up:
            self.clock_state.labels(**lab).set(CLOCK_STATE["FREERUN"])
            self.role.labels(**lab).set(INTERFACE_ROLE["UNKNOWN"])
            return
        if rec.get("offset_ns") is not None:
            self.offset.labels(**lab).set(rec["offset_ns"])
        recent = [abs(s["offset_ns"]) for s in history.samples if s.get("offset_ns") is not None
                  and s["t"] >= rec["t"] - 60]
        if recent:
            self.max_offset.labels(**lab).set(max(recent))
        if rec.get("delay_ns") is not None:
            self.delay.labels(**lab).set(rec["delay_ns"])
        state = rec.get("state")
        locked = state == "SLAVE"  # a free-running slave (UNCALIBRATED, steering nothing) is FREERUN: it is
        held = state in ("LISTENING", "MASTER") and rec.get("gm") is not None  # lost its master: holdover
        self.clock_state.labels(**lab).set(CLOCK_STATE["LOCKED"] if locked else
                                           CLOCK_STATE["HOLDOVER"] if held else CLOCK_STATE["FREERUN"])
        self.role.labels(**lab).set(INTERFACE_ROLE.get("SLAVE" if state == "UNCALIBRATED" else state or "UNKNOWN",
                                                       INTERFACE_ROLE["UNKNOWN"]))
        if rec.get("gm_class") is not None:
            self.clock_class.labels(**lab).set(rec["gm_class"])
        if rec.get("sync_age_s") is not None:
            self.sync_age.labels(**lab).set(rec["sync_age_s"])
        self.hardware.labels(**lab).set(1 if rec.get("timestamping") not in (None, "software") else 0)
        self.traceable.labels(**lab).set(1 if rec.get("traceable") else 0)

    def text(self) -> str:
        return generate_latest(self.registry).decode()

    def serve(self, address: str, port: int) -> None:
        start_http_server(port, addr=address, registry=self.registry)
