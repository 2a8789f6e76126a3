"""The journal: every fact the appliance learns or does, kept (DESIGN.md, principle 5).

Append-only segment files of sequence-numbered, CRC-checked records: orders,
acks, fills, cancels, rejects, risk events, operator actions, config changes and
the feed's events. The C worker never waits on it: Python writes what it drains
from the worker's event ring, under an fsync policy:

- ``always``: fsync after every record (a record is durable when append returns);
- ``batch``: a thread fsyncs every ``interval`` (durable up to ``durable_seq``);
- ``none``: the kernel writes back when it likes.

On disk, a segment ``journal-NNNNNNNN.twj`` starts with a 16-byte header (magic
``TWJ1``, version, the first sequence number) and holds records of a 28-byte
little-endian header and a JSON payload::

    u16 magic 0x4A54 ("TJ")  u16 kind  u32 payload length  u64 seq  u64 ts_ns (realtime)
    u32 crc32 of the header's other fields and the payload, then the payload

Opening a journal for writing scans it first: a record cut short or failing its
CRC at the very end (a write the machine did not finish) is a *torn tail*: it is
reported and cut off, and numbering goes on after the last whole record. A bad
record anywhere else is corruption: reported, never silently skipped.

A disk that refuses a write (ENOSPC, EIO) is a ``JournalError`` naming the folder and the errno,
never a record dropped without a word (the run's kill switch takes it from there). Records are
written with ``pwrite`` at the end the writer knows and a failed one is cut off again, so the end
is always a whole record: appends go on once there is room, and a reopen finds every record whose
append returned. A failed fsync (also the batch thread's) ends the writing: Linux may have dropped
the dirty pages, so every later append raises it.

``export_parquet`` writes one Parquet file per kind (``journal_seq``,
``journal_ts_ns`` and the record's fields as columns) and ``records.parquet``
(``seq``, ``ts_ns``, ``kind`` and the record as JSON in ``data``); ``query`` runs
SQL on them with DuckDB, each file a view named after it.

Why not a library: the format must be append-only with a per-record checksum and
a recoverable tail, readable without the writer, and cheap enough to sit behind
the event ring; SQLite's WAL or LMDB add a second durability model to reason
about and hide the torn tail this one must report. Queries are DuckDB's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import pathlib
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

# the on-disk kind is the index here + 1: new kinds go at the end
KINDS = ("order", "ack", "fill", "cancel", "reject", "risk", "operator", "config", "event", "note", "not_sent",
         "cancel_sent", "ptp", "alert", "bad_answer")  # new kinds at the end: a kind's id is its place, on disk
_KIND_ID = {k: i + 1 for i, k in enumerate(KINDS)}
FILE_MAGIC = b"TWJ1"
FILE_HEADER = struct.Struct("<4sIQ")          # magic, version, first seq
REC = struct.Struct("<HHIQQI")               # magic, kind, length, seq, ts_ns, crc
REC_MAGIC = 0x4A54
VERSION = 1
MAX_PAYLOAD = 1 << 20
FSYNC = ("always", "batch", "none")
DEFAULT_DIR = pathlib.Path("/var/lib/tickwire/journal")


class JournalError(RuntimeError):
    """What went wrong, naming the journal's folder; ``errno`` and ``directory`` are set when the disk
    refused a write or an fsync (the run's kill switch takes it from there)."""

    def __init__(self, message: str, *, errno: int | None = None, directory: pathlib.Path | None = None):
        super().__init__(message)
        self.errno, self.directory = errno, directory


@dataclasses.dataclass(frozen=True)
class Record:
    seq: int
    ts_ns: int
    kind: str
    data: dict[str, Any]


@dataclasses.dataclass
class Scan:
    """What reading a journal found."""
    segments: list[str]
    records: int = 0
    first_seq: int | None = None
    last_seq: int = 0
    torn_tail: dict[str, Any] | None = None   # the unfinished end: file, offset, bytes, why
    corrupt: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # bad records before the end

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _crc(kind: int, length: int, seq: int, ts: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(struct.pack("<HIQQ", kind, length, seq, ts)))


def encode(seq: int, ts_ns: int, kind: str, data: dict[str, Any]) -> bytes:
    if kind not in _KIND_ID:
        raise JournalError(f"journal record kind {kind!r}: give one of {', '.join(KINDS)}")
    payload = json.dumps(data, separators=(",", ":"), sort_keys=True, default=str).encode()
    if len(payload) > MAX_PAYLOAD:
        raise JournalError(f"journal record of {len(payload):,} bytes: at most {MAX_PAYLOAD:,}")
    k = _KIND_ID[kind]
    return REC.pack(REC_MAGIC, k, len(payload), seq, ts_ns, _crc(k, len(payload), seq, ts_ns, payload)) + payload


def segments(directory: str | pathlib.Path) -> list[pathlib.Path]:
    return sorted(pathlib.Path(directory).glob("journal-*.twj"))


def _read_segment(path: pathlib.Path, scan: Scan, last: bool) -> Iterator[tuple[Record, int]]:
    """(record, end offset) for each whole record; problems go into scan."""
    data = path.read_bytes()
    if len(data) < FILE_HEADER.size or data[:4] != FILE_MAGIC:
        problem = {"file": str(path), "offset": 0, "bytes": len(data), "why": "no segment header"}
        if last and len(data) < FILE_HEADER.size:
            scan.torn_tail = problem
        else:
            scan.corrupt.append(problem)
        return
    off = FILE_HEADER.size
    while off < len(data):
        why = None
        if len(data) - off < REC.size:
            why = "a record header cut short"
        else:
            magic, k, length, seq, ts, crc = REC.unpack_from(data, off)
            end = off + REC.size + length
            if magic != REC_MAGIC:
                why = "no record magic"
            elif end > len(data):
                why = "a record cut short"
            elif _crc(k, length, seq, ts, data[off + REC.size:end]) != crc:
                why = "CRC mismatch"
            elif k < 1 or k > len(KINDS):
                why = f"unknown kind {k}"
        if why:
            problem = {"file": str(path), "offset": off, "bytes": len(data) - off, "why": why}
            if last:
                scan.torn_tail = problem
            else:
                scan.corrupt.append(problem)
            return
        payload = data[off + REC.size:end]
        yield Record(seq, ts, KINDS[k - 1], json.loads(payload)), end
        off = end


def read(directory: str | pathlib.Path, scan: Scan | None = None) -> Iterator[Record]:
    """Every whole record, in order; ``scan`` (if given) collects counts and problems."""
    segs = segments(directory)
    scan = scan if scan is not None else Scan([str(s) for s in segs])
    scan.segments = [str(s) for s in segs]
    for i, seg in enumerate(segs):
        for rec, _end in _read_segment(seg, scan, last=i == len(segs) - 1):
            if scan.last_seq and rec.seq != scan.last_seq + 1:
                scan.corrupt.append({"file": str(seg), "offset": None, "bytes": 0,
                                     "why": f"sequence jumps from {scan.last_seq} to {rec.seq}"})
            scan.records += 1
            scan.first_seq = scan.first_seq or rec.seq
            scan.last_seq = rec.seq
            yield rec


def verify(directory: str | pathlib.Path) -> Scan:
    scan = Scan([])
    for _ in read(directory, scan):
        pass
    return scan


class Journal:
    """The writer: one per journal directory (an exclusive lock says so)."""

    def __init__(self, directory: str | pathlib.Path, fsync: str = "batch", interval: float = 0.01,
                 segment_bytes: int = 64 << 20):
        if fsync not in FSYNC:
            raise JournalError(f"journal fsync {fsync!r}: give one of {', '.join(FSYNC)}")
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fsync, self.interval, self.segment_bytes = fsync, interval, segment_bytes
        self._lockfd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lockfd)
            raise JournalError(f"journal {self.dir} is open for writing by another process") from exc
        self.recovery = self._recover()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.seq = self.recovery.last_seq
        self.durable_seq = self.seq
        self._written = self.seq
        self._stop = False
        self._broken: JournalError | None = None  # a failed fsync: nothing after it can be called durable
        self._retired: list[int] = []  # segments' fds the fsync thread may still be using: it closes them
        self._fd = -1
        self._size = 0
        self._syncer: threading.Thread | None = None
        try:
            self._open_segment()
        except OSError as exc:
            os.close(self._lockfd)
            raise self._failure("cannot open a segment", exc) from exc
        if fsync == "batch":
            self._syncer = threading.Thread(target=self._sync_loop, name="tw-journal-fsync", daemon=True)
            self._syncer.start()

    def _recover(self) -> Scan:
        """Scan what is there; cut a torn tail off so appends continue after the last whole record."""
        scan = verify(self.dir)
        if scan.corrupt:
            where = scan.corrupt[0]
            raise JournalError(f"journal {self.dir}: {where['why']} in {where['file']} at byte {where['offset']}: "
                               "the records after it cannot be trusted; move the directory aside and start a "
                               "new journal (tickwire journal verify shows every problem)")
        if scan.torn_tail:
            t = scan.torn_tail
            with open(t["file"], "r+b") as f:
                f.truncate(t["offset"] if t["offset"] >= FILE_HEADER.size else 0)
                f.flush()
                os.fsync(f.fileno())
            if t["offset"] < FILE_HEADER.size:
                os.unlink(t["file"])
        return scan

    def _failure(self, what: str, exc: OSError) -> JournalError:
        code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        fix = ("free space on its filesystem (df " + str(self.dir) + "; journal.market_data_keep_mb caps the kept "
               "captures); records acknowledged before this are kept" if exc.errno in (errno.ENOSPC, errno.EDQUOT)
               else "the disk under it failed: check dmesg; tickwire journal verify --dir " + str(self.dir))
        return JournalError(f"journal {self.dir}: {what}: {code} ({exc.strerror}); {fix}",
                            errno=exc.errno, directory=self.dir)

    def _open_segment(self) -> None:
        """The last segment when it has room (opening), else a new one, made whole (header, fsync, its
        name fsynced) before the old one is let go: a failure leaves no half-made segment behind."""
        segs = segments(self.dir)
        if segs and self._fd < 0 and segs[-1].stat().st_size < self.segment_bytes:
            path = segs[-1]
        else:
            path = self.dir / f"journal-{len(segs) + 1:08d}.twj"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            try:
                header = FILE_HEADER.pack(FILE_MAGIC, VERSION, self.seq + 1)
                if os.write(fd, header) != len(header):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                os.fsync(fd)
                dfd = os.open(self.dir, os.O_RDONLY)
                try:
                    os.fsync(dfd)  # the new name is durable too
                finally:
                    os.close(dfd)
            except OSError:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(path)
                raise
            os.close(fd)
        fd = os.open(path, os.O_WRONLY)  # written with pwrite at the end we know, never O_APPEND
        if self._fd >= 0:
            if self._syncer is not None:
                self._retired.append(self._fd)
            else:
                os.close(self._fd)
        self._fd = fd
        self._size = os.fstat(fd).st_size
        self.path = path

    def append(self, kind: str, data: dict[str, Any], ts_ns: int | None = None) -> int:
        """Write one record; its sequence number. With fsync always, it is durable on return.
        JournalError (naming the folder and the errno) when the disk refuses it: the segment is cut
        back to its last whole record, so nothing acknowledged is lost and a later append (once
        there is room) goes on cleanly; after a failed fsync every append raises."""
        with self._lock:
            if self._stop:
                raise JournalError(f"journal {self.dir} is closed", directory=self.dir)
            if self._broken is not None:
                raise JournalError(str(self._broken), errno=self._broken.errno, directory=self.dir)
            seq = self.seq + 1
            rec = encode(seq, ts_ns if ts_ns is not None else time.time_ns(), kind, data)
            if self._size + len(rec) > self.segment_bytes and self._size > FILE_HEADER.size:
                try:
                    if self.fsync != "none":
                        os.fsync(self._fd)
                        self.durable_seq = self._written
                except OSError as exc:
                    self._broken = self._failure(f"cannot fsync {self.path.name}", exc)
                    raise self._broken from exc
                try:
                    self._open_segment()
                except OSError as exc:
                    raise self._failure(f"cannot begin a new segment for record {seq}", exc) from exc
            at, view = self._size, memoryview(rec)
            try:
                while view:
                    n = os.pwrite(self._fd, view, at)
                    view, at = view[n:], at + n
            except OSError as exc:
                err = self._failure(f"cannot write record {seq} to {self.path.name}", exc)
                try:
                    os.ftruncate(self._fd, self._size)  # the part written goes: the end is a whole record
                except OSError:
                    self._broken = err  # left as a torn tail, which a reopen cuts; nothing goes after it
                raise err from exc
            self._size += len(rec)
            self.seq = self._written = seq
            if self.fsync == "always":
                try:
                    os.fsync(self._fd)
                except OSError as exc:
                    self._broken = self._failure(f"cannot fsync record {seq}", exc)
                    self._cond.notify_all()
                    raise self._broken from exc
                self.durable_seq = seq
                self._cond.notify_all()
            return seq

    def _sync_loop(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._lock:
                if self._stop:
                    return
                target, fd = self._written, self._fd
                retired, self._retired = self._retired, []
            try:
                if target > self.durable_seq:
                    os.fsync(fd)
            except OSError as exc:  # never a silent end: the next append raises it, wait_durable says False
                with self._lock:
                    self._broken = self._failure("cannot fsync (batch)", exc)
                    self._cond.notify_all()
                return
            finally:
                for old in retired:  # fsynced when the segment was rolled over
                    os.close(old)
            with self._lock:
                self.durable_seq = max(self.durable_seq, target)
                self._cond.notify_all()

    def wait_durable(self, seq: int, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.durable_seq >= seq or self.fsync == "none"
                                       or self._broken is not None, timeout) and self._broken is None

    @property
    def broken(self) -> JournalError | None:
        """The failed fsync that ended this journal's writing, if one did."""
        return self._broken

    def close(self) -> None:
        """Flush and close; JournalError when the last fsync fails (the files are closed anyway)."""
        with self._lock:
            if self._stop:
                return
            self._stop = True
            err = None
            if self.fsync != "none" and self._broken is None:
                try:
                    os.fsync(self._fd)
                    self.durable_seq = self._written
                except OSError as exc:
                    err = self._failure("cannot fsync on close", exc)
            os.close(self._fd)
        if self._syncer:
            self._syncer.join(timeout=2)
        for old in self._retired:
            os.close(old)
        self._retired = []
        os.close(self._lockfd)
        if err is not None:
            raise err

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---- the worker's events as journal records --------------------------------------------------------

_ORDER_KINDS = {"O": "order", "A": "ack", "E": "fill", "C": "cancel", "J": "reject", "N": "not_sent",
                "X": "cancel_sent"}


def kind_of(event: dict[str, Any]) -> str:
    """The journal kind of a worker event (dpdk.books.event_dict)."""
    if event["event"] == "order":
        return _ORDER_KINDS.get(event["type"], "event")
    if event["event"] == "risk_denied":
        return "risk"
    if event["event"] == "bad_answer":  # an impossible venue answer, with its bytes as hex (C)
        return "bad_answer"
    if event["event"] == "command":  # a kill, resume or reload the worker carried out (who: the kernel's uid)
        return "operator"
    return "event"


# ---- Parquet and SQL ---------------------------------------------------------------------------------


def export_parquet(directory: str | pathlib.Path, out: str | pathlib.Path) -> dict[str, int]:
    """One Parquet file per kind (journal_seq, journal_ts_ns and the fields as columns) and records.parquet."""
    # pyarrow costs about 60 ms to import: the worker and every other command that opens the journal skip it
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict[str, Any]]] = {}
    everything: list[dict[str, Any]] = []
    scan = Scan([])
    for r in read(directory, scan):
        rows.setdefault(r.kind, []).append({"journal_seq": r.seq, "journal_ts_ns": r.ts_ns, **{
            k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in r.data.items()}})
        everything.append({"seq": r.seq, "ts_ns": r.ts_ns, "kind": r.kind, "data": json.dumps(r.data)})
    counts = {}
    for old in out.glob("*.parquet"):
        old.unlink()
    schema = pa.schema([("seq", pa.uint64()), ("ts_ns", pa.uint64()), ("kind", pa.string()), ("data", pa.string())])
    pq.write_table(pa.Table.from_pylist(everything, schema=schema), out / "records.parquet")
    counts["records"] = len(everything)
    for kind, items in rows.items():
        keys: dict[str, None] = {}
        for it in items:
            keys.update(dict.fromkeys(it))
        table = pa.Table.from_pylist([{k: it.get(k) for k in keys} for it in items])
        pq.write_table(table, out / f"{kind}.parquet")
        counts[kind] = len(items)
    if scan.torn_tail or scan.corrupt:
        counts["_problems"] = len(scan.corrupt) + (1 if scan.torn_tail else 0)
    return counts


