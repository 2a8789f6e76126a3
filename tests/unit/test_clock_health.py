"""PTP clock health without a ptp4l: the management codec against bytes laid out
by hand from IEEE 1588's tables, the generated configuration, every health check
at its thresholds, the monitor's events over a scripted run (time injected), the
compliance report, the metrics, and the risk manager's clock stop. The real
ptp4l is tests/integration/test_ptp.py's."""

from __future__ import annotations

import json
import pathlib
import socket as so
import struct
from types import SimpleNamespace

import pytest

from appliance import config
from appliance.oms import Oms
from appliance.ptp import client, conf, health, mgmt, monitor, report
from appliance.ptp.client import PtpClientError
from appliance.ptp.metrics import Metrics
from appliance.riskman import RiskManager

CLOCK = bytes.fromhex("c6a3cdfffe6ab5c1")
GM = bytes.fromhex("0011220000334455")


def answer(mid: int, data: bytes, seq: int = 7, domain: int = 0, port: int = 1, tlv: int = 1) -> bytes:
    """A RESPONSE as ptp4l sends one, built field by field from the header table."""
    body = struct.pack(">HHH", tlv, 2 + len(data), mid) + data
    head = bytes([0x0D, 0x02]) + struct.pack(">H", 48 + len(body)) + bytes([domain, 0]) + b"\0\0" + b"\0" * 8 + \
        b"\0" * 4 + CLOCK + struct.pack(">H", port) + struct.pack(">H", seq) + bytes([4, 0x7F])
    mgmt_fields = b"\xff" * 10 + bytes([0, 0, 2, 0])  # target all ports, hops, action RESPONSE
    return head + mgmt_fields + body


def test_a_get_is_laid_out_as_the_standard_says():
    msg = mgmt.encode("GET", "PORT_DATA_SET", sequence=0x1234, domain=24, source=b"\x01" * 8 + b"\x00\x09")
    assert len(msg) == 54 and msg[0] == 0x0D and msg[1] == 2 and struct.unpack(">H", msg[2:4])[0] == 54
    assert msg[4] == 24 and msg[20:30] == b"\x01" * 8 + b"\x00\x09" and msg[30:32] == b"\x12\x34"
    assert msg[32] == 4 and msg[33] == 0x7F and msg[34:44] == b"\xff" * 10  # management, every clock and port
    assert msg[44:46] == b"\0\0" and msg[46] & 0x0F == 0  # boundary hops 0, GET
    assert msg[48:54] == b"\x00\x01\x00\x02\x20\x04"  # TLV MANAGEMENT, length 2 (only the id), PORT_DATA_SET
    odd = mgmt.encode("SET", "GRANDMASTER_SETTINGS_NP", 1, data=b"\x01\x02\x03")
    assert struct.unpack(">H", odd[50:52])[0] % 2 == 0  # a TLV's length is even: padded


def test_each_dataset_decodes_from_its_byte_layout():
    cur = answer(0x2001, struct.pack(">Hqq", 1, -1500 << 16, 13_905 << 16))
    r = mgmt.decode(cur)
    assert (r.dataset, r.action, r.sequence, r.source) == ("CURRENT_DATA_SET", "RESPONSE", 7, "c6a3cd.fffe.6ab5c1-1")
    assert r.data == {"steps_removed": 1, "offset_from_master_ns": -1500.0, "mean_path_delay_ns": 13905.0}
    parent = GM + b"\x00\x01" + bytes([0, 0]) + b"\xff\xff" + struct.pack(">i", 0x7FFFFFFF) + bytes([10]) + \
        bytes([6, 0x21]) + b"\x4e\x5d" + bytes([128]) + GM
    p = mgmt.decode(answer(0x2002, parent)).data
    assert (p["parent_port_identity"], p["gm_priority1"], p["gm_clock_class"], p["gm_clock_accuracy"],
            p["gm_offset_scaled_log_variance"], p["gm_priority2"], p["gm_identity"]) == (
        "001122.0000.334455-1", 10, 6, 0x21, 0x4E5D, 128, "001122.0000.334455")
    tp = mgmt.decode(answer(0x2003, struct.pack(">hBB", 37, 0b110100, 0x20))).data
    assert tp["current_utc_offset"] == 37 and tp["time_traceable"] and tp["frequency_traceable"]
    assert tp["current_utc_offset_valid"] and not tp["ptp_timescale"] and tp["time_source"] == "GPS"
    pds = CLOCK + b"\x00\x01" + struct.pack(">BbqbBbBbB", 9, 0, 0, 0, 3, -3, 1, 0, 2)
    port = mgmt.decode(answer(0x2004, pds)).data
    assert (port["port_state"], port["log_sync_interval"], port["announce_receipt_timeout"],
            port["delay_mechanism"], port["version_number"]) == ("SLAVE", -3, 3, "E2E", 2)
    tsn = struct.pack(">qqiiH", -830, 1_796_181_380_452_262_186, 0, 0, 0) + struct.pack(">HQH", 0, 0, 0) + \
        struct.pack(">i", 1) + GM
    ts = mgmt.decode(answer(0xC000, tsn)).data
    assert ts["master_offset_ns"] == -830 and ts["ingress_time_ns"] == 1_796_181_380_452_262_186
    assert ts["gm_present"] and ts["gm_identity"] == "001122.0000.334455"
    props = mgmt.decode(answer(0xC004, CLOCK + b"\x00\x01" + bytes([9, 0, 5]) + b"order" + b"\0")).data
    assert props == {"port_identity": "c6a3cd.fffe.6ab5c1-1", "port_state": "SLAVE", "timestamping": "software",
                     "interface": "order"}
    svc = mgmt.decode(answer(0xC007, CLOCK + b"\x00\x01" + struct.pack(">10Q", 9041, 0, 63346, 0, 0, 0, 0, 0, 0, 2)))
    assert (svc.data["announce_timeout"], svc.data["delay_timeout"], svc.data["followup_mismatch"]) == (9041, 63346, 2)
    gms = mgmt.decode(answer(0xC001, mgmt.grandmaster_settings(6, 0x21, 0x4E5D, 37, 0b110100, 0x20))).data
    assert gms["clock_class"] == 6 and gms["utc_offset"] == 37 and gms["time_traceable"]


