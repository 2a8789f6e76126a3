"""tickwire's BPF programs (``xdp/*.bpf.c``) and their Python side.

``make build`` compiles each program to ``build/xdp/NAME.bpf.o``; :func:`object_path`
finds one and says how to build it when it is missing.
"""

from __future__ import annotations

import pathlib

__all__ = ["BUILD_DIR", "object_path"]

BUILD_DIR = pathlib.Path(__file__).resolve().parent.parent / "build" / "xdp"


def object_path(name: str) -> pathlib.Path:
    """Path of the compiled BPF object ``name`` (e.g. ``"lab_impair"``)."""
    path = BUILD_DIR / f"{name}.bpf.o"
    if not path.is_file():
        raise FileNotFoundError(f"BPF object {path} is missing: run `make build` (or `make setup`)")
    return path
