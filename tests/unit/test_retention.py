"""Disk and tmpfs that fill up (issue 16): the run's events file rotates at its size with the
configured number kept and the live file always at its path; a full /run loses lines counted and
said, never the control loop; the disk watcher alerts once when a real small filesystem falls below
warn_free_pct and once when it clears."""

from __future__ import annotations

import json
import os
import pathlib
import re

import pytest
from smallfs import fill, small_fs

from appliance.config import model
from appliance.diskwatch import DiskWatch
from appliance.feed import eventlog
from appliance.feed.eventlog import EventLog
from appliance.feed.live import make_recorder
from appliance.feed.settings import from_config


def ev(i: int) -> dict:
    return {"event": "order", "i": i, "pad": "x" * 80}


def test_the_events_file_rotates_at_its_size_keeps_the_configured_number_and_the_live_path_always_exists(tmp_path):
    live = tmp_path / "w.events.jsonl"
    (tmp_path / "w.events.7.jsonl").write_text("{}\n")  # a larger keep of an earlier run left it: it goes too
    log = EventLog(live, rotate_bytes=4096, keep=3)
    written = []
    for i in range(400):
        log.write(ev(i))
        written.append(i)
        if i % 7 == 0:
            log.flush()
            assert live.exists() and live.stat().st_size < 4096 + 8 * 110  # past its size only until the flush
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["w.events.1.jsonl", "w.events.2.jsonl", "w.events.3.jsonl", "w.events.jsonl"]
    st = log.stats()
    assert st["rotations"] >= 8 and st["lost"] == 0 and st["error"] is None
    # newest last, oldest deleted: the kept files hold the most recent events, in order, none twice
    kept = [json.loads(x)["i"] for p in ("w.events.3.jsonl", "w.events.2.jsonl", "w.events.1.jsonl", "w.events.jsonl")
            for x in (tmp_path / p).read_text().splitlines()]
    assert kept == written[-len(kept):] and len(kept) > 100
    assert [e["i"] for e in eventlog.recent(live, 5)] == written[-5:]
    # a reader right after a rotation still sees the last events (the live file is new and short)
    log = EventLog(live, rotate_bytes=200, keep=1)
    log.write(ev(1))
    log.write(ev(2))
    log.flush()
    assert live.exists() and live.stat().st_size == 0
    assert [e["i"] for e in eventlog.recent(live, 2)] == [1, 2]
    log.close()


def test_the_events_file_is_sized_from_the_yaml():
    j = model.Journal(events_rotate_mb=2, events_keep=6)
    cfg = type("Cfg", (), {"journal": j})()
    log = EventLog.configured("/dev/null", cfg)
    assert (log.rotate_bytes, log.keep) == (2 << 20, 6)
    log.close()
    assert (EventLog.configured("/dev/null", None).rotate_bytes, EventLog.configured("/dev/null", None).keep) \
        == (64 << 20, 4)  # the model's defaults without a config


@pytest.mark.root
def test_a_full_tmpfs_loses_events_counted_and_said_once_and_writing_resumes(tmp_path):
    with small_fs(tmp_path / "run", 64) as fs:
        live = fs / "w.events.jsonl"
        log = EventLog(live, rotate_bytes=1 << 20, keep=2)
        filler = fs / "filler"
        fill(filler)
        for i in range(100):
            log.write(ev(i))
        log.flush()  # no exception: the control loop goes on
        for i in range(100, 200):
            log.write(ev(i))
        log.flush()
        (lost,) = log.alerts()
        assert lost["alert"] == "events_lost" and "ENOSPC" in lost["message"] and str(live) in lost["message"]
        assert log.stats()["lost"] == 200 and log.alerts() == []  # said once, counted always
        assert all(json.loads(x) for x in live.read_text().splitlines())  # whole lines only
        filler.unlink()
        log.write(ev(200))
        log.flush()
        (ok,) = log.alerts()
        assert ok["alert"] == "events_ok" and ok["lost"] == 200
        log.close()
        assert json.loads(live.read_text().splitlines()[-1])["i"] == 200


@pytest.mark.root
def test_the_free_space_alert_fires_once_below_the_threshold_and_clears_on_a_real_small_filesystem(tmp_path):
    with small_fs(tmp_path / "fs", 1024) as fs, small_fs(tmp_path / "other", 256) as other:  # not the host's /tmp
        (fs / "journal").mkdir()
        watch = DiskWatch({"journal": fs / "journal", "market data": fs / "journal" / "market-data",
                           "runtime": other}, warn_free_pct=20)
        assert watch.check() == []
        fill(fs / "filler", leave_bytes=100 << 10)  # about 10% free
        (low,) = watch.check()
        assert low["alert"] == "disk_low" and low["folders"] == {"journal": str(fs / "journal"),
                                                                 "market data": str(fs / "journal" / "market-data")}
        assert 0 < low["free_bytes"] <= 128 << 10 and low["free_pct"] < 20 and low["warn_free_pct"] == 20
        assert "journal.market_data_keep_mb" in low["look_at"] and "journal.warn_free_pct" in low["message"]
        assert watch.check() == []  # once per crossing
        st = watch.status()
        assert [f["low"] for f in st["filesystems"]] == [True, False]
        os.unlink(fs / "filler")
        (ok,) = watch.check()
        assert ok["alert"] == "disk_ok" and ok["free_pct"] > 90
        assert watch.check() == []


def test_the_yamls_capture_cap_reaches_the_recorder_a_run_makes(tmp_path, monkeypatch):
    example = (pathlib.Path(__file__).parents[2] / "examples" / "market_maker.yaml").read_text()
    text = re.sub(r"\n  dir: \S+", f"\n  dir: {tmp_path / 'j'}", example, count=1)
    text = re.sub(r"\n  market_data_keep_mb: \d+", "\n  market_data_keep_mb: 12", text, count=1)
    assert str(tmp_path / "j") in text and "market_data_keep_mb: 12" in text
    (tmp_path / "mm.yaml").write_text(text)
    monkeypatch.setenv("TW_OUCH_PASSWORD", "secret1")
    s = from_config(str(tmp_path / "mm.yaml"), name="t-keep")
    assert s.record == str(tmp_path / "j" / "market-data") and s.record_keep_mb == 12
    rec = make_recorder(s.record, s.record_rotate_mb, s.record_keep_mb)
    assert rec.keep_mb == 12
