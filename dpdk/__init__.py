"""tickwire's C side: the cffi extension ``dpdk._native`` and its Python face.

The C sources live in ``dpdk/src/`` (named by stage), the one header Python
shares with C in ``dpdk/include/tickwire.h``; ``make build`` compiles them.
"""

from __future__ import annotations

import functools
import os
from typing import Any

__all__ = ["native", "NativeMissing", "dpdk_version"]


class NativeMissing(ImportError):
    """The extension is not built."""


@functools.cache
def native() -> tuple[Any, Any]:
    """``(ffi, lib)`` of the built extension; a clear error when it is not built.
    TICKWIRE_NATIVE=asan picks the AddressSanitizer build (libasan must be preloaded)."""
    asan = os.environ.get("TICKWIRE_NATIVE") == "asan"
    try:
        if asan:
            from dpdk import _native_asan as _native  # type: ignore[attr-defined]
        else:
            from dpdk import _native  # type: ignore[attr-defined]
    except ImportError as exc:
        name = "dpdk._native_asan" if asan else "dpdk._native"
        raise NativeMissing(f"the C extension {name} is not built ({exc}): run `make build`") from exc
    return _native.ffi, _native.lib


def dpdk_version() -> str:
    ffi, lib = native()
    return ffi.string(lib.tw_dpdk_version()).decode()
