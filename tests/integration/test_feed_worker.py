"""The C feed worker under DPDK: replays through the pcap port, and the lab's
exchange feed through XDP and AF_XDP into the worker's books (root)."""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import subprocess
import threading
import time

import pytest

from appliance import feedfilter as commands
from appliance.lab import net
from appliance.lab.exchange import gen
from appliance.protocols import binaryfile, capture, itch, moldudp64
from appliance.protocols.itchbook import ItchBook
from common import paths
from dpdk.worker import remove_state
from labtools import TICKWIRE, ExchangeProcess, tw, tw_json

SESSION = "TWLAB00001"
A = (("198.18.1.1", 30000), ("239.198.1.1", 26400))
B = (("198.18.2.1", 30000), ("239.198.2.1", 26400))


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    path = tmp_path_factory.mktemp("worker") / "day.itch"
    gen.generate(path, symbols=5, messages=20_000, seed=12)
    msgs = list(binaryfile.iter_messages(path.read_bytes()))
    ref = ItchBook()
    for m in msgs:
        ref.apply(itch.decode(m))
    return path, msgs, ref


def levels(report_books: list[dict]) -> dict[int, tuple[list, list]]:
    return {b["locate"]: ([(p, s) for p, s, _ in b["bids"]], [(p, s) for p, s, _ in b["asks"]])
            for b in report_books if b["bids"] or b["asks"]}


def ref_levels(ref: ItchBook, locates) -> dict[int, tuple[list, list]]:
    out = {}
    for loc in locates:
        bids, asks = ref.levels(loc, "B"), ref.levels(loc, "S")
        if bids or asks:
            out[loc] = (bids, asks)
    return out


def test_a_replayed_capture_with_a_lossy_line_a_builds_the_reference_books(day, tmp_path):
    """Line A loses, duplicates and reorders packets, B is clean; junk frames are
    counted; the worker's books equal the Python reference book and the
    BinaryFILE path's."""
    path, msgs, ref = day
    packets = list(moldudp64.packetize(SESSION, 1, msgs, max_payload=1200))
    rng = random.Random(5)
    pcap = tmp_path / "feed.pcap"
    junk = {"malformed": 0, "not_udp": 0}
    with capture.CaptureWriter(pcap) as w:
        held = None
        for p in packets:
            r = rng.random()
            if r < 0.05:
                pass  # lost on A
            elif r < 0.10:
                w.udp(p, *A)
                w.udp(p, *A)  # duplicated
            elif r < 0.15 and held is None:
                held = p  # line A sends it after the next one
            else:
                w.udp(p, *A)
                if held is not None:
                    w.udp(held, *A)
                    held = None
            w.udp(p, *B)
            if r > 0.97:
                w.udp(b"short", *A)  # under a MoldUDP64 header
                w.frame(capture.tcp_frame(("198.18.1.1", 1), ("198.18.1.11", 2), 1, 0, 0x18, b"x"))
                junk["malformed"] += 1
                junk["not_udp"] += 1
        w.udp(moldudp64.end_of_session(SESSION, len(msgs) + 1), *A)
    res = tw("book", str(pcap), "--top", "0", "--json")
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["mode"] == "pcap" and rep["messages"] == len(msgs)
    f = rep["feed"]
    assert f["applied"] == len(msgs) and f["stale"] is False and f["end_of_session"] is True
    assert f["packets"]["B"] == len(packets) and f["first_copy"]["B"] > 0 and f["duplicates"] > 0
    assert f["malformed"] == junk["malformed"] and rep["frames"]["not_udp"] == junk["not_udp"]
    assert rep["book"]["errors"] == {}
    want = ref_levels(ref, range(1, 6))
    assert levels(rep["books"]) == want
    direct = tw_json("book", str(path), "--top", "0")
    assert levels(direct["books"]) == want and direct["messages"] == len(msgs)
    assert {b["symbol"] for b in rep["books"]} == {b["symbol"] for b in direct["books"]}


def test_a_capture_gap_nothing_fills_leaves_the_books_stale(day, tmp_path):
    path, msgs, ref = day
    packets = list(moldudp64.packetize(SESSION, 1, msgs, max_payload=1200))
    pcap = tmp_path / "gap.pcap"
    with capture.CaptureWriter(pcap) as w:
        for i, p in enumerate(packets):
            if i != 40:
                w.udp(p, *A)
                w.udp(p, *B)
    rep = tw_json("book", str(pcap))
    f = rep["feed"]
    lost = moldudp64.unpack(packets[40]).count
    assert f["stale"] is True and f["unrecoverable"] == 1 and f["skipped"] == lost
    assert f["applied"] == len(msgs) - lost
    assert rep["events"]["gap"] == 1 and rep["events"]["unrecoverable"] == 1


@pytest.mark.parametrize("name", ["AddOrderNoMPID.pcap", "OrderReplace.pcap", "StockTradingAction.pcap",
                                  "SystemEvent.pcap"])
def test_genuine_captures_replay_through_the_worker_as_the_reference_reads_them(name):
    """NASDAQ's sample captures carry sequence number 0: the worker applies them
    in capture order (and says so); its books equal the reference's."""
    from appliance.protocols.itchbook import BookError

    data = paths.shared_data()
    if data is None:
        pytest.skip("../shared/data is not beside this checkout")
    pcap = data / "nasdaq" / "Nasdaq.Equities.TotalView.Itch.v5.0.20230822" / name
    assert pcap.exists(), pcap
    ref, refused, kinds = ItchBook(), 0, []
    for fr in capture.read_frames(pcap):
        for _seq, _n, raw in moldudp64.iter_blocks(fr.payload):
            rec = itch.decode(raw)
            kinds.append(rec.TYPE)
            try:
                ref.apply(rec)
            except BookError:
                refused += 1
    rep = tw_json("book", str(pcap), "--top", "0")
    assert rep["sequencing"].startswith("arrival order") and rep["messages"] == len(kinds) > 0
    assert rep["book"]["state"] == sum(k in "SRHYWhP" for k in kinds)
    assert sum(rep["book"]["errors"].values()) == refused
    assert levels(rep["books"]) == ref_levels(ref, {b["locate"] for b in rep["books"]})


# ---- the lab: exchange -> XDP -> AF_XDP -> worker ---------------------------------------------


