"""Build tickwire's C extensions with cffi in API mode.

``dpdk._native``, the production extension: sources ``dpdk/src/*.c``; the
interface is the faces in ``dpdk/include/``, one header per concern, joined in the
order of ``FACES`` (cffi reads them with the preprocessor lines removed). Compiled
with ``-O3`` and warnings as errors against ``pkg-config libdpdk``.
``--asan`` builds its twin ``dpdk._native_asan`` (AddressSanitizer, for tests).

``dpdk._lab`` (``--lab``), the lab and diagnostics C kept out of the production
extension: sources ``dpdk/lab/*.c``, interface ``dpdk/lab/lab.h``, against
``libbpf`` only. ``make build`` builds all three (``python -m dpdk.build_ext``;
pkg-config and the install into place are xdp/build_ext.py's).
"""

from __future__ import annotations

import os
import pathlib
import sys

import cffi

from xdp.build_ext import WARNINGS, install
from xdp.build_ext import pkg_config as _pkg_config

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
INCLUDE = HERE / "include"
# The faces Python shares with C, in the order cffi reads them: a header comes
# after every header it uses (dpdk/include/tickwire.h includes them all for C).
FACES = ("events.h", "book.h", "feed.h", "risk.h", "strategy.h", "order_entry.h",
         "histogram.h", "recorder.h", "port.h", "worker.h")
LAB = HERE / "lab"
PKGS = ("libdpdk",)
LAB_PKGS = ("libbpf",)


def pkg_config(*args: str) -> list[str]:
    """libdpdk's flags (the worker also includes libbpf-dev's bpf_endian.h, through parsing.h)."""
    return _pkg_config(*args, pkgs=PKGS, fix="install libdpdk-dev and libbpf-dev")


# xdp/include: tw_meta.h, the metadata the XDP program puts in front of a frame (the
# worker reads it); lab_impair.h, what the impairment relay shares with its BPF half.
# Python reads the XDP headers through xdp's own binding (xdp/build_ext.py), not here.
XDP_INCLUDE = ROOT / "xdp" / "include"
SOURCE_PREAMBLE = '#include "tickwire.h"\n'


def cdef_text(header: pathlib.Path) -> str:
    """The header minus preprocessor lines: what pycparser can read."""
    return "\n".join(line for line in header.read_text().splitlines() if not line.lstrip().startswith("#"))


ASAN_FLAGS = ["-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer"]


def builder(asan: bool = False) -> cffi.FFI:
    """The extension; with ``asan`` a second one, ``dpdk._native_asan``, compiled
    with AddressSanitizer for the fuzz tests (load it with libasan preloaded and
    TICKWIRE_NATIVE=asan)."""
    ffi = cffi.FFI()
    ffi.cdef("\n".join(cdef_text(INCLUDE / name) for name in FACES))
    sources = sorted(str(p) for p in (HERE / "src").glob("*.c"))
    ffi.set_source(
        "dpdk._native_asan" if asan else "dpdk._native",
        SOURCE_PREAMBLE,
        sources=sources,
        include_dirs=[str(INCLUDE), str(XDP_INCLUDE)],
        extra_compile_args=[*(ASAN_FLAGS if asan else ["-O3"]), *WARNINGS, *pkg_config("--cflags")],
        extra_link_args=[*(["-fsanitize=address"] if asan else []), *pkg_config("--libs")],
    )
    return ffi


def lab_builder() -> cffi.FFI:
    """``dpdk._lab``: the lab's traffic sender and sink, its impairment relay, and
    the jitter probe of ``tickwire tune jitter``; not on the trading path."""
    ffi = cffi.FFI()
    ffi.cdef(cdef_text(LAB / "lab.h"))
    ffi.set_source(
        "dpdk._lab",
        '#include "lab.h"\n',
        sources=sorted(str(p) for p in LAB.glob("*.c")),
        include_dirs=[str(LAB), str(XDP_INCLUDE)],  # xdp/include: lab_impair.h, shared with its BPF half
        extra_compile_args=["-O3", *WARNINGS, *_pkg_config("--cflags", pkgs=LAB_PKGS)],
        extra_link_args=_pkg_config("--libs", pkgs=LAB_PKGS),
    )
    return ffi


def main() -> None:
    # intermediate files go to build/cffi[-asan|-lab]; the module is copied next to this file
    asan, lab = "--asan" in sys.argv[1:], "--lab" in sys.argv[1:]
    tmp = ROOT / "build" / ("cffi-lab" if lab else "cffi-asan" if asan else "cffi")
    install(lab_builder() if lab else builder(asan), tmp, HERE)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
