"""tickwire lab up / status / down against the running kernel."""

from __future__ import annotations

import os
import subprocess
import textwrap
import time

import psutil
import pytest

from appliance.lab import net, state, topology
from labtools import netns_list, ping, tw, tw_json

pytestmark = pytest.mark.root


def test_up_status_down_through_the_cli_leaves_nothing_behind(prefix):
    before = netns_list()
    up = tw_json("lab", "up", "--prefix", prefix)
    assert f"namespace {prefix}-exch" in up["created"]
    status = tw_json("lab", "status", "--prefix", prefix)
    assert status["state"] == "up"
    assert {n["name"] for n in status["namespaces"] if n["exists"]} == {f"{prefix}-{r}" for r in topology.ROLES}
    down = tw_json("lab", "down", "--prefix", prefix)
    assert sorted(down["removed_namespaces"]) == sorted(f"{prefix}-{r}" for r in topology.ROLES)
    assert netns_list() == before
    assert tw_json("lab", "status", "--prefix", prefix, expect=1)["state"] == "down"


def test_status_shows_every_planned_link_address_and_route(lab):
    status = net.status(lab)
    by_name = {lk["name"]: lk for lk in status["links"]}
    for link in lab.links:
        got = by_name[link.name]
        for d in ("down", "up"):
            end = link.end(d)
            assert got[d]["exists"] and got[d]["state"] == "UP", (link.name, d)
            if end.address:
                assert got[d]["addresses"] == [f"{end.address}/{end.prefixlen}"]
    for ns in status["namespaces"]:
        assert ns["multicast_routes"] == ["239.198.1.0/24", "239.198.2.0/24"]
    assert all(b["exists"] and b["addresses"] for b in status["bridges"] if b["network"])


def test_a_second_up_creates_nothing(lab):
    assert net.up(lab)["created"] == []


def test_up_completes_a_half_built_lab(lab):
    # what a crash in the middle of `up` leaves: a namespace gone, half a veth pair gone
    subprocess.run(["ip", "netns", "del", lab.ns("standby")], check=True)
    subprocess.run(["ip", "-n", lab.ns("exch"), "link", "del", "fb-app"], check=True)
    assert net.status(lab)["state"] == "partial"
    created = net.up(lab)["created"]
    assert f"namespace {lab.ns('standby')}" in created
    assert any(c.startswith("link feed-b-app") for c in created)
    assert net.status(lab)["state"] == "up"


def _is_in(pid: int, name: str, namespace: str) -> bool:
    try:
        return psutil.Process(pid).name() == name and pid in net.namespace_pids(namespace)
    except psutil.NoSuchProcess:
        return False


def test_down_stops_processes_left_in_the_namespaces(lab):
    proc = net.run_in(lab.ns("app"), ["sleep", "600"])  # ip netns exec: setns, then exec sleep
    try:
        # `ip` enters the namespace, then mounts /sys, then execs sleep: wait for the exec too, or
        # down() finds (and stops) a process still named ip
        deadline = time.monotonic() + 5
        while not _is_in(proc.pid, "sleep", lab.ns("app")) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _is_in(proc.pid, "sleep", lab.ns("app"))
        report = net.down(lab.prefix)
        assert any(p["name"] == "sleep" for p in report["stopped_processes"])
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not [n for n in netns_list() if n.startswith(f"{lab.prefix}-")]
    assert not state.lab_dir(lab.prefix).exists()


def test_down_on_a_lab_that_is_not_there_is_fine(prefix):
    assert net.down(prefix)["removed_namespaces"] == []


def test_two_labs_coexist_and_go_down_separately(lab, prefix):
    other = topology.plan(prefix[:-1] + ("x" if prefix[-1] != "x" else "y"))
    try:
        net.up(other)
        assert net.status(other)["state"] == "up" and net.status(lab)["state"] == "up"
        net.down(other.prefix)
        assert net.status(lab)["state"] == "up"
    finally:
        net.down(other.prefix)


def test_hosts_reach_the_exchange_and_each_other(lab):
    assert len(ping(lab.ns("app"), "198.18.3.1", count=2)) == 2      # order entry
    assert len(ping(lab.ns("standby"), "198.18.1.1", count=2)) == 2  # feed line A network
    assert len(ping(lab.ns("app"), "198.18.4.2", count=2)) == 2      # ha link to standby


XDP_PASS = textwrap.dedent("""\
    #include <linux/bpf.h>
    #include <bpf/bpf_helpers.h>
    SEC("xdp") int tw_test_pass(struct xdp_md *ctx) { return XDP_PASS; }
    char _license[] SEC("license") = "GPL";
""")


def test_status_lists_an_attached_xdp_program(lab, tmp_path):
    src, obj = tmp_path / "pass.bpf.c", tmp_path / "pass.bpf.o"
    src.write_text(XDP_PASS)
    subprocess.run(["clang", "-O2", "-g", "-target", "bpf", f"-I/usr/include/{os.uname().machine}-linux-gnu",
                    "-c", str(src), "-o", str(obj)], check=True)
    subprocess.run(["ip", "-n", lab.ns("app"), "link", "set", "dev", "feed-a", "xdpdrv", "obj", str(obj),
                    "sec", "xdp"], check=True)
    status = tw_json("lab", "status", "--prefix", lab.prefix)
    end = next(lk for lk in status["links"] if lk["name"] == "feed-a-app")["up"]
    assert end["xdp"]["mode"] == "native"
    assert end["xdp"]["name"] == "tw_test_pass"
    assert end["xdp"]["prog_id"] > 0
    human = tw("lab", "status", "--prefix", lab.prefix)
    assert "tw_test_pass (native" in human.stdout
