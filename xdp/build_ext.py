"""Build xdp's own libbpf binding, ``xdp._libbpf``, with cffi in API mode.

The interface is ``xdp/include/libbpf.cdef`` (the part of the system libbpf that
xdp/ calls) and the headers the BPF programs share with Python (``tw_meta.h``,
``tw_rules.h``: their structs, enums and integer #defines). No C sources of its
own: cffi checks the declarations against <bpf/*.h> and links ``pkg-config
libbpf``, warnings as errors. Run by ``make build`` (``python -m xdp.build_ext``);
loaded by :mod:`xdp.libbpf`.

:func:`pkg_config` and :func:`install` serve dpdk/build_ext.py too (dpdk may import
xdp): asking pkg-config for a build's flags, and putting a built module in place.
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
LIBBPF_CDEF = INCLUDE / "libbpf.cdef"
# Headers the XDP programs share with Python: their structs, enums and integer
# #defines go into the cdef as they are (with the kernel's __uN types renamed).
SHARED_HEADERS = ("tw_meta.h", "tw_rules.h")
WARNINGS = ["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]  # every extension's
_KTYPES = {"__u64": "uint64_t", "__u32": "uint32_t", "__u16": "uint16_t", "__u8": "uint8_t"}
SOURCE_PREAMBLE = """\
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/types.h>
#include "tw_meta.h"
#include "tw_rules.h"
"""


def pkg_config(*args: str, pkgs: tuple[str, ...] = ("libbpf",), fix: str = "install libbpf-dev") -> list[str]:
    """pkg-config's answer for pkgs; a missing package stops the build saying `fix`."""
    try:
        out = subprocess.run(["pkg-config", *args, *pkgs], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        sys.exit(f"build_ext: pkg-config {' '.join(args)} {' '.join(pkgs)} failed ({detail}); "
                 f"{fix} (make setup does)")
    return shlex.split(out.stdout)


def install(ffi: cffi.FFI, tmpdir: pathlib.Path, into: pathlib.Path) -> None:
    """Compile in tmpdir (the intermediate files), then put the module in `into` under a new
    name renamed into place: a running process keeps the module it mapped."""
    built = pathlib.Path(ffi.compile(tmpdir=str(tmpdir), verbose=False))
    staged = into / f".{built.name}.new"
    shutil.copy2(built, staged)
    os.replace(staged, into / built.name)


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


def builder() -> cffi.FFI:
    ffi = cffi.FFI()
    ffi.cdef(LIBBPF_CDEF.read_text())
    for name in SHARED_HEADERS:
        ffi.cdef(shared_cdef(INCLUDE / name))
    ffi.set_source(
        "xdp._libbpf",
        SOURCE_PREAMBLE,
        include_dirs=[str(INCLUDE)],
        extra_compile_args=["-O2", *WARNINGS, *pkg_config("--cflags")],
        extra_link_args=pkg_config("--libs"),
    )
    return ffi


def main() -> None:
    install(builder(), ROOT / "build" / "cffi-xdp", HERE)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
