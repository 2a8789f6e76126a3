"""Network namespaces by name: where they live, entering one, starting a command in one.

The lab's namespaces (``appliance.lab.net``), an interface in another namespace
(``tuning.nic``, ``appliance.feedfilter``) and a feed worker that runs beside its interface all
reach a namespace through these helpers, so ``/run/netns`` and the error for a missing
namespace are written once.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

NETNS_DIR = "/run/netns"


class NamespaceError(RuntimeError):
    """A namespace is missing, or what was to run in it failed; the message says what and
    how to fix it. ``appliance.lab.net.LabError`` is this class: one error for the lab."""


def netns_path(name: str) -> str:
    """The file `ip netns add` binds the namespace to."""
    return os.path.join(NETNS_DIR, name)


def exists(name: str) -> bool:
    return os.path.exists(netns_path(name))


def _require(name: str, fix: str = ": run `tickwire lab up`") -> None:
    if not exists(name):
        raise NamespaceError(f"network namespace {name} does not exist{fix}")


def existing_namespaces(prefix: str) -> list[str]:
    """The namespaces named ``<prefix>-...``, sorted."""
    # pyroute2 costs about 170 ms to import: only a command that reaches a namespace pays it
    from pyroute2 import netns

    return sorted(n for n in netns.listnetns() if n.startswith(f"{prefix}-"))


@contextmanager
def ns_handle(name: str) -> Iterator[Any]:
    """Netlink (a pyroute2 ``NetNS``) inside an existing namespace (never creates it)."""
    from pyroute2 import NetNS  # start-up time: see existing_namespaces

    _require(name)
    handle = NetNS(name, flags=0)
    try:
        yield handle
    finally:
        handle.close()


@contextmanager
def in_netns(name: str | None) -> Iterator[None]:
    """Enter network namespace ``name`` in the calling thread only (nothing when
    None): sockets made inside stay there, and the process keeps its mount
    namespace, so bpffs pins and sysfs stay those of the host."""
    if not name:
        yield
        return
    from pyroute2 import netns  # start-up time: see existing_namespaces

    _require(name, " (ip netns list)")
    netns.pushns(name)
    try:
        yield
    finally:
        netns.popns()


def run_in(namespace: str, argv: list[str], **kwargs: Any) -> subprocess.Popen:
    """Start ``argv`` inside ``namespace`` (via `ip netns exec`)."""
    _require(namespace)
    return subprocess.Popen(["ip", "netns", "exec", namespace, *argv], **kwargs)


__all__ = ["NETNS_DIR", "NamespaceError", "netns_path", "exists", "existing_namespaces", "ns_handle", "in_netns",
           "run_in"]
