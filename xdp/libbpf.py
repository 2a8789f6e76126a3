"""xdp's own binding of the system libbpf: the cffi extension ``xdp._libbpf``
(built by ``make build`` from ``xdp/build_ext.py``), with the structs and constants
the BPF programs share with Python (``tw_meta.h``, ``tw_rules.h``)."""

from __future__ import annotations

import functools
from typing import Any

from common.extensions import load

__all__ = ["binding"]


@functools.cache
def binding() -> tuple[Any, Any]:
    """``(ffi, lib)`` of ``xdp._libbpf``; common.extensions.ExtensionMissing when it is not built."""
    return load("xdp._libbpf")
