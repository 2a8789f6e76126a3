"""The feed filter in the kernel, row by row (bpf_prog_test_run_opts, Katran style):
each row of xdp/fixtures.py's table is a packet, the verdict it must get, the one
counter that must move, and whether the metadata must be stamped. A failing row
prints the packet. bench/bench_xdp_filter.py times the same rows."""

from __future__ import annotations

import secrets
import socket
import struct

import pytest
from scapy.all import hexdump

from common.netns import in_netns
from xdp import filter as xf
from xdp.filter import PIN_ROOT, XDP_DROP, XDP_PASS, BpfError, FeedFilter
from xdp.fixtures import FEED, ROWS, SHORTER_THAN_ETHERNET, add_rules, udp

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def flt():
    f = FeedFilter(PIN_ROOT / f"test-{secrets.token_hex(3)}")
    add_rules(f)
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
        assert (feed_id, line) in ((11, 0), (12, 1), (15, 0)), where
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
    seen = flt.filter_stats()["total"]["seen"]
    with pytest.raises(BpfError, match="Invalid argument"):
        flt.test_run(FEED[:n])
    assert flt.filter_stats()["total"]["seen"] == seen


def test_the_hardware_timestamp_build_is_chosen_only_where_the_device_takes_it(lab):
    with in_netns(lab.ns("app")):
        veth = xf.hw_timestamps(socket.if_nametoindex("feed-a"), "feed-a")
        loopback = xf.hw_timestamps(socket.if_nametoindex("lo"), "lo")
    assert veth["available"] and veth["object"].endswith("feed_filter_hwts.bpf.o")
    assert not loopback["available"] and loopback["object"].endswith("/feed_filter.bpf.o")
    assert "Operation not supported" in loopback["reason"]


def test_a_rules_source_is_listed_and_can_be_set_and_taken_away_in_place(flt):
    group, port = "239.198.6.6", 26400
    spoof = bytes(udp(group, port, "198.18.6.66", 26400))
    real = bytes(udp(group, port, "198.18.6.1", 26400))
    rule = flt.add_rule(group, port, "drop", feed_id=98, source=("198.18.6.1", 26400))
    assert rule.source == "198.18.6.1:26400"
    assert [r.source for r in flt.rules() if r.port == port and r.group == group] == ["198.18.6.1:26400"]
    before = flt.rule_stats(rule.rule_id)["total"]
    assert flt.test_run(spoof).verdict == XDP_DROP and flt.test_run(real).verdict == XDP_DROP
    after = flt.rule_stats(rule.rule_id)["total"]
    assert (after["wrong_source"] - before["wrong_source"], after["dropped"] - before["dropped"]) == (1, 1)
    flt.add_rule(group, port, "pass", feed_id=98)  # no source: any, as before
    assert [r.source for r in flt.rules() if r.group == group] == [None]
    assert flt.test_run(spoof).verdict == XDP_PASS
    assert flt.del_rule(group, port)
    with pytest.raises(ValueError, match="--source 198.18.6:26400"):
        flt.add_rule(group, port, "redirect", source=("198.18.6", 26400))