class FeedWorker:
    """`tickwire feed run` in the lab's app namespace, started before the exchange."""

    def __init__(self, lab, name: str, *extra: str, lab_prefix: bool = True):
        self.name = name
        where = ["--prefix", lab.prefix] if lab_prefix else []
        self.proc = subprocess.Popen([TICKWIRE, "feed", "run", *where, "--name", name,
                                      "--until-end", "--duration", "90", "--top", "0", "--json", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, "the feed worker did not start"
            st = tw("feed", "stats", "--name", name, "--json")
            if st.returncode == 0 and json.loads(st.stdout)["running"] and \
                    json.loads(st.stdout)["pid"] == self.proc.pid:
                return
            time.sleep(0.2)

    def result(self, expect: int = 0) -> dict:
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == expect, err[-3000:]
        return json.loads(out)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.communicate(timeout=30)


def run_day(lab, tmp_path, *worker_args: str, expect: int = 0, **exchange: object) -> tuple[dict, dict]:
    """The worker first, then a day of the live exchange; both final reports."""
    worker = FeedWorker(lab, lab.prefix, *worker_args)
    try:
        ex = ExchangeProcess(lab, tmp_path, **exchange)
        report = ex.finish()
        return report, worker.result(expect)
    finally:
        worker.kill()


def same_books(exchange: dict, worker: dict) -> None:
    got = {b["symbol"]: b for b in worker["books"]}
    assert set(exchange["books"]) <= set(got)
    for sym, want in exchange["books"].items():
        assert got[sym]["bids"] == want["bids"], sym
        assert got[sym]["asks"] == want["asks"], sym


def assert_clean(lab) -> None:
    import pathlib

    app = lab.ns("app")
    assert commands.attached("feed-a", app) is None and commands.attached("feed-b", app) is None
    assert not (pathlib.Path("/sys/fs/bpf/tickwire") / app).exists()
    assert not pathlib.Path("/sys/fs/bpf/feed_rules").is_symlink()


def test_the_workers_books_equal_the_exchanges_at_the_end(lab, tmp_path):
    """exchange -> XDP -> AF_XDP -> worker; every frame kept in one capture by the
    worker's recorder and replayed, the capture builds the same books again."""
    record = tmp_path / "worker.pcap"
    worker = FeedWorker(lab, lab.prefix, "--record", str(record))
    watch = subprocess.Popen([TICKWIRE, "feed", "stats", "--name", lab.prefix, "--watch", "0.2", "--json"],
                             stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(watch.stdout), daemon=True)  # never a full pipe
    reader.start()
    try:
        during = tw_json("feed", "stats", "--name", lab.prefix)
        ex = ExchangeProcess(lab, tmp_path, duration=5, rate=3000)
        report = ex.finish()
        rep = worker.result()
    finally:
        watch.send_signal(signal.SIGINT)
        try:
            watch.wait(timeout=10)
        finally:
            if watch.poll() is None:
                watch.kill()
            reader.join(timeout=10)
            worker.kill()
    assert watch.returncode == 0, "feed stats --watch did not end on SIGINT"
    watched = [json.loads(x) for x in lines[:3]]
    assert len(watched) == 3
    assert all(w["running"] and w["pid"] == worker.proc.pid for w in watched)
    assert during["running"] and during["info"]["ifaces"] == {"A": "feed-a", "B": "feed-b"}
    f = rep["stats"]["feed"]
    assert rep["stopped_by"] == "end of session"
    assert f["applied"] == report["feed"]["messages"] and f["gaps"] == 0 and f["stale"] is False
    assert f["packets"]["A"] == f["packets"]["B"] == report["feed"]["lines"]["A"]["sent"]
    assert rep["ports"]["net_af_xdp0"]["imissed"] == 0 and rep["stats"]["no_meta"] == 0
    same_books(report, rep)
    lat = rep["stats"]["latency_ns"]
    assert lat["wire"]["count"] == lat["total"]["count"] == f["packets"]["A"] + f["packets"]["B"]
    assert 0 < lat["wire"]["p50"] <= lat["total"]["p50"]
    assert rep["events"]["trading_action"] == 4 and rep["system_event"] == "C"
    after = tw_json("feed", "stats", "--name", lab.prefix)
    assert after["running"] is False and after["feed"]["applied"] == f["applied"]
    assert after["recent_events"][-1]["event"] == "end_of_session"
    assert_clean(lab)
    net.down(lab.prefix)  # the lab gone, the worker's statistics go with it
    assert tw("feed", "stats", "--name", lab.prefix).returncode == 2
    assert rep["stats"]["recorded"] == f["packets"]["A"] + f["packets"]["B"] and rep["stats"]["record_dropped"] == 0
    assert rep["recorder"]["frames"] == {"A": f["packets"]["A"], "B": f["packets"]["B"], "R": 0}
    assert rep["recorder"]["captures"] == [{"file": str(record), "bytes": record.stat().st_size}]
    replay = tw_json("book", str(record), "--top", "0")
    assert replay["feed"]["applied"] == f["applied"] and replay["feed"]["stale"] is False
    same_books(report, replay)


def test_both_lines_lossy_recover_through_retransmission(lab, tmp_path):
    for link, seed in (("feed-a-app", 3), ("feed-b-app", 4)):
        tw("lab", "impair", "--prefix", lab.prefix, link, "--loss", "5", "--seed", str(seed))
    report, rep = run_day(lab, tmp_path, duration=5, rate=3000)
    f = rep["stats"]["feed"]
    assert f["gaps"] > 0 and f["recovered"] == f["gaps"] and f["stale"] is False
    assert f["first_copy"]["retransmission"] > 0 and rep["stats"]["retrans_requests"] > 0
    assert report["retransmission"]["requests"] == rep["stats"]["retrans_requests"]
    assert rep["events"]["retransmission_request"] == rep["stats"]["retrans_requests"]
    same_books(report, rep)


def test_a_gap_nobody_can_fill_is_given_up_and_reported_stale(lab, tmp_path):
    for link, seed in (("feed-a-app", 5), ("feed-b-app", 6)):
        tw("lab", "impair", "--prefix", lab.prefix, link, "--loss", "5", "--seed", str(seed))
    # nothing answers on port 9: the gaps cannot be recovered
    _, rep = run_day(lab, tmp_path, "--retrans", "198.18.1.1:9", "--give-up", "0.3", expect=1, duration=4,
                     rate=2000)
    f = rep["stats"]["feed"]
    assert f["stale"] is True and f["unrecoverable"] > 0 and f["skipped"] > 0
    assert rep["events"]["unrecoverable"] == f["unrecoverable"]
    human = tw("feed", "stats", "--name", lab.prefix)
    assert "STALE" in human.stdout


def test_feed_mistakes_are_named():
    r = tw("feed", "stats", "--name", "no-such-worker")
    assert r.returncode == 2 and "no feed worker named no-such-worker" in r.stderr
    r = tw("feed", "run", "--iface", "C=eth0")
    assert r.returncode == 2 and "LINE=VALUE with LINE A or B" in r.stderr
    r = tw("feed", "run", "--iface", "A=eth0")
    assert r.returncode == 2 and "line A has an interface but no --group A=ADDRESS:PORT" in r.stderr
    r = tw("feed", "run", "--iface", "A=eth0", "--group", "A=239.1.1.1")
    assert r.returncode == 2 and "ADDRESS:PORT" in r.stderr
    r = tw("book", "/nonexistent.pcap")
    assert r.returncode == 2 and "no such file" in r.stderr


def test_random_frames_through_the_worker_are_counted_and_never_crash_it(tmp_path):
    """The frame parser and the decoders in the worker (not reachable from the
    cffi fuzz tests): random frames, and valid UDP headers around random bytes."""
    rng = random.Random(11)
    pcap = tmp_path / "junk.pcap"
    frames = 0
    with capture.CaptureWriter(pcap) as w:
        w.udp(moldudp64.pack(SESSION, 1, [itch.encode(itch.example("S", 0))]), *A)  # sequence 1: applied
        for i in range(3000):
            if i % 2:
                w.frame(rng.randbytes(rng.randrange(14, 300)))
            else:
                body = moldudp64.session_bytes(SESSION) + rng.randbytes(rng.randrange(0, 200))
                w.udp(body, *(A if i % 4 else B))
            frames += 1
    rep = tw_json("book", str(pcap))
    assert rep["packets"] == frames + 1
    f = rep["feed"]
    udp = f["packets"]["A"] + f["packets"]["B"] + f["packets"]["retransmission"]
    assert udp + rep["frames"]["not_udp"] == frames + 1
    assert f["malformed"] > 1000 and rep["system_event"] is not None and f["applied"] >= 1


@pytest.fixture
def hugepages():
    """Reserve 2 MiB hugepages for the test, then give back what it took."""
    import pathlib

    knob = pathlib.Path("/proc/sys/vm/nr_hugepages")
    before = int(knob.read_text())
    knob.write_text(str(before + 128))
    try:
        if int(pathlib.Path("/proc/sys/vm/nr_hugepages").read_text()) < before + 64:
            pytest.fail("the kernel reserved too few hugepages (memory too fragmented?)")
        yield
    finally:
        knob.write_text(str(before))


def test_with_hugepages_reserved_eal_runs_in_memory_on_them(day, hugepages, tmp_path):
    path, msgs, ref = day
    pcap = tmp_path / "day.pcap"
    with capture.CaptureWriter(pcap) as w:
        for p in moldudp64.packetize(SESSION, 1, msgs, max_payload=1200):
            w.udp(p, *A)

    def run(*extra: str) -> dict:
        res = subprocess.run([TICKWIRE, "feed", "run", "--pcap", str(pcap), "--name", "hugetest", "--json", "--top",
                              "0", "--max-locate", "16", "--quiet-events", *extra], capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0, res.stderr[-3000:]
        return json.loads(res.stdout)

    try:
        rep = run()
        assert "--in-memory" in rep["eal"] and "--no-huge" not in rep["eal"] and rep["warnings"] == []
        assert levels(rep["books"]) == ref_levels(ref, range(1, 6))
        rep2 = run("--hugepages", "off")
        assert "--no-huge" in rep2["eal"] and rep2["stats"]["feed"]["applied"] == len(msgs)
    finally:
        remove_state("hugetest")


@pytest.mark.parametrize("source", ["af_xdp", "socket", "asyncio"])
def test_the_worker_trades_the_market_maker_and_its_position_equals_the_exchanges(lab, tmp_path, source,
                                                                                   monkeypatch):
    """exchange -> XDP (or a kernel socket read in C, or in Python) -> worker -> market
    maker -> risk -> OUCH -> exchange: orders accepted and filled; the worker's
    position equals the exchange's fill records; no UserRefNum is used twice; every
    order a packet triggered names that packet and carries the time of each stage."""
    import pathlib

    import yaml

    from appliance.protocols.capture import read_frames
    from dpdk.books import ORDER_STAGES
    from dpdk.worker import STATE_DIR

    trade = yaml.safe_load((pathlib.Path(__file__).parents[2] / "examples" / "trading.yaml").read_text())
    trade["strategies"][0]["params"].update(half_spread=0, refresh="2ms")  # at the touch: fills come quickly
    monkeypatch.setenv("TW_OUCH_PASSWORD", "lab-secret")
    path = tmp_path / "trading.yaml"
    path.write_text(yaml.safe_dump(trade))
    kept = tmp_path / "market-data"
    report, rep = run_day(lab, tmp_path, "--input", source, "--trade", str(path), "--record", str(kept),
                          duration=6, rate=3000)
    assert rep["input"] == source
    st, tr = rep["stats"], rep["trading"]
    assert st["orders_sent"] > 10 and st["executed"] > 0 and st["unknown_orders"] == 0 and st["send_failed"] == 0
    assert tr["order_entry"]["logins"] == 1 and tr["order_entry"]["protocol_errors"] == 0
    account = report["order_entry"]["accounts"]["TWAPP1"]
    assert tr["positions"]["1"] == account["position"].get("TAAA", 0) == tr["strategies"]["strategy"]["position"]
    assert report["order_entry"]["rejects"] == {}
    log = [json.loads(x) for x in (tmp_path / "record" / "orders.jsonl").read_text().splitlines()]
    refs = [m["user_ref_num"] for m in log if m.get("name") == "enter_order"]
    assert len(refs) == len(set(refs)) == st["orders_sent"] and refs == sorted(refs)
    fills = sum(m["quantity"] if ours["side"] == "B" else -m["quantity"]
                for m in log if m.get("name") == "order_executed"
                for ours in [next(o for o in log if o.get("name") == "enter_order"
                                  and o["user_ref_num"] == m["user_ref_num"])])
    assert fills == tr["positions"]["1"]
    assert abs(tr["positions"]["1"]) <= trade["risk"]["global"]["max_position"]
    lat = st["latency_ns"]
    assert lat["decide"]["count"] == st["decisions"] and lat["tick_to_trade"]["count"] > 0
    assert rep["events"]["order"] >= st["orders_sent"] and st["events_dropped"] == 0
    assert st["no_meta"] == 0  # every datagram had its arrival stamp (XDP's, or the kernel's)
    events = [json.loads(x) for x in (STATE_DIR / f"{lab.prefix}.events.jsonl").read_text().splitlines()]
    sent = [e for e in events if e["event"] == "order" and e["type"] == "O"]
    assert [e["user_ref"] for e in sent] == refs  # one event per order, in the order they went
    timed = [e for e in sent if "stages_ns" in e]
    assert len(timed) == lat["tick_to_trade"]["count"]  # the histogram holds exactly these orders
    # the packets the exchange sent (its recording), by the sequence number of their first message
    packets = {int.from_bytes(f.payload[10:18], "big") for f in read_frames(tmp_path / "record" / "feed.pcapng")
               if f.proto == "udp" and len(f.payload) >= 20}
    for e in timed:
        assert list(e["stages_ns"]) == list(ORDER_STAGES) and e["symbol"] == "TAAA" and e["line"] in ("A", "B")
        assert sum(e["stages_ns"].values()) == e["tick_to_trade_ns"] and e["stages_ns"]["wire"] > 0
        assert e["stages_ns"]["send"] > 0 and 0 < e["seq"] < st["feed"]["next_seq"]
        assert e["seq"] in packets
    # market data kept: a capture per line (a socket's datagrams behind made-up headers), each a whole
    # line of the day: replayed alone, it builds the exchange's books
    f = st["feed"]
    rec = rep["recorder"]
    assert rec["frames"]["A"] == f["packets"]["A"] and rec["frames"]["B"] == f["packets"]["B"]
    assert rec["dropped"] == 0 and rec["write_errors"] == 0 and st["record_dropped"] == 0
    files = sorted(kept.glob("*.pcap"))
    assert [p.name.split("-")[0] for p in files] == ["A", "B"]
    assert all(x.payload[:10] == SESSION.encode() and x.dst == "239.198.1.1" for x in read_frames(files[0]))
    replay = tw_json("book", str(files[0]), "--top", "0")
    assert replay["feed"]["stale"] is False and replay["feed"]["applied"] == f["applied"]
    same_books(report, replay)


def test_a_trading_config_with_a_mistake_is_refused_by_name(tmp_path):
    """--trade's file is an appliance YAML: appliance/config.py's validation names the field."""
    text = (pathlib.Path(__file__).parents[2] / "examples" / "trading.yaml").read_text()
    bad = tmp_path / "t.yaml"
    bad.write_text(text.replace("      quote_size: 100", "      spread: 3"))
    r = tw("feed", "run", "--iface", "A=x", "--group", "A=239.1.1.1:1", "--trade", str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "strategies[0].params.spread: no such setting for a market_maker (did you mean 'half_spread'?)" in r.stderr
    bad.write_text(text.replace("    instrument: TAAA", "    instrument: TAAZ"))
    r = tw("feed", "run", "--iface", "A=x", "--group", "A=239.1.1.1:1", "--trade", str(bad))
    assert r.returncode == 2 and "TAAZ" in r.stderr and "no such instrument" in r.stderr


def test_the_appliance_yaml_drives_the_worker_feed_venue_strategies_and_risk(lab, tmp_path, monkeypatch):
    """feed run --config: the lines, the venue (its password from the environment),
    three strategies on three instruments in one worker, each with its parameters
    and the strictest of its risk levels, all come from one YAML; the exchange sees
    the account trade every instrument under those limits, one series of
    UserRefNums."""
    import pathlib

    import yaml

    from appliance import config

    raw = yaml.safe_load((pathlib.Path(__file__).parents[2] / "examples" / "market_maker.yaml").read_text())
    raw["ptp"]["stop_trading_on_failure"] = False  # no ptp4l in this lab (test_ptp.py trades under a watched clock)
    raw["host"]["netns"] = lab.ns("app")
    raw["journal"]["dir"] = str(tmp_path / "journal")
    for strategy in raw["strategies"]:
        strategy["params"].update(half_spread=0, refresh="2ms")
    raw["strategies"][1]["params"]["quote_size"] = 200  # TAAB's orders are twice the size...
    raw["risk"]["instruments"]["TAAB"] = {"max_order_qty": 150}  # ...and its instrument allows none of them
    raw["risk"]["instruments"]["TAAA"]["max_order_qty"] = 100   # the strictest level: the instrument's
    path = tmp_path / "appliance.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("TW_OUCH_PASSWORD", "lab-secret")
    assert config.load(path).limits().max_order_qty == 100
    worker = FeedWorker(lab, lab.prefix, "--config", str(path), lab_prefix=False)
    try:
        ex = ExchangeProcess(lab, tmp_path, duration=5, rate=3000)
        report = ex.finish()
        rep = worker.result()
    finally:
        worker.kill()
    st, tr = rep["stats"], rep["trading"]
    assert rep["input"] == "af_xdp" and rep["cpu_latency_us"] == 0
    assert st["orders_sent"] > 0 and st["unknown_orders"] == 0 and tr["order_entry"]["logins"] == 1
    log = [json.loads(x) for x in (tmp_path / "record" / "orders.jsonl").read_text().splitlines()]
    entered = [m for m in log if m.get("name") == "enter_order"]
    assert len(entered) == st["orders_sent"] and {m["quantity"] for m in entered} == {100}
    assert {m["symbol"].strip() for m in entered} == {"TAAA", "TAAC"}  # TAAB's 200-share quotes were denied
    refs = [m["user_ref_num"] for m in entered]
    assert refs == sorted(refs) and len(set(refs)) == len(refs)  # one increasing series for the session
    per = tr["strategies"]
    assert per["mm-taaa"]["orders"] > 0 and per["mm-taac"]["orders"] > 0 and per["mm-taab"]["orders"] > 0
    assert tr["risk"]["denied"]["max_qty"] >= per["mm-taab"]["orders"]  # every one of TAAB's, and only those
    account = report["order_entry"]["accounts"]["TWAPP1"]
    for sym, loc in (("TAAA", "1"), ("TAAB", "2"), ("TAAC", "3")):
        assert tr["positions"][loc] == account["position"].get(sym, 0)
    # the journal kept the start, every order and every answer: as the exchange saw them
    from appliance import journal

    scan = journal.verify(tmp_path / "journal")
    assert scan.corrupt == [] and scan.torn_tail is None and scan.last_seq == rep["journal"]["last_seq"]
    assert rep["journal"]["durable_seq"] == scan.last_seq
    records = list(journal.read(tmp_path / "journal"))
    start = records[0].data
    assert records[0].kind == "config" and start["limits"]["max_order_qty"] == 500  # risk.global's
    assert [x["name"] for x in start["strategies"]] == ["mm-taaa", "mm-taab", "mm-taac"]
    assert [x["limits"]["max_order_qty"] for x in start["strategies"]] == [100, 150, 500]
    assert start["config_sha256"] and start["strategies"][0]["params"]["kind"] == "market_maker"
    sent = [r.data for r in records if r.kind == "order" and r.data.get("type") == "O"]
    assert {(e["strategy"], e["symbol"]) for e in sent} == {("mm-taaa", "TAAA"), ("mm-taac", "TAAC")}
    # the raw market data beside the journal, a capture per line (journal.market_data is on by default)
    kept = sorted((tmp_path / "journal" / "market-data").glob("*.pcap"))
    assert [p.name.split("-")[0] for p in kept] == ["A", "B"]
    assert rep["recorder"]["frames"]["A"] == st["feed"]["packets"]["A"] and rep["recorder"]["dropped"] == 0
    counts = journal.export_parquet(tmp_path / "journal", tmp_path / "pq")
    assert counts["order"] == st["orders_sent"]
    (filled,) = journal.query(tmp_path / "pq", "select coalesce(sum(qty), 0) from fill")["rows"][0]
    assert filled == st["executed"] == sum(m["quantity"] for m in log if m.get("name") == "order_executed")
    refs = journal.query(tmp_path / "pq", 'select user_ref from "order" order by journal_seq')["rows"]
    assert [r[0] for r in refs] == [m["user_ref_num"] for m in entered]
    # the OMS rebuilt from the journal agrees with the exchange: positions, open orders, no illegal step
    from appliance.oms import Oms

    oms = Oms.from_journal(tmp_path / "journal")
    assert oms.anomalies == [] and len(oms.orders) == st["orders_sent"]
    assert oms.position("TAAA") == account["position"].get("TAAA", 0) == tr["positions"]["1"]
    assert oms.strategy_pnl()["mm-taac"]["position"] == account["position"].get("TAAC", 0)
    assert len(oms.open_orders()) == account["open_orders"]


def test_reload_swaps_limits_under_traffic_and_a_bad_file_changes_nothing(lab, tmp_path, monkeypatch):
    import pathlib
    import time

    import yaml

    from appliance import journal

    raw = yaml.safe_load((pathlib.Path(__file__).parents[2] / "examples" / "market_maker.yaml").read_text())
    raw["ptp"]["stop_trading_on_failure"] = False  # no ptp4l in this lab (test_ptp.py trades under a watched clock)
    raw["host"]["netns"] = lab.ns("app")
    raw["journal"]["dir"] = str(tmp_path / "journal")
    raw["strategies"][0]["params"].update(half_spread=0, refresh="2ms")
    path = tmp_path / "appliance.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("TW_OUCH_PASSWORD", "lab-secret")
    worker = FeedWorker(lab, lab.prefix, "--config", str(path), lab_prefix=False)

    def stats() -> dict:
        return tw_json("feed", "stats", "--name", lab.prefix)

    def reload(expect: int) -> dict:
        return tw_json("reload", "--name", lab.prefix, expect=expect)

    try:
        ex = ExchangeProcess(lab, tmp_path, duration=12, rate=3000)
        deadline = time.monotonic() + 10
        while stats()["orders_sent"] < 5:
            assert time.monotonic() < deadline, "the worker sent no orders"
            time.sleep(0.2)
        raw["risk"]["global"]["max_order_qty"] = 50  # below the quote size: every new quote is denied
        path.write_text(yaml.safe_dump(raw))
        r = reload(0)
        assert r["ok"] and r["changed"] == {  # the global row and every strategy's, in one table
            "risk.global.max_order_qty": [500, 50], "mm-taaa.risk.max_order_qty": [300, 50],
            "mm-taab.risk.max_order_qty": [500, 50], "mm-taac.risk.max_order_qty": [500, 50]}
        time.sleep(0.5)
        sent, denied = stats()["orders_sent"], stats()["orders_denied"]
        time.sleep(1.5)
        after = stats()
        assert after["orders_sent"] == sent and after["orders_denied"] > denied  # the new table is in force
        good = path.read_text()
        path.write_text(good.replace("half_spread:", "half_sprad:"))
        r = reload(1)
        assert not r["ok"] and "half_sprad: no such setting for a market_maker" in r["problems"][0]
        path.write_text(good.replace("239.198.1.1", "239.198.1.9"))
        r = reload(1)
        assert r["problems"] == [f"{path}: feed changed: that needs a restart; nothing was changed"]
        path.write_text(good.replace("max_order_qty: 50", "max_order_qty: 500").replace(
            "half_spread: 0.03", "half_spread: 0.04"))
        assert reload(0)["changed"] == {
            "risk.global.max_order_qty": [50, 500], "mm-taaa.risk.max_order_qty": [50, 300],
            "mm-taab.risk.max_order_qty": [50, 500], "mm-taac.risk.max_order_qty": [50, 500],
            "mm-taac.params.half_spread": [300, 400]}
        time.sleep(1.5)
        assert stats()["orders_sent"] > sent  # quoting again
        ex.finish()
        rep = worker.result()
    finally:
        worker.kill()
    assert rep["trading"]["risk"]["denied"].get("max_qty", 0) > 0
    reloads = [r.data for r in journal.read(tmp_path / "journal") if r.kind == "config" and
               r.data.get("action") == "reload"]
    assert [x["ok"] for x in reloads] == [True, False, False, True] and reloads[0]["sha256"]
    assert tw("reload", "--name", "no-such-worker").returncode == 2


def test_kill_switch_levels_cancel_exactly_the_orders_they_cover_and_resume(lab, tmp_path, monkeypatch):
    """Three strategies stand a ladder of quotes each on TAAA, TAAB and TAAC. Killing an
    instrument nobody trades touches nothing; killing TAAB cancels TAAB's ladder and
    nothing else; killing strategy mm-taaa cancels its ladder and nothing else; the
    whole worker cancels every one (the venue confirms each) and stops new ones;
    each resume brings the ladders back. Each action is journaled with who and why."""
    import pathlib
    import time

    import yaml

    from appliance import journal

    raw = yaml.safe_load((pathlib.Path(__file__).parents[2] / "examples" / "market_maker.yaml").read_text())
    raw["ptp"]["stop_trading_on_failure"] = False  # no ptp4l in this lab (test_ptp.py trades under a watched clock)
    raw["host"]["netns"] = lab.ns("app")
    raw["journal"]["dir"] = str(tmp_path / "journal")
    for strategy in raw["strategies"]:
        strategy["params"].update(half_spread=0.05, levels=4, refresh="1ms", max_position=2000)
    raw["risk"]["global"].update(max_open_orders=60, order_rate=3000, order_burst=300, message_rate=6000,
                                 message_burst=600, max_position=3000, max_gross=9000)
    for name in ("mm-taaa", "mm-taab", "mm-taac"):
        raw["risk"]["strategies"][name].update(max_position=3000, max_open_orders=16, order_rate=1000,
                                               order_burst=100)
    path = tmp_path / "appliance.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("TW_OUCH_PASSWORD", "lab-secret")
    worker = FeedWorker(lab, lab.prefix, "--config", str(path), lab_prefix=False)
    status = tmp_path / "record" / "status.json"
    ALL = ("TAAA", "TAAB", "TAAC")

    def resting() -> dict[str, int]:
        got = json.loads(status.read_text())["order_entry"]["accounts"]["TWAPP1"]["open_by_symbol"]
        return {sym: got.get(sym, 0) for sym in ALL}

    def until(cond, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"{what}: resting {resting() if status.exists() else None}"
            time.sleep(0.1)

    def ladders(symbols=ALL) -> bool:
        r = resting()
        return all(r[sym] >= 6 for sym in symbols)

    def act(verb: str, *level: str) -> dict:
        return tw_json(verb, "--name", lab.prefix, *level, "--reason", f"test {verb} {' '.join(level)}")

    try:
        ex = ExchangeProcess(lab, tmp_path, duration=40, rate=2000)
        until(lambda: status.exists() and ladders(), "the ladders did not stand")
        other = act("kill", "--instrument", "TAAD")
        assert other["cancels"] == 0 and other["locate"] == 4
        act("resume", "--instrument", "TAAD")
        for level, gone in ((["--instrument", "TAAB"], {"TAAB"}), (["--strategy", "mm-taaa"], {"TAAA"}),
                            ([], set(ALL))):
            until(ladders, f"the ladders did not come back before {level}")
            k = act("kill", *level)
            assert k["kill"] and k["acted_after_us"] < 100_000
            until(lambda gone=gone: all(resting()[sym] == 0 for sym in gone), f"orders still open after kill {level}",
                  timeout=3)
            time.sleep(0.5)
            r = resting()
            assert all(r[sym] == 0 for sym in gone) and all(r[sym] >= 6 for sym in set(ALL) - gone), (level, r)
            st = tw_json("status", "--name", lab.prefix)
            killed = {s["name"]: (s["killed"], s["instrument_killed"]) for s in st["strategies"]}
            assert killed == {"mm-taaa": (level == ["--strategy", "mm-taaa"], False),
                              "mm-taab": (False, level == ["--instrument", "TAAB"]), "mm-taac": (False, False)}
            assert st["health"]["kill_switch"]["global"] == (level == [])
            assert not act("resume", *level)["kill"]
        until(ladders, "the ladders did not come back after the last resume")
        ex.finish()
        rep = worker.result()
    finally:
        worker.kill()
    assert rep["stats"]["unknown_orders"] == 0 and rep["trading"]["order_entry"]["protocol_errors"] == 0
    ops = [r.data for r in journal.read(tmp_path / "journal") if r.kind == "operator"]
    assert [(o["action"], o["level"], o["target"]) for o in ops] == [
        ("kill", "instrument", "TAAD"), ("resume", "instrument", "TAAD"),
        ("kill", "instrument", "TAAB"), ("resume", "instrument", "TAAB"),
        ("kill", "strategy", "mm-taaa"), ("resume", "strategy", "mm-taaa"),
        ("kill", "global", None), ("resume", "global", None)]
    assert all(o["who"] and o["reason"].startswith("test ") for o in ops)
    r = tw("kill", "--name", lab.prefix, "--strategy", "x", "--instrument", "TAAA", "--reason", "r")
    assert r.returncode == 2 and "give --strategy or --instrument, not both" in r.stderr


def test_tickwire_run_tells_systemd_and_sigterm_leaves_nothing_open_at_the_venue(lab, tmp_path, monkeypatch):
    """`tickwire run CONFIG` as systemd runs a Type=notify service: READY=1 once it
    trades, WATCHDOG=1 while healthy; SIGTERM cancels every open order (the venue
    confirms), flushes the journal, says STOPPING=1 and exits 0."""
    import pathlib
    import socket
    import time

    import yaml

    from appliance import journal

    raw = yaml.safe_load((pathlib.Path(__file__).parents[2] / "examples" / "market_maker.yaml").read_text())
    raw["ptp"]["stop_trading_on_failure"] = False  # no ptp4l in this lab (test_ptp.py trades under a watched clock)
    raw["host"]["netns"] = lab.ns("app")
    raw["journal"]["dir"] = str(tmp_path / "journal")
    raw["strategies"][0]["params"].update(half_spread=0.05, levels=3, refresh="1ms")
    path = tmp_path / "appliance.yaml"
    path.write_text(yaml.safe_dump(raw))
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    env = {**os.environ, "TW_OUCH_PASSWORD": "lab-secret", "NOTIFY_SOCKET": str(tmp_path / "notify"),
           "WATCHDOG_USEC": "200000"}
    proc = subprocess.Popen([TICKWIRE, "run", str(path), "--name", lab.prefix, "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    status = tmp_path / "record" / "status.json"

    def open_orders() -> int:
        return json.loads(status.read_text())["order_entry"]["accounts"]["TWAPP1"]["open_orders"]

    try:
        first = notify.recv(4096).decode().split("\n")
        assert first[0] == "READY=1" and first[1] == "STATUS=trading mm-taaa, mm-taab, mm-taac"
        assert first[2] == f"MAINPID={proc.pid}"
        # the venue does not cancel on disconnect: what is cancelled is the appliance's doing
        ex = ExchangeProcess(lab, tmp_path, duration=30, rate=1000, order_entry={
            "accounts": [{"username": "TWAPP1", "password": "lab-secret", "cancel_on_disconnect": False}]})
        pings = 0
        deadline = time.monotonic() + 15
        while not (pings >= 3 and status.exists() and open_orders() >= 4):
            assert time.monotonic() < deadline, f"no ladder or no watchdog pings ({pings})"
            try:
                notify.settimeout(0.2)
                pings += notify.recv(4096) == b"WATCHDOG=1"
            except TimeoutError:
                pass
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        time.sleep(1.2)  # the exchange writes its status about every second
        assert open_orders() == 0  # nothing left resting
        notify.settimeout(2)
        rest = []
        while True:
            try:
                rest.append(notify.recv(4096).decode())
            except TimeoutError:
                break
        assert any(m.startswith("STOPPING=1\nSTATUS=stopped by SIGTERM") for m in rest)
        ex.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.close()
    rep = json.loads(out)
    assert rep["stopped_by"] == "SIGTERM" and rep["journal"]["durable_seq"] == rep["journal"]["last_seq"]
    records = list(journal.read(tmp_path / "journal"))
    (stopping,) = [r.data for r in records if r.kind == "operator"]
    assert stopping["reason"] == "stopping (SIGTERM): every open order cancelled" and stopping["left_open"] == 0
    assert stopping["cancels"] >= 4
    sent = {r.data["symbol"] for r in records if r.kind == "order" and r.data.get("type") == "O"}
    assert sent == {"TAAA", "TAAB", "TAAC"}  # every strategy of the file traded


def _manager_config(lab, tmp_path, manager: dict, strategies: int = 1, **venue) -> pathlib.Path:
    """The example with its first `strategies` strategies, quoting at the touch."""
    import pathlib

    import yaml

    raw = yaml.safe_load((pathlib.Path(__file__).parents[2] / "examples" / "market_maker.yaml").read_text())
    raw["ptp"]["stop_trading_on_failure"] = False  # no ptp4l in this lab (test_ptp.py trades under a watched clock)
    raw["host"]["netns"] = lab.ns("app")
    raw["journal"]["dir"] = str(tmp_path / "journal")
    raw["strategies"] = raw["strategies"][:strategies]
    names = {s["name"] for s in raw["strategies"]}
    raw["risk"]["strategies"] = {k: v for k, v in raw["risk"]["strategies"].items() if k in names}
    for strategy in raw["strategies"]:
        strategy["params"].update(half_spread=0, refresh="2ms")
    raw["risk"]["manager"] = manager
    raw["venue"].update(venue)
    path = tmp_path / "appliance.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _until(cond, what: str, timeout: float = 10.0):
    import time

    deadline = time.monotonic() + timeout
    while not (got := cond()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return got


def test_the_risk_manager_trips_the_kill_switch_when_the_session_stays_down(lab, tmp_path, monkeypatch):
    import time

    from appliance import journal

    path = _manager_config(lab, tmp_path, {"session_down": "0.5s"}, heartbeat="200ms", timeout="1s",
                           reconnect="200ms")
    monkeypatch.setenv("TW_OUCH_PASSWORD", "lab-secret")
    worker = FeedWorker(lab, lab.prefix, "--config", str(path), lab_prefix=False)

    def status() -> dict:
        return tw_json("status", "--name", lab.prefix)

    try:
        ex = ExchangeProcess(lab, tmp_path, duration=50, rate=2000)
        _until(lambda: status()["counts"]["orders_sent"] > 0 and status()["live_age_s"] is not None,
               "no orders, or no live status")
        st = status()
        assert st["health"]["session"] == "up" and st["health"]["risk_manager"] == "watching"
        assert st["health"]["kill_switch"] == {"global": False, "reason": None, "strategies": [], "instruments": []}
        assert [s["name"] for s in st["strategies"]] == ["mm-taaa"]
        res = tw("lab", "impair", "--prefix", lab.prefix, "order-app", "--loss", "100", "--direction", "both")
        assert res.returncode == 0, res.stderr
        tripped = _until(lambda: status()["health"]["risk_manager"] if isinstance(
            status()["health"]["risk_manager"], dict) else None, "the risk manager did not trip", timeout=10)
        assert tripped["breach"] == "session down (s)" and tripped["level"] == "global" and tripped["value"] > 0.5
        assert status()["health"]["kill_switch"]["global"] is True
        tw("lab", "clear", "--prefix", lab.prefix, "order-app")
        # the exchange holds the dead connection until its own 15 s timeout, then takes the new login
        _until(lambda: status()["health"]["session"] == "up", "the session did not come back", timeout=30)
        sent = status()["counts"]["orders_sent"]
        time.sleep(1.0)
        assert status()["counts"]["orders_sent"] == sent  # tripped stays tripped until an operator resumes
        tw_json("resume", "--name", lab.prefix, "--reason", "link back")
        _until(lambda: status()["counts"]["orders_sent"] > sent, "quoting did not resume")
        _until(lambda: status()["health"]["risk_manager"] == "watching", "the resume did not re-arm the manager")
        ex.finish()
        rep = worker.result()
    finally:
        tw("lab", "clear", "--prefix", lab.prefix, "order-app")
        worker.kill()
    assert rep["control"]["risk_manager"]["tripped"] is None  # resumed: watching again
    records = list(journal.read(tmp_path / "journal"))
    (risk,) = [r.data for r in records if r.kind == "risk" and "breach" in r.data]  # not the denials
    assert risk["breach"] == "session down (s)" and risk["view"]["session"] == "down"
    ops = [r.data for r in records if r.kind == "operator"]
    assert (ops[0]["who"], ops[0]["level"], ops[0]["action"]) == ("risk manager", "global", "kill")
    assert ops[0]["reason"].startswith("session down (s) ") and ops[1]["action"] == "resume"


def test_the_risk_manager_trips_the_strategy_on_drawdown_and_status_says_so(lab, tmp_path, monkeypatch):
    path = _manager_config(lab, tmp_path, {"max_drawdown": 0.01})
    monkeypatch.setenv("TW_OUCH_PASSWORD", "lab-secret")
    worker = FeedWorker(lab, lab.prefix, "--config", str(path), lab_prefix=False)
    try:
        ex = ExchangeProcess(lab, tmp_path, duration=30, rate=3000)
        def tripped() -> dict | None:
            got = tw_json("status", "--name", lab.prefix)
            return got if isinstance(got["health"]["risk_manager"], dict) else None

        st = _until(tripped, "no drawdown trip", timeout=25)
        trip = st["health"]["risk_manager"]
        assert trip["breach"] == "drawdown" and trip["level"] == "strategy" and trip["value"] > 0.01
        assert trip["target"] == "mm-taaa" and st["health"]["kill_switch"]["strategies"] == ["mm-taaa"]
        assert st["strategies"][0]["drawdown"] is not None and st["strategies"][0]["killed"]
        status = tmp_path / "record" / "status.json"
        _until(lambda: json.loads(status.read_text())["order_entry"]["accounts"]["TWAPP1"]["open_orders"] == 0,
               "quotes still open after the strategy was tripped", timeout=5)
        top = tw("top", "--name", lab.prefix, "--count", "2", "--interval", "0.1")
        assert top.returncode == 0 and "risk manager" in top.stdout and "tripped: drawdown" in top.stdout
        lines = tw("top", "--name", lab.prefix, "--count", "2", "--interval", "0.1", "--json").stdout.splitlines()
        assert len(lines) == 2 and all(json.loads(x)["health"]["risk_manager"]["breach"] == "drawdown" for x in lines)
        ex.stop()
        worker.result()
    finally:
        worker.kill()


def test_a_restart_takes_over_from_the_journal_no_reference_twice_and_the_position_carried(lab, tmp_path,
                                                                                          monkeypatch):
    """Two runs of one config against one exchange day: the second reads the first's
    journal, so its UserRefNums go on after the first's, it asks the venue only for
    what it has not seen, and it starts from the first's position; at the end the
    worker's position is the exchange's for the whole day."""
    import signal
    import time

    from appliance import journal
    from appliance.oms import Oms

    path = _manager_config(lab, tmp_path, {}, strategies=3)
    monkeypatch.setenv("TW_OUCH_PASSWORD", "lab-secret")
    ex = ExchangeProcess(lab, tmp_path, duration=40, rate=3000)
    reports = []
    try:
        for run in range(2):
            proc = subprocess.Popen([TICKWIRE, "run", str(path), "--name", lab.prefix, "--json"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                def filled(pid: int = proc.pid) -> bool:
                    got = tw("feed", "stats", "--name", lab.prefix, "--json")
                    return got.returncode == 0 and json.loads(got.stdout)["pid"] == pid and \
                        json.loads(got.stdout)["executed"] > 0

                _until(filled, f"run {run}: no fill", timeout=25)
                time.sleep(1.0)
                proc.send_signal(signal.SIGTERM)
                out, err = proc.communicate(timeout=60)
                assert proc.returncode == 0, err[-2000:]
            finally:
                if proc.poll() is None:
                    proc.kill()
            reports.append(json.loads(out))
        time.sleep(1.2)
        report = ex.stop()
    finally:
        ex.stop() if ex.proc.poll() is None else None
    first, second = reports
    assert "restart" not in first
    r = second["restart"]
    log = [json.loads(x) for x in (tmp_path / "record" / "orders.jsonl").read_text().splitlines()]
    refs = [m["user_ref_num"] for m in log if m.get("name") == "enter_order"]
    first_refs = refs[:first["stats"]["orders_sent"]]
    assert len(refs) == len(set(refs)) == first["stats"]["orders_sent"] + second["stats"]["orders_sent"]
    assert r["next_user_ref"] == max(first_refs) + 1 == min(refs[len(first_refs):])
    assert {k: v for k, v in r["positions"].items() if v} == {k: v for k, v in first["trading"]["positions"].items()
                                                              if v}
    assert all(r["strategy_positions"].get(n, 0) == s["position"] for n, s in first["trading"]["strategies"].items())
    assert report["order_entry"]["rejects"] == {} and second["stats"]["unknown_orders"] == 0
    assert r["login_seq"] > 1 and second["trading"]["order_entry"]["logins"] == 1
    account = report["order_entry"]["accounts"]["TWAPP1"]
    oms = Oms.from_journal(tmp_path / "journal")
    assert oms.anomalies == []
    for sym, loc in (("TAAA", "1"), ("TAAB", "2"), ("TAAC", "3")):  # the whole day's, every instrument
        assert second["trading"]["positions"][loc] == account["position"].get(sym, 0) == oms.position(sym)
        name = f"mm-{sym.lower()}"  # each strategy started from its own position and went on
        assert second["trading"]["strategies"][name]["position"] == oms.strategy_pnl().get(name, {}).get("position", 0)
    starts = [x.data for x in journal.read(tmp_path / "journal") if x.kind == "config"]
    assert [("restart" in x) for x in starts] == [False, True]


def test_feed_run_with_a_config_refuses_options_that_contradict_it(tmp_path, monkeypatch):
    import pathlib

    example = pathlib.Path(__file__).parents[2] / "examples" / "market_maker.yaml"
    r = tw("feed", "run", "--config", str(example), "--prefix", "tw", "--trade", "x.yaml")
    assert r.returncode == 2 and "says where the feed is and what to trade; drop --prefix, --trade" in r.stderr
    monkeypatch.delenv("TW_OUCH_PASSWORD", raising=False)
    r = tw("feed", "run", "--config", str(example))
    assert r.returncode == 2 and "the environment variable TW_OUCH_PASSWORD is not set" in r.stderr
    monkeypatch.setenv("TW_OUCH_PASSWORD", "x")
    r = tw("feed", "run", "--config", str(example), "--strategy", "nope")
    assert r.returncode == 2 and "no strategy of that name; the strategies are mm-taaa, mm-taab, mm-taac" in r.stderr


def test_socket_inputs_refuse_what_only_ports_do(tmp_path):
    r = tw("feed", "run", "--input", "socket", "--pcap", str(tmp_path / "x.pcap"))
    assert r.returncode == 2 and "--input socket reads a live feed; --pcap replays a capture" in r.stderr
    r = tw("feed", "run", "--pcap", str(tmp_path / "x.pcap"), "--record", str(tmp_path / "r.pcap"))
    assert r.returncode == 2 and "no such file" in r.stderr
    r = tw("feed", "run", "--iface", "A=lo", "--group", "A=239.1.1.1:1", "--record", str(tmp_path / "no" / "r"))
    assert r.returncode == 2 and f"--record {tmp_path / 'no' / 'r'}: the folder {tmp_path / 'no'} does not exist" \
        in r.stderr
    r = tw("feed", "run", "--input", "kernel")
    assert r.returncode == 2 and "invalid choice: 'kernel'" in r.stderr
    r = tw("feed", "run", "--iface", "A=lo", "--group", "A=239.1.1.1:1", "--busy-budget", "-1")
    assert r.returncode == 2 and "--busy-budget -1: give 0 (no busy-poll syscall per burst) to 65535" in r.stderr


def test_pm_qos_is_held_while_the_block_runs_and_dropped_after():
    from tuning.pmqos import PmQosError, current, hold_cpu_latency

    before = current()
    with hold_cpu_latency(0):
        assert current() == 0
    assert current() == before
    with pytest.raises(PmQosError, match="cpu latency -1 µs: give 0 or more"):
        with hold_cpu_latency(-1):
            pass


def test_the_kill_switch_stops_new_orders_and_cancels_the_quotes_before_the_next_burst(lab, tmp_path, monkeypatch):
    import pathlib
    import time

    import yaml

    trade = yaml.safe_load((pathlib.Path(__file__).parents[2] / "examples" / "trading.yaml").read_text())
    trade["strategies"][0]["params"].update(half_spread=0, refresh="2ms")
    monkeypatch.setenv("TW_OUCH_PASSWORD", "lab-secret")
    path = tmp_path / "trading.yaml"
    path.write_text(yaml.safe_dump(trade))
    worker = FeedWorker(lab, lab.prefix, "--trade", str(path))
    status = tmp_path / "record" / "status.json"

    def open_orders() -> int:
        return json.loads(status.read_text())["order_entry"]["accounts"]["TWAPP1"]["open_orders"]

    try:
        ex = ExchangeProcess(lab, tmp_path, duration=10, rate=3000)
        deadline = time.monotonic() + 10
        while tw_json("feed", "stats", "--name", lab.prefix)["orders_sent"] < 5:
            assert time.monotonic() < deadline, "the worker sent no orders"
            time.sleep(0.2)
        killed = tw_json("feed", "kill", "--name", lab.prefix)
        print("kill switch acted after", killed["acted_after_us"], "us")
        assert killed["kill"] and killed["acted_after_us"] < 100_000  # the loop's next iteration, not a poll
        time.sleep(1.5)
        after = tw_json("feed", "stats", "--name", lab.prefix)
        assert after["orders_sent"] == killed["orders_sent"]  # nothing new since the switch
        deadline = time.monotonic() + 5
        while open_orders():  # the quotes were cancelled at the exchange
            assert time.monotonic() < deadline, "quotes still open after the kill"
            time.sleep(0.2)
        released = tw_json("feed", "kill", "--name", lab.prefix, "--release")
        assert released["kill"] is False
        time.sleep(1.5)
        assert tw_json("feed", "stats", "--name", lab.prefix)["orders_sent"] > killed["orders_sent"]
        ex.finish()
        rep = worker.result()
    finally:
        worker.kill()
    assert rep["stats"]["unknown_orders"] == 0 and rep["trading"]["order_entry"]["protocol_errors"] == 0
    assert tw("feed", "kill", "--name", "no-such-worker").returncode == 2
