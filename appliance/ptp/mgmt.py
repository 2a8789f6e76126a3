"""PTP management messages (IEEE 1588-2008 clause 15) and linuxptp's own
datasets (the ``_NP`` IDs), as ptp4l takes and answers them on its Unix socket.

Everything on the wire is big-endian. A management message is the common header,
the management fields, then one TLV:

    off len  field
      0   1  transportSpecific (high nibble) | messageType = 0xD (management)
      1   1  versionPTP = 2
      2   2  messageLength
      4   1  domainNumber                      the instance's domain
      5   1  reserved
      6   2  flagField
      8   8  correctionField
     16   4  reserved
     20  10  sourcePortIdentity                clockIdentity (8) portNumber (2)
     30   2  sequenceId
     32   1  controlField = 4 (management)
     33   1  logMessageInterval = 0x7f
     34  10  targetPortIdentity                all ones: every clock, every port
     44   1  startingBoundaryHops              0 on the local socket
     45   1  boundaryHops                      0
     46   1  actionField (low nibble)          GET 0, SET 1, RESPONSE 2, COMMAND 3, ACKNOWLEDGE 4
     47   1  reserved
     48   2  tlvType                           MANAGEMENT 1, MANAGEMENT_ERROR_STATUS 2
     50   2  lengthField                       bytes after this field (even)
     52   2  managementId                      (an error: managementErrorId, then managementId)
     54   -  dataField

Each dataset's layout is given beside its decoder below. Time intervals are
nanoseconds scaled by 2^16 (``TimeInterval``); a clock identity is shown as
linuxptp shows it (``c6a3cd.fffe.6ab5c1``), a port identity with ``-PORT``.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from typing import Any

HEADER = struct.Struct(">BBHBBHqI8sHHBb")        # 34 bytes
MGMT = struct.Struct(">8sHBBBB")                  # 14 bytes
TLV = struct.Struct(">HHH")                       # type, length, id
MESSAGE_TYPE_MANAGEMENT = 0xD
CONTROL_MANAGEMENT = 4
TLV_MANAGEMENT, TLV_MANAGEMENT_ERROR_STATUS = 0x0001, 0x0002
ACTIONS = ("GET", "SET", "RESPONSE", "COMMAND", "ACKNOWLEDGE")
ALL_PORTS = b"\xff" * 8, 0xFFFF

PORT_STATES = {1: "INITIALIZING", 2: "FAULTY", 3: "DISABLED", 4: "LISTENING", 5: "PRE_MASTER", 6: "MASTER",
               7: "PASSIVE", 8: "UNCALIBRATED", 9: "SLAVE", 10: "GRAND_MASTER"}
TIMESTAMPING = {0: "software", 1: "hardware", 2: "legacy hardware", 3: "one-step hardware",
                4: "peer one-step hardware"}
TIME_SOURCES = {0x10: "ATOMIC_CLOCK", 0x20: "GPS", 0x30: "TERRESTRIAL_RADIO", 0x40: "PTP", 0x50: "NTP",
                0x60: "HAND_SET", 0x90: "OTHER", 0xA0: "INTERNAL_OSCILLATOR"}
DELAY_MECHANISMS = {1: "E2E", 2: "P2P", 0xFE: "NONE"}
ERRORS = {0x0001: "RESPONSE_TOO_BIG", 0x0002: "NO_SUCH_ID", 0x0003: "WRONG_LENGTH", 0x0004: "WRONG_VALUE",
          0x0005: "NOT_SETABLE", 0x0006: "NOT_SUPPORTED", 0xFFFE: "GENERAL_ERROR"}
# timePropertiesDS flags (and GRANDMASTER_SETTINGS_NP time_flags)
LEAP_61, LEAP_59, UTC_OFFSET_VALID, PTP_TIMESCALE, TIME_TRACEABLE, FREQ_TRACEABLE = (1 << i for i in range(6))


class MgmtError(ValueError):
    """A message that does not parse, or the instance's error answer."""


def clock_id(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:6]}.{h[6:10]}.{h[10:16]}"


def port_id(raw: bytes) -> str:
    return f"{clock_id(raw[:8])}-{struct.unpack('>H', raw[8:10])[0]}"


def interval_ns(scaled: int) -> float:
    """A TimeInterval (ns x 2^16) in nanoseconds."""
    return scaled / 65536.0