def test_errors_and_junk_are_named():
    err = answer(0x0002, struct.pack(">H", 0xC007) + b"\0" * 4, tlv=2)  # NO_SUCH_ID about PORT_SERVICE_STATS_NP
    r = mgmt.decode(err)
    assert r.error == "NO_SUCH_ID" and r.dataset == "PORT_SERVICE_STATS_NP"
    with pytest.raises(mgmt.MgmtError, match="shorter than a management message"):
        mgmt.decode(b"\x0d\x02")
    with pytest.raises(mgmt.MgmtError, match="not a PTPv2 management message"):
        mgmt.decode(b"\x00\x02" + b"\0" * 60)
    with pytest.raises(mgmt.MgmtError, match="do not fit its layout"):
        mgmt.decode(answer(0x2001, b"\x00\x01"))


def ptp(**changes) -> config.Ptp:
    base = config.Ptp(interface="eth1", timestamping="hardware", profile="hft")
    return base.model_copy(update=changes)


def test_ptp4l_conf_and_units_come_from_the_yaml():
    text = conf.ptp4l_conf(ptp(domain=24, sync_interval=-4, free_running=False))
    lines = {ln.split()[0]: ln.split()[1] for ln in text.splitlines() if ln and not ln.startswith(("#", "["))}
    assert lines["domainNumber"] == "24" and lines["time_stamping"] == "hardware" and lines["slaveOnly"] == "1"
    assert lines["logSyncInterval"] == "-4" and lines["free_running"] == "0"
    assert lines["uds_address"] == "/var/run/ptp4l"
    assert "[eth1]" in text
    units = conf.units(ptp())
    assert "ExecStart=/usr/sbin/ptp4l -f /etc/tickwire/ptp4l.conf -i eth1" in units["tickwire-ptp4l.service"]
    assert "phc2sys -a -r -n 0 -z /var/run/ptp4l -m" in units["tickwire-phc2sys.service"]
    assert conf.phc2sys_argv(ptp(timestamping="software")) is None  # ptp4l steers the system clock itself
    assert conf.phc2sys_argv(ptp(free_running=True)) is None
    with pytest.raises(ValueError, match="ptp.interface"):
        conf.ptp4l_conf(ptp(interface=None))
    with pytest.raises(ValueError, match="not one this generator writes"):
        conf.ptp4l_conf(ptp(), nonsense=1)


