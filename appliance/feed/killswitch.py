"""The operator's kill switch on a running trading worker, from another process
(``tickwire kill``/``resume``/``feed kill``) or from the control loop's risk manager: at the
global, strategy or instrument level, as one datagram on the worker's command socket
(dpdk/src/control.c). The worker carries each command out in the order they come, raises a
``command`` event with the sender's uid and pid as the kernel gave them (never the
environment's), and answers on a socketpair end passed with the request: no shared slot to
overwrite, no pid, nothing left to a control loop that may be dead. Light to import: an
operator's kill loads only what it needs to reach the worker."""

from __future__ import annotations

import array
import os
import pathlib
import secrets
import socket
import time
from typing import Any

from appliance.feed.errors import FeedError
from appliance.feed.figures import stats
from common.operator import claim, operator, user_name
from dpdk import native
from dpdk.worker import STATE_DIR

LEVELS = ("global", "strategy", "instrument")
RISK_MANAGER = "risk manager"  # the control loop's own trips (the worker honours it only from its own process)


def control_path(name: str) -> pathlib.Path:
    return STATE_DIR / f"{name}.control.sock"


def _fit(text: str | None, size: int) -> bytes:
    """Text for a char[size] field: UTF-8, cut on a character boundary, room left for the NUL."""
    raw = (text or "").encode()
    if len(raw) < size:
        return raw
    return raw[:size - 1].decode(errors="ignore").encode()


def command(name: str, cmd: int, arg: int = 0, *, target: str | None = None, reason: str = "",
            risk_manager: bool = False, timeout: float = 2.0) -> Any:
    """Send one command to worker ``name`` and wait (up to ``timeout``) for its answer, a
    ``struct tw_command_answer``: carried out (or refused) by the worker itself."""
    ffi, lib = native()
    path = control_path(name)
    m = ffi.new("struct tw_command *")
    m.magic, m.cmd, m.arg = lib.TW_COMMAND_MAGIC, cmd, arg
    m.by = lib.TW_BY_RISK_MANAGER if risk_manager else lib.TW_BY_OPERATOR
    m.request_id = request_id = secrets.randbits(63) | 1
    m.target, m.claim, m.reason = _fit(target, 24), _fit(claim(), 32), _fit(reason, 192)
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    size = ffi.sizeof("struct tw_command_answer")
    with mine, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)  # a worker that does not read its socket fills it: never wait forever
        try:
            s.sendmsg([bytes(ffi.buffer(m))], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                array.array("i", [theirs.fileno()]))], 0, str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise FeedError(f"feed worker {name} has no command socket ({path}): is it running, with trading?") \
                from exc
        except PermissionError as exc:
            raise FeedError(f"{path}: permission denied: only root and the worker's own user may command it "
                            "(run with sudo)") from exc
        except (TimeoutError, BlockingIOError) as exc:
            raise FeedError(f"feed worker {name} is not reading its commands: its socket stayed full for "
                            f"{timeout:g} s") from exc
        finally:
            theirs.close()
        mine.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                raw = mine.recv(size)
            except TimeoutError as exc:
                raise FeedError(f"feed worker {name} did not act on the command within {timeout:g} s") from exc
            a = ffi.new("struct tw_command_answer *")
            ffi.memmove(a, raw, min(len(raw), size))
            if len(raw) == size and a.magic == lib.TW_COMMAND_MAGIC and a.request_id == request_id:
                return a
            mine.settimeout(max(0.001, deadline - time.monotonic()))


def kill(name: str, release: bool = False, timeout: float = 2.0, level: str = "global", target: str | None = None,
         reason: str = "", who: str | None = None) -> dict[str, Any]:
    """Throw (or release) a running worker's kill switch at one level and wait for it to act:
    global (every new order refused), strategy (the strategy stops) or instrument (risk
    refuses its orders); a trip cancels the open orders it covers. The worker records the
    command, who sent it (the kernel's uid) and why, in its own event. ``who``: only
    ``"risk manager"`` means anything (the control loop's trips; the worker believes it only
    from its own process); an operator is whom the kernel says runs this process."""
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
    want = 0 if release else 1
    cmd = {("global", 1): lib.TW_CMD_KILL, ("global", 0): lib.TW_CMD_RELEASE,
           ("strategy", 1): lib.TW_CMD_KILL_STRATEGY, ("strategy", 0): lib.TW_CMD_RELEASE_STRATEGY,
           ("instrument", 1): lib.TW_CMD_KILL_INSTRUMENT,
           ("instrument", 0): lib.TW_CMD_RELEASE_INSTRUMENT}[(level, want)]
    asked, asked_real = time.monotonic_ns(), time.time_ns()
    a = command(name, cmd, slot if level == "strategy" else locate, target=target, reason=reason,
                risk_manager=who == RISK_MANAGER, timeout=timeout)
    if a.result == lib.TW_CMDR_NO_TARGET:
        raise FeedError(f"instrument locate {locate}: out of the worker's range" if level == "instrument"
                        else f"strategy {target!r} (slot {slot}): not one of the worker's")
    if a.result == lib.TW_CMDR_REFUSED:
        raise FeedError(f"feed worker {name} refused the command of {user_name(a.uid)} (uid {a.uid}): only root "
                        "and the worker's own user may command it")
    if a.result != lib.TW_CMDR_DONE:
        raise FeedError(f"feed worker {name} could not read the command (result {a.result}): was it built from "
                        "other sources than this tickwire?")
    after = stats(name, events=0)
    return {"name": name, "kill": bool(want), "level": level, "target": target, "locate": locate or None,
            "who": RISK_MANAGER if who == RISK_MANAGER and a.pid == os.getpid() else user_name(a.uid),
            "uid": a.uid, "pid": a.pid, "claimed": claim(), "reason": reason, "request_id": a.request_id,
            "number": a.number, "asked_realtime_ns": asked_real,
            "acted_after_us": round(max(0, a.done_ns - asked) / 1000, 1),
            "cancels": a.cancels if want else 0,
            "cancels_sent_after_us": round(max(0, a.cancels_sent_ns - asked) / 1000, 1) if want else None,
            "orders_sent": after.get("orders_sent", 0), "cancels_sent": after.get("cancels_sent", 0)}


__all__ = ["LEVELS", "RISK_MANAGER", "command", "control_path", "kill", "operator"]
