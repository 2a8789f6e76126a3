"""``tickwire book``: a BinaryFILE straight into the C books, or a capture through
DPDK's pcap port and the worker (the live code path)."""

from __future__ import annotations

import os
import pathlib
import time
import warnings
from typing import Any

from appliance.feed.errors import FeedError
from appliance.feed.lifecycle import run
from appliance.feed.settings import LiveFeed, RunSettings, lab_feed
from appliance.lab import topology
from appliance.protocols import capture, moldudp64
from dpdk.books import Books
from dpdk.worker import remove_state


def book_file(path: str, top: int, max_orders: int, levels: int) -> dict[str, Any]:
    """A BinaryFILE straight into the C books (no DPDK needed)."""
    p = pathlib.Path(path)
    if not p.is_file():
        raise FeedError(f"{path}: no such file")
    books = Books(65535, max_orders, levels)
    data = p.read_bytes()
    t0 = time.perf_counter()
    n = books.apply_binaryfile(data)
    elapsed = time.perf_counter() - t0
    return {"file": str(p), "mode": "binaryfile", "messages": n, "seconds": round(elapsed, 3),
            "book": books.stats(), "live_orders": books.live_orders, "system_event": books.system_event,
            "books": books.report(top)}


def book_capture(path: str, top: int, max_orders: int, levels: int, retrans_port: int) -> dict[str, Any]:
    """A capture through DPDK's pcap port and the worker: the live code path.
    Lines are told apart by the lab's groups; other datagrams count as line A."""
    groups = lab_feed(topology.DEFAULT_PREFIX).groups
    unsequenced = zeroed_sequences(path)
    settings = RunSettings(
        name=f"book{os.getpid()}", feed=LiveFeed(None, {}, groups, None, None), pcap=path, retrans_port=retrans_port,
        unsequenced=unsequenced, give_up=0.2, prefault=False, max_locate=65535, max_orders=max_orders, levels=levels,
        top=top)  # the rest: RunSettings' defaults (burst 32, idle_stop 0.5 s, lcores 0,1, no duration, ...)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # --no-huge is fine for a replay
        report = run(settings)
    remove_state(settings.name)  # a one-off replay leaves no worker state behind
    st = report["stats"]
    return {"file": path, "mode": "pcap", "packets": sum(st["rx_packets"]), "messages": st["feed"]["applied"],
            "sequencing": "arrival order (the capture's sequence numbers are 0)" if unsequenced else "MoldUDP64",
            "frames": {k: st[k] for k in ("not_udp", "multi_segment")}, "feed": st["feed"], "book": st["book"],
            "live_orders": st["live_orders"], "system_event": report["system_event"], "events": report["events"],
            "books": report["books"]}


def zeroed_sequences(path: str) -> bool:
    """Whether the capture's first MoldUDP64 packet has sequence number 0 (sample
    captures are published that way): then no sequencing is possible."""
    for fr in capture.read_frames(path):
        if fr.proto == "udp" and len(fr.payload) >= 20:
            try:
                return moldudp64.unpack(fr.payload).sequence == 0
            except moldudp64.MoldError:
                continue
    return False
