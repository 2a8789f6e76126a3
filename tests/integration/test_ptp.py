"""PTP clock health with real ptp4l in the lab: a grandmaster in exch, the
appliance's slave in app, software timestamping over the veths, every instance
free_running (this machine's clock is never stepped or steered).

Healthy: the checks pass but for the software timestamping, reported as the
degradation it is, and our management client reads what pmc reads. The master
killed: the check fails within the announce timeout and says why. One direction
delayed: the offset shifts by half the delay, and the alarm goes. A better
grandmaster: it is followed, and the change is alarmed. The monitor's metrics,
the compliance report, and the appliance that stops trading when its clock fails.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import socket
import statistics
import subprocess
import time
import urllib.request

import pytest
import yaml

from appliance import journal
from appliance.lab import ptp as lab_ptp
from appliance.ptp.client import PtpClient
from labtools import TICKWIRE, ExchangeProcess, tw, tw_json

pytestmark = pytest.mark.root


@pytest.fixture
def clock(lab):
    """The lab's grandmaster and app's slave, following it."""
    lab_ptp.up(lab, ("gm", "app"))
    lab_ptp.wait_state(lab.prefix, "app")
    yield lab
    lab_ptp.down(lab)
    for p in pathlib.Path("/run/tickwire/ptp").glob(f"{lab.prefix}*.jsonl"):
        p.unlink()


def check(lab, *extra: str) -> tuple[int, dict]:
    res = tw("ptp", "check", "--lab", "--prefix", lab.prefix, "--name", lab.prefix, "--json", *extra)
    assert res.returncode in (0, 1, 2), res.stderr
    return res.returncode, json.loads(res.stdout)


def pmc(lab, dataset: str) -> dict[str, str]:
    """pmc's answer, as `field value` pairs (the first answer)."""
    res = subprocess.run(["pmc", "-u", "-b", "0", "-d", "0", "-s", str(lab_ptp.socket_path(lab.prefix, "app")),
                          f"GET {dataset}"], capture_output=True, text=True, timeout=10)
    fields: dict[str, str] = {}
    for line in res.stdout.splitlines():
        if line.startswith("\t\t"):
            k, _, v = line.strip().partition(" ")
            fields.setdefault(k, v.strip())
    assert fields, f"pmc GET {dataset}: {res.stdout} {res.stderr}"
    return fields


def test_our_client_reads_what_pmc_reads(clock):
    lab = clock
    with PtpClient(lab_ptp.socket_path(lab.prefix, "app")) as c:
        ours = {name: c.get(name) for name in ("DEFAULT_DATA_SET", "CURRENT_DATA_SET", "PARENT_DATA_SET",
                                               "TIME_PROPERTIES_DATA_SET", "PORT_DATA_SET", "TIME_STATUS_NP",
                                               "PORT_PROPERTIES_NP", "PORT_STATS_NP")}
        svc = c.request("GET", "PORT_SERVICE_STATS_NP")
    theirs = {name: pmc(lab, name) for name in ours}
    d, t = ours["DEFAULT_DATA_SET"][0], theirs["DEFAULT_DATA_SET"]
    assert (d["clock_identity"], str(d["priority1"]), str(d["clock_class"]), str(d["domain"]),
            str(d["number_ports"])) == (t["clockIdentity"], t["priority1"], t["clockClass"],
                                        t["domainNumber"], t["numberPorts"])
    cur, t = ours["CURRENT_DATA_SET"][0], theirs["CURRENT_DATA_SET"]
    assert str(cur["steps_removed"]) == t["stepsRemoved"] == "1"
    assert abs(cur["offset_from_master_ns"] - float(t["offsetFromMaster"])) < 50_000  # read moments apart
    assert abs(cur["mean_path_delay_ns"] - float(t["meanPathDelay"])) < 50_000
    p, t = ours["PARENT_DATA_SET"][0], theirs["PARENT_DATA_SET"]
    assert (p["parent_port_identity"], p["gm_identity"], str(p["gm_priority1"]), str(p["gm_clock_class"]),
            f"0x{p['gm_clock_accuracy']:02x}", f"0x{p['gm_offset_scaled_log_variance']:04x}") == (
        t["parentPortIdentity"], t["grandmasterIdentity"], t["grandmasterPriority1"], t["gm.ClockClass"],
        t["gm.ClockAccuracy"], t["gm.OffsetScaledLogVariance"])
    tp, t = ours["TIME_PROPERTIES_DATA_SET"][0], theirs["TIME_PROPERTIES_DATA_SET"]
    assert (str(tp["current_utc_offset"]), str(int(tp["current_utc_offset_valid"])), str(int(tp["time_traceable"])),
            str(int(tp["ptp_timescale"])), str(int(tp["frequency_traceable"]))) == (
        t["currentUtcOffset"], t["currentUtcOffsetValid"], t["timeTraceable"], t["ptpTimescale"],
        t["frequencyTraceable"])
    assert t["timeSource"] == "0x20" and tp["time_source"] == "GPS"
    port, t = ours["PORT_DATA_SET"][0], theirs["PORT_DATA_SET"]
    assert (port["port_identity"], port["port_state"], str(port["log_sync_interval"]),
            str(port["log_announce_interval"]), str(port["announce_receipt_timeout"]), str(port["version_number"])) \
        == (t["portIdentity"], t["portState"], t["logSyncInterval"], t["logAnnounceInterval"],
            t["announceReceiptTimeout"], t["versionNumber"])
    ts, t = ours["TIME_STATUS_NP"][0], theirs["TIME_STATUS_NP"]
    assert (str(ts["gm_present"]).lower(), ts["gm_identity"]) == (t["gmPresent"], t["gmIdentity"])
    assert abs(ts["master_offset_ns"] - int(t["master_offset"])) < 50_000
    props, t = ours["PORT_PROPERTIES_NP"][0], theirs["PORT_PROPERTIES_NP"]
    assert (props["port_identity"], props["port_state"], props["timestamping"].upper(), props["interface"]) == (
        t["portIdentity"], t["portState"], t["timestamping"], t["interface"])
    stats, t = ours["PORT_STATS_NP"][0], theirs["PORT_STATS_NP"]
    assert 0 < int(t["rx_Sync"]) - stats["rx"]["sync"] < 80  # pmc asked after us: a few syncs later
    assert stats["rx"]["announce"] > 0 and stats["tx"]["delay_req"] > 0
    # this linuxptp (3.1) has no PORT_SERVICE_STATS_NP: it says so, and the client reports it as absent
    assert svc[0].error in ("NO_SUCH_ID", "NOT_SUPPORTED") and svc[0].dataset == "PORT_SERVICE_STATS_NP"


