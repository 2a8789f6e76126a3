"""The run locked down, in the lab: a real `tickwire run` closes up what it writes (its runtime
folders 0750, narrowed when they were wider; status, statistics, events and kept captures
0640), keeps the venue's password out of /proc/PID/environ and out of its children's
environments, has no core file (RLIMIT_CORE 0) and, once its ports are up, no CAP_BPF nor
CAP_PERFMON (read from /proc/PID/status) while it goes on trading (the exchange's own
record of the orders it took)."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import stat
import subprocess
import sys
import time

import pytest
import yaml

from labtools import ExchangeProcess

pytestmark = pytest.mark.root

ROOT = pathlib.Path(__file__).parents[2]
TICKWIRE = str(pathlib.Path(sys.executable).parent / "tickwire")
PASSWORD = "lab-secret"  # the lab venue's
CAP_PERFMON, CAP_BPF = 38, 39


def _mode(p: pathlib.Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _status(pid: int) -> dict[str, str]:
    out = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def _children_environ(pid: int) -> str:
    """The environments of the processes whose parent is ``pid``, now."""
    out = []
    for stat_file in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat_file.read_text().rpartition(")")[2].split()[1]) == pid:
                out.append((stat_file.parent / "environ").read_bytes().decode(errors="replace"))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return "\n".join(out)


def _spy(folder: pathlib.Path, log: pathlib.Path) -> None:
    """pgrep and journalctl (the children the run may start: its clock's health looks for phc2sys) first on
    the run's PATH: each writes its environment to ``log`` and runs the real one."""
    folder.mkdir()
    for name in ("pgrep", "journalctl"):
        real = subprocess.run(["sh", "-c", f"command -v {name}"], capture_output=True, text=True).stdout.strip()
        script = folder / name
        script.write_text(f"#!/bin/sh\n{{ echo '--- {name}'; cat /proc/$$/environ | tr '\\0' '\\n'; }} >> {log}\n"
                          + (f'exec {real} "$@"\n' if real else "exit 1\n"))
        script.chmod(0o755)


def test_a_run_writes_only_for_its_group_to_read_keeps_no_secret_in_sight_and_drops_bpf_once_up(lab, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "feed").mkdir(parents=True)
    for d in (run_dir, run_dir / "feed"):
        d.chmod(0o755)  # as a run before this one left them
    stale = run_dir / "feed" / "lk.stats"
    stale.write_bytes(b"")
    stale.chmod(0o644)
    raw = yaml.safe_load((ROOT / "examples" / "market_maker.yaml").read_text())
    raw["ptp"]["stop_trading_on_failure"] = False  # no ptp4l in this lab
    raw["host"]["netns"] = lab.ns("app")
    raw["journal"]["dir"] = str(tmp_path / "journal")  # journal.market_data is on: a capture per line kept
    raw["strategies"] = raw["strategies"][:1]
    raw["strategies"][0]["params"].update(half_spread=0, refresh="2ms")
    raw["risk"]["strategies"] = {"mm-taaa": raw["risk"]["strategies"]["mm-taaa"]}
    config = tmp_path / "appliance.yaml"
    config.write_text(yaml.safe_dump(raw))
    spied = tmp_path / "children.env"
    _spy(tmp_path / "bin", spied)
    env = {**os.environ, "TICKWIRE_RUN_DIR": str(run_dir), "TW_OUCH_PASSWORD": PASSWORD,
           "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    proc = subprocess.Popen([TICKWIRE, "run", str(config), "--name", "lk", "--duration", "60", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ex = None
    try:
        status = run_dir / "feed" / "lk.json"
        deadline = time.monotonic() + 40
        while not (status.exists() and json.loads(status.read_text() or "{}").get("pid") == proc.pid):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.2)
        ex = ExchangeProcess(lab, tmp_path, duration=8, rate=2000)
        # the ports are up, the worker trading: CAP_BPF and CAP_PERFMON are gone, for good
        deadline = time.monotonic() + 20
        while True:
            st = _status(proc.pid)
            eff, prm = int(st["CapEff"], 16), int(st["CapPrm"], 16)
            if not (eff >> CAP_BPF & 1 or eff >> CAP_PERFMON & 1):
                break
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"CapEff {st['CapEff']} still holds CAP_BPF/CAP_PERFMON"
            time.sleep(0.2)
        assert not (prm >> CAP_BPF & 1 or prm >> CAP_PERFMON & 1), st["CapPrm"]  # not to be taken back
        assert eff >> 12 & 1 and eff >> 13 & 1  # NET_ADMIN and NET_RAW kept: the ports are closed at the end
        limits = pathlib.Path(f"/proc/{proc.pid}/limits").read_text()
        assert [ln.split()[-3:-1] for ln in limits.splitlines() if ln.startswith("Max core file size")] == \
            [["0", "0"]], limits
        assert PASSWORD.encode() not in pathlib.Path(f"/proc/{proc.pid}/environ").read_bytes()
        children = _children_environ(proc.pid)
        assert b"TICKWIRE_RUN_DIR=" in pathlib.Path(f"/proc/{proc.pid}/environ").read_bytes()  # the rest is there
        # what it writes: the service's to write, its group's to read, nobody else's
        assert _mode(run_dir) == 0o750 and _mode(run_dir / "feed") == 0o750
        for name in ("lk.json", "lk.stats", "lk.events.jsonl"):
            assert _mode(run_dir / "feed" / name) == 0o640, name
        ex.finish()
        proc.send_signal(signal.SIGTERM)  # the run cancels what is open and exits
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)
        if ex is not None and ex.proc.poll() is None:
            ex.stop()
    assert proc.returncode == 0, err[-3000:]
    assert f"{run_dir} was 0755: narrowed to 0750" in err and f"{run_dir / 'feed'} was 0755: narrowed" in err
    rep = json.loads(out)
    # it went on trading once the capabilities were gone: the exchange's own record
    taken = [json.loads(x) for x in (tmp_path / "record" / "orders.jsonl").read_text().splitlines()]
    assert rep["stats"]["orders_sent"] > 0 and any(m.get("name") == "enter_order" for m in taken)
    kept = sorted((tmp_path / "journal" / "market-data").glob("*.pcap"))
    assert kept and {_mode(p) for p in kept} == {0o640} and _mode(tmp_path / "journal" / "market-data") == 0o750
    # its children: in this lab it starts none (the clock's health runs pgrep and journalctl only with a PHC);
    # whatever did run is checked, and tests/unit/test_config.py pins that a child started after the password
    # was read does not get it
    seen = spied.read_text() if spied.exists() else ""
    assert PASSWORD not in seen and "TW_OUCH_PASSWORD" not in seen and PASSWORD not in children
