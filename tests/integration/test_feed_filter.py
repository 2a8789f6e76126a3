"""The feed filter in the kernel, row by row (bpf_prog_test_run_opts, Katran style):
each row is a packet, the verdict it must get, the one counter that must move, and
whether the metadata must be stamped. A failing row prints the packet."""

from __future__ import annotations

import secrets
import struct

import pytest
from scapy.all import ARP, IP, TCP, UDP, Dot1AD, Dot1Q, Ether, IPv6, Raw, hexdump

from xdp.filter import PIN_ROOT, XDP_DROP, XDP_PASS, FeedFilter

pytestmark = pytest.mark.root

FEED_A, FEED_B, DROPPED, PASSED = ("239.198.1.1", 26400), ("239.198.2.1", 26400), ("239.198.9.9", 5000), \
    ("239.198.8.8", 6000)
PAYLOAD = Raw(b"\x00" * 40)


def udp(dst, dport, **ip):
    return Ether() / IP(dst=dst, **ip) / UDP(sport=40000, dport=dport) / PAYLOAD


FEED = bytes(udp(*FEED_A))
ETH, IPH, UDPH = 14, 20, 8

# (description, frame, verdict, counter, stamped)
# counter: "rule:<field>" on the matched rule, or "filter:<field>" for unmatched frames
ROWS = [
    ("feed line A: redirect, no socket on the queue -> kernel", FEED, XDP_PASS, "rule:redirect_failed", True),
    ("feed line B: redirect with line B in the metadata", bytes(udp(*FEED_B)), XDP_PASS, "rule:redirect_failed",
     True),
    ("drop rule", bytes(udp(*DROPPED)), XDP_DROP, "rule:dropped", False),
    ("pass rule", bytes(udp(*PASSED)), XDP_PASS, "rule:passed", False),
    ("one VLAN tag", bytes(Ether() / Dot1Q(vlan=141) / IP(dst=FEED_A[0]) / UDP(dport=FEED_A[1]) / PAYLOAD),
     XDP_PASS, "rule:redirect_failed", True),
    ("two VLAN tags (802.1ad + 802.1Q)",
     bytes(Ether() / Dot1AD(vlan=10) / Dot1Q(vlan=141) / IP(dst=FEED_A[0]) / UDP(dport=FEED_A[1]) / PAYLOAD),
     XDP_PASS, "rule:redirect_failed", True),
    ("three VLAN tags: more than we parse",
     bytes(Ether() / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / IP(dst=FEED_A[0]) / UDP(dport=FEED_A[1])),
     XDP_PASS, "filter:malformed", False),
    ("IPv4 options before UDP", bytes(udp(*FEED_A, options=b"\x01\x01\x01\x00")), XDP_PASS,
     "rule:redirect_failed", True),
    ("feed group, other port", bytes(udp(FEED_A[0], 26401)), XDP_PASS, "filter:not_feed", False),
    ("feed port, other group", bytes(udp("239.198.1.2", FEED_A[1])), XDP_PASS, "filter:not_feed", False),
    ("TCP order entry", bytes(Ether() / IP(dst="198.18.3.1") / TCP(dport=15000)), XDP_PASS, "filter:not_feed",
     False),
    ("PTP event message", bytes(udp("224.0.1.129", 319)), XDP_PASS, "filter:not_feed", False),
    ("ARP", bytes(Ether() / ARP()), XDP_PASS, "filter:not_feed", False),
    ("IPv6 UDP to the feed port", bytes(Ether() / IPv6(dst="ff02::1") / UDP(dport=FEED_A[1]) / PAYLOAD), XDP_PASS,
     "filter:not_feed", False),
    ("first fragment (MF)", bytes(udp(*FEED_A, flags="MF")), XDP_PASS, "filter:fragments", False),
    ("later fragment (offset)", bytes(udp(*FEED_A, frag=100)), XDP_PASS, "filter:fragments", False),
    ("UDP length 0", FEED[:ETH + IPH + 4] + b"\x00\x00" + FEED[ETH + IPH + 6:], XDP_PASS, "filter:malformed",
     False),
    ("UDP length 7", FEED[:ETH + IPH + 4] + b"\x00\x07" + FEED[ETH + IPH + 6:], XDP_PASS, "filter:malformed",
     False),
    ("IHL 4 (shorter than an IPv4 header)", FEED[:ETH] + b"\x44" + FEED[ETH + 1:], XDP_PASS, "filter:malformed",
     False),
    ("IHL 15 past the end of a short frame", (FEED[:ETH] + b"\x4f" + FEED[ETH + 1:])[:ETH + 40], XDP_PASS,
     "filter:malformed", False),
    ("IP total length shorter than its header", FEED[:ETH + 2] + b"\x00\x10" + FEED[ETH + 4:], XDP_PASS,
     "filter:malformed", False),
    ("IP version 6 in an IPv4 ethertype", FEED[:ETH] + b"\x65" + FEED[ETH + 1:], XDP_PASS, "filter:malformed",
     False),
] + [
    (f"truncated at byte {n}", FEED[:n], XDP_PASS,
     "filter:malformed" if n < ETH + IPH + UDPH else "rule:redirect_failed", n >= ETH + IPH + UDPH)
    for n in (14, 15, 18, 33, 34, 35, 41, 42)  # inside IPv4, at its end, inside UDP, at its end
]
SHORTER_THAN_ETHERNET = (1, 13)


