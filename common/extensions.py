"""The compiled extensions (cffi, built by ``make build``): loading one by its module name,
and the one error a missing one raises, whichever wing it belongs to (``dpdk._native``,
``dpdk._lab``, ``xdp._libbpf``), so the CLI says "run make build" for each alike."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ExtensionMissing", "load"]


class ExtensionMissing(ImportError):
    """An extension is not built."""


def load(module: str) -> tuple[Any, Any]:
    """``(ffi, lib)`` of the extension ``module`` (e.g. ``"dpdk._native"``); ExtensionMissing,
    naming it and the fix, when it is not built."""
    try:
        ext = importlib.import_module(module)
    except ImportError as exc:
        raise ExtensionMissing(f"the C extension {module} is not built ({exc}): run `make build`") from exc
    return ext.ffi, ext.lib
