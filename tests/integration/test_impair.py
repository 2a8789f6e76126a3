"""Link impairment (the netem stand-in): each parameter does what it says on real traffic."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from appliance.lab import impair, net
from appliance.lab.impair import Impairment
from labtools import Sink, ping, send, tw, tw_json

pytestmark = pytest.mark.root

MESSAGES = 100_000  # synthetic 12-byte messages: about 1,000 MoldUDP64 packets


def impair_cli(lab, link, *flags):
    return tw_json("lab", "impair", link, "--prefix", lab.prefix, *flags)


def feed_a(lab, rate: int, receivers=("app",)):
    """Send MESSAGES on line A at ``rate`` packets/s; what was sent and what each receiver got."""
    sinks = [Sink(lab, role, "feed-a") for role in receivers]
    try:
        sent = send(lab, "feed-a", MESSAGES, rate)
        return sent, [s.result() for s in sinks]
    finally:
        for s in sinks:
            s.kill()


def test_delay_adds_to_the_round_trip_in_each_direction(lab):
    base = ping(lab.ns("app"), "198.18.3.1")
    assert len(base) == 5 and sorted(base)[2] < 5, base  # median: the first ping also resolves the neighbour
    impair_cli(lab, "order-app", "--delay", "15", "--direction", "both")
    rtt = ping(lab.ns("app"), "198.18.3.1")
    assert len(rtt) == 5
    assert min(rtt) >= 30, rtt           # 15 ms out + 15 ms back
    assert sorted(rtt)[2] < 45, rtt      # median: the relay adds little of its own


def test_replacing_an_impairment_keeps_one_relay_with_the_new_parameters(lab):
    impair_cli(lab, "order-app", "--delay", "40")
    impair_cli(lab, "order-app", "--delay", "10")
    rtt = ping(lab.ns("app"), "198.18.3.1", count=3)
    assert 10 <= min(rtt) < 30, rtt
    active = tw_json("lab", "status", "--prefix", lab.prefix)["impairments"]
    assert [(i["link"], i["direction"], i["params"]["delay_ms"]) for i in active] == [("order-app", "down", 10.0)]


def test_loss_drops_about_the_given_share_of_frames(lab):
    impair_cli(lab, "feed-a-app", "--loss", "20", "--seed", "11")
    sent, (got, other) = feed_a(lab, 20_000, ("app", "standby"))
    lost = 1 - got["packets"] / sent["packets"]
    assert 0.14 < lost < 0.26, (lost, got, sent)
    assert got["gaps"] > 0
    assert other["packets"] == sent["packets"] and other["gaps"] == 0  # standby's link is not impaired
    stats = impair.status(lab)[0]["stats"]
    assert stats["lost"] > 0 and stats["sent"] + stats["lost"] + stats["queued"] == stats["seen"]


def test_duplication_delivers_extra_copies_and_loses_nothing(lab):
    impair_cli(lab, "feed-a-app", "--duplicate", "10", "--seed", "5")
    sent, (got,) = feed_a(lab, 20_000)
    assert got["gaps"] == 0 and got["next_seq"] == MESSAGES + 1
    assert got["packets"] == sent["packets"] + got["duplicates"]
    assert 0.05 < got["duplicates"] / sent["packets"] < 0.15, got


def test_jitter_reorders_frames_without_losing_any(lab):
    impair_cli(lab, "feed-a-app", "--delay", "5", "--jitter", "4", "--seed", "3")
    sent, (got,) = feed_a(lab, 10_000)
    assert got["packets"] == sent["packets"] and got["next_seq"] == MESSAGES + 1
    assert got["gaps"] > 0 and got["duplicates"] > 0  # early arrivals open gaps that late ones fill


def test_reorder_sends_a_share_of_frames_ahead_of_the_delay(lab):
    impair_cli(lab, "feed-a-app", "--delay", "20", "--reorder", "30", "--seed", "9")
    sent, (got,) = feed_a(lab, 10_000)
    assert got["packets"] == sent["packets"] and got["gaps"] > 0
    stats = impair.status(lab)[0]["stats"]
    assert 0.2 < stats["reordered"] / stats["seen"] < 0.4, stats


def test_clear_delivers_what_the_relay_still_held(lab):
    impair_cli(lab, "feed-a-app", "--delay", "2000")
    sink = Sink(lab, "app", "feed-a", idle=1.0)
    try:
        sent = send(lab, "feed-a", 20_000, 0)  # all in flight for 2 s
        cleared = tw_json("lab", "clear", "feed-a-app", "--prefix", lab.prefix)
        got = sink.result()
    finally:
        sink.kill()
    assert cleared["cleared"][0]["link"] == "feed-a-app"
    assert got["packets"] == sent["packets"] and got["gaps"] == 0
    assert impair.status(lab) == []


def test_a_killed_relay_is_reported_and_clear_repairs_the_link(lab):
    applied = impair_cli(lab, "order-app", "--delay", "1")["applied"][0]
    os.kill(applied["pid"], signal.SIGKILL)
    psutil.Process(applied["pid"]).wait(timeout=5) if psutil.pid_exists(applied["pid"]) else None
    problem = impair.status(lab)[0]["problem"]
    assert "relay is gone" in problem
    assert ping(lab.ns("app"), "198.18.3.1", count=2, interval=0.2) == []  # frames are dropped now
    tw_json("lab", "clear", "order-app", "--prefix", lab.prefix)
    assert impair.status(lab) == []
    # ARP went FAILED while the link was dark: allow the kernel a retry to resolve it again
    assert len(ping(lab.ns("app"), "198.18.3.1", count=10, interval=0.3)) >= 5


def test_lab_down_ends_the_relays_and_their_programs(lab):
    applied = impair.apply(lab, "feed-b-standby", Impairment(delay=5), "both")
    pids = [a["pid"] for a in applied]
    assert all(psutil.pid_exists(p) for p in pids)
    net.down(lab.prefix)
    deadline = time.monotonic() + 5
    while any(psutil.pid_exists(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(psutil.pid_exists(p) for p in pids)


def test_status_renders_impairments_for_a_person(lab):
    impair_cli(lab, "ha", "--loss", "5")
    out = tw("lab", "status", "--prefix", lab.prefix).stdout
    assert "loss=5" in out
