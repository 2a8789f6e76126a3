"""The feed filter attached in the lab: app's feed-a end, traffic from exch."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest

from appliance import feedfilter as commands
from labtools import Sink, ping, send, tw, tw_json
from xdp.filter import PIN_ROOT

pytestmark = pytest.mark.root
GROUP, PORT = "239.198.1.1", 26400


@pytest.fixture
def loaded(lab):
    app = lab.ns("app")
    report = tw_json("xdp", "load", "feed-a", "--netns", app)
    yield report
    tw("xdp", "unload", "feed-a", "--netns", app)


def stats(lab) -> dict:
    return tw_json("xdp", "stats", "feed-a", "--netns", lab.ns("app"))


def test_load_status_and_unload_leave_nothing_behind(lab):
    app = lab.ns("app")
    report = tw_json("xdp", "load", "feed-a", "--netns", app)
    assert report["mode"] == "native" and report["prog_id"] > 0
    assert (PIN_ROOT / app / "feed-a" / "feed_rules").exists()
    status = tw_json("xdp", "status", "--netns", app)
    assert [(a["iface"], a["name"], a["mode"]) for a in status["attached"]] == [("feed-a", "tw_feed_filter",
                                                                                  "native")]
    lab_view = tw_json("lab", "status", "--prefix", lab.prefix)
    end = next(lk for lk in lab_view["links"] if lk["name"] == "feed-a-app")["up"]
    assert end["xdp"]["name"] == "tw_feed_filter"
    again = tw("xdp", "load", "feed-a", "--netns", app)
    assert again.returncode == 2 and "already runs XDP program tw_feed_filter" in again.stderr
    gone = tw_json("xdp", "unload", "feed-a", "--netns", app)
    assert gone["detached"]["name"] == "tw_feed_filter" and gone["unpinned"]
    assert commands.attached("feed-a", app) is None
    assert not (PIN_ROOT / app / "feed-a").exists()


def test_generic_mode_is_reported(lab):
    app = lab.ns("app")
    report = tw_json("xdp", "load", "feed-a", "--netns", app, "--mode", "generic", "--hw-timestamps", "off")
    try:
        assert report["mode"] == "generic" and not report["fallback"]
        assert commands.attached("feed-a", app)["mode"] == "generic"
    finally:
        tw("xdp", "unload", "feed-a", "--netns", app)


def test_counters_match_the_traffic_and_the_kernel_still_gets_its_own(lab, loaded):
    app = lab.ns("app")
    tw_json("xdp", "rules", "add", "feed-a", "--netns", app, "--group", GROUP, "--port", str(PORT), "--action",
            "redirect", "--feed", "itch", "--line", "A")
    sink = Sink(lab, "app", "feed-a")
    try:
        sent = send(lab, "feed-a", 50_000, 5_000)
        got = sink.result()
    finally:
        sink.kill()
    # no AF_XDP socket is bound yet, so every redirect falls back to the kernel: nothing is lost
    assert got["packets"] == sent["packets"] and got["gaps"] == 0
    (rule,) = stats(lab)["rules"]
    assert (rule["feed"], rule["matched"], rule["redirect_failed"], rule["redirected"]) == (
        "itch", sent["packets"], sent["packets"], 0)
    before = stats(lab)["unmatched"]["not_feed"]
    assert len(ping(app, "198.18.1.1", count=3)) == 3  # ICMP replies cross the filter
    assert tcp_roundtrip(lab)                          # and so does a TCP session
    assert stats(lab)["unmatched"]["not_feed"] >= before + 3 + 2


def tcp_roundtrip(lab) -> bool:
    server = subprocess.Popen(["ip", "netns", "exec", lab.ns("exch"), sys.executable, "-c", (
        "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        "s.bind(('198.18.1.1', 9000)); s.listen(1); c,_=s.accept(); c.sendall(c.recv(64)); c.close()")])
    try:
        from pyroute2 import netns

        for _ in range(50):
            netns.pushns(lab.ns("app"))
            try:
                c = socket.socket()
            finally:
                netns.popns()
            try:
                c.settimeout(2)
                c.connect(("198.18.1.1", 9000))
                c.sendall(b"hello over tcp")
                return c.recv(64) == b"hello over tcp"
            except ConnectionRefusedError:
                c.close()
                time.sleep(0.05)
        return False
    finally:
        server.wait(timeout=10)


def test_a_rule_with_a_source_drops_what_anyone_else_sends_to_the_group(lab, loaded):
    app = lab.ns("app")
    rule = tw_json("xdp", "rules", "add", "feed-a", "--netns", app, "--group", GROUP, "--port", str(PORT),
                   "--action", "redirect", "--feed", "itch", "--source", "198.18.1.1:26400")
    assert rule["source"] == "198.18.1.1:26400"
    listed = tw("xdp", "rules", "list", "feed-a", "--netns", app)
    assert "198.18.1.1:26400" in listed.stdout
    sink = Sink(lab, "app", "feed-a")
    try:
        real = send(lab, "feed-a", 5_000, 2_000, "--sport", "26400")  # the publisher's own port
        rogue = send(lab, "feed-a", 5_000, 2_000, "--sport", "26499", "--session", "ROGUE00001")
        got = sink.result()
    finally:
        sink.kill()
    assert got["packets"] == real["packets"]  # the kernel (no AF_XDP socket yet) had the publisher's only
    (r,) = stats(lab)["rules"]
    assert (r["source"], r["matched"], r["redirect_failed"], r["wrong_source"], r["dropped"]) == (
        "198.18.1.1:26400", real["packets"] + rogue["packets"], real["packets"], rogue["packets"], 0)
    human = tw("xdp", "stats", "feed-a", "--netns", app)
    assert "wrong source" in human.stdout
    bad = tw("xdp", "rules", "add", "feed-a", "--netns", app, "--group", GROUP, "--port", str(PORT), "--action",
             "redirect", "--feed", "itch", "--source", "198.18.1.1")
    assert bad.returncode == 2 and "--source '198.18.1.1': write the exchange's publisher as ADDR:PORT" in bad.stderr


def test_rules_changed_under_traffic_take_effect_without_a_reload(lab, loaded):
    app = lab.ns("app")
    prog_id = loaded["prog_id"]
    tw_json("xdp", "rules", "add", "feed-a", "--netns", app, "--group", GROUP, "--port", str(PORT), "--action",
            "pass", "--feed", "itch")
    sink = Sink(lab, "app", "feed-a", idle=1.5)
    result: dict = {}
    sender = threading.Thread(target=lambda: result.update(send(lab, "feed-a", 300_000, 1_000)))
    try:
        sender.start()  # about 3,000 packets over 3 s
        time.sleep(1.0)
        tw_json("xdp", "rules", "add", "feed-a", "--netns", app, "--group", GROUP, "--port", str(PORT), "--action",
                "drop", "--feed", "itch")
        time.sleep(1.0)
        tw_json("xdp", "rules", "del", "feed-a", "--netns", app, "--group", GROUP, "--port", str(PORT))
        sender.join()
        got = sink.result()
    finally:
        sink.kill()
    sent = result["packets"]
    assert commands.attached("feed-a", app)["prog_id"] == prog_id  # the same program all along
    s = stats(lab)
    assert s["rules"] == []
    dropped_and_passed = got["packets"]
    assert 0 < dropped_and_passed < sent and got["gaps"] == 1  # the drop window is one gap
    assert s["unmatched"]["not_feed"] > 0  # after the delete: no rule, passed untouched


def test_rules_cli_errors_name_the_problem(lab, loaded):
    app = lab.ns("app")
    bad = tw("xdp", "rules", "del", "feed-a", "--netns", app, "--group", GROUP, "--port", "1")
    assert bad.returncode == 2 and f"no rule for {GROUP}:1 on feed-a" in bad.stderr
    missing = tw("xdp", "stats", "feed-b", "--netns", app)
    assert missing.returncode == 2 and "no feed filter is pinned" in missing.stderr
    nons = tw("xdp", "load", "feed-a", "--netns", "nope-ns")
    assert nons.returncode == 2 and "network namespace nope-ns does not exist" in nons.stderr
    listed = json.loads(tw("xdp", "rules", "list", "feed-a", "--netns", app, "--json").stdout)
    assert listed == []


def test_an_af_xdp_socket_receives_exactly_the_redirected_packets(lab, tmp_path):
    """DPDK's af_xdp driver loads the same object (xdp_prog=) and binds its socket;
    the filter's maps are shared with it, so the rule we add steers the feed."""
    import shutil

    from xdp import object_path
    from xdp.filter import FeedFilter, PinnedFilter, share_with_dpdk, unshare_with_dpdk

    assert shutil.which("dpdk-testpmd"), "dpdk-testpmd is missing: make setup installs dpdk-dev"
    app = lab.ns("app")
    pins = PIN_ROOT / app / "feed-a"
    flt = FeedFilter(pins)  # creates and pins the maps; DPDK attaches its own copy of the program
    flt.add_rule(GROUP, PORT, "redirect", feed_id=1, line="A")
    flt.close()
    share_with_dpdk(pins)
    log = tmp_path / "testpmd.log"
    # nsenter --net keeps this mount namespace, so DPDK's libbpf sees the bpffs holding our maps
    vdev = f"net_af_xdp0,iface=feed-a,xdp_prog={object_path('feed_filter')}"
    testpmd = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{app}", "dpdk-testpmd", "--no-huge", "-m", "1024", "--no-pci",
         "--file-prefix", f"tw{lab.prefix}", "--vdev", vdev, "-l", "0,1", "--", "--total-num-mbufs=8192",
         "--forward-mode=rxonly", "--stats-period", "1"],
        stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "RX-packets" not in log.read_text():
            assert testpmd.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "testpmd did not start"
            time.sleep(0.2)
        assert commands.attached("feed-a", app)["name"] == "tw_feed_filter"  # DPDK's copy of our program
        kernel = Sink(lab, "app", "feed-a", idle=1.5, timeout=4)  # expects nothing: no idle to wait for
        sent = send(lab, "feed-a", 100_000, 2_000)
        got_kernel = kernel.result()
        time.sleep(1.5)  # one more stats period
    finally:
        testpmd.send_signal(2)
        testpmd.wait(timeout=30)
        unshare_with_dpdk()
    rx = [int(line.split()[1]) for line in log.read_text().splitlines() if line.strip().startswith("RX-packets:")]
    stats_now = PinnedFilter(pins).rule_stats(0)["total"]
    PinnedFilter(pins).unpin()
    assert rx and rx[-1] == sent["packets"], log.read_text()[-2000:]   # every feed packet reached AF_XDP
    assert got_kernel["packets"] == 0                                   # and none the kernel's socket
    assert stats_now["redirected"] == stats_now["matched"] == sent["packets"]
    assert commands.attached("feed-a", app) is None  # DPDK detached its program on exit
