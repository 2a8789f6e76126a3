"""Build, inspect and remove the lab's namespaces, bridges, veth pairs and routes.

Everything goes through netlink (pyroute2) except two things netlink does not
carry: offload settings (``ethtool -K``, run inside the namespace) and program
names for XDP ids (``bpftool``). Every step checks before it acts, so ``up`` on a
lab that is half built (a crash, a manual delete) completes it, and ``up`` on a
complete lab changes nothing.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
from typing import Any

import psutil
from pyroute2 import NetNS, netns

from appliance.lab import impair, state
from appliance.lab.topology import EXCH, HOSTS, Lab, Link
from common.netns import NamespaceError, existing_namespaces, exists, netns_path, ns_handle, run_in
from common.paths import RUN_DIR

# IFLA_XDP_ATTACHED: the kernel's number, or pyroute2's name for it
XDP_MODES = {1: "native", 2: "generic", 3: "offload", 4: "multi",
             "xdp": "native", "xdpgeneric": "generic", "xdpoffload": "offload", "multi": "multi"}
# Off on every lab veth and bridge, so a frame in the lab looks as it would on a
# wire: MTU-sized (no TSO/GSO super-frames) and with its checksums filled in (no
# "tx" checksum offload, which leaves UDP/TCP checksums partial until the NIC).
# The impairment relay copies frames at tc egress and depends on both.
OFFLOADS_OFF = ("tx", "tso", "gso", "gro", "tx-udp-segmentation")


# the lab's failures and its namespaces' are one error, as they always were: callers catch either name
LabError = NamespaceError


def _index(ns: NetNS, ifname: str) -> int | None:
    found = ns.link_lookup(ifname=ifname)
    return found[0] if found else None


IFA_F_NOPREFIXROUTE = 0x200  # <linux/if_addr.h>


def _ensure_addr(ns: NetNS, index: int, address: str, prefixlen: int, prefix_route: bool = True) -> bool:
    have = {(a.get("address"), a.get("prefixlen")) for a in ns.get_addr(index=index, family=2)}
    if (address, prefixlen) in have:
        return False
    if prefix_route:
        ns.addr("add", index=index, address=address, prefixlen=prefixlen)
    else:
        ns.addr("add", index=index, address=address, prefixlen=prefixlen, IFA_FLAGS=IFA_F_NOPREFIXROUTE)
    return True


def _ensure_route(ns: NetNS, dst: str, oif: int) -> bool:
    net, _, plen = dst.partition("/")
    for r in ns.get_routes(family=2, table=254):
        if r.get("dst") == net and r.get("dst_len") == int(plen) and r.get("oif") == oif:
            return False
    ns.route("replace", dst=net, dst_len=int(plen), oif=oif)
    return True


def _ethtool_off(namespace: str, ifname: str) -> None:
    """Turn the offloads in OFFLOADS_OFF off on one interface."""
    cmd = ["ip", "netns", "exec", namespace, "ethtool", "-K", ifname]
    for feature in OFFLOADS_OFF:
        cmd += [feature, "off"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise LabError(f"ethtool -K {ifname} in {namespace} failed: {res.stderr.strip()}")


def up(lab: Lab) -> dict[str, Any]:
    """Create whatever of the lab is missing. Returns what was created."""
    created: list[str] = []
    for name in lab.namespaces:
        if not exists(name):
            netns.create(name)
            created.append(f"namespace {name}")
        with ns_handle(name) as ns:
            lo = _index(ns, "lo")
            if lo is not None:
                ns.link("set", index=lo, state="up")

    exch = lab.ns(EXCH)
    with ns_handle(exch) as ns:
        for net in lab.networks:
            idx = _index(ns, net.bridge)
            if idx is None:
                ns.link("add", ifname=net.bridge, kind="bridge", br_mcast_snooping=0)
                idx = _index(ns, net.bridge)
                _ethtool_off(exch, net.bridge)
                created.append(f"bridge {net.bridge} in {exch}")
            ns.link("set", index=idx, state="up")
            if _ensure_addr(ns, idx, net.address(EXCH), net.prefixlen):
                created.append(f"address {net.address(EXCH)}/{net.prefixlen} on {net.bridge}")
            if net.group_route and _ensure_route(ns, net.group_route, idx):
                created.append(f"route {net.group_route} dev {net.bridge} in {exch}")

    for link in lab.links:
        created += _ensure_link(lab, link)

    for host in HOSTS:
        with ns_handle(lab.ns(host)) as ns:
            for net in lab.networks:
                if not net.group_route:
                    continue
                idx = _index(ns, net.host_ifname)
                if idx is not None and _ensure_route(ns, net.group_route, idx):
                    created.append(f"route {net.group_route} dev {net.host_ifname} in {lab.ns(host)}")
    state.lab_dir(lab.prefix).mkdir(parents=True, exist_ok=True)
    return {"prefix": lab.prefix, "created": created, "namespaces": list(lab.namespaces)}


def _ensure_link(lab: Lab, link: Link) -> list[str]:
    created = []
    down_ns, up_ns = lab.ns(link.down.role), lab.ns(link.up.role)
    with ns_handle(down_ns) as dns, ns_handle(up_ns) as uns:
        d_idx, u_idx = _index(dns, link.down.ifname), _index(uns, link.up.ifname)
        if d_idx is None or u_idx is None:
            # half a pair (a crash mid-way): remove the orphan and make the pair anew
            if d_idx is not None:
                dns.link("del", index=d_idx)
            if u_idx is not None:
                uns.link("del", index=u_idx)
            dns.link("add", ifname=link.down.ifname, kind="veth",
                     peer={"ifname": link.up.ifname, "net_ns_fd": up_ns})
            d_idx, u_idx = _index(dns, link.down.ifname), _index(uns, link.up.ifname)
            if d_idx is None or u_idx is None:
                raise LabError(f"creating veth pair {link.name} failed: an end is missing afterwards")
            _ethtool_off(down_ns, link.down.ifname)
            _ethtool_off(up_ns, link.up.ifname)
            created.append(f"link {link.name} ({down_ns}:{link.down.ifname} <-> {up_ns}:{link.up.ifname})")
        if link.bridge is not None:
            br = _index(dns, link.bridge)
            dns.link("set", index=d_idx, master=br)
        dns.link("set", index=d_idx, state="up")
        uns.link("set", index=u_idx, state="up")
        for ns, idx, end in ((dns, d_idx, link.down), (uns, u_idx, link.up)):
            if end.address and _ensure_addr(ns, idx, end.address, end.prefixlen, end.prefix_route):
                created.append(f"address {end.address}/{end.prefixlen} on {end.ifname}")
    return created


def namespace_pids(name: str) -> list[int]:
    """Processes whose network namespace is ``name`` (by inode, as `ip netns pids`)."""
    try:
        target = os.stat(netns_path(name)).st_ino
    except FileNotFoundError:
        return []
    pids = []
    for pid in psutil.pids():
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino == target:
                pids.append(pid)
        except OSError:
            continue
    return pids


def _stop_processes(pids: list[int], grace: float = 3.0) -> list[dict[str, Any]]:
    procs = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            procs.append((p, p.name()))
            p.send_signal(signal.SIGTERM)
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs([p for p, _ in procs], timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace)
    killed = {p.pid for p in alive}
    return [{"pid": p.pid, "name": n, "killed": p.pid in killed} for p, n in procs]


def down(prefix: str) -> dict[str, Any]:
    """Remove everything the prefix owns: its processes, namespaces and state.

    Works from what exists, not from a record, so it also cleans up after a crash.
    Impairment relays are stopped first (SIGTERM) so they detach their programs.
    """
    names = existing_namespaces(prefix)
    stopped = []
    for name in names:
        stopped += [dict(p, namespace=name) for p in _stop_processes(namespace_pids(name))]
    removed = []
    for name in names:
        netns.remove(name)
        removed.append(name)
        # feed filters loaded on the namespace's interfaces: their pinned maps and feed names,
        # and the links a feed worker made for DPDK's copy of the filter
        pins = pathlib.Path("/sys/fs/bpf/tickwire") / name
        for link in pathlib.Path("/sys/fs/bpf").glob("*"):
            if link.is_symlink() and os.readlink(link).startswith(f"{pins}/"):
                link.unlink()
        for root in (pins, RUN_DIR / "xdp" / name):
            _remove_tree(root)
    _remove_feed_state(set(names))
    state.remove_lab_dir(prefix)
    return {"prefix": prefix, "removed_namespaces": removed, "stopped_processes": stopped}


def _remove_feed_state(namespaces: set[str]) -> None:
    """Feed workers that ran in these namespaces leave their statistics, status and
    events in /run/tickwire/feed (for `tickwire feed stats` after they stop): with
    the namespaces gone, so are they."""
    # here, not at the top: dpdk.worker loads the C extension, which the lab's other verbs never need
    from dpdk.worker import STATE_DIR, remove_state

    if not namespaces or not STATE_DIR.is_dir():
        return
    for info in STATE_DIR.glob("*.json"):
        try:
            netns = json.loads(info.read_text()).get("netns")
        except (OSError, ValueError):
            continue
        if netns in namespaces:
            remove_state(info.name.removesuffix(".json"))


def _remove_tree(root: pathlib.Path) -> None:
    """Remove files then folders, deepest first (bpffs has no recursive delete)."""
    if not root.exists():
        return
    for p in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if p.is_dir():
            p.rmdir()
        else:
            p.unlink()
    root.rmdir()


def xdp_info(link_msg: Any) -> dict[str, Any] | None:
    xdp = link_msg.get("IFLA_XDP")
    if not xdp:
        return None
    attrs = dict(xdp.get("attrs", []))
    mode = attrs.get("IFLA_XDP_ATTACHED")
    if mode in (None, 0, "none"):
        return None
    prog_id = attrs.get("IFLA_XDP_PROG_ID")
    return {"mode": XDP_MODES.get(mode, str(mode)), "prog_id": prog_id, "name": bpf_prog_name(prog_id)}


def bpf_prog_name(prog_id: int | None) -> str | None:
    if not prog_id:
        return None
    res = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(prog_id)], capture_output=True, text=True)
    if res.returncode != 0:
        return None
    return json.loads(res.stdout).get("name")


def _end_status(ns: NetNS | None, ifname: str) -> dict[str, Any]:
    if ns is None:
        return {"ifname": ifname, "exists": False}
    idx = _index(ns, ifname)
    if idx is None:
        return {"ifname": ifname, "exists": False}
    msg = ns.get_links(idx)[0]
    addrs = [f"{a.get('address')}/{a.get('prefixlen')}" for a in ns.get_addr(index=idx, family=2)]
    return {
        "ifname": ifname,
        "exists": True,
        "index": idx,
        "state": msg.get("operstate"),
        "mtu": msg.get("mtu"),
        "mac": msg.get("address"),
        "addresses": addrs,
        "xdp": xdp_info(msg),
    }


def status(lab: Lab) -> dict[str, Any]:
    """What exists of the lab right now, read from the kernel."""
    present = set(existing_namespaces(lab.prefix))
    handles: dict[str, NetNS | None] = {}
    try:
        for name in lab.namespaces:
            handles[name] = NetNS(name, flags=0) if name in present else None
        links = []
        for link in lab.links:
            down_ns, up_ns = lab.ns(link.down.role), lab.ns(link.up.role)
            links.append({
                "name": link.name,
                "down": dict(_end_status(handles[down_ns], link.down.ifname), namespace=down_ns),
                "up": dict(_end_status(handles[up_ns], link.up.ifname), namespace=up_ns),
                "bridge": link.bridge,
            })
        bridges = []
        exch = handles[lab.ns(EXCH)]
        for net in lab.networks:
            bridges.append(dict(_end_status(exch, net.bridge), network=net.name, namespace=lab.ns(EXCH),
                                group=net.group, group_port=net.group_port))
        routes = {}
        for name, ns in handles.items():
            if ns is not None:
                routes[name] = sorted(
                    f"{r.get('dst')}/{r.get('dst_len')}" for r in ns.get_routes(family=2, table=254)
                    if r.get("dst") and ipaddr_is_multicast(r.get("dst"))
                )
    finally:
        for ns in handles.values():
            if ns is not None:
                ns.close()
    namespaces = []
    for name in lab.namespaces:
        procs = []
        for pid in namespace_pids(name):
            try:
                p = psutil.Process(pid)
                procs.append({"pid": pid, "name": p.name(), "cmdline": " ".join(p.cmdline())[:200]})
            except psutil.Error:
                continue
        namespaces.append({"name": name, "exists": name in present, "processes": procs,
                           "multicast_routes": routes.get(name, [])})
    strays = sorted(present - set(lab.namespaces))
    complete = all(n["exists"] for n in namespaces) and all(
        lk["down"]["exists"] and lk["up"]["exists"] for lk in links) and all(b["exists"] for b in bridges)
    return {
        "prefix": lab.prefix,
        "state": "up" if complete else ("down" if not present else "partial"),
        "namespaces": namespaces,
        "stray_namespaces": strays,
        "bridges": bridges,
        "links": links,
        "impairments": impair.status(lab),
    }


def ipaddr_is_multicast(addr: str) -> bool:
    first = int(addr.split(".")[0])
    return 224 <= first <= 239


__all__ = ["LabError", "up", "down", "status", "run_in", "namespace_pids", "existing_namespaces"]
