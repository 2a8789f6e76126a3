"""The operator's kill switch on a running trading worker, from another process
(``tickwire kill``/``resume``/``feed kill``): at the global, strategy or instrument
level, through the worker's shared statistics. Light to import: an operator's kill
loads only what it needs to reach the worker."""

from __future__ import annotations

import json
import mmap
import time
from typing import Any

from appliance.feed.errors import FeedError
from appliance.feed.figures import stats
from common.operator import operator
from dpdk import native
from dpdk.worker import STATE_DIR

LEVELS = ("global", "strategy", "instrument")


def kill(name: str, release: bool = False, timeout: float = 2.0, level: str = "global", target: str | None = None,
         reason: str = "", who: str | None = None) -> dict[str, Any]:
    """Throw (or release) a running worker's kill switch at one level, through its
    shared statistics, and wait for its loop to act: global (every new order refused),
    strategy (the strategy stops) or instrument (risk refuses its orders); a trip
    cancels the open orders it covers. The request, who made it and why go to the
    worker, which journals them."""
    ffi, lib = native()
    path = STATE_DIR / f"{name}.stats"
    if not path.exists():
        raise FeedError(f"no feed worker named {name} has run on this host ({path} is missing)")
    if level not in LEVELS:
        raise FeedError(f"kill level {level!r}: give one of {', '.join(LEVELS)}")
    info = stats(name, events=0)
    if not info["running"]:
        raise FeedError(f"feed worker {name} is not running (pid {info['pid']})")
    status = info.get("info", {})
    if not status.get("trading", False):
        raise FeedError(f"feed worker {name} does not trade (start it with --trade or --config): there is nothing "
                        "to kill")
    locate = 0
    slot = None
    if level == "strategy":
        mine = {s["name"]: s["slot"] for s in status.get("strategies") or []}
        if target not in mine:
            raise FeedError(f"strategy {target!r}: worker {name} runs " + (", ".join(mine) or "none"))
        slot = mine[target]
    elif level == "instrument":
        known = status.get("instruments") or {}
        if target is not None and target.isdigit():
            locate = int(target)
        elif target in known:
            locate = known[target]
        else:
            raise FeedError(f"instrument {target!r}: " + (f"worker {name} trades {', '.join(known)}" if known else
                            "give its stock locate (a number): this worker was started without an instrument list "
                            "(--config has one)"))
    who = who or operator()
    want = 0 if release else 1
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
        st = ffi.cast("struct tw_worker_stats *", ffi.from_buffer(m))
        asked, asked_real = time.monotonic_ns(), time.time_ns()
        deadline = time.monotonic() + timeout
        if level == "global":
            st.kill = want
            while st.killed != want:
                if time.monotonic() > deadline:
                    raise FeedError(f"feed worker {name} did not act on the kill switch within {timeout:g} s")
                time.sleep(0.0002)
            acted = st.killed_ns
        else:
            cmd = {("strategy", 1): lib.TW_CMD_KILL_STRATEGY, ("strategy", 0): lib.TW_CMD_RELEASE_STRATEGY,
                   ("instrument", 1): lib.TW_CMD_KILL_INSTRUMENT,
                   ("instrument", 0): lib.TW_CMD_RELEASE_INSTRUMENT}[(level, want)]
            seq = st.cmd_seq + 1
            st.cmd, st.cmd_arg = cmd, (slot if level == "strategy" else locate)
            st.cmd_seq = seq  # last: the loop reads the command once it sees the new number
            while st.cmd_done != seq:
                if time.monotonic() > deadline:
                    raise FeedError(f"feed worker {name} did not act on the command within {timeout:g} s")
                time.sleep(0.0002)
            if st.cmd_result:
                raise FeedError(f"instrument locate {locate}: out of the worker's range" if level == "instrument"
                                else f"strategy {target!r} (slot {slot}): not one of the worker's")
            acted = st.cmd_done_ns
        out = {"name": name, "kill": bool(want), "level": level, "target": target, "locate": locate or None,
               "who": who, "reason": reason, "asked_realtime_ns": asked_real,
               "acted_after_us": round(max(0, acted - asked) / 1000, 1),
               "cancels": st.kill_cancels if want else 0,
               "cancels_sent_after_us": round(max(0, st.kill_sent_ns - asked) / 1000, 1) if want else None,
               "orders_sent": st.orders_sent, "cancels_sent": st.cancels_sent}
        del st
    with open(STATE_DIR / f"{name}.operator.jsonl", "a") as f:  # the worker journals it
        f.write(json.dumps({"action": "kill" if want else "resume", **{k: out[k] for k in (
            "level", "target", "locate", "who", "reason", "asked_realtime_ns", "acted_after_us", "cancels")}}) + "\n")
    return out