def _quality(raw: bytes) -> dict[str, Any]:
    cls, acc, var = struct.unpack(">BBH", raw)
    return {"clock_class": cls, "clock_accuracy": acc, "offset_scaled_log_variance": var}


# ---- the datasets ---------------------------------------------------------------------------------
# Each decoder takes the dataField and returns plain values; a table (DATASETS) names them, their
# management ID and whether they are the clock's (one answer) or a port's (one answer per port).


def _default_ds(d: bytes) -> dict[str, Any]:
    # flags (1: bit 0 twoStep, bit 1 slaveOnly) reserved (1) numberPorts (2) priority1 (1)
    # clockQuality (4) priority2 (1) clockIdentity (8) domainNumber (1) reserved (1)
    flags, _, ports, p1 = struct.unpack_from(">BBHB", d)
    p2, = struct.unpack_from(">B", d, 9)
    return {"two_step": bool(flags & 1), "slave_only": bool(flags & 2), "number_ports": ports, "priority1": p1,
            **_quality(d[5:9]), "priority2": p2, "clock_identity": clock_id(d[10:18]), "domain": d[18]}


def _current_ds(d: bytes) -> dict[str, Any]:
    # stepsRemoved (2) offsetFromMaster (TimeInterval, 8) meanPathDelay (TimeInterval, 8)
    steps, offset, delay = struct.unpack_from(">Hqq", d)
    return {"steps_removed": steps, "offset_from_master_ns": interval_ns(offset),
            "mean_path_delay_ns": interval_ns(delay)}


def _parent_ds(d: bytes) -> dict[str, Any]:
    # parentPortIdentity (10) parentStats (1) reserved (1) observedParentOffsetScaledLogVariance (2)
    # observedParentClockPhaseChangeRate (4) grandmasterPriority1 (1) grandmasterClockQuality (4)
    # grandmasterPriority2 (1) grandmasterIdentity (8)
    stats, _, var, rate, p1 = struct.unpack_from(">BBHiB", d, 10)
    p2, = struct.unpack_from(">B", d, 23)
    q = _quality(d[19:23])
    return {"parent_port_identity": port_id(d[:10]), "parent_stats": bool(stats),
            "observed_parent_offset_scaled_log_variance": var, "observed_parent_clock_phase_change_rate": rate,
            "gm_priority1": p1, "gm_clock_class": q["clock_class"], "gm_clock_accuracy": q["clock_accuracy"],
            "gm_offset_scaled_log_variance": q["offset_scaled_log_variance"], "gm_priority2": p2,
            "gm_identity": clock_id(d[24:32])}


def _time_properties(d: bytes) -> dict[str, Any]:
    # currentUtcOffset (2, signed) flags (1) timeSource (1)
    utc, flags, source = struct.unpack_from(">hBB", d)
    return {"current_utc_offset": utc, "leap61": bool(flags & LEAP_61), "leap59": bool(flags & LEAP_59),
            "current_utc_offset_valid": bool(flags & UTC_OFFSET_VALID), "ptp_timescale": bool(flags & PTP_TIMESCALE),
            "time_traceable": bool(flags & TIME_TRACEABLE), "frequency_traceable": bool(flags & FREQ_TRACEABLE),
            "time_source": TIME_SOURCES.get(source, f"0x{source:02x}")}


def _port_ds(d: bytes) -> dict[str, Any]:
    # portIdentity (10) portState (1) logMinDelayReqInterval (1) peerMeanPathDelay (TimeInterval, 8)
    # logAnnounceInterval (1) announceReceiptTimeout (1) logSyncInterval (1) delayMechanism (1)
    # logMinPdelayReqInterval (1) versionNumber (1, low nibble)
    state, min_delay, peer, announce, timeout, sync, mech, pdelay, version = struct.unpack_from(">BbqbBbBbB", d, 10)
    return {"port_identity": port_id(d[:10]), "port_state": PORT_STATES.get(state, str(state)),
            "log_min_delay_req_interval": min_delay, "peer_mean_path_delay_ns": interval_ns(peer),
            "log_announce_interval": announce, "announce_receipt_timeout": timeout, "log_sync_interval": sync,
            "delay_mechanism": DELAY_MECHANISMS.get(mech, str(mech)), "log_min_pdelay_req_interval": pdelay,
            "version_number": version & 0x0F}


