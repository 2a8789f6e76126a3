"""The `ethtool -T` reader, on the output of a NIC with a PTP hardware clock (the
lab's veth has none, so its integration test sees only the software case)."""

from __future__ import annotations

import subprocess

from tuning import nic

HARDWARE_NIC = """Time stamping parameters for enp1s0f0:
Capabilities:
\thardware-transmit     (SOF_TIMESTAMPING_TX_HARDWARE)
\tsoftware-transmit     (SOF_TIMESTAMPING_TX_SOFTWARE)
\thardware-receive      (SOF_TIMESTAMPING_RX_HARDWARE)
\tsoftware-receive      (SOF_TIMESTAMPING_RX_SOFTWARE)
\tsoftware-system-clock (SOF_TIMESTAMPING_SOFTWARE)
\thardware-raw-clock    (SOF_TIMESTAMPING_RAW_HARDWARE)
PTP Hardware Clock: 3
Hardware Transmit Timestamp Modes:
\toff                   (HWTSTAMP_TX_OFF)
\ton                    (HWTSTAMP_TX_ON)
Hardware Receive Filter Modes:
\tnone                  (HWTSTAMP_FILTER_NONE)
\tall                   (HWTSTAMP_FILTER_ALL)
"""


def test_a_hardware_nic_reports_its_clock_and_modes(monkeypatch):
    monkeypatch.setattr(nic, "_run", lambda netns, argv: subprocess.CompletedProcess(argv, 0, HARDWARE_NIC, ""))
    ts = nic.timestamping("enp1s0f0", None)
    assert ts["phc_index"] == 3 and ts["hardware"] is True
    assert "hardware-receive" in ts["capabilities"] and ts["tx_types"] == ["off", "on"]
    assert ts["rx_filters"] == ["none", "all"]


def test_a_device_without_timestamping_support_is_unsupported(monkeypatch):
    monkeypatch.setattr(nic, "_run", lambda netns, argv: subprocess.CompletedProcess(
        argv, 1, "", "Cannot get time stamping information: Operation not supported"))
    ts = nic.timestamping("dummy0", None)
    assert ts == {"status": "unsupported", "reason": "Cannot get time stamping information: Operation not supported"}