def test_a_healthy_slave_passes_every_check_but_software_timestamping(clock):
    code, r = check(clock)
    assert code == 1 and r["verdict"] == "degraded" and r["failed"] == [] and r["degraded"] == ["timestamping"]
    checks = {c["name"]: c for c in r["checks"]}
    assert "software" in checks["timestamping"]["evidence"] and checks["timestamping"]["fix"]
    assert checks["grandmaster"]["status"] == "ok" and "clockClass 6" in checks["grandmaster"]["evidence"]
    assert checks["traceable to UTC"]["status"] == "ok" and checks["port state"]["status"] == "ok"
    assert abs(checks["offset from master"]["value"]) < 100_000
    human = tw("ptp", "status", "--lab", "--prefix", clock.prefix)
    assert human.returncode == 0 and "degraded" in human.stdout and "timestamping" in human.stdout
    hft = check(clock, "--profile", "hft")[1]  # the same clock judged for HFT: software stamps are µs off
    assert hft["profile"] == "hft" and "timestamping" in hft["degraded"]
    lines = tw("ptp", "watch", "--lab", "--prefix", clock.prefix, "--count", "2", "--interval", "0.2",
               "--json").stdout.splitlines()
    assert len(lines) == 2 and all(json.loads(x)["verdict"] == "degraded" for x in lines)
    assert json.loads(lines[0])["events"][0]["event"] == "port_state"  # the first look: where the port is
    got = tw_json("ptp", "get", "--lab", "--prefix", clock.prefix, "PARENT_DATA_SET")
    assert got["answers"][0]["gm_clock_class"] == 6
    assert tw("ptp", "get", "--lab", "--prefix", clock.prefix, "NOPE").returncode == 2