def snapshot(state="SLAVE", offset=50.0, delay=2_000.0, gm_present=True, gm="001122.0000.334455", cls=6,
             traceable=True, ts="hardware", age_s=0.05, domain=0, at=1_000.0) -> dict:
    return {
        "at": at,
        "DEFAULT_DATA_SET": {"clock_identity": "c6a3cd.fffe.6ab5c1", "domain": domain, "number_ports": 1},
        "CURRENT_DATA_SET": {"steps_removed": 1, "offset_from_master_ns": offset, "mean_path_delay_ns": delay},
        "PARENT_DATA_SET": {"gm_identity": gm, "gm_clock_class": cls, "gm_priority1": 128},
        "TIME_PROPERTIES_DATA_SET": {"time_traceable": traceable, "current_utc_offset_valid": traceable,
                                     "current_utc_offset": 37, "ptp_timescale": True, "time_source": "GPS"},
        "TIME_STATUS_NP": {"gm_present": gm_present, "gm_identity": gm,
                           "ingress_time_ns": int((at - age_s) * 1e9)},
        "PORT_DATA_SET": [{"port_identity": "c6a3cd.fffe.6ab5c1-1", "port_state": state}],
        "PORT_PROPERTIES_NP": [{"port_identity": "c6a3cd.fffe.6ab5c1-1", "port_state": state, "timestamping": ts,
                                "interface": "eth1"}],
        "PORT_SERVICE_STATS_NP": None,
    }


def statuses(snap, cfg=None, history=None) -> dict[str, str]:
    r = health.evaluate(snap, health.Limits.from_config(cfg or ptp(phc2sys=config.Phc2sys(enabled=False))), history)
    return {c["name"]: c["status"] for c in r["checks"]}


@pytest.mark.parametrize("profile,offset,expected", [
    ("hft", 99.0, "ok"), ("hft", 101.0, "warn"), ("hft", 999.0, "warn"), ("hft", -1_001.0, "fail"),
    ("rts25", 99_000.0, "ok"), ("rts25", -100_001.0, "fail"),
])
def test_the_offset_is_judged_by_the_profile(profile, offset, expected):
    assert statuses(snapshot(offset=offset), ptp(profile=profile))["offset from master"] == expected


def test_the_configs_thresholds_override_the_profiles():
    assert statuses(snapshot(offset=400.0), ptp(warn_offset=0.0000005))["offset from master"] == "ok"
    assert statuses(snapshot(offset=400.0), ptp(max_offset=0.0000003))["offset from master"] == "fail"


def test_a_healthy_hardware_slave_passes_every_check():
    r = health.evaluate(snapshot(), health.Limits.from_config(ptp(phc2sys=config.Phc2sys(enabled=False))))
    assert r["verdict"] == "degraded" and r["degraded"] == ["phc2sys"]  # switched off: nothing steers the OS clock
    s = statuses(snapshot())
    assert all(v in ("ok", "skip") for k, v in s.items() if k != "phc2sys")


def test_each_kind_of_trouble_fails_its_check_and_says_so():
    assert statuses(snapshot(state="LISTENING"))["port state"] == "fail"
    assert statuses(snapshot(state="LISTENING"))["grandmaster"] == "fail"  # the parent data set is stale then
    assert statuses(snapshot(state="UNCALIBRATED"))["port state"] == "warn"
    assert statuses(snapshot(state="UNCALIBRATED"), ptp(free_running=True))["port state"] == "ok"
    assert statuses(snapshot(gm_present=False))["grandmaster"] == "fail"
    assert statuses(snapshot(cls=248))["grandmaster"] == "warn"
    assert statuses(snapshot(cls=7))["grandmaster"] == "ok"
    assert statuses(snapshot(delay=150_000.0))["mean path delay"] == "fail"
    assert statuses(snapshot(delay=-5.0))["mean path delay"] == "warn"
    assert statuses(snapshot(age_s=1.5))["last sync"] == "fail"  # 8 intervals of 1/16 s, at least 1 s
    assert statuses(snapshot(age_s=0.9))["last sync"] == "ok"
    assert statuses(snapshot(traceable=False))["traceable to UTC"] == "warn"
    assert statuses(snapshot(ts="software"))["timestamping"] == "warn"
    assert statuses(snapshot(domain=3))["domain"] == "fail"
    r = health.evaluate(None, health.Limits.from_config(ptp()), error="no ptp4l management socket at /x")
    assert r["verdict"] == "failed" and r["exit"] == 2 and r["checks"][0]["evidence"] == "no ptp4l management " \
        "socket at /x"


class Scripted:
    """A client that answers what the test says, in turn."""

    def __init__(self, snaps):
        self.snaps = list(snaps)

    def snapshot(self):
        s = self.snaps.pop(0)
        if isinstance(s, Exception):
            raise s
        return s

    def close(self):
        pass


