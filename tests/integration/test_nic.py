"""tickwire nic show / set on the lab's veth: what it has, what it changes, and
what it does not support, said plainly."""

from __future__ import annotations

import pytest

from labtools import tw, tw_json

pytestmark = pytest.mark.root


def test_show_reports_channels_and_says_what_veth_lacks(lab):
    r = tw_json("nic", "show", "feed-a", "--netns", lab.ns("app"))
    assert r["driver"]["driver"] == "veth"
    assert r["channels"]["status"] == "ok" and r["channels"]["rx_count"] >= 1
    assert r["rings"]["status"] == r["coalesce"]["status"] == "unsupported"
    assert "does not support" in r["rings"]["reason"]
    ts = r["timestamping"]
    assert ts["status"] == "ok" and ts["phc_index"] is None and ts["hardware"] is False
    assert "software-receive" in ts["capabilities"]
    assert r["numa_node"] is None and r["irqs"] == [] and "virtual device" in r["note"]
    assert r["offloads"]["status"] == "ok" and "tx-checksum-ip-generic" not in r["offloads"]["enabled"]


def test_set_changes_channels_and_reports_the_rest_unsupported(lab):
    app = lab.ns("app")
    r = tw_json("nic", "set", "feed-a", "--netns", app, "--channels", "2", "--rx-ring", "512", "--coalesce",
                "rx-usecs=10", "--ntuple", "udp dst 239.198.1.1:26400 queue 1")
    assert {k: v["status"] for k, v in r["results"].items()} == {
        "channels": "ok", "rx_ring": "unsupported", "coalesce": "unsupported", "ntuple": "unsupported"}
    shown = tw_json("nic", "show", "feed-a", "--netns", app)["channels"]
    assert (shown["rx_count"], shown["tx_count"]) == (2, 2)


@pytest.mark.parametrize("argv, message", [
    (["nic", "set", "feed-a", "--ntuple", "bogus"], "write it as 'udp dst GROUP:PORT queue Q'"),
    (["nic", "set", "feed-a", "--coalesce", "rx-usecs"], "write it as NAME=N"),
    (["nic", "set", "feed-a"], "nothing to set"),
    (["nic", "show", "nope"], "interface nope does not exist in namespace"),
])
def test_mistakes_are_named(lab, argv, message):
    res = tw(*argv, "--netns", lab.ns("app"))
    assert res.returncode == 2 and message in res.stderr
