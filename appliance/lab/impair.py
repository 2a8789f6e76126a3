"""Impair a lab link: loss, delay, jitter, reordering and duplication.

netem would be the usual tool, but this machine's kernel is built without
``sch_netem`` (CONFIG_NET_SCH_NETEM is not set and it has no modules), so the lab
carries its own emulation that needs only clsact, cls_bpf and a BPF ring buffer:
``xdp/lab_impair.bpf.c`` on the link end's egress hands every frame to a relay
process (``python -m appliance.lab.impaird``, its loop in C) that applies the
impairment and transmits the frame again. Parameters mean what netem's do:

* ``loss`` percent of frames are dropped;
* ``duplicate`` percent are sent twice;
* every frame waits ``delay`` ms, uniformly +- ``jitter`` ms (so jitter reorders);
* ``reorder`` percent skip the delay and leave at once (needs a delay, as in netem).

One relay per (link, direction); ``impair`` on an impaired link replaces its
parameters, ``clear`` stops the relays, which detach their programs and send what
they still hold. Relays live in the lab's namespaces, so ``lab down`` ends them.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time
from typing import Any

import psutil

import xdp
from appliance.lab import state
from appliance.lab.topology import Lab, Link
from common.netns import NamespaceError, exists, ns_handle, run_in

DIRECTIONS = ("down", "up", "both")
FILTER_PARENT_EGRESS = 0xFFFFFFF3  # TC_H_CLSACT | TC_H_MIN_EGRESS
PROG_NAME = "tw_impair"  # the program's name in the kernel (at most 15 characters are kept)
START_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class Impairment:
    loss: float = 0.0       # percent
    delay: float = 0.0      # ms
    jitter: float = 0.0     # ms
    reorder: float = 0.0    # percent
    duplicate: float = 0.0  # percent
    seed: int = 0

    def __post_init__(self) -> None:
        errors = []
        for name in ("loss", "reorder", "duplicate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 100.0:
                errors.append(f"--{name} {v:g}: a percentage must be within 0..100")
        for name in ("delay", "jitter"):
            v = getattr(self, name)
            if not 0.0 <= v <= 60_000.0:
                errors.append(f"--{name} {v:g}: milliseconds must be within 0..60000")
        if self.reorder and not self.delay:
            errors.append(f"--reorder {self.reorder:g} needs a delay: reordered frames are the ones "
                          "sent without it (add e.g. --delay 10)")
        if not errors and not any((self.loss, self.delay, self.jitter, self.duplicate)):
            errors.append("no impairment given: set at least one of --loss --delay --jitter --duplicate "
                          "(to remove impairments use `tickwire lab clear LINK`)")
        if errors:
            raise ValueError("; ".join(errors))

    def to_args(self) -> list[str]:
        return [f"--loss={self.loss}", f"--delay={self.delay}", f"--jitter={self.jitter}",
                f"--reorder={self.reorder}", f"--duplicate={self.duplicate}", f"--seed={self.seed}"]


def _ends(link: Link, direction: str) -> list[tuple[str, Any]]:
    if direction not in DIRECTIONS:
        raise ValueError(f"--direction {direction!r}: choose one of {', '.join(DIRECTIONS)}")
    dirs = ("down", "up") if direction == "both" else (direction,)
    return [(d, link.end(d)) for d in dirs]


def state_file(lab: Lab, link: str, direction: str):
    return state.lab_dir(lab.prefix) / f"impair-{link}-{direction}.json"


def _stop_relay(path) -> bool:
    info = state.read_json(path)
    stopped = False
    if info and info.get("pid") and _relay_alive(info):
        proc = psutil.Process(info["pid"])
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except psutil.TimeoutExpired:
            proc.kill()  # its tc filter is removed by the caller below
        stopped = True
    path.unlink(missing_ok=True)
    return stopped


def _relay_alive(info: dict[str, Any]) -> bool:
    try:
        p = psutil.Process(info["pid"])
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE and "appliance.lab.impaird" in " ".join(
            p.cmdline())
    except (psutil.Error, KeyError):
        return False


def _remove_filter(namespace: str, ifname: str) -> None:
    """Remove our filter if a killed relay left it behind (frames would be dropped)."""
    for f in _filters(namespace, ifname):
        subprocess.run(["tc", "-n", namespace, "filter", "del", "dev", ifname, "egress",
                        "pref", str(f["pref"])], capture_output=True)


def our_filters(handle: Any, index: int) -> list[dict[str, Any]]:
    """Our impairment filters on an interface's clsact egress, through a netlink
    handle (IPRoute or NetNS) of the interface's namespace."""
    out = []
    for msg in handle.get_filters(index=index, parent=FILTER_PARENT_EGRESS):
        opts = msg.get("TCA_OPTIONS")
        if not opts:
            continue
        name = opts.get("TCA_BPF_NAME") or ""  # "tw_impair:[id]" as tc names it
        if name.split(":")[0] == PROG_NAME:
            prog_id = opts.get("TCA_BPF_ID") or int(name.rpartition("[")[2].rstrip("]") or 0) or None
            out.append({"pref": msg["info"] >> 16, "prog_id": prog_id, "name": name})
    return out