def query(parquet_dir: str | pathlib.Path, sql: str) -> dict[str, Any]:
    """SQL over the exported files: each ``NAME.parquet`` is a view ``NAME``."""
    import duckdb  # about 150 ms to import: only `journal query` pays it

    files = sorted(pathlib.Path(parquet_dir).glob("*.parquet"))
    if not files:
        raise JournalError(f"{parquet_dir}: no Parquet files; export the journal first "
                           "(tickwire journal export --parquet DIR)")
    con = duckdb.connect(":memory:")
    try:
        for f in files:
            con.execute(f"CREATE VIEW \"{f.stem}\" AS SELECT * FROM read_parquet('{f}')")
        try:
            cur = con.execute(sql)
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            raise JournalError(f"query failed: {first}; the tables are {', '.join(f.stem for f in files)}") from exc
        columns = [d[0] for d in cur.description] if cur.description else []
        return {"columns": columns, "rows": [list(r) for r in cur.fetchall()]}
    finally:
        con.close()


# ---- crash test child (tests/unit/test_journal.py) ---------------------------------------------------


def _crash_child(directory: str, fsync: str) -> None:
    """Append records for ever, printing each durable sequence number as it becomes so."""
    j = Journal(directory, fsync=fsync, interval=0.002, segment_bytes=64 << 10)
    print(f"start {j.seq}", flush=True)
    told = j.durable_seq
    i = 0
    while True:
        i += 1
        j.append(KINDS[i % len(KINDS)], {"i": i, "pad": "x" * (i % 300)})
        time.sleep(0.0001)  # a writer's pace, not a disk benchmark: the kill lands anywhere in the stream
        if j.durable_seq > told:
            told = j.durable_seq
            print(f"durable {told}", flush=True)


if __name__ == "__main__":
    import sys

    _crash_child(sys.argv[1], sys.argv[2])
