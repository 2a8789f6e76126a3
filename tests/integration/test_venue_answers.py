"""The venue's side of fail-safe (issue 16), in the lab, read from the exchange's own records (its
orders.jsonl and status), never from the appliance's word (root):

- cancel-on-disconnect, per login: the appliance killed with SIGKILL (its session just drops) leaves
  nothing open at the exchange shortly after when its login has it, and its orders working when not;
- an impossible answer (the exchange's test-only overfill fault): the appliance throws its kill switch
  (kill_reason bad_answer), its open orders are cancelled at the exchange while its session is still
  up, and the journal keeps the bytes of the answer."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import time
from typing import Any

import pytest
import yaml

from appliance import journal
from appliance.protocols import ouch
from appliance.protocols import soupbintcp as soup
from dpdk import native
from dpdk.worker import STATE_DIR, SharedStats, remove_state
from labtools import TICKWIRE, ExchangeProcess

pytestmark = pytest.mark.root
ROOT = pathlib.Path(__file__).parents[2]
ACCOUNT = "TWAPP1"


def appliance_yaml(lab, tmp_path: pathlib.Path, cod: bool, half_spread: float, levels: int) -> pathlib.Path:
    raw = yaml.safe_load((ROOT / "examples" / "market_maker.yaml").read_text())
    raw["ptp"]["stop_trading_on_failure"] = False  # no ptp4l in this lab
    raw["host"]["netns"] = lab.ns("app")
    raw["journal"].update(dir=str(tmp_path / "journal"), market_data=False)
    raw["venue"]["cancel_on_disconnect"] = cod  # what the exchange's login says
    raw["watchdog"] = {"deadman": "3s"}  # not this test's subject: a loaded 2-core box may stall a start longer
    for strategy in raw["strategies"]:
        strategy["params"].update(half_spread=half_spread, levels=levels, refresh="2ms")
    path = tmp_path / "appliance.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def exchange(lab, tmp_path: pathlib.Path, cod: bool, **order_entry: Any) -> ExchangeProcess:
    return ExchangeProcess(lab, tmp_path, duration=90, rate=1000, order_entry={
        "accounts": [{"username": ACCOUNT, "password": "lab-secret", "cancel_on_disconnect": cod}], **order_entry})


def start_run(lab, path: pathlib.Path) -> subprocess.Popen:
    return subprocess.Popen([TICKWIRE, "run", str(path), "--name", lab.prefix, "--json"],
                            env={**os.environ, "TW_OUCH_PASSWORD": "lab-secret"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def log(record: pathlib.Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (record / "orders.jsonl").read_text().splitlines() if x.endswith("}")]


def told(record: pathlib.Path) -> list[dict[str, Any]]:
    """What the exchange told our login, in order."""
    return [m for m in log(record) if m.get("dir") == "out" and m.get("account") == ACCOUNT]


def resting(messages: list[dict[str, Any]]) -> dict[int, int]:
    """Our orders resting at the exchange (UserRefNum -> shares), by its messages."""
    left: dict[int, int] = {}
    for m in messages:
        name, ref = m["name"], m.get("user_ref_num")
        if name == "order_accepted" and m.get("order_state") != "D":
            left[ref] = m["quantity"]
        elif name in ("order_canceled", "order_executed") and ref in left:
            left[ref] -= m["quantity"]
            if left[ref] <= 0:
                del left[ref]
    return left


def exchange_open(record: pathlib.Path) -> int:
    return json.loads((record / "status.json").read_text())["order_entry"]["accounts"][ACCOUNT]["open_orders"]


def until(cond, what: str, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := cond()):
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the run exited {proc.returncode}: {proc.communicate()[1][-3000:]}")
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return got


def finish(proc: subprocess.Popen, lab) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)
    remove_state(lab.prefix)  # a SIGKILLed run leaves its stats file behind


@pytest.mark.parametrize("cod", [True, False], ids=["cancel_on_disconnect", "without"])
def test_a_killed_appliance_leaves_nothing_open_where_its_login_has_cancel_on_disconnect(lab, tmp_path, cod):
    proc = start_run(lab, appliance_yaml(lab, tmp_path, cod, half_spread=0.05, levels=3))
    ex = None
    try:
        ex = exchange(lab, tmp_path, cod)
        until(lambda: (ex.record / "status.json").exists() and exchange_open(ex.record) >= 4,
              "no ladder resting at the exchange", timeout=45, proc=proc)
        os.kill(proc.pid, signal.SIGKILL)  # nothing of it cancels anything: the session just drops
        proc.communicate(timeout=30)
        time.sleep(0.3)
        before = resting([m for m in told(ex.record) if m.get("reason") != "L"])  # what was open at the drop
        assert before
        if cod:
            until(lambda: resting(told(ex.record)) == {}, "orders left open after the session dropped", timeout=3)
            (rec,) = [r["cancel_on_disconnect"] for r in log(ex.record) if "cancel_on_disconnect" in r]
            assert rec["account"] == ACCOUNT and rec["why"] in ("closed", "reset") and rec["reason"] == "L"
            assert {c["user_ref"]: c["qty"] for c in rec["canceled"]} == before
            until(lambda: exchange_open(ex.record) == 0, "the exchange's status still shows orders", timeout=3)
        else:
            time.sleep(2.5)  # the exchange writes its status about every second
            assert resting(told(ex.record)) == before and exchange_open(ex.record) == len(before)
            assert not [r for r in log(ex.record) if "cancel_on_disconnect" in r]
    finally:
        finish(proc, lab)
        if ex is not None and ex.proc.poll() is None:
            ex.stop()


def test_an_impossible_answer_throws_the_kill_switch_cancels_and_journals_its_bytes(lab, tmp_path):
    """The exchange's overfill fault: the first fill of a resting order reports one share more than it had
    open. The appliance throws its kill switch (kill_reason bad_answer) and cancels every open order over
    its session, which stays up (the cancels are its own, reason U, not the disconnect's), sends nothing
    new, and its journal holds the Executed's bytes."""
    _, lib = native()
    proc = start_run(lab, appliance_yaml(lab, tmp_path, True, half_spread=0.0, levels=2))
    ex = None
    try:
        ex = exchange(lab, tmp_path, True, faults=[{"kind": "overfill", "account": ACCOUNT, "at_fill": 1}])
        (fault,) = until(lambda: [r["fault"] for r in log(ex.record) if "fault" in r], "no fill to over-fill",
                         timeout=60, proc=proc)
        until(lambda: resting(told(ex.record)) == {}, "orders left open after the impossible answer", timeout=5,
              proc=proc)
        time.sleep(1.5)
        assert proc.poll() is None, proc.communicate()[1][-3000:]  # still running, killed: the session is up
        msgs = told(ex.record)
        assert resting(msgs) == {} and exchange_open(ex.record) == 0
        at = next(i for i, m in enumerate(msgs) if m["name"] == "order_executed" and
                  m["user_ref_num"] == fault["user_ref"] and m["quantity"] == fault["told"])
        after = msgs[at + 1:]
        cancels = [m for m in after if m["name"] == "order_canceled"]
        assert cancels and {m["reason"] for m in cancels} == {"U"}  # ours, not a disconnect's
        assert not [r for r in log(ex.record) if "cancel_on_disconnect" in r]
        stats = SharedStats(STATE_DIR / f"{lab.prefix}.stats")
        st = stats.ptr
        assert (st.killed, st.kill_reason) == (1, lib.TW_KILL_BAD_ANSWER) and st.bad_answers >= 1
        stats.close()
        sent_before = len([m for m in log(ex.record) if m.get("name") == "enter_order"])
        time.sleep(1.0)
        assert len([m for m in log(ex.record) if m.get("name") == "enter_order"]) == sent_before  # nothing new
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]
    finally:
        finish(proc, lab)
        if ex is not None and ex.proc.poll() is None:
            ex.stop()
    rep = json.loads(out)
    assert rep["stats"]["killed"] == 1
    bad, *later = [r.data for r in journal.read(tmp_path / "journal") if r.kind == "bad_answer"]
    # a fault on a partial fill: the venue may fill the rest of the order it over-filled before our cancel of it
    # reaches it, fills of an order we no longer hold (counted nowhere, as the OMS does not count them either)
    assert all((x["why"], x["user_ref"], x["type"]) == ("unknown_order", fault["user_ref"], "E") for x in later)
    assert (bad["why"], bad["user_ref"], bad["type"], bad["qty"]) == ("overfill", fault["user_ref"], "E",
                                                                     fault["told"])
    assert bad["open"] == fault["open"]
    raw = bytes.fromhex(bad["bytes"])
    assert bad["length"] == len(raw)
    (packet,) = [soup.decode(body) for _, body in soup.Framer().feed(raw)]
    executed = ouch.decode_outbound(packet.message)
    assert (executed.TYPE, executed.user_ref_num, executed.quantity) == ("E", fault["user_ref"], fault["told"])
