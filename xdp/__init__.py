"""tickwire's BPF programs (``xdp/*.bpf.c``) and their Python side.

``make build`` compiles each program to ``build/xdp/NAME.bpf.o``; :func:`object_path`
finds one and says how to build it when it is missing.
"""

from __future__ import annotations

import pathlib

__all__ = ["BUILD_DIR", "PROGRAMS", "object_path"]

SOURCE_DIR = pathlib.Path(__file__).resolve().parent
BUILD_DIR = SOURCE_DIR.parent / "build" / "xdp"
# every program `make build` compiles, by name (xdp/NAME.bpf.c)
PROGRAMS = tuple(sorted(p.name.removesuffix(".bpf.c") for p in SOURCE_DIR.glob("*.bpf.c")))


def object_path(name: str) -> pathlib.Path:
    """Path of the compiled BPF object ``name`` (e.g. ``"lab_impair"``)."""
    path = BUILD_DIR / f"{name}.bpf.o"
    if not path.is_file():
        raise FileNotFoundError(f"BPF object {path} is missing: run `make build` (or `make setup`)")
    return path
