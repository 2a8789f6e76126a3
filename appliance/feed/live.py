"""A live feed's parts around the worker: the XDP filter's maps pinned once for
every feed interface and shared with the copy of the filter DPDK's af_xdp driver
loads, the recorder that keeps every frame, and what the process holds."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from appliance.feed.errors import FeedError
from dpdk.recorder import Recorder, RecorderError
from xdp.filter import FeedFilter, PinnedFilter, share_with_dpdk, unshare_with_dpdk

if TYPE_CHECKING:  # a type only: whoever calls this has loaded it
    from appliance.feed.settings import LiveFeed

FEED_ID = 1


def share_filter(feed: LiveFeed, pin_root: pathlib.Path) -> Callable[[], None]:
    """Pin the filter's maps once for every feed interface (one rules map: the
    line rules differ by group; a line with a source drops what anyone else
    sends to its group), link them where the af_xdp driver's libbpf looks, and
    return the undo."""
    first = pin_root / next(iter(feed.ifaces.values()))
    flt = FeedFilter(first)
    try:
        for line, (group, port) in feed.groups.items():  # with the line's publisher: anyone else is dropped
            flt.add_rule(group, port, "redirect", feed_id=FEED_ID, line=line, source=feed.sources.get(line))
    finally:
        flt.close()
    others = []
    for iface in list(feed.ifaces.values())[1:]:
        d = pin_root / iface  # the same maps under each interface, for `tickwire xdp stats IFACE`
        d.mkdir(parents=True, exist_ok=True)
        for m in first.iterdir():
            link = d / m.name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(m)
        others.append(d)
    share_with_dpdk(first)

    def undo() -> None:
        unshare_with_dpdk()
        for d in others:
            for m in list(d.iterdir()):
                m.unlink()
            d.rmdir()
        PinnedFilter(first).unpin()
        try:
            pin_root.rmdir()  # PIN_ROOT/NS, when nothing else is pinned there
        except OSError:
            pass

    return undo


def make_recorder(where: str, rotate_mb: float, keep_mb: float = 0.0) -> Recorder:
    """--record PATH: FILE.pcap is one capture of every frame; anything else is a folder (made
    when missing) with a capture per line, rotated at rotate_mb, the oldest deleted past keep_mb
    in all (0: none)."""
    path = pathlib.Path(where)
    try:
        if path.suffix == ".pcap":
            return Recorder(single=path)
        if not path.parent.is_dir():
            raise RecorderError(f"the folder {path.parent} does not exist")
        path.mkdir(exist_ok=True)
        return Recorder(directory=path, rotate_mb=rotate_mb, keep_mb=keep_mb)
    except (RecorderError, OSError) as exc:
        raise FeedError(f"--record {where}: {exc}") from exc


def process_memory() -> dict[str, int]:
    """This process's resident size now and at its peak, in bytes (/proc/self/status)."""
    out = {}
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[{"VmRSS": "rss", "VmHWM": "peak_rss"}[key]] = int(value.split()[0]) * 1024
    return out