def _filters(namespace: str, ifname: str) -> list[dict[str, Any]]:
    """Our impairment filters on ifname's clsact egress, read from the kernel."""
    try:
        with ns_handle(namespace) as ns:
            found = ns.link_lookup(ifname=ifname)
            return our_filters(ns, found[0]) if found else []
    except NamespaceError:
        return []


def apply(lab: Lab, link_name: str, imp: Impairment, direction: str = "down") -> list[dict[str, Any]]:
    link = lab.link(link_name)
    obj = xdp.object_path("lab_impair")
    results = []
    for d, end in _ends(link, direction):
        namespace = lab.ns(end.role)
        path = state_file(lab, link.name, d)
        _stop_relay(path)
        _remove_filter(namespace, end.ifname)
        log = path.with_suffix(".log")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as logf:
            proc = run_in(
                namespace,
                [sys.executable, "-m", "appliance.lab.impaird", "--ifname", end.ifname, "--object", str(obj),
                 "--state", str(path), "--link", link.name, "--direction", d, "--namespace", namespace,
                 *imp.to_args()],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        results.append(_wait_attached(proc, path, log, link.name, d))
    return results


def _wait_attached(proc: subprocess.Popen, path, log, link: str, direction: str) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        info = state.read_json(path)
        if info and info.get("attached"):
            return info
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    path.unlink(missing_ok=True)
    detail = log.read_text(errors="replace").strip() if log.exists() else ""
    raise NamespaceError(f"the impairment relay for {link} ({direction}) did not start: {detail or 'no output'}")


def clear(lab: Lab, link_name: str, direction: str = "both") -> list[dict[str, Any]]:
    link = lab.link(link_name)
    cleared = []
    for d, end in _ends(link, direction):
        path = state_file(lab, link.name, d)
        info = state.read_json(path)
        was = _stop_relay(path)
        namespace = lab.ns(end.role)
        _remove_filter(namespace, end.ifname)
        path.with_suffix(".log").unlink(missing_ok=True)
        if info or was:
            cleared.append({"link": link.name, "direction": d, "namespace": namespace, "ifname": end.ifname,
                            "final_stats": (info or {}).get("stats")})
    return cleared


def status(lab: Lab) -> list[dict[str, Any]]:
    """Impairments in force, each checked against the kernel and the process table."""
    out = []
    for link in lab.links:
        for d in ("down", "up"):
            end = link.end(d)
            namespace = lab.ns(end.role)
            info = state.read_json(state_file(lab, link.name, d))
            filters = _filters(namespace, end.ifname) if exists(namespace) else []
            if not info and not filters:
                continue
            alive = bool(info) and _relay_alive(info)
            problem = None
            if filters and not alive:
                problem = "filter attached but its relay is gone: frames are dropped; run `tickwire lab clear`"
            elif alive and not filters:
                problem = "relay running but its filter is missing: frames pass unimpaired"
            out.append({
                "link": link.name, "direction": d, "namespace": namespace, "ifname": end.ifname,
                "params": (info or {}).get("params"), "relay_pid": (info or {}).get("pid"),
                "relay_alive": alive, "filter": filters[0] if filters else None,
                "stats": (info or {}).get("stats"), "problem": problem,
            })
    return out