def _time_status_np(d: bytes) -> dict[str, Any]:
    # master_offset (8, ns) ingress_time (8, ns) cumulativeScaledRateOffset (4) scaledLastGmPhaseChange (4)
    # gmTimeBaseIndicator (2) lastGmPhaseChange (ScaledNs: msb 2, lsb 8, fractional 2) gmPresent (4)
    # gmIdentity (8)
    offset, ingress, rate, phase, base = struct.unpack_from(">qqiiH", d)
    msb, lsb, frac, present = struct.unpack_from(">HQHi", d, 26)
    return {"master_offset_ns": offset, "ingress_time_ns": ingress, "cumulative_scaled_rate_offset": rate,
            "scaled_last_gm_phase_change": phase, "gm_time_base_indicator": base,
            "last_gm_phase_change_ns": ((msb << 64) | lsb) + frac / 65536.0, "gm_present": bool(present),
            "gm_identity": clock_id(d[42:50])}


def _grandmaster_settings_np(d: bytes) -> dict[str, Any]:
    # clockQuality (4) utc_offset (2, signed) time_flags (1) time_source (1)
    utc, flags, source = struct.unpack_from(">hBB", d, 4)
    return {**_quality(d[:4]), "utc_offset": utc, "time_flags": flags,
            "time_traceable": bool(flags & TIME_TRACEABLE), "current_utc_offset_valid": bool(flags & UTC_OFFSET_VALID),
            "time_source": TIME_SOURCES.get(source, f"0x{source:02x}")}


def _port_properties_np(d: bytes) -> dict[str, Any]:
    # portIdentity (10) port_state (1) timestamping (1) interface (PTPText: length 1, text)
    state, ts, n = struct.unpack_from(">BBB", d, 10)
    return {"port_identity": port_id(d[:10]), "port_state": PORT_STATES.get(state, str(state)),
            "timestamping": TIMESTAMPING.get(ts, str(ts)), "interface": d[13:13 + n].decode("ascii", "replace")}


SERVICE_STATS = ("announce_timeout", "sync_timeout", "delay_timeout", "unicast_service_timeout",
                 "unicast_request_timeout", "master_announce_timeout", "master_sync_timeout",
                 "qualification_timeout", "sync_mismatch", "followup_mismatch")


def _port_service_stats_np(d: bytes) -> dict[str, Any]:
    # portIdentity (10) then ten counters of 8 bytes, in SERVICE_STATS order
    counts = struct.unpack_from(">10Q", d, 10)
    return {"port_identity": port_id(d[:10]), **dict(zip(SERVICE_STATS, counts, strict=True))}


def _port_stats_np(d: bytes) -> dict[str, Any]:
    # portIdentity (10) rxMsgType[16] (8 each) txMsgType[16] (8 each), by PTP message type;
    # the counters come in the host's byte order (linuxptp copies its struct as it is)
    names = {0: "sync", 1: "delay_req", 2: "pdelay_req", 3: "pdelay_resp", 8: "follow_up", 9: "delay_resp",
             10: "pdelay_resp_follow_up", 11: "announce", 12: "signaling", 13: "management"}
    rx = struct.unpack_from("<16Q", d, 10)
    tx = struct.unpack_from("<16Q", d, 10 + 128)
    return {"port_identity": port_id(d[:10]), "rx": {n: rx[i] for i, n in names.items()},
            "tx": {n: tx[i] for i, n in names.items()}}


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    id: int
    scope: str                                   # clock: one answer; port: one per port
    decode: Callable[[bytes], dict[str, Any]]
    help: str


# The table the client, the CLI's help and the tests read.
DATASETS = {d.name: d for d in (
    Dataset("DEFAULT_DATA_SET", 0x2000, "clock", _default_ds, "the clock's identity, priorities, quality, domain"),
    Dataset("CURRENT_DATA_SET", 0x2001, "clock", _current_ds, "offset from the master, mean path delay, steps"),
    Dataset("PARENT_DATA_SET", 0x2002, "clock", _parent_ds, "the parent port and the grandmaster"),
    Dataset("TIME_PROPERTIES_DATA_SET", 0x2003, "clock", _time_properties,
            "UTC offset and its validity, traceability, time source"),
    Dataset("PORT_DATA_SET", 0x2004, "port", _port_ds, "a port's state, intervals and delay mechanism"),
    Dataset("TIME_STATUS_NP", 0xC000, "clock", _time_status_np,
            "linuxptp: the servo's offset, the last sync's ingress time, the grandmaster"),
    Dataset("GRANDMASTER_SETTINGS_NP", 0xC001, "clock", _grandmaster_settings_np,
            "linuxptp: what this clock announces when it is the grandmaster"),
    Dataset("PORT_PROPERTIES_NP", 0xC004, "port", _port_properties_np,
            "linuxptp: a port's state, timestamping (hardware or software) and interface"),
    Dataset("PORT_STATS_NP", 0xC005, "port", _port_stats_np, "linuxptp: messages received and sent by type"),
    Dataset("PORT_SERVICE_STATS_NP", 0xC007, "port", _port_service_stats_np,
            "linuxptp: timeouts and mismatches counted by a port"),
)}
BY_ID = {d.id: d for d in DATASETS.values()}


