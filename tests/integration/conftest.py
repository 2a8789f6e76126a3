"""Integration fixtures: each test gets a lab with a unique prefix, removed
afterwards even when the test fails (and checked to be gone)."""

from __future__ import annotations

import pytest

from appliance.lab import net, state, topology
from labtools import netns_list, unique_prefix


@pytest.fixture
def prefix():
    p = unique_prefix()
    yield p
    net.down(p)
    left = sorted(n for n in netns_list() if n.startswith(f"{p}-"))
    assert not left, f"namespaces left behind: {left}"
    assert not state.lab_dir(p).exists()


@pytest.fixture
def lab(prefix) -> topology.Lab:
    plan = topology.plan(prefix)
    net.up(plan)
    return plan
