"""The feed filter on an interface by name: load, unload, status, rules, stats (what
``tickwire xdp ...`` does; appliance/commands/xdp.py is its verb group).

An interface may live in another network namespace (the lab's app end): with
``netns`` the calling thread alone enters that namespace for the interface's
index and the netlink attach, while the process stays in the root mount
namespace, so pins land in the one bpffs every command sees:
``/sys/fs/bpf/tickwire/<iface>`` or ``/sys/fs/bpf/tickwire/<netns>/<iface>``.
Feed names are kept beside, in ``/run/tickwire/xdp/`` (bpffs holds only maps).
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import socket
from typing import Any

from pyroute2 import IPRoute, NetNS

from appliance.lab.net import xdp_info
from common import paths
from common.netns import in_netns
from xdp import filter as xf

RUN_DIR = paths.RUN_DIR / "xdp"


class XdpError(RuntimeError):
    """An xdp command that cannot be done; the message says why and what to do."""


def pin_dir(iface: str, netns: str | None) -> pathlib.Path:
    return xf.PIN_ROOT / netns / iface if netns else xf.PIN_ROOT / iface


def feeds_file(iface: str, netns: str | None) -> pathlib.Path:
    return RUN_DIR / (netns or "root") / f"{iface}.json"


def ifindex(iface: str, netns: str | None) -> int:
    with in_netns(netns):
        try:
            return socket.if_nametoindex(iface)
        except OSError:
            where = f"namespace {netns}" if netns else "the root namespace"
            raise XdpError(f"interface {iface} does not exist in {where} (ip -n NS link)") from None


def attached(iface: str, netns: str | None) -> dict[str, Any] | None:
    """The XDP program on the interface, from netlink (pyroute2)."""
    handle = NetNS(netns, flags=0) if netns else IPRoute()
    try:
        found = handle.link_lookup(ifname=iface)
        return xdp_info(handle.get_links(found[0])[0]) if found else None
    finally:
        handle.close()


def load(iface: str, netns: str | None = None, mode: str = "native", hw: str = "auto") -> dict[str, Any]:
    idx = ifindex(iface, netns)
    current = attached(iface, netns)
    if current:
        raise XdpError(f"{iface} already runs XDP program {current['name']} (id {current['prog_id']}, "
                       f"{current['mode']}): `tickwire xdp unload {iface}` first")
    with in_netns(netns):
        stamps = xf.hw_timestamps(idx, iface) if hw != "off" else {
            "available": False, "object": str(xf.xdp.object_path("feed_filter")), "reason": "--hw-timestamps off"}
        if hw == "on" and not stamps["available"]:
            raise XdpError(f"--hw-timestamps on: {stamps['reason']}")
        pins = pin_dir(iface, netns)
        flt = xf.FeedFilter(pins, stamps["object"], ifindex=idx if stamps["available"] else 0)
        try:
            used = flt.attach(idx, "native" if stamps["available"] else mode)
        except xf.BpfError:
            flt.close()
            flt.unpin()
            raise
        flt.close()  # the attachment keeps the program; the pins keep the maps
    info = attached(iface, netns) or {}
    return {"iface": iface, "netns": netns, "mode": used, "fallback": used != mode, "prog_id": info.get("prog_id"),
            "object": stamps["object"], "hw_timestamps": stamps, "pin_dir": str(pins)}


def unload(iface: str, netns: str | None = None) -> dict[str, Any]:
    idx = ifindex(iface, netns)
    before = attached(iface, netns)
    with in_netns(netns):
        xf.detach(idx)
    pins = pin_dir(iface, netns)
    had_pins = pins.exists()
    for name in xf.PINNED_MAPS:
        (pins / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        pins.rmdir()
    if netns:
        with contextlib.suppress(OSError):
            pins.parent.rmdir()
    feeds_file(iface, netns).unlink(missing_ok=True)
    after = attached(iface, netns)
    if after:
        raise XdpError(f"{iface} still runs {after['name']} after detach")
    return {"iface": iface, "netns": netns, "detached": before, "unpinned": had_pins}


def _feeds(iface: str, netns: str | None) -> dict[str, int]:
    try:
        return json.loads(feeds_file(iface, netns).read_text())
    except (OSError, ValueError):
        return {}


def parse_source(text: str) -> tuple[str, int]:
    """--source ADDR:PORT, the exchange's publisher."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise XdpError(f"--source {text!r}: write the exchange's publisher as ADDR:PORT, e.g. 198.18.1.1:26400")
    return host, int(port)


def rules_add(iface: str, netns: str | None, group: str, port: int, action: str, feed: str, line: str,
              source: str | None = None) -> dict:
    """Add or replace a rule; with ``source`` (ADDR:PORT) packets from anyone else are dropped (wrong_source)."""
    src = parse_source(source) if source else None
    flt = xf.PinnedFilter(pin_dir(iface, netns))
    try:
        feeds = _feeds(iface, netns)
        feed_id = feeds.get(feed) or (max(feeds.values(), default=0) + 1)
        feeds[feed] = feed_id
        rule = flt.add_rule(group, port, action, feed_id=feed_id, line=line, source=src)
    finally:
        flt.close()
    path = feeds_file(iface, netns)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(feeds))
    return {**rule.__dict__, "feed": feed}


def rules_del(iface: str, netns: str | None, group: str, port: int) -> dict:
    flt = xf.PinnedFilter(pin_dir(iface, netns))
    try:
        if not flt.del_rule(group, port):
            raise XdpError(f"no rule for {group}:{port} on {iface} (tickwire xdp rules list {iface})")
    finally:
        flt.close()
    return {"iface": iface, "deleted": f"{group}:{port}"}


def rules_list(iface: str, netns: str | None) -> list[dict]:
    names = {v: k for k, v in _feeds(iface, netns).items()}
    flt = xf.PinnedFilter(pin_dir(iface, netns))
    try:
        return [{**r.__dict__, "feed": names.get(r.feed_id, str(r.feed_id))} for r in flt.rules()]
    finally:
        flt.close()


def stats(iface: str, netns: str | None) -> dict[str, Any]:
    names = {v: k for k, v in _feeds(iface, netns).items()}
    flt = xf.PinnedFilter(pin_dir(iface, netns))
    try:
        rules = []
        for r in flt.rules():
            rules.append({"rule": f"{r.group}:{r.port}", "source": r.source, "action": r.action,
                          "feed": names.get(r.feed_id, r.feed_id), "line": r.line, "rule_id": r.rule_id,
                          **flt.rule_stats(r.rule_id)["total"]})
        return {"iface": iface, "netns": netns, "rules": rules, "unmatched": flt.filter_stats()["total"]}
    finally:
        flt.close()


def status(netns: str | None) -> dict[str, Any]:
    """Every interface with an XDP program in the namespace, and every pinned filter."""
    handle = NetNS(netns, flags=0) if netns else IPRoute()
    try:
        links = []
        for msg in handle.get_links():
            info = xdp_info(msg)
            if info:
                links.append({"iface": msg.get("ifname"), **info})
    finally:
        handle.close()
    pinned = sorted(str(p.parent) for p in xf.PIN_ROOT.glob("**/feed_rules")
                    if p.parent != xf.DPDK_LINKS) if xf.PIN_ROOT.exists() else []  # DPDK_LINKS: links, not a filter
    return {"netns": netns, "attached": links, "pinned_filters": pinned}
