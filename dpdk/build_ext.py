"""Build tickwire's C extensions with cffi in API mode.

``dpdk._native``, the production extension: sources ``dpdk/src/*.c``; the
interface is the faces in ``dpdk/include/``, one header per concern, joined in the
order of ``FACES`` (cffi reads them with the preprocessor lines removed). Compiled
with ``-O3`` and warnings as errors against ``pkg-config libdpdk`` and ``libbpf``.
``--asan`` builds its twin ``dpdk._native_asan`` (AddressSanitizer, for tests).

``dpdk._lab`` (``--lab``), the lab and diagnostics C kept out of the production
extension: sources ``dpdk/lab/*.c``, interface ``dpdk/lab/lab.h``, against
``libbpf`` only. ``make build`` builds all three.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import cffi

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
INCLUDE = HERE / "include"
# The faces Python shares with C, in the order cffi reads them: a header comes
# after every header it uses (dpdk/include/tickwire.h includes them all for C).
FACES = ("events.h", "book.h", "feed.h", "risk.h", "strategy.h", "order_entry.h",
         "histogram.h", "recorder.h", "port.h", "worker.h")
LAB = HERE / "lab"
PKGS = ("libdpdk", "libbpf")
LAB_PKGS = ("libbpf",)


def pkg_config(*args: str, pkgs: tuple[str, ...] = PKGS) -> list[str]:
    try:
        out = subprocess.run(["pkg-config", *args, *pkgs], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        sys.exit(f"build_ext: pkg-config {' '.join(args)} {' '.join(pkgs)} failed ({detail}); "
                 "install libdpdk-dev and libbpf-dev (make setup does)")
    return shlex.split(out.stdout)


XDP_INCLUDE = ROOT / "xdp" / "include"
# Headers the XDP programs share with Python: their structs, enums and integer
# #defines go into the cdef as they are (with the kernel's __uN types renamed).
SHARED_XDP_HEADERS = ("tw_meta.h", "tw_rules.h")
LIBBPF_CDEF = XDP_INCLUDE / "libbpf.cdef"
_KTYPES = {"__u64": "uint64_t", "__u32": "uint32_t", "__u16": "uint16_t", "__u8": "uint8_t"}
SOURCE_PREAMBLE = """\
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/types.h>
#include "tickwire.h"
#include "tw_meta.h"
#include "tw_rules.h"
"""


def cdef_text(header: pathlib.Path) -> str:
    """The header minus preprocessor lines: what pycparser can read."""
    return "\n".join(line for line in header.read_text().splitlines() if not line.lstrip().startswith("#"))


def shared_cdef(header: pathlib.Path) -> str:
    """A BPF-side header for cffi: integer #defines become ``#define NAME ...``
    (cffi takes the value from the compiler), other preprocessor lines go."""
    lines = []
    for line in header.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#define "):
            parts = stripped.split()
            if len(parts) >= 3:
                lines.append(f"#define {parts[1]} ...")
            continue
        if stripped.startswith("#"):
            continue
        lines.append(line)
    text = "\n".join(lines)
    for k, v in _KTYPES.items():
        text = re.sub(rf"\b{k}\b", v, text)
    return text


WARNINGS = ["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]
ASAN_FLAGS = ["-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer"]


def builder(asan: bool = False) -> cffi.FFI:
    """The extension; with ``asan`` a second one, ``dpdk._native_asan``, compiled
    with AddressSanitizer for the fuzz tests (load it with libasan preloaded and
    TICKWIRE_NATIVE=asan)."""
    ffi = cffi.FFI()
    ffi.cdef("\n".join(cdef_text(INCLUDE / name) for name in FACES))
    ffi.cdef(LIBBPF_CDEF.read_text())
    for name in SHARED_XDP_HEADERS:
        ffi.cdef(shared_cdef(XDP_INCLUDE / name))
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
        extra_compile_args=["-O3", *WARNINGS, *pkg_config("--cflags", pkgs=LAB_PKGS)],
        extra_link_args=pkg_config("--libs", pkgs=LAB_PKGS),
    )
    return ffi


def main() -> None:
    # intermediate files go to build/cffi[-asan|-lab]; the module is copied next to this file
    asan, lab = "--asan" in sys.argv[1:], "--lab" in sys.argv[1:]
    tmp = ROOT / "build" / ("cffi-lab" if lab else "cffi-asan" if asan else "cffi")
    built = pathlib.Path((lab_builder() if lab else builder(asan)).compile(tmpdir=str(tmp), verbose=False))
    # a new file renamed into place: a running process keeps the module it mapped
    staged = HERE / f".{built.name}.new"
    shutil.copy2(built, staged)
    os.replace(staged, HERE / built.name)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