def _monitor(lab, port: int | None = None, interval: float = 0.25) -> subprocess.Popen:
    argv = [TICKWIRE, "ptp", "monitor", "--lab", "--prefix", lab.prefix, "--name", lab.prefix, "--interval",
            str(interval), "--json"] + (["--listen", f"127.0.0.1:{port}"] if port else [])
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _events(proc: subprocess.Popen) -> list[dict]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return [json.loads(x) for x in out.splitlines() if x.startswith("{")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_killing_the_master_fails_the_check_within_the_announce_timeout(clock):
    lab = clock
    port = _free_port()
    mon = _monitor(lab, port)
    try:
        deadline = time.monotonic() + 10
        while True:  # the monitor serves its metrics once it has looked
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
                if "tickwire_ptp_offset_ns{" in text:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "no metrics served"
            time.sleep(0.2)
        assert re.search(r'tickwire_ptp_clock_class\{iface="order",process="ptp4l"\} 6\.0', text)
        assert re.search(r'tickwire_ptp_process_status\{iface="order",process="ptp4l"\} 1\.0', text)
        assert re.search(r'tickwire_ptp_health\{iface="order",process="ptp4l"\} 1\.0', text)  # degraded
        assert "tickwire_ptp_max_offset_ns" in text and "tickwire_ptp_delay_ns" in text
        killed, killed_at = time.monotonic(), time.time()  # the monitor's events carry wall-clock times
        lab_ptp.stop(lab, "gm")
        timeout = 3 * 2 ** lab_ptp.LAB_ANNOUNCE_INTERVAL  # announceReceiptTimeout x the announce interval
        while True:
            code, r = check(lab)
            if code == 2:
                break
            assert time.monotonic() - killed < timeout + 2, f"still {r['verdict']} {timeout + 2:g} s after"
            time.sleep(0.2)
        took = time.monotonic() - killed
        assert took <= timeout + 1, f"failed only {took:.1f} s after the master died"
        print(f"master killed: ptp check failed after {took:.2f} s (announce timeout {timeout:g} s)")
        why = {c["name"]: c for c in r["checks"] if c["status"] == "fail"}
        assert "last sync" in why or "port state" in why, why  # the syncs stop first; then the port gives up
        if "last sync" in why:
            assert "master" in why["last sync"]["fix"]
        deadline = time.monotonic() + timeout + 2
        while "port state" not in check(lab)[1]["failed"]:
            assert time.monotonic() < deadline, "the port never gave the master up"
            time.sleep(0.2)
        r = check(lab)[1]
        port_check = next(c for c in r["checks"] if c["name"] == "port state")
        assert "LISTENING" in port_check["evidence"] and "no master is heard" in port_check["fix"]
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        assert re.search(r'tickwire_ptp_health\{iface="order",process="ptp4l"\} 2\.0', text)
    finally:
        events = _events(mon)
    failed = [e for e in events if e["event"] == "clock_failed"]
    assert failed and failed[0]["t"] - killed_at < timeout + 1
    assert any(e["event"] == "port_state" and e["to"] == "LISTENING" for e in events)


def _offsets(lab, n: int = 12) -> list[float]:
    out = []
    with PtpClient(lab_ptp.socket_path(lab.prefix, "app")) as c:
        for _ in range(n):
            out.append(c.get_one("CURRENT_DATA_SET")["offset_from_master_ns"])
            time.sleep(0.25)
    return out


def test_asymmetry_shifts_the_offset_a_better_grandmaster_is_followed_and_the_report_has_both(clock, tmp_path):
    lab = clock
    mon = _monitor(lab)
    try:
        before = statistics.median(_offsets(lab))
        with PtpClient(lab_ptp.socket_path(lab.prefix, "app")) as c:
            delay = c.get_one("CURRENT_DATA_SET")["mean_path_delay_ns"]
            # 2 ms more on the way from the exchange to app only: the slave sees syncs late, its delay
            # measurement takes half of it, so its offset moves by +1 ms
            res = tw("lab", "impair", "--prefix", lab.prefix, "order-app", "--delay", "2", "--direction", "down")
            assert res.returncode == 0, res.stderr
            deadline = time.monotonic() + 15
            while c.get_one("CURRENT_DATA_SET")["mean_path_delay_ns"] < delay + 900_000:  # the delay filter follows
                assert time.monotonic() < deadline, "the path delay never took the added delay in"
                time.sleep(0.25)
        time.sleep(1.5)  # the rest of the filter's window
        after = statistics.median(_offsets(lab))
        shift = after - before
        assert 750_000 < shift < 1_250_000, f"offset {before:.0f} -> {after:.0f} ns"
        print(f"2 ms more one way: the offset went {before:,.0f} -> {after:,.0f} ns (shift {shift:,.0f} ns)")
        code, r = check(lab)
        assert code == 2 and "offset from master" in r["failed"]
        tw("lab", "clear", "--prefix", lab.prefix, "order-app")
        deadline = time.monotonic() + 15
        while check(lab)[0] == 2:
            assert time.monotonic() < deadline, "the offset did not come back after the delay was cleared"
            time.sleep(0.5)
        lab_ptp.start(lab, "gm2")  # priority1 50 beats the exchange's 100
        gm2 = PtpClient(lab_ptp.socket_path(lab.prefix, "gm2"))
        try:
            gm2_id = gm2.get_one("DEFAULT_DATA_SET")["clock_identity"]
        finally:
            gm2.close()
        deadline = time.monotonic() + 10
        while True:
            code, r = check(lab)
            if "grandmaster changes" in r["degraded"] + r["failed"]:
                break
            assert time.monotonic() < deadline, f"no grandmaster change alarm: {r['degraded']}"
            time.sleep(0.3)
        gm_check = next(c for c in r["checks"] if c["name"] == "grandmaster changes")
        assert gm2_id in gm_check["evidence"] and gm_check["status"] == "warn"  # one change: a warning
        assert next(c for c in r["checks"] if c["name"] == "grandmaster")["value"] == gm2_id
    finally:
        events = _events(mon)
    assert [e["to"] for e in events if e["event"] == "gm_change"] == [gm2_id]
    kinds = [e["event"] for e in events]
    assert "clock_failed" in kinds and "clock_recovered" in kinds  # the delay's alarm, and its end
    rep = tw_json("ptp", "report", "--lab", "--prefix", lab.prefix, "--name", lab.prefix, "--since", "10m",
                  "--html", str(tmp_path / "evidence.html"))
    assert rep["samples"] > 20 and rep["out_of_tolerance_s"] > 0 and rep["within_tolerance"] is False
    assert rep["offset_ns"]["max"] > 750_000 and rep["timestamping"] == ["software"]
    assert [c["to"] for c in rep["grandmaster_changes"]] == [gm2_id]
    page = (tmp_path / "evidence.html").read_text()
    assert "<svg" in page and gm2_id in page


def test_the_appliance_stops_trading_when_its_clock_fails(clock, tmp_path, monkeypatch):
    """tickwire run watches its clock: with ptp4l healthy (bar the software timestamps) it
    trades and says so in its status; with the grandmaster gone the risk manager trips the
    whole worker once the failure has lasted ptp.fail_after, and the journal keeps why."""
    lab = clock
    raw = yaml.safe_load((pathlib.Path(__file__).parents[2] / "examples" / "market_maker.yaml").read_text())
    raw["host"]["netns"] = lab.ns("app")
    raw["journal"]["dir"] = str(tmp_path / "journal")
    raw["strategies"] = raw["strategies"][:1]
    raw["risk"]["strategies"] = {"mm-taaa": raw["risk"]["strategies"]["mm-taaa"]}
    raw["strategies"][0]["params"].update(half_spread=0, refresh="2ms")
    raw["ptp"]["uds_address"] = str(lab_ptp.socket_path(lab.prefix, "app"))
    raw["ptp"]["fail_after"] = "1s"
    path = tmp_path / "appliance.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "TW_OUCH_PASSWORD": "lab-secret"}
    proc = subprocess.Popen([TICKWIRE, "run", str(path), "--name", lab.prefix, "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def status() -> dict:
        return tw_json("status", "--name", lab.prefix)

    def until(cond, what: str, timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        while not (got := cond()):
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, what
            time.sleep(0.2)
        return got

    ex = None
    try:
        until(lambda: tw("status", "--name", lab.prefix).returncode == 0, "tickwire run did not start")
        ex = ExchangeProcess(lab, tmp_path, duration=30, rate=2000)
        until(lambda: status()["counts"]["orders_sent"] > 0, "no orders under a healthy clock")
        assert until(lambda: status()["health"]["clock"] != "not watched yet" and status()["health"]["clock"],
                     "no clock health") == "degraded: timestamping"
        lab_ptp.stop(lab, "gm")
        lost = time.monotonic()
        tripped = until(lambda: status()["health"]["risk_manager"] if isinstance(
            status()["health"]["risk_manager"], dict) else None, "the clock's failure did not stop trading")
        assert time.monotonic() - lost < 1 + 3 + 3  # sync age (1 s) + fail_after (1 s) + looks and margin
        assert tripped["level"] == "global" and tripped["breach"].startswith("clock failed")
        st = status()
        assert st["health"]["kill_switch"]["global"] and st["health"]["clock"].startswith("failed")
        sent = st["counts"]["orders_sent"]
        time.sleep(1.0)
        assert status()["counts"]["orders_sent"] == sent  # nothing new while the clock is failed
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        if ex is not None:
            ex.stop()
    assert proc.returncode == 0, err[-2000:]
    rep = json.loads(out)
    assert rep["clock"]["verdict"] == "failed"
    records = list(journal.read(tmp_path / "journal"))
    ptp_recs = [r.data for r in records if r.kind == "ptp"]
    assert any(r.get("event") == "clock_failed" for r in ptp_recs) and sum("verdict" in r for r in ptp_recs) > 3
    (risk,) = [r.data for r in records if r.kind == "risk" and "breach" in r.data]
    assert risk["breach"].startswith("clock failed") and risk["level"] == "global"
    counts = journal.export_parquet(tmp_path / "journal", tmp_path / "pq")  # the clock's records query like the rest
    (n,) = journal.query(tmp_path / "pq", "select count(*) from ptp where verdict is not null")["rows"][0]
    assert counts["ptp"] == len(ptp_recs) and n == sum("verdict" in r for r in ptp_recs)