# ---- messages ---------------------------------------------------------------------------------


def encode(action: str, dataset: str, sequence: int, domain: int = 0, source: bytes = b"\0" * 10,
           data: bytes = b"") -> bytes:
    """A GET (no data) or SET (data: the dataset's dataField) to every port of the clock."""
    d = DATASETS[dataset]
    if len(data) % 2:
        data += b"\0"  # a TLV's length is even
    tlv = TLV.pack(TLV_MANAGEMENT, 2 + len(data), d.id) + data
    length = HEADER.size + MGMT.size + len(tlv)
    head = HEADER.pack((0 << 4) | MESSAGE_TYPE_MANAGEMENT, 2, length, domain, 0, 0, 0, 0, source[:8],
                       struct.unpack(">H", source[8:10])[0], sequence & 0xFFFF, CONTROL_MANAGEMENT, 0x7F)
    mgmt = MGMT.pack(ALL_PORTS[0], ALL_PORTS[1], 0, 0, ACTIONS.index(action), 0)
    return head + mgmt + tlv


@dataclasses.dataclass
class Response:
    dataset: str
    action: str
    sequence: int
    domain: int
    source: str            # the answering port's identity
    data: dict[str, Any] | None = None
    error: str | None = None


def decode(msg: bytes) -> Response:
    """One answer from the instance; MgmtError when it is not a management message we can read."""
    if len(msg) < HEADER.size + MGMT.size + TLV.size:
        raise MgmtError(f"{len(msg)} bytes: shorter than a management message")
    (kind, version, length, domain, _, _, _, _, src_clock, src_port, seq, control, _) = HEADER.unpack_from(msg)
    if kind & 0x0F != MESSAGE_TYPE_MANAGEMENT or version & 0x0F != 2:
        raise MgmtError(f"message type {kind & 0x0F}, version {version & 0x0F}: not a PTPv2 management message")
    if length > len(msg):
        raise MgmtError(f"messageLength {length} but {len(msg)} bytes came")
    *_, action, _ = MGMT.unpack_from(msg, HEADER.size)
    action_name = ACTIONS[action & 0x0F] if action & 0x0F < len(ACTIONS) else str(action & 0x0F)
    off = HEADER.size + MGMT.size
    tlv_type, tlv_len, first = TLV.unpack_from(msg, off)
    body = msg[off + 6:off + 4 + tlv_len]
    source = port_id(src_clock + struct.pack(">H", src_port))
    if tlv_type == TLV_MANAGEMENT_ERROR_STATUS:
        mid, = struct.unpack_from(">H", msg, off + 6)
        name = BY_ID[mid].name if mid in BY_ID else f"0x{mid:04x}"
        return Response(name, action_name, seq, domain, source, error=ERRORS.get(first, f"0x{first:04x}"))
    if tlv_type != TLV_MANAGEMENT:
        raise MgmtError(f"TLV type 0x{tlv_type:04x}: not a management TLV")
    d = BY_ID.get(first)
    if d is None:
        return Response(f"0x{first:04x}", action_name, seq, domain, source, error="not a dataset this client reads")
    try:
        return Response(d.name, action_name, seq, domain, source, data=d.decode(body))
    except struct.error as exc:
        raise MgmtError(f"{d.name}: {len(body)} bytes of data do not fit its layout ({exc})") from exc


def grandmaster_settings(clock_class: int, clock_accuracy: int, variance: int, utc_offset: int, time_flags: int,
                         time_source: int) -> bytes:
    """The dataField of a SET GRANDMASTER_SETTINGS_NP."""
    return struct.pack(">BBHhBB", clock_class, clock_accuracy, variance, utc_offset, time_flags, time_source)