def test_the_monitor_raises_grandmaster_changes_state_flaps_and_verdict_steps(tmp_path):
    t = [100.0]
    seen = []
    script = [snapshot(), snapshot(), snapshot(gm="aaaaaa.fffe.000001"), snapshot(state="LISTENING"),
              PtpClientError("no answer"), snapshot(gm="aaaaaa.fffe.000001")]
    mon = monitor.Monitor(ptp(phc2sys=config.Phc2sys(enabled=False), max_gm_changes=0), name="t",
                          sink=seen.append, client=Scripted(script), clock=lambda: t[0],
                          history_file=tmp_path / "h.jsonl")
    verdicts = []
    for _ in script:
        for s in mon.client.snaps[:1]:
            if isinstance(s, dict):
                s["at"] = t[0]
                s["TIME_STATUS_NP"]["ingress_time_ns"] = int((t[0] - 0.05) * 1e9)
        verdicts.append(mon.step()["verdict"])
        t[0] += 1.0
    assert verdicts == ["degraded", "degraded", "failed", "failed", "failed", "failed"]
    events = [(e["event"], e.get("from"), e.get("to")) for e in seen if "event" in e]
    assert ("gm_change", "001122.0000.334455", "aaaaaa.fffe.000001") in events
    assert ("port_state", "SLAVE", "LISTENING") in events and ("port_state", "LISTENING", None) in events
    assert events[0] == ("port_state", None, "SLAVE") and ("clock_degraded", None, "degraded") in events
    assert ("clock_failed", "degraded", "failed") in events  # max_gm_changes 0: the change alone fails
    assert mon.view()["failed_for_s"] == 3.0 and "grandmaster changes" in mon.view()["failed"]
    kept = monitor.read_history(tmp_path / "h.jsonl")
    assert len([r for r in kept if "event" not in r]) == 6 and kept[0]["state"] == "SLAVE"
    again = monitor.Monitor(ptp(), name="t", client=Scripted([]), history_file=tmp_path / "h.jsonl")
    assert len(again.history.gm_changes(600)) == 1  # a restarted monitor keeps the window it had


def test_the_report_gives_percentiles_time_out_of_tolerance_and_grandmaster_changes():
    cfg = ptp(profile="rts25")
    recs = []
    for i in range(100):  # 100 s, one sample a second; 10 s of them 200 µs off
        off = 200_000.0 if 50 <= i < 60 else float(i)
        recs.append({"t": 1_000.0 + i, "verdict": "healthy", "error": None, "state": "SLAVE", "offset_ns": off,
                     "delay_ns": 20_000.0, "gm": "g1" if i < 70 else "g2", "gm_class": 6, "timestamping": "software",
                     "traceable": True, "failed": [], "degraded": []})
    recs.append({"t": 1_070.0, "event": "gm_change", "from": "g1", "to": "g2", "gm_class": 6})
    rep = report.build(recs, 1_000.0, 1_099.0, cfg)
    assert rep["samples"] == 100 and rep["out_of_tolerance_s"] == 10.0 and rep["unsynchronised_s"] == 0
    assert rep["offset_ns"]["max"] == 200_000.0 and rep["offset_ns"]["p50"] == 49.0
    assert [g["gm"] for g in rep["grandmasters"]] == ["g1", "g2"] and rep["grandmaster_changes"][0]["to"] == "g2"
    assert not rep["within_tolerance"] and rep["timestamping"] == ["software"]
    page = report.to_html(rep)
    assert "<svg" in page and "polyline" in page and "out of tolerance s" in page
    assert report.build([], 0, 1, cfg)["verdict"].startswith("no evidence")
    assert report.parse_time("10m", now=1_000.0) == 400.0 and report.parse_time("2026-12-02T00:00:00Z") > 0
    with pytest.raises(ValueError, match="ISO 8601"):
        report.parse_time("yesterday")


def test_metrics_follow_the_linuxptp_exporters_names():
    m = Metrics("eth1")
    mon = monitor.Monitor(ptp(phc2sys=config.Phc2sys(enabled=False)), name="m", client=Scripted([snapshot()]),
                          clock=lambda: 1_000.0, metrics=m, history_file=None)
    mon.step()
    text = m.text()
    for line in ('tickwire_ptp_offset_ns{iface="eth1",process="ptp4l"} 50.0',
                 'tickwire_ptp_clock_state{iface="eth1",process="ptp4l"} 1.0',
                 'tickwire_ptp_clock_class{iface="eth1",process="ptp4l"} 6.0',
                 'tickwire_ptp_process_status{iface="eth1",process="ptp4l"} 1.0',
                 'tickwire_ptp_interface_role{iface="eth1",process="ptp4l"} 1.0',
                 'tickwire_ptp_delay_ns{iface="eth1",process="ptp4l"} 2000.0'):
        assert line in text, line


