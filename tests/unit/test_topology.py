"""The lab plan: names fit the kernel, addresses are unique and reserved, errors name the fix."""

from __future__ import annotations

import ipaddress

import pytest

from appliance.lab import topology


def test_namespaces_carry_the_prefix():
    lab = topology.plan("t7")
    assert lab.namespaces == ("t7-exch", "t7-app", "t7-standby")


def test_every_interface_name_fits_the_kernel_limit():
    lab = topology.plan("abcdefgh")
    names = [e.ifname for link in lab.links for e in (link.down, link.up)] + [n.bridge for n in lab.networks]
    assert all(len(n) <= 15 for n in names)  # IFNAMSIZ - 1


def test_interface_names_are_unique_within_each_namespace():
    lab = topology.plan()
    seen: dict[str, set[str]] = {}
    for link in lab.links:
        for end in (link.down, link.up):
            assert end.ifname not in seen.setdefault(end.role, set()), (end.role, end.ifname)
            seen[end.role].add(end.ifname)
    for net in lab.networks:
        assert net.bridge not in seen[topology.EXCH]


def test_addresses_are_unique_and_inside_the_benchmarking_range():
    lab = topology.plan()
    reserved = ipaddress.ip_network("198.18.0.0/15")
    addrs = [e.address for link in lab.links for e in (link.down, link.up) if e.address]
    addrs += [n.address(topology.EXCH) for n in lab.networks]
    assert len(addrs) == len(set(addrs))
    assert all(ipaddress.ip_address(a) in reserved for a in addrs)


def test_feed_groups_are_administratively_scoped_multicast():
    lab = topology.plan()
    groups = [n for n in lab.networks if n.group]
    assert [n.name for n in groups] == ["feed-a", "feed-b"]
    for n in groups:
        assert ipaddress.ip_address(n.group) in ipaddress.ip_network("239.0.0.0/8")
        assert ipaddress.ip_address(n.group) in ipaddress.ip_network(n.group_route)


def test_each_feed_line_reaches_app_and_standby_through_its_own_link():
    lab = topology.plan()
    for line in ("feed-a", "feed-b"):
        for host in ("app", "standby"):
            link = lab.link(f"{line}-{host}")
            assert link.bridge == lab.network(line).bridge and link.up.role == host


@pytest.mark.parametrize("prefix", ["", "TW", "1ab", "a-b", "toolongpx", "t w"])
def test_a_bad_prefix_is_refused_with_the_rule(prefix):
    with pytest.raises(ValueError, match="lowercase letters or digits"):
        topology.plan(prefix)


def test_an_unknown_link_lists_the_real_ones():
    with pytest.raises(ValueError, match="feed-a-app, feed-a-standby"):
        topology.plan().link("feed-c")
