"""Operator commands only for those allowed, acted on and recorded by the worker itself (issue 16,
section 3): a kill reaches the worker while its control loop is stopped and the worker's own event
says who sent it as the kernel saw it (not SUDO_USER); two commands at once are both carried out
and both answered; a planted operator.jsonl symlink is never written through nor read; reload
reaches the worker without any pid file. One lab, one trading worker, one exchange for the module;
what is at the venue is read from the exchange's own records (status.json)."""

from __future__ import annotations

import ctypes
import json
import os
import pathlib
import subprocess
import threading
import time
from typing import Any

import pytest
import yaml

from appliance import journal
from appliance.lab import net, topology
from dpdk.worker import STATE_DIR, remove_state
from labtools import TICKWIRE, ExchangeProcess, netns_list, tw, tw_json, unique_prefix

ALL = ("TAAA", "TAAB", "TAAC")
PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH = 0x4206, 0x4207, 17
WALL = 0x40000000  # __WALL: wait for a thread of another process we trace


class Running:
    """The module's worker (tickwire feed run --config, three market makers) and exchange."""

    def __init__(self, prefix: str, tmp: pathlib.Path):
        root = pathlib.Path(__file__).parents[2]
        raw = yaml.safe_load((root / "examples" / "market_maker.yaml").read_text())
        raw["ptp"]["stop_trading_on_failure"] = False  # no ptp4l in this lab
        raw["host"]["netns"] = f"{prefix}-app"
        raw["journal"]["dir"] = str(tmp / "journal")
        raw.setdefault("watchdog", {})["deadman"] = 60  # a control loop stopped on purpose is not dead here
        for strategy in raw["strategies"]:
            strategy["params"].update(half_spread=0.05, levels=4, refresh="1ms", max_position=2000)
        raw["risk"]["global"].update(max_open_orders=60, order_rate=3000, order_burst=300, message_rate=6000,
                                     message_burst=600, max_position=3000, max_gross=9000)
        for name in ("mm-taaa", "mm-taab", "mm-taac"):
            raw["risk"]["strategies"][name].update(max_position=3000, max_open_orders=16, order_rate=1000,
                                                   order_burst=100)
        self.config = tmp / "appliance.yaml"
        self.config.write_text(yaml.safe_dump(raw))
        self.name, self.journal = prefix, tmp / "journal"
        self.proc = subprocess.Popen([TICKWIRE, "feed", "run", "--name", prefix, "--duration", "400", "--top", "0",
                                      "--json", "--config", str(self.config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, "the worker did not start"
            st = tw("feed", "stats", "--name", prefix, "--json")
            if st.returncode == 0 and json.loads(st.stdout)["running"] and \
                    json.loads(st.stdout)["pid"] == self.proc.pid:
                break
            time.sleep(0.2)
        self.exchange = ExchangeProcess(topology.plan(prefix), tmp, duration=360, rate=2000)
        self.status = tmp / "record" / "status.json"

    def resting(self) -> dict[str, int]:
        """Open orders per symbol, as the exchange holds them."""
        got = json.loads(self.status.read_text())["order_entry"]["accounts"]["TWAPP1"]["open_by_symbol"]
        return {sym: got.get(sym, 0) for sym in ALL}

    def until(self, cond, what: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"{what}: resting {self.resting() if self.status.exists() else None}"
            time.sleep(0.1)

    def ladders(self, symbols=ALL) -> bool:
        r = self.resting()
        return all(r[sym] >= 6 for sym in symbols)

    def events(self, **match: Any) -> list[dict[str, Any]]:
        """The worker's events the control loop has drained so far that have these fields."""
        path = pathlib.Path(json.loads((STATE_DIR / f"{self.name}.json").read_text())["events"])
        out = []
        for line in path.read_text().splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if all(ev.get(k) == v for k, v in match.items()):
                out.append(ev)
        return out

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([TICKWIRE, *args, "--name", self.name, "--json"], capture_output=True, text=True,
                              timeout=60, env=dict(os.environ, COLUMNS="200", **(env or {})))

    def stop(self) -> None:
        for proc in (self.proc, self.exchange.proc):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    prefix = unique_prefix()
    tmp = tmp_path_factory.mktemp("operator")
    saved = os.environ.get("TW_OUCH_PASSWORD")
    os.environ["TW_OUCH_PASSWORD"] = "lab-secret"
    run = None
    try:
        net.up(topology.plan(prefix))
        run = Running(prefix, tmp)
        run.until(lambda: run.status.exists() and run.ladders(), "the ladders did not stand", timeout=30)
        yield run
    finally:
        if run is not None:
            run.stop()
        net.down(prefix)
        remove_state(prefix)
        if saved is None:
            os.environ.pop("TW_OUCH_PASSWORD", None)
        else:
            os.environ["TW_OUCH_PASSWORD"] = saved
        assert not sorted(n for n in netns_list() if n.startswith(f"{prefix}-"))


class Stopped:
    """One thread of another process held still (PTRACE_SEIZE + PTRACE_INTERRUPT) until the block
    ends: the rest of the process runs on."""

    def __init__(self, tid: int):
        self.tid = tid
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]

    def _ptrace(self, req: int) -> None:
        if self.libc.ptrace(req, self.tid, None, None) < 0:
            raise OSError(ctypes.get_errno(), f"ptrace {req:#x} on thread {self.tid}")

    def __enter__(self) -> Stopped:
        self._ptrace(PTRACE_SEIZE)
        self._ptrace(PTRACE_INTERRUPT)
        os.waitpid(self.tid, WALL)
        state = pathlib.Path(f"/proc/{self.tid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert state == "t", f"thread {self.tid} is in state {state}, not stopped"
        return self

    def __exit__(self, *exc: Any) -> None:
        self._ptrace(PTRACE_DETACH)


def lcore_thread(pid: int) -> int:
    """The worker lcore's thread (DPDK 22.11 names it rte-worker-N)."""
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        if (task / "comm").read_text().startswith(("rte-worker-", "lcore-worker-")):
            return int(task.name)
    names = {t.name: (t / "comm").read_text().strip() for t in pathlib.Path(f"/proc/{pid}/task").iterdir()}
    raise AssertionError(f"no lcore thread in {names}")


def test_a_kill_while_the_control_loop_is_stopped_is_carried_out_and_recorded_with_the_kernels_uid(running):
    """The control loop (the process's main thread) is held still; tickwire kill --strategy, run with
    SUDO_USER=mallory, is carried out by the lcore at once (the exchange sees the strategy's ladder
    cancelled, the others stand); the worker's own event says uid 0 (root), and mallory only as a
    claim, with the reason the operator gave."""
    run = running
    run.until(run.ladders, "the ladders did not stand")
    with Stopped(run.proc.pid):
        r = run.cli("kill", "--strategy", "mm-taaa", "--reason", "test while the loop is stopped",
                    env={"SUDO_USER": "mallory"})
        assert r.returncode == 0, r.stderr
        k = json.loads(r.stdout)
        assert k["who"] == "root", k  # the kernel's user, not SUDO_USER's claim
        assert (k["uid"], k["claimed"]) == (0, "mallory")
        run.until(lambda: run.resting()["TAAA"] == 0, "mm-taaa's orders still open with the loop stopped",
                  timeout=5)
        assert run.ladders(("TAAB", "TAAC"))
    run.until(lambda: run.events(event="command", request_id=k["request_id"]), "the kill's event was not drained")
    (ev,) = run.events(event="command", request_id=k["request_id"])
    assert {key: ev[key] for key in ("action", "level", "target", "strategy", "result", "uid", "gid", "who",
                                     "claimed", "by", "reason")} == {
        "action": "kill", "level": "strategy", "target": "mm-taaa", "strategy": "mm-taaa", "result": "done",
        "uid": 0, "gid": 0, "who": "root", "claimed": "mallory", "by": "operator",
        "reason": "test while the loop is stopped"}
    assert ev["pid"] > 0 and ev["pid"] != run.proc.pid  # the CLI's process, as the kernel said
    r = run.cli("resume", "--strategy", "mm-taaa", "--reason", "test done")
    assert r.returncode == 0, r.stderr
    run.until(run.ladders, "the ladders did not come back")


def test_two_commands_sent_at_once_from_two_processes_are_both_carried_out_and_answered(running):
    """With the lcore held still, two operators kill two different targets at the same moment; once
    it runs again, both are carried out (nothing overwrote the other), each is answered with its
    own request, and the exchange sees exactly those two ladders cancelled."""
    run = running
    run.until(run.ladders, "the ladders did not stand")
    env = dict(os.environ, COLUMNS="200")
    with Stopped(lcore_thread(run.proc.pid)):
        procs = [subprocess.Popen([TICKWIRE, "kill", "--name", run.name, *level, "--reason", f"test at once {i}",
                                   "--timeout", "30", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env)
                 for i, level in enumerate((["--instrument", "TAAB"], ["--strategy", "mm-taac"]))]
        time.sleep(4)  # both have sent (or, before the fix, both wrote the one slot)
    answers = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        answers.append(json.loads(out))
    assert [a["level"] for a in answers] == ["instrument", "strategy"]
    assert answers[0]["request_id"] != answers[1]["request_id"] and answers[0]["number"] != answers[1]["number"]
    run.until(lambda: run.resting()["TAAB"] == 0 and run.resting()["TAAC"] == 0,
              "both kills were not carried out", timeout=5)
    time.sleep(0.5)
    assert run.ladders(("TAAA",))
    st = tw_json("status", "--name", run.name)
    killed = {s["name"]: (s["killed"], s["instrument_killed"]) for s in st["strategies"]}
    assert killed == {"mm-taaa": (False, False), "mm-taab": (False, True), "mm-taac": (True, False)}
    for level in (["--instrument", "TAAB"], ["--strategy", "mm-taac"]):
        r = run.cli("resume", *level, "--reason", "test done")
        assert r.returncode == 0, r.stderr
    run.until(run.ladders, "the ladders did not come back")


def test_a_planted_operator_jsonl_symlink_is_never_written_through_nor_journaled(running, tmp_path):
    """Whoever can write the worker's state folder plants NAME.operator.jsonl as a symlink to a file
    holding a forged operator line: a kill and a resume write nothing through it, and the journal
    takes no operator record from it (the operator records are the worker's own events)."""
    run = running
    victim = tmp_path / "victim.jsonl"
    forged = json.dumps({"action": "kill", "level": "global", "target": None, "who": "forged",
                         "reason": "planted"}) + "\n"
    victim.write_text(forged)
    link = STATE_DIR / f"{run.name}.operator.jsonl"
    link.unlink(missing_ok=True)
    link.symlink_to(victim)
    try:
        for verb in ("kill", "resume"):
            r = run.cli(verb, "--instrument", "TAAD", "--reason", f"test {verb} past a symlink")
            assert r.returncode == 0, r.stderr
        time.sleep(1.0)  # the control loop's rounds (50 ms) that would read a planted file
        assert victim.read_text() == forged, "written through the planted symlink"
    finally:
        link.unlink(missing_ok=True)
    k = json.loads(r.stdout)
    run.until(lambda: run.events(event="command", request_id=k["request_id"]), "the resume was not drained")
    ops = [r.data for r in journal.read(run.journal) if r.kind == "operator"]
    assert not [o for o in ops if o.get("who") == "forged"]
    mine = [o for o in ops if (o.get("reason") or "").endswith("past a symlink")]
    assert [(o["action"], o["level"], o["locate"], o["who"]) for o in mine] == [
        ("kill", "instrument", 4, "root"), ("resume", "instrument", 4, "root")]


def test_reload_reaches_the_worker_without_any_pid_file(running):
    """The status file's pid is rewritten, again and again, to a decoy's (a process SIGHUP would end):
    tickwire reload still reaches the worker (its verdict comes back), the decoy is never signalled,
    and the worker records who asked."""
    run = running
    decoy = subprocess.Popen(["sleep", "300"])
    path = STATE_DIR / f"{run.name}.json"
    done = threading.Event()

    def plant() -> None:
        tmp = path.with_suffix(".planted")
        while not done.is_set():
            try:
                info = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if info.get("pid") != decoy.pid:
                info["pid"] = decoy.pid
                tmp.write_text(json.dumps(info))
                tmp.replace(path)
            time.sleep(0.005)

    planter = threading.Thread(target=plant, daemon=True)
    planter.start()
    try:
        time.sleep(0.3)
        r = run.cli("reload", "--timeout", "10")
    finally:
        done.set()
        planter.join()
        alive = decoy.poll() is None
        decoy.kill()
        decoy.wait()
    assert alive, "the decoy was signalled"
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["ok"] and got["changed"] == {} and got["who"] == "root"
    run.until(lambda: run.events(event="command", request_id=got["request_id"]), "the reload was not drained")
    (ev,) = run.events(event="command", request_id=got["request_id"])
    assert (ev["action"], ev["result"], ev["uid"], ev["who"]) == ("reload", "done", 0, "root")
