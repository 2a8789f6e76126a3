"""tickwire's C side: the cffi extension ``dpdk._native`` and its Python face.

The C sources live in ``dpdk/src/`` (named by stage), the headers Python
shares with C in ``dpdk/include/`` (one header per concern); ``make build``
compiles them. The lab and diagnostics C (``dpdk/lab/``: traffic sender and
sink, link impairment relay, jitter probe) is its own extension, ``dpdk._lab``
(``lab_native()``), not part of the production one.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from common.extensions import ExtensionMissing, load

__all__ = ["native", "lab_native", "NativeMissing", "dpdk_version", "to_struct"]


NativeMissing = ExtensionMissing  # the name this package's callers know


@functools.cache
def native() -> tuple[Any, Any]:
    """``(ffi, lib)`` of the built extension; a clear error when it is not built.
    TICKWIRE_NATIVE=asan picks the AddressSanitizer build (libasan must be preloaded)."""
    return load("dpdk._native_asan" if os.environ.get("TICKWIRE_NATIVE") == "asan" else "dpdk._native")


@functools.cache
def lab_native() -> tuple[Any, Any]:
    """``(ffi, lib)`` of the lab and diagnostics extension ``dpdk._lab``; a clear
    error when it is not built."""
    return load("dpdk._lab")


def dpdk_version() -> str:
    ffi, lib = native()
    return ffi.string(lib.tw_dpdk_version()).decode()


def to_struct(ffi: Any, cdecl: str, table: Any, names: dict[str, dict[str, int]] | None = None) -> Any:
    """A dataclass of settings as a new C struct, field by field: named values
    (``names[field]``) become their codes, booleans 0/1; negatives are refused."""
    import dataclasses

    c = ffi.new(cdecl)
    for f in dataclasses.fields(table):
        v = getattr(table, f.name)
        if names and f.name in names:
            if v not in names[f.name]:
                raise ValueError(f"{f.name} {v!r}: must be one of {', '.join(names[f.name])}")
            v = names[f.name][v]
        v = int(v)
        if v < 0:
            raise ValueError(f"{f.name} {v}: must not be negative")
        setattr(c, f.name, v)
    return c
