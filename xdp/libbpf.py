"""xdp's own binding of the system libbpf: the cffi extension ``xdp._libbpf``
(built by ``make build`` from ``xdp/build_ext.py``), with the structs and constants
the BPF programs share with Python (``tw_meta.h``, ``tw_rules.h``)."""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["binding", "LibbpfMissing"]


class LibbpfMissing(ImportError):
    """The binding is not built."""


@functools.cache
def binding() -> tuple[Any, Any]:
    """``(ffi, lib)`` of ``xdp._libbpf``; a clear error when it is not built."""
    try:
        from xdp import _libbpf  # type: ignore[attr-defined]
    except ImportError as exc:
        raise LibbpfMissing(f"the C extension xdp._libbpf is not built ({exc}): run `make build`") from exc
    return _libbpf.ffi, _libbpf.lib
