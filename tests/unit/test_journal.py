"""The journal (appliance/journal.py): records come back as written, in sequence,
across segments; a torn tail is reported and cut, corruption is refused; after a
kill -9 at random moments every record reported durable is there; Parquet export
and DuckDB queries give back what was written."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest
from smallfs import small_fs

from appliance import cli
from appliance import journal as J

ROOT = pathlib.Path(__file__).parents[2]


def write(directory, n: int, **kw) -> list[J.Record]:
    with J.Journal(directory, **kw) as j:
        for i in range(n):
            j.append(J.KINDS[i % 3], {"user_ref": i + 1, "qty": 100 + i, "symbol": "TAAA"}, ts_ns=1000 + i)
    return list(J.read(directory))


def test_records_come_back_in_sequence_across_segments(tmp_path):
    recs = write(tmp_path, 500, fsync="always", segment_bytes=4096)
    assert [r.seq for r in recs] == list(range(1, 501))
    assert recs[7] == J.Record(8, 1007, "ack", {"qty": 107, "symbol": "TAAA", "user_ref": 8})
    assert len(J.segments(tmp_path)) > 5
    scan = J.verify(tmp_path)
    assert (scan.records, scan.first_seq, scan.last_seq, scan.torn_tail, scan.corrupt) == (500, 1, 500, None, [])
    with J.Journal(tmp_path) as j:  # reopened: numbering goes on
        assert j.recovery.last_seq == 500 and j.append("note", {"again": True}) == 501


def test_a_torn_tail_is_reported_cut_off_and_numbering_goes_on(tmp_path):
    rng = random.Random(7)
    write(tmp_path, 50, fsync="none")
    (seg,) = J.segments(tmp_path)
    whole = seg.read_bytes()
    ends = [J.FILE_HEADER.size]
    for r in J.read(tmp_path):
        ends.append(ends[-1] + J.REC.size + len(json.dumps(r.data, separators=(",", ":"), sort_keys=True)))
    assert ends[-1] == len(whole)
    for _ in range(30):
        cut = rng.randrange(ends[40] + 1, len(whole))
        seg.write_bytes(whole[:cut] + (os.urandom(rng.randrange(0, 40)) if rng.random() < 0.5 else b""))
        kept = sum(1 for e in ends[1:] if e <= cut)
        scan = J.verify(tmp_path)
        assert scan.records == kept and scan.corrupt == []
        if cut not in ends or seg.stat().st_size != cut:
            assert scan.torn_tail is not None and scan.torn_tail["offset"] == ends[kept]
        with J.Journal(tmp_path, fsync="always") as j:
            assert j.recovery.records == kept and j.append("note", {"after": kept}) == kept + 1
        assert [r.seq for r in J.read(tmp_path)] == list(range(1, kept + 2)) and J.verify(tmp_path).torn_tail is None


def test_corruption_before_the_end_is_refused_never_skipped(tmp_path):
    write(tmp_path, 20, fsync="none")
    (seg,) = J.segments(tmp_path)
    data = bytearray(seg.read_bytes())
    data[J.FILE_HEADER.size + J.REC.size + 3] ^= 0xFF  # inside the first record's payload
    seg.write_bytes(bytes(data))
    (problem,) = J.verify(tmp_path).corrupt or [J.verify(tmp_path).torn_tail]
    assert problem["why"] == "CRC mismatch" and problem["offset"] == J.FILE_HEADER.size
    write(tmp_path / "two", 10, fsync="none", segment_bytes=256)  # a bad record in an earlier segment
    first = J.segments(tmp_path / "two")[0]
    data = bytearray(first.read_bytes())
    data[-2] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(J.JournalError, match="CRC mismatch in .*journal-00000001.twj at byte .*cannot be trusted"):
        J.Journal(tmp_path / "two")


def test_one_writer_at_a_time_and_kinds_are_a_closed_set(tmp_path):
    with J.Journal(tmp_path) as j:
        with pytest.raises(J.JournalError, match="open for writing by another process"):
            J.Journal(tmp_path)
        with pytest.raises(J.JournalError, match="kind 'trade': give one of order, ack, fill"):
            j.append("trade", {})
    with pytest.raises(J.JournalError, match="fsync 'sometimes': give one of always, batch, none"):
        J.Journal(tmp_path, fsync="sometimes")


@pytest.mark.parametrize("fsync", ["always", "batch"])
def test_batch_and_always_report_what_is_durable(tmp_path, fsync):
    with J.Journal(tmp_path, fsync=fsync, interval=0.005) as j:
        seq = j.append("order", {"user_ref": 1})
        assert j.wait_durable(seq, timeout=2) and j.durable_seq >= seq


def test_after_kill_9_at_random_moments_every_durable_record_is_there(tmp_path):
    """50 runs into one journal, alternating fsync always and batch: a writer is
    killed -9 at a random moment; the next one must find every record the last one
    reported durable, in sequence, and go on after them."""
    rng = random.Random(2026)
    durable = 0
    for run in range(50):
        mode = ("always", "batch")[run % 2]
        child = subprocess.Popen([sys.executable, "-m", "appliance.journal", str(tmp_path), mode],
                                 stdout=subprocess.PIPE, text=True, cwd=ROOT)
        start = child.stdout.readline().split()
        assert start[0] == "start", start
        assert int(start[1]) >= durable  # the recovered journal holds at least what was durable
        deadline = time.monotonic() + rng.uniform(0.005, 0.15)
        os.set_blocking(child.stdout.fileno(), False)
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if line.startswith("durable"):
                durable = max(durable, int(line.split()[1]))
        child.send_signal(signal.SIGKILL)
        child.wait()
        for line in child.stdout.read().splitlines():  # what it said before it died counts too
            if line.startswith("durable"):
                durable = max(durable, int(line.split()[1]))
        scan = J.verify(tmp_path)
        assert scan.corrupt == [] and scan.first_seq == 1 and scan.last_seq >= durable
        assert scan.records == scan.last_seq  # no gap anywhere
    assert durable > 50


def test_export_to_parquet_and_query_with_duckdb_round_trip(tmp_path):
    with J.Journal(tmp_path / "j", fsync="none") as j:
        for i in range(1, 31):
            j.append("order", {"user_ref": i, "qty": 100, "side": "B" if i % 2 else "S", "symbol": "TAAA"})
            if i % 3 == 0:
                j.append("fill", {"user_ref": i, "qty": 40, "price": 1_000_000 + i})
        j.append("operator", {"action": "kill", "who": "ops", "reason": "test"})
    counts = J.export_parquet(tmp_path / "j", tmp_path / "pq")
    assert counts == {"records": 41, "order": 30, "fill": 10, "operator": 1}
    got = J.query(tmp_path / "pq", "select count(*), sum(qty) from fill")
    assert got == {"columns": ["count_star()", "sum(qty)"], "rows": [[10, 400]]}
    joined = J.query(tmp_path / "pq", "select o.side, sum(f.qty) from fill f join \"order\" o using (user_ref) "
                                      "group by o.side order by o.side")
    assert joined["rows"] == [["B", 200], ["S", 200]]
    assert J.query(tmp_path / "pq", "select kind, count(*) from records group by kind order by kind")["rows"] == \
        [["fill", 10], ["operator", 1], ["order", 30]]
    # a record's own fields keep their names beside the journal's sequence number
    with J.Journal(tmp_path / "k", fsync="none") as j:
        j.append("order", {"user_ref": 5, "seq": 1491, "ts_ns": 7})
    J.export_parquet(tmp_path / "k", tmp_path / "pk")
    assert J.query(tmp_path / "pk", 'select journal_seq, seq, ts_ns from "order"')["rows"] == [[1, 1491, 7]]
    with pytest.raises(J.JournalError, match="query failed: .*the tables are fill, operator, order, records"):
        J.query(tmp_path / "pq", "select * from fills")


def test_the_journal_commands(tmp_path, capsys):
    write(tmp_path / "j", 12, fsync="none")
    assert cli.main(["journal", "verify", "--dir", str(tmp_path / "j"), "--json"]) == 0
    v = json.loads(capsys.readouterr().out)
    assert (v["records"], v["last_seq"], v["torn_tail"]) == (12, 12, None)
    assert cli.main(["journal", "export", "--dir", str(tmp_path / "j"), "--parquet", str(tmp_path / "pq"),
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["records"] == 12
    assert cli.main(["journal", "query", "select count(*) as n from records", "--parquet", str(tmp_path / "pq"),
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"columns": ["n"], "rows": [[12]]}
    assert cli.main(["journal", "query", "select max(seq) as last from records", "--dir", str(tmp_path / "j"),
                     "--json"]) == 0  # straight from the journal: exported on the fly
    assert json.loads(capsys.readouterr().out)["rows"] == [[12]]
    seg = J.segments(tmp_path / "j")[0]
    seg.write_bytes(seg.read_bytes()[:-5])
    assert cli.main(["journal", "verify", "--dir", str(tmp_path / "j")]) == 0  # a torn tail is not corruption
    assert "torn tail" in capsys.readouterr().out


@pytest.mark.root
@pytest.mark.parametrize("segment_kb", [16, 1024])
def test_a_full_disk_raises_journal_error_and_a_reopen_recovers_every_acknowledged_record(tmp_path, segment_kb):
    """On a full filesystem append raises JournalError naming the folder and ENOSPC (never a bare
    OSError, never a record lost without a word); the file is cut back to its last whole record, so
    appends go on once space is freed, and a reopen finds every record whose append returned."""
    with small_fs(tmp_path / "fs", 256) as fs:
        spare = fs / "spare"
        spare.write_bytes(b"\0" * (64 << 10))  # freed later: the operator making room
        d = fs / "journal"
        acked: dict[int, dict] = {}
        j = J.Journal(d, fsync="always", segment_bytes=segment_kb << 10)
        with pytest.raises(J.JournalError) as err:
            for i in range(100_000):
                data = {"i": i, "pad": "x" * (i * 37 % 500)}
                acked[j.append("order", data)] = data
        assert f"journal {d}" in str(err.value) and "ENOSPC" in str(err.value)
        assert err.value.errno == errno.ENOSPC and err.value.directory == d and len(acked) > 100
        with pytest.raises(J.JournalError, match="ENOSPC"):  # still full: refused again, not dropped
            j.append("order", data)
        spare.unlink()
        for i in range(20):  # room again: numbering goes on after the last acknowledged record
            data = {"after": i}
            seq = j.append("note", data)
            assert seq == max(acked) + 1
            acked[seq] = data
        j.close()
        scan = J.verify(d)
        assert scan.corrupt == [] and scan.records == len(acked) == scan.last_seq
        assert {r.seq: r.data for r in J.read(d)} == acked
        with J.Journal(d) as again:
            assert again.recovery.corrupt == [] and again.append("note", {"reopened": True}) == max(acked) + 1


def test_a_failed_fsync_in_batch_mode_is_raised_by_the_next_append_never_swallowed(tmp_path, monkeypatch):
    """The batch fsync thread used to die on an EIO and leave the journal taking records that
    would never be durable: now the next append raises JournalError naming EIO, and so does
    every one after it (Linux may have dropped the dirty pages: nothing later is trustworthy)."""
    j = J.Journal(tmp_path, fsync="batch", interval=0.002)
    seq = j.append("order", {"user_ref": 1})
    assert j.wait_durable(seq, timeout=2)

    def eio(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(J.os, "fsync", eio)
    seq = j.append("order", {"user_ref": 2})
    assert not j.wait_durable(seq, timeout=2)
    for _ in range(2):
        with pytest.raises(J.JournalError, match=f"journal {tmp_path}: cannot fsync .*EIO") as err:
            j.append("order", {"user_ref": 3})
        assert err.value.errno == errno.EIO
    monkeypatch.undo()
    j.close()
