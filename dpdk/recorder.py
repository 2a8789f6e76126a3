"""Market data kept (dpdk/src/recorder.c) from Python: every frame the worker
receives goes to pcap, one capture per line (A, B, and R for retransmission
answers) rotated at a size, or all of them to one file. The worker copies each
frame into a ring; the recorder's own thread writes the files and, with keep_mb,
deletes the folder's oldest closed captures once they total more (each named on
stderr, counted in deleted_files). Python only sets it up, reads its counters and
lists its files."""

from __future__ import annotations

import pathlib
from typing import Any

from dpdk import native

LINES = ("A", "B", "R")


class RecorderError(ValueError):
    pass


class Recorder:
    def __init__(self, directory: str | pathlib.Path | None = None, single: str | pathlib.Path | None = None,
                 rotate_mb: float = 256, prefix: str = "", ring_mb: int = 64, snaplen: int = 0, keep_mb: float = 0):
        """directory: per-line files there, rotated at rotate_mb, the oldest closed ones deleted past keep_mb
        in all (journal.market_data_keep_mb; 0: none deleted); single: one file for everything."""
        self.ffi, self.lib = ffi, lib = native()
        if (directory is None) == (single is None):
            raise RecorderError("give a folder for per-line captures or one file, not both")
        c = ffi.new("struct tw_recorder_config *")
        if directory is not None:
            d = pathlib.Path(directory)
            if not d.is_dir():
                raise RecorderError(f"{d}: no such folder for the market-data captures")
            _put(c.dir, str(d.resolve()), 256, "the folder")
        else:
            f = pathlib.Path(single).resolve()  # type: ignore[arg-type]
            if not f.parent.is_dir():
                raise RecorderError(f"{single}: the folder {f.parent} does not exist")
            _put(c.single, str(f), 256, "the file")
        _put(c.prefix, prefix, 64, "the prefix")
        if rotate_mb < 0:
            raise RecorderError(f"rotate at {rotate_mb} MB: give 1 or more (0: never)")
        c.rotate_bytes = int(rotate_mb * 1024 * 1024)
        if keep_mb < 0:
            raise RecorderError(f"keep {keep_mb} MB of captures: give more than 0 (journal.market_data_keep_mb; "
                                "0: keep every capture)")
        c.keep_bytes = int(keep_mb * 1024 * 1024)
        ring = 1 << max(12, (ring_mb * 1024 * 1024 - 1).bit_length())
        c.ring_bytes, c.snaplen = ring, snaplen
        ptr = lib.tw_recorder_create(c)
        if ptr == ffi.NULL:
            raise RecorderError(f"could not make the recorder ({ring >> 20} MiB ring)")
        self._r = ffi.gc(ptr, lib.tw_recorder_destroy)
        self.directory = pathlib.Path(directory).resolve() if directory is not None else None
        self.single = pathlib.Path(single).resolve() if single is not None else None
        self.prefix = prefix
        self.rotate_mb, self.keep_mb = rotate_mb, keep_mb

    def start(self) -> None:
        rc = self.lib.tw_recorder_start(self._r)
        if rc < 0:
            raise RecorderError(f"the recorder's writer thread did not start ({rc})")

    def stop(self) -> None:
        """Write what the ring holds and close the files."""
        self.lib.tw_recorder_stop(self._r)

    def frame(self, line: str, ts_ns: int, data: bytes) -> bool:
        """A frame as the worker hands one over (tests): False when the ring was full."""
        return self.lib.tw_recorder_frame(self._r, LINES.index(line), ts_ns, data, len(data)) == 0

    def stats(self) -> dict[str, Any]:
        st = self.ffi.new("struct tw_recorder_stats *")
        self.lib.tw_recorder_stats(self._r, st)
        return {"frames": dict(zip(LINES, list(st.frames), strict=True)),
                "bytes": dict(zip(LINES, list(st.bytes), strict=True)), "dropped": st.dropped, "files": st.files,
                "rotations": st.rotations, "write_errors": st.write_errors, "queued_bytes": st.queued_bytes,
                "deleted_files": st.deleted_files, "deleted_bytes": st.deleted_bytes}

    def files(self) -> list[pathlib.Path]:
        """The captures written, oldest first per line."""
        if self.single is not None:
            return [self.single] if self.single.exists() else []
        assert self.directory is not None
        lead = f"{self.prefix}-" if self.prefix else ""
        return sorted(p for line in LINES for p in self.directory.glob(f"{lead}{line}-*.pcap"))

    def report(self) -> dict[str, Any]:
        return {**self.stats(), "where": str(self.single or self.directory), "rotate_mb": self.rotate_mb,
                "keep_mb": self.keep_mb,
                "captures": [{"file": str(p), "bytes": p.stat().st_size} for p in self.files()]}


def _put(field: Any, text: str, size: int, what: str) -> None:
    raw = text.encode()
    if len(raw) >= size:
        raise RecorderError(f"{what} {text!r}: at most {size - 1} bytes")
    native()[0].memmove(field, raw, len(raw))
