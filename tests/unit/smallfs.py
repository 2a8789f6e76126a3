"""A real small filesystem to fill (tests/unit/test_retention.py, test_journal.py): a tmpfs of a
few hundred KiB mounted under the test's folder, unmounted whatever happens. Mounting needs root:
without it the test skips saying so."""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import subprocess
from collections.abc import Iterator

import pytest


@contextlib.contextmanager
def small_fs(where: pathlib.Path, size_kb: int) -> Iterator[pathlib.Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root: run this test as root (make test in CI does)")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: pathlib.Path, leave_bytes: int = 0) -> int:
    """Write path until the filesystem is full (less leave_bytes, rounded to pages): its size."""
    st = os.statvfs(path.parent)
    want = max(0, st.f_bavail * st.f_frsize - leave_bytes)
    n = 0
    with open(path, "wb", buffering=0) as f:
        while n < want:
            try:
                n += f.write(b"\0" * min(4096, want - n))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return n
