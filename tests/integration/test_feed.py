"""A MoldUDP64 feed crosses the lab: exch publishes on lines A and B, app and standby receive."""

from __future__ import annotations

import pytest

from common import paths
from labtools import Sink, send

pytestmark = pytest.mark.root


def test_both_lines_reach_app_and_standby_complete_and_in_order(lab):
    sinks = {(role, line): Sink(lab, role, line) for role in ("app", "standby") for line in ("feed-a", "feed-b")}
    try:
        sent = {line: send(lab, line, 20_000, 20_000) for line in ("feed-a", "feed-b")}
        for (role, line), sink in sinks.items():
            got = sink.result()
            assert got["packets"] == sent[line]["packets"], (role, line)
            assert (got["messages"], got["first_seq"], got["next_seq"]) == (20_000, 1, 20_001), (role, line)
            assert (got["gaps"], got["duplicates"]) == (0, 0), (role, line)
            assert got["session"] == "TWLAB00001"
    finally:
        for s in sinks.values():
            s.kill()


def test_the_genuine_nasdaq_sample_crosses_the_lab(lab):
    sample = paths.sample_itch()
    if sample is None:
        pytest.skip("../shared/data/nasdaq/sample-first-1000.itch is absent (set TICKWIRE_SHARED_DATA)")
    sink = Sink(lab, "app", "feed-a")
    try:
        sent = send(lab, "feed-a", 1000, 0, "--source", str(sample))
        got = sink.result()
        assert got["messages"] == 1000 and got["packets"] == sent["packets"] and got["gaps"] == 0
        assert got["bytes"] == sent["bytes"]
    finally:
        sink.kill()


def test_a_host_not_joined_to_a_line_does_not_receive_the_other_line(lab):
    sink = Sink(lab, "app", "feed-b", idle=0.5, timeout=2)
    try:
        send(lab, "feed-a", 2_000, 20_000)
        assert sink.result()["packets"] == 0
    finally:
        sink.kill()