@pytest.fixture(scope="module")
def flt():
    f = FeedFilter(PIN_ROOT / f"test-{secrets.token_hex(3)}")
    f.add_rule(*FEED_A, "redirect", feed_id=11, line="A")
    f.add_rule(*FEED_B, "redirect", feed_id=12, line="B")
    f.add_rule(*DROPPED, "drop", feed_id=13)
    f.add_rule(*PASSED, "pass", feed_id=14)
    yield f
    f.close()
    f.unpin()
    assert not f.pin_dir.exists()


def snapshot(f: FeedFilter) -> dict[str, int]:
    out = {f"filter:{k}": v for k, v in f.filter_stats()["total"].items()}
    for r in f.rules():
        for k, v in f.rule_stats(r.rule_id)["total"].items():
            out[f"{r.group}:{r.port}:{k}"] = v
    return out


@pytest.mark.parametrize("desc, frame, verdict, counter, stamped", ROWS, ids=[r[0] for r in ROWS])
def test_row(flt, desc, frame, verdict, counter, stamped):
    before = snapshot(flt)
    res = flt.test_run(frame)
    after = snapshot(flt)
    moved = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    where = (f"\n{desc}: verdict {res.verdict_name}, counters moved {moved}, meta {res.meta.hex()}\n"
             f"{hexdump(frame, dump=True)}")
    assert res.verdict == verdict, where
    assert moved.pop("filter:seen") == 1, where
    if counter.startswith("rule:"):
        field = counter.split(":")[1]
        rule_moves = {k: v for k, v in moved.items() if not k.startswith("filter:")}
        matched = [k for k in rule_moves if k.endswith(":matched")]
        assert len(matched) == 1 and rule_moves[matched[0]] == 1, where
        prefix = matched[0].rsplit(":", 1)[0]
        assert rule_moves == {f"{prefix}:matched": 1, f"{prefix}:{field}": 1}, where
    else:
        assert moved == {counter: 1}, where
    assert bool(res.meta) == stamped, where
    if stamped:
        rx_ns, magic, feed_id, line, flags = struct.unpack("<QIHBB", res.meta)
        assert magic == 0x74776D31 and rx_ns > 0 and flags == 0, where
        assert (feed_id, line) in ((11, 0), (12, 1)), where
    assert res.data == frame, where  # the packet itself is never changed


def test_a_rule_change_takes_effect_without_reloading(flt):
    probe = bytes(udp("239.198.7.7", 7777))
    assert flt.test_run(probe).verdict == XDP_PASS
    rule = flt.add_rule("239.198.7.7", 7777, "drop", feed_id=99)
    assert flt.test_run(probe).verdict == XDP_DROP
    flt.add_rule("239.198.7.7", 7777, "pass", feed_id=99)  # replaced in place, same id
    assert [r.rule_id for r in flt.rules() if r.port == 7777] == [rule.rule_id]
    assert flt.test_run(probe).verdict == XDP_PASS
    assert flt.del_rule("239.198.7.7", 7777) and not flt.del_rule("239.198.7.7", 7777)


@pytest.mark.parametrize("n", SHORTER_THAN_ETHERNET)
def test_frames_shorter_than_ethernet_never_reach_the_program(flt, n):
    # the kernel refuses them before the program runs (a NIC never delivers them either)
    from xdp.filter import BpfError

    seen = flt.filter_stats()["total"]["seen"]
    with pytest.raises(BpfError, match="Invalid argument"):
        flt.test_run(FEED[:n])
    assert flt.filter_stats()["total"]["seen"] == seen


def test_the_hardware_timestamp_build_is_chosen_only_where_the_device_takes_it(lab):
    import socket

    from pyroute2 import netns

    from xdp import filter as xf

    netns.pushns(lab.ns("app"))
    try:
        veth = xf.hw_timestamps(socket.if_nametoindex("feed-a"), "feed-a")
        loopback = xf.hw_timestamps(socket.if_nametoindex("lo"), "lo")
    finally:
        netns.popns()
    assert veth["available"] and veth["object"].endswith("feed_filter_hwts.bpf.o")
    assert not loopback["available"] and loopback["object"].endswith("/feed_filter.bpf.o")
    assert "Operation not supported" in loopback["reason"]
