"""The run's events file (/run/tickwire/feed/NAME.events.jsonl), rotated and capped: the worker's
events as JSON lines for an operator's eyes (``tickwire status``, ``top``, ``feed stats``), on a
tmpfs that must not fill up over a trading day.

The live file is always the same path, so readers find it where they did. Past ``rotate_bytes``
it is renamed ``NAME.events.1.jsonl`` (an older ``.1`` becomes ``.2``, and so on), a new live file
is begun, and whatever goes past ``.KEEP`` is deleted. Lines are buffered in memory and written by
``flush`` (once per turn of the control loop) in one ``write``.

The file is a copy: the journal is the record. A disk error here (``ENOSPC`` on /run) never stops
the control loop: the lines that could not be written are counted, the file is cut back to its last
whole line, and ``alerts`` says so once (and once more when writing works again), for the loop to
journal and say.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import pathlib
from typing import Any

from appliance.config import model

BUFFER_BYTES = 1 << 16  # written out past this even between flushes


class EventLogError(OSError):
    pass


def rotated(path: str | pathlib.Path, i: int) -> pathlib.Path:
    """The i-th rotated file of a live ``NAME.events.jsonl``: ``NAME.events.I.jsonl`` (1 is the newest)."""
    p = pathlib.Path(path)
    return p.with_name(f"{p.stem}.{i}{p.suffix}")


def recent(path: str | pathlib.Path, n: int) -> list[dict[str, Any]]:
    """The last n events, the live file first, then the newest rotated one when the live file was just
    begun; a line cut short (being written) is left out."""
    out: list[dict[str, Any]] = []
    for p in (pathlib.Path(path), rotated(path, 1)):
        if len(out) >= n or n <= 0:
            break
        try:
            lines = p.read_bytes().splitlines()
        except FileNotFoundError:
            continue
        got = []
        for raw in lines[-(n - len(out)) - 1:]:
            with contextlib.suppress(ValueError):
                got.append(json.loads(raw))
        out = got[-(n - len(out)):] + out
    return out


class EventLog:
    """One run's events file: ``write`` a line, ``flush`` once a loop turn, ``close`` at the end."""

    def __init__(self, path: str | pathlib.Path, rotate_bytes: int, keep: int):
        if rotate_bytes <= 0 or keep < 1:
            raise ValueError(f"events file {path}: rotate past {rotate_bytes} bytes keeping {keep}: "
                             "give a size > 0 and keep >= 1 (journal.events_rotate_mb, journal.events_keep)")
        self.path = pathlib.Path(path)
        self.rotate_bytes, self.keep = rotate_bytes, keep
        self._buf: list[bytes] = []
        self._buffered = 0
        self._size = 0
        self.rotations = self.deleted = self.lost = self.rotate_errors = 0
        self.error: str | None = None
        self._lost_at_error = 0
        self._alerts: list[dict[str, Any]] = []
        self._fd = self._open()

    @classmethod
    def configured(cls, path: str | pathlib.Path, cfg: model.AppConfig | None) -> EventLog:
        """Sized from the YAML's journal.events_rotate_mb and journal.events_keep (their defaults without one)."""
        j = cfg.journal if cfg is not None else model.Journal()
        return cls(path, int(j.events_rotate_mb * (1 << 20)), j.events_keep)

    def _open(self) -> int:  # never through a symlink planted where the file goes
        try:
            return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
        except OSError as exc:
            raise EventLogError(exc.errno, f"the events file {self.path}: {exc.strerror}") from exc

    def write(self, event: dict[str, Any] | str) -> None:
        """One event (a dict, written as a JSON line) or one line of text."""
        line = (json.dumps(event) if isinstance(event, dict) else event.rstrip("\n")).encode() + b"\n"
        self._buf.append(line)
        self._buffered += len(line)
        if self._buffered >= BUFFER_BYTES:
            self.flush()

    def flush(self) -> None:
        """What is buffered, in one write; then a rotation when the live file passed its size."""
        if not self._buf:
            return
        data, lines = b"".join(self._buf), len(self._buf)
        self._buf, self._buffered = [], 0
        why = self._reopen() if self._fd < 0 else None
        if why is not None:
            self._lose(lines, f"cannot open it: {why}")
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)  # the end stays a whole line
                os.lseek(self._fd, self._size, os.SEEK_SET)
            self._lose(lines, f"{errno.errorcode.get(exc.errno or 0, exc.errno)} ({exc.strerror})", exc.errno)
            return
        self._size += len(data)
        if self.error is not None:
            n = self.lost - self._lost_at_error
            self._alerts.append({"alert": "events_ok", "path": str(self.path), "lost": n,
                                 "message": f"events file {self.path}: writing again; {n} lines were lost "
                                            "(the journal has them)"})
            self.error = None
        if self._size >= self.rotate_bytes:
            self._rotate()

    def _lose(self, lines: int, why: str, code: int | None = None) -> None:
        if self.error is None:
            self._lost_at_error = self.lost
            self._alerts.append({
                "alert": "events_lost", "path": str(self.path), "errno": code, "lost": lines,
                "message": f"events file {self.path}: cannot write: {why}; events go on into the journal only "
                           f"until there is room (df {self.path.parent}; journal.events_rotate_mb, "
                           "journal.events_keep)"})
        self.error = why
        self.lost += lines

    def _rotate(self) -> None:
        """NAME.events.jsonl -> .1, .1 -> .2 ...; past .KEEP deleted; a new live file begun."""
        try:
            for old in self._rotated_files():  # the oldest goes (and what a larger keep of an earlier run left)
                if int(old.name[len(self.path.stem) + 1:-len(self.path.suffix)]) >= self.keep:
                    old.unlink()
                    self.deleted += 1
            for i in range(self.keep - 1, 0, -1):
                src = rotated(self.path, i)
                if src.exists():
                    src.replace(rotated(self.path, i + 1))
            self.path.replace(rotated(self.path, 1))
        except OSError:
            self.rotate_errors += 1  # the live file goes on past its size; the next flush tries again
            return
        self.rotations += 1
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = -1
        self._reopen()

    def _rotated_files(self) -> list[pathlib.Path]:
        lead, tail = f"{self.path.stem}.", self.path.suffix
        return [p for p in self.path.parent.glob(f"{glob.escape(lead)}*{tail}")
                if p.name[len(lead):-len(tail)].isdigit()]

    def _reopen(self) -> str | None:
        """A new live file: None, or why not (the lines meanwhile are lost and counted)."""
        try:
            self._fd = self._open()
        except EventLogError as exc:
            return f"{errno.errorcode.get(exc.errno or 0, exc.errno)} ({exc.strerror})"
        self._size = 0
        return None

    def alerts(self) -> list[dict[str, Any]]:
        """What changed since the last call: ``events_lost`` when lines start being lost, ``events_ok`` when
        writing works again; each with a ``message`` to say."""
        out, self._alerts = self._alerts, []
        return out

    def stats(self) -> dict[str, Any]:
        return {"path": str(self.path), "bytes": self._size, "rotate_bytes": self.rotate_bytes, "keep": self.keep,
                "rotations": self.rotations, "deleted": self.deleted, "lost": self.lost,
                "rotate_errors": self.rotate_errors, "error": self.error}

    def close(self) -> None:
        self.flush()
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
