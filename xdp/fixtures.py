"""The feed filter's packet-fixture table (Katran style): each row is a frame, the
verdict the filter must give it, the one counter that must move, and whether the
metadata must be stamped. tests/integration/test_feed_filter.py runs every row
through the kernel (bpf_prog_test_run_opts) and bench/bench_xdp_filter.py times
the same rows, so the rows that are tested are the rows that are measured.

The rules the rows expect are RULES: load them with FeedFilter.add_rule.
"""

from __future__ import annotations

from typing import NamedTuple

from scapy.all import ARP, IP, TCP, UDP, Dot1AD, Dot1Q, Ether, IPv6, Raw

from xdp.filter import XDP_DROP, XDP_PASS

FEED_A, FEED_B, DROPPED, PASSED = ("239.198.1.1", 26400), ("239.198.2.1", 26400), ("239.198.9.9", 5000), \
    ("239.198.8.8", 6000)
GUARDED = ("239.198.3.1", 26400)          # a line whose rule names its publisher
PUBLISHER = ("198.18.3.1", 26400)         # ... this one: anyone else is dropped (wrong_source)
PAYLOAD = Raw(b"\x00" * 40)
ETH, IPH, UDPH = 14, 20, 8

# (group, port, action, feed_id, line, source): the rules ROWS are written against
RULES = (
    (*FEED_A, "redirect", 11, "A", None),
    (*FEED_B, "redirect", 12, "B", None),
    (*DROPPED, "drop", 13, "A", None),
    (*PASSED, "pass", 14, "A", None),
    (*GUARDED, "redirect", 15, "A", PUBLISHER),
)


class Row(NamedTuple):
    desc: str
    frame: bytes
    verdict: int
    counter: str   # "rule:<field>" on the matched rule, or "filter:<field>" for unmatched frames
    stamped: bool  # the metadata area carries the arrival stamp


def udp(dst: str, dport: int, src: str | None = None, sport: int = 40000, **ip) -> Ether:
    if src is not None:
        ip["src"] = src
    return Ether() / IP(dst=dst, **ip) / UDP(sport=sport, dport=dport) / PAYLOAD


FEED = bytes(udp(*FEED_A))

ROWS = [Row(*r) for r in [
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
    ("guarded line from its publisher: redirect", bytes(udp(*GUARDED, *PUBLISHER)), XDP_PASS,
     "rule:redirect_failed", True),
    ("guarded line from another address (a spoof): drop", bytes(udp(*GUARDED, "198.18.3.66", PUBLISHER[1])),
     XDP_DROP, "rule:wrong_source", False),
    ("guarded line from the publisher's address, another port: drop",
     bytes(udp(*GUARDED, PUBLISHER[0], 40000)), XDP_DROP, "rule:wrong_source", False),
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
]]
SHORTER_THAN_ETHERNET = (1, 13)  # the kernel refuses these before the program runs


def add_rules(f) -> None:
    """Load RULES into a FeedFilter."""
    for group, port, action, feed_id, line, source in RULES:
        f.add_rule(group, port, action, feed_id=feed_id, line=line, source=source)