def test_a_failed_clock_stops_trading_after_fail_after_and_only_when_asked():
    fake = SimpleNamespace(shared=SimpleNamespace(ptr=SimpleNamespace(orders_sent=0, cancels_sent=0, killed=0,
                                                                      killed_strategy=0,
                                                                      feed=SimpleNamespace(stale=0))),
                           books=SimpleNamespace(micro_price=lambda loc: 1_000_000),
                           session=SimpleNamespace(stats=lambda: {"state": "up"}))
    view = {"verdict": "failed", "failed": ["last sync"], "failed_for_s": 1.0, "error": None}
    trips = []
    rm = RiskManager(config.RiskManager(), Oms(), fake, fake, [("mm", "TAAA", 1)],
                     lambda level, target, reason: trips.append((level, reason)) or {"cancels": 0},
                     clock=lambda: view, clock_stop=True, clock_fail_after=2.0)
    assert rm.tick(now=1.0) is None and rm.view["clock"] == "failed"
    view["failed_for_s"] = 2.5
    got = rm.tick(now=2.0)
    assert got["level"] == "global" and trips == [("global", "clock failed (last sync) for s 2.5 past its limit 2.0")]
    calm = RiskManager(config.RiskManager(), Oms(), fake, fake, [("mm", "TAAA", 1)],
                       lambda *a: pytest.fail("tripped"), clock=lambda: view, clock_stop=False)
    assert calm.tick(now=3.0) is None


def test_the_read_only_socket_is_preferred_and_the_newer_place_tried_first(tmp_path, monkeypatch):
    def listen(p):
        s = so.socket(so.AF_UNIX, so.SOCK_DGRAM)
        s.bind(str(p))
        return s

    new, old = tmp_path / "run-ptp" / "ptp4l", tmp_path / "ptp4l"
    new.parent.mkdir()
    keep = [listen(old)]
    monkeypatch.setattr(client, "DEFAULT_SOCKETS", (new, old))
    assert client.find_socket() == old  # newer linuxptp's place is empty: the old one
    keep.append(listen(new))
    assert client.find_socket() == new
    keep.append(listen(new.with_name("ptp4lro")))
    assert client.find_socket() == new.with_name("ptp4lro")  # reads take the read-only socket
    assert client.find_socket(read_only=False) == new  # a SET takes the read-write one
    with pytest.raises(client.PtpClientError, match="no ptp4l management socket at .*nope"):
        client.find_socket(tmp_path / "nope")
    for s in keep:
        s.close()


def test_ptp_config_writes_ptp4l_conf_and_the_units(tmp_path, capsys):
    from appliance import cli

    example = pathlib.Path(__file__).parents[2] / "examples" / "market_maker.yaml"
    assert cli.main(["ptp", "config", str(example), "--out", str(tmp_path), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r["written"]) == {"ptp4l.conf", "tickwire-ptp4l.service"} and r["phc2sys"] is None  # software
    text = (tmp_path / "ptp4l.conf").read_text()
    opts = dict(ln.split(None, 1) for ln in text.splitlines() if ln and not ln.startswith(("#", "[")))
    assert opts["free_running"] == "1" and opts["uds_address"] == "/run/tickwire/lab/tw/ptp/app.sock"
    assert opts["time_stamping"] == "software" and "[order]" in text


def test_phc2sys_is_read_from_its_own_lines_and_judged_like_the_offset(monkeypatch):
    lines = ["phc2sys[10.1]: CLOCK_REALTIME phc offset       310 s0 freq  +1234 delay    567",
             "phc2sys[11.1]: CLOCK_REALTIME phc offset       -42 s2 freq  +1200 delay    566", "something else"]
    assert health.phc2sys_offset(lines) == (-42, 2) and health.phc2sys_offset(["nothing"]) is None
    monkeypatch.setattr(health, "_running", lambda name: [4242])
    cfg = ptp()
    snap = snapshot()
    snap.update(phc2sys_offset_ns=-42, phc2sys_state=2)
    assert statuses(snap, cfg)["phc2sys"] == "ok"
    snap.update(phc2sys_offset_ns=-420, phc2sys_state=2)
    assert statuses(snap, cfg)["phc2sys"] == "warn"  # hft: past 100 ns
    snap.update(phc2sys_offset_ns=-42, phc2sys_state=0)
    assert statuses(snap, cfg)["phc2sys"] == "warn"  # not locked
    monkeypatch.setattr(health, "_running", lambda name: [])
    assert statuses(snap, cfg)["phc2sys"] == "fail"  # hardware timestamping, and nothing follows the PHC
    assert health.phc_now_ns("no-such-iface") is None
