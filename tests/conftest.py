"""Shared test setup: root-only tests skip with their reason only when not root."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return  # CI runs as root: everything runs
    skip = pytest.mark.skip(reason="needs root (network namespaces, BPF): run `make test` as root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
