"""Build the project's one C extension, ``dpdk._native``, with cffi in API mode.

Sources are ``dpdk/src/*.c``; the interface is ``dpdk/include/tickwire.h`` (cffi
reads it with the preprocessor lines removed). Compiled with ``-O3`` and warnings
as errors against ``pkg-config libdpdk`` and ``libbpf``. Run by ``make build``.
"""

from __future__ import annotations

import pathlib
import shlex
import shutil
import subprocess
import sys

import cffi

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
HEADER = HERE / "include" / "tickwire.h"
PKGS = ("libdpdk", "libbpf")


def pkg_config(*args: str) -> list[str]:
    try:
        out = subprocess.run(["pkg-config", *args, *PKGS], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        sys.exit(f"build_ext: pkg-config {' '.join(args)} {' '.join(PKGS)} failed ({detail}); "
                 "install libdpdk-dev and libbpf-dev (make setup does)")
    return shlex.split(out.stdout)


def cdef_text(header: pathlib.Path) -> str:
    """The header minus preprocessor lines: what pycparser can read."""
    return "\n".join(line for line in header.read_text().splitlines() if not line.lstrip().startswith("#"))


def builder() -> cffi.FFI:
    ffi = cffi.FFI()
    ffi.cdef(cdef_text(HEADER))
    sources = sorted(str(p) for p in (HERE / "src").glob("*.c"))
    ffi.set_source(
        "dpdk._native",
        '#include "tickwire.h"\n',
        sources=sources,
        include_dirs=[str(HERE / "include"), str(ROOT / "xdp" / "include")],
        extra_compile_args=["-O3", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
                            *pkg_config("--cflags")],
        extra_link_args=pkg_config("--libs"),
    )
    return ffi


def main() -> None:
    # intermediate files go to build/cffi; the module is copied next to this file
    tmp = ROOT / "build" / "cffi"
    built = pathlib.Path(builder().compile(tmpdir=str(tmp), verbose=False))
    shutil.copy2(built, HERE / built.name)


if __name__ == "__main__":
    import os

    os.chdir(ROOT)
    main()
