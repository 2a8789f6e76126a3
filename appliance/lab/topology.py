"""The lab's plan: namespaces, networks, links, addresses and feed groups.

Pure data, no side effects: :func:`plan` turns a prefix into the full topology
that :mod:`appliance.lab.net` builds and inspects.

::

    {prefix}-exch  (exchange simulator)           {prefix}-app         {prefix}-standby
      bridge fa 198.18.1.1  line A ─ fa-app ──────── feed-a .11
                                   └ fa-standby ─────────────────────── feed-a .12
      bridge fb 198.18.2.1  line B ─ fb-app ──────── feed-b .11
                                   └ fb-standby ─────────────────────── feed-b .12
      bridge oe 198.18.3.1  orders ─ oe-app ──────── order  .11
                                   ├ oe-standby ─────────────────────── order  .12
                                   └ oe-gm ─ gm .2 (the PTP grandmaster's port)
                                                     ha 198.18.4.1 ──── ha 198.18.4.2

The grandmaster's port is a veth pair inside the exchange namespace, one end in
the order-entry bridge: ptp4l needs software timestamps, which a bridge does not
give. Its address has no prefix route, so the exchange's own traffic to the
order network still leaves by the bridge.

Addresses come from 198.18.0.0/15 (RFC 2544, reserved for benchmarking) and
exist only inside the lab's namespaces, which have their own routing tables, so
two labs with different prefixes never collide. Feed groups are administratively
scoped multicast (239.0.0.0/8) routed out of the line's interface on each side.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re

PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
DEFAULT_PREFIX = "tw"

EXCH, APP, STANDBY = "exch", "app", "standby"
ROLES = (EXCH, APP, STANDBY)
HOSTS = (APP, STANDBY)  # the roles that hang off the exchange's networks
HOST_OCTET = {EXCH: 1, APP: 11, STANDBY: 12}
GM_OCTET = 2  # the exchange's PTP grandmaster on the order network


@dataclasses.dataclass(frozen=True)
class Network:
    """A broadcast domain: a bridge in the exchange namespace and one port per host."""

    name: str         # feed-a, feed-b, order
    bridge: str       # the bridge's name inside the exch namespace
    subnet: str       # e.g. 198.18.1.0/24
    host_ifname: str  # the interface name on the app and standby side
    purpose: str
    group: str | None = None      # multicast feed group on this network
    group_port: int | None = None

    def address(self, role: str) -> str:
        net = ipaddress.ip_network(self.subnet)
        return str(net.network_address + HOST_OCTET[role])

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    @property
    def group_route(self) -> str | None:
        """The /24 around the feed group, routed out of this network's interface."""
        if self.group is None:
            return None
        return str(ipaddress.ip_network(f"{self.group}/24", strict=False))


@dataclasses.dataclass(frozen=True)
class End:
    """One end of a veth pair."""

    role: str
    ifname: str
    address: str | None  # None: a bridge port, the bridge holds the address
    prefixlen: int
    prefix_route: bool = True  # False: the address without its subnet's route (noprefixroute)


@dataclasses.dataclass(frozen=True)
class Link:
    """A veth pair. ``down`` is the end nearer the exchange (or app, for ha)."""

    name: str  # what `tickwire lab impair LINK` takes: feed-a-app, order-standby, ha
    down: End  # frames leaving this end travel "down" towards the host
    up: End
    bridge: str | None  # the exch bridge the down end is a port of

    def end(self, direction: str) -> End:
        """The end whose egress carries traffic in ``direction`` (down or up)."""
        return self.down if direction == "down" else self.up


@dataclasses.dataclass(frozen=True)
class Lab:
    prefix: str
    networks: tuple[Network, ...]
    links: tuple[Link, ...]

    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(self.ns(r) for r in ROLES)

    def link(self, name: str) -> Link:
        for link in self.links:
            if link.name == name:
                return link
        names = ", ".join(link.name for link in self.links)
        raise ValueError(f"lab link {name!r} does not exist; the links are: {names}")

    def network(self, name: str) -> Network:
        for net in self.networks:
            if net.name == name:
                return net
        raise ValueError(f"lab network {name!r} does not exist")


NETWORKS = (
    Network("feed-a", "fa", "198.18.1.0/24", "feed-a", "market data line A",
            group="239.198.1.1", group_port=26400),
    Network("feed-b", "fb", "198.18.2.0/24", "feed-b", "market data line B",
            group="239.198.2.1", group_port=26400),
    Network("order", "oe", "198.18.3.0/24", "order", "order entry, retransmission, PTP"),
)
HA_SUBNET = "198.18.4.0/30"
PUBLISHER_PORT = 26400  # the UDP port the exchange publishes each feed line from: the appliance's rules take it


def check_prefix(prefix: str) -> str:
    if not PREFIX_RE.match(prefix):
        raise ValueError(
            f"--prefix {prefix!r} is not a valid lab prefix: use 1-8 lowercase letters or digits, "
            "starting with a letter (e.g. tw, t1a2)"
        )
    return prefix


def plan(prefix: str = DEFAULT_PREFIX) -> Lab:
    check_prefix(prefix)
    links = []
    for net in NETWORKS:
        for host in HOSTS:
            links.append(Link(
                name=f"{net.name}-{host}",
                down=End(EXCH, f"{net.bridge}-{host}", None, net.prefixlen),
                up=End(host, net.host_ifname, net.address(host), net.prefixlen),
                bridge=net.bridge,
            ))
    order = next(n for n in NETWORKS if n.name == "order")
    gm = ipaddress.ip_network(order.subnet).network_address + GM_OCTET
    links.append(Link(
        name="ptp-gm",
        down=End(EXCH, f"{order.bridge}-gm", None, order.prefixlen),
        up=End(EXCH, "gm", str(gm), order.prefixlen, prefix_route=False),
        bridge=order.bridge,
    ))
    ha = ipaddress.ip_network(HA_SUBNET)
    links.append(Link(
        name="ha",
        down=End(APP, "ha", str(ha.network_address + 1), ha.prefixlen),
        up=End(STANDBY, "ha", str(ha.network_address + 2), ha.prefixlen),
        bridge=None,
    ))
    return Lab(prefix=prefix, networks=NETWORKS, links=tuple(links))
