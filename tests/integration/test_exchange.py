"""The live exchange in the lab: ITCH on both lines, retransmission, faults, OUCH
order entry (ours and Nasdaq's client as peers), recording."""

from __future__ import annotations

import json
import pathlib
import socket
import struct
import subprocess
import sys
import time

import pytest

from appliance import decode
from appliance.lab.exchange import gen
from appliance.lab.exchange.orderentry import Reject
from appliance.protocols import binaryfile, capture, itch, moldudp64, ouch
from appliance.protocols import soupbintcp as soup
from common.netns import in_netns
from labtools import ExchangeProcess, OuchClient, Sink, enter

pytestmark = pytest.mark.root
SYM = "TAAA"  # the first of the 4 symbols the fixture's exchange lists


@pytest.fixture
def exchange(lab, tmp_path):
    x = ExchangeProcess(lab, tmp_path)
    yield x
    if x.proc.poll() is None:
        x.stop()


def feed_messages(record: pathlib.Path, dport: int = 26400, src_suffix: str = ".1.1") -> dict[int, bytes]:
    """Sequence -> ITCH message as recorded on line A."""
    out = {}
    for fr in capture.read_frames(record / "feed.pcapng"):
        if fr.dport == dport and fr.src.endswith(src_suffix):
            p = moldudp64.unpack(fr.payload)
            for i, m in enumerate(p.messages):
                out[p.sequence + i] = m
    return out


def test_both_lines_carry_the_whole_day_and_end_with_end_of_session(lab, tmp_path):
    sinks = {line: Sink(lab, "app", line, idle=2.0) for line in ("feed-a", "feed-b")}
    try:
        x = ExchangeProcess(lab, tmp_path, duration=2)
        report = x.finish()
        got = {line: s.result() for line, s in sinks.items()}
    finally:
        for s in sinks.values():
            s.kill()
    total = report["feed"]["messages"]
    assert total > 3000
    for line, r in got.items():
        assert (r["messages"], r["first_seq"], r["next_seq"], r["gaps"]) == (total, 1, total + 1, 0), line
    recs = [itch.decode(m) for _, m in sorted(feed_messages(x.record).items())]
    assert [r.event_code for r in recs if r.TYPE == "S"] == ["O", "S", "Q", "M", "E", "C"]
    eos = [fr for fr in capture.read_frames(x.record / "feed.pcapng")
           if len(fr.payload) == 20 and moldudp64.unpack(fr.payload).count == moldudp64.END_OF_SESSION]
    assert len(eos) == 3 * 2  # on both lines
    stats = decode.Stats()
    assert not [i for i in decode.decode_file(x.record / "feed.pcapng", stats) if isinstance(i, decode.Problem)]


def udp_in(lab, role: str) -> socket.socket:
    with in_netns(lab.ns(role)):
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def request(lab, seq: int, count: int) -> list[bytes]:
    s = udp_in(lab, "app")
    s.settimeout(2)
    s.sendto(moldudp64.request("TWLAB00001", seq, count), ("198.18.1.1", 26401))
    got: list[bytes] = []
    while len(got) < count:
        try:
            data, _ = s.recvfrom(2048)
        except socket.timeout:
            break
        p = moldudp64.unpack(data)
        assert p.sequence == seq + len(got)
        got += p.messages
    s.close()
    return got


def test_retransmission_resends_what_the_lines_carried(lab, exchange):
    time.sleep(1.0)
    resent = request(lab, 10, 300)
    assert len(resent) == 300
    exchange.stop()
    recorded = feed_messages(exchange.record)
    assert resent == [recorded[s] for s in range(10, 310)]


def test_a_gap_on_both_lines_is_filled_by_retransmission(lab, tmp_path):
    sinks = {line: Sink(lab, "app", line, idle=2.0) for line in ("feed-a", "feed-b")}
    try:
        x = ExchangeProcess(lab, tmp_path, faults=[{"kind": "gap", "at_sequence": 500, "packets": 3}])
        time.sleep(2.0)  # the gap is behind us; the exchange is still up to answer
        window = request(lab, 450, 400)  # what the retransmission server holds around the gap
        report = x.stop()
        got = {line: s.result() for line, s in sinks.items()}
    finally:
        for s in sinks.values():
            s.kill()
    assert got["feed-a"]["gaps"] == got["feed-b"]["gaps"] == 1
    assert got["feed-a"]["gap_messages"] == got["feed-b"]["gap_messages"] > 0
    assert report["feed"]["lines"]["A"]["dropped"] == report["feed"]["lines"]["B"]["dropped"] == 3
    recorded = feed_messages(x.record)
    missing = [s for s in range(1, max(recorded) + 1) if s not in recorded]
    assert missing[0] >= 500 and len(missing) == got["feed-a"]["gap_messages"]
    assert missing[-1] < 450 + 400, "the gap lies inside the requested window"
    for offset, msg in enumerate(window):  # fills the gap, and agrees with what the lines carried
        seq = 450 + offset
        assert msg == recorded[seq] if seq in recorded else itch.decode(msg)
    assert len(window) == 400


def test_line_a_down_leaves_line_b_whole(lab, tmp_path):
    sinks = {line: Sink(lab, "app", line, idle=2.0) for line in ("feed-a", "feed-b")}
    try:
        x = ExchangeProcess(lab, tmp_path, duration=2,
                            faults=[{"kind": "line_down", "line": "A", "at_sequence": 200, "packets": 20}])
        report = x.finish()
        got = {line: s.result() for line, s in sinks.items()}
    finally:
        for s in sinks.values():
            s.kill()
    assert got["feed-a"]["gaps"] == 1 and got["feed-a"]["gap_messages"] > 0
    assert got["feed-b"]["gaps"] == 0 and got["feed-b"]["messages"] == report["feed"]["messages"]
    assert report["feed"]["lines"]["A"]["dropped"] == 20


def test_duplicates_and_reordering_on_line_b(lab, tmp_path):
    sink = Sink(lab, "app", "feed-b", idle=2.0)
    try:
        x = ExchangeProcess(lab, tmp_path, duration=2, faults=[
            {"kind": "duplicate", "line": "B", "probability": 0.05},
            {"kind": "reorder", "line": "B", "probability": 0.05}])
        report = x.finish()
        got = sink.result()
    finally:
        sink.kill()
    b = report["feed"]["lines"]["B"]
    assert b["duplicated"] > 0 and b["reordered"] > 0
    assert got["duplicates"] >= b["duplicated"] and got["gaps"] > 0  # a held packet arrives late
    assert got["next_seq"] == report["feed"]["messages"] + 1


def test_logins_are_checked(lab, exchange):
    bad = OuchClient(lab)
    assert bad.login(password="wrong") == soup.LoginRejected("A")
    bad.close()
    other = OuchClient(lab)
    assert other.login(session="NOSUCH") == soup.LoginRejected("S")
    other.close()
    good = OuchClient(lab)
    accepted = good.login()
    assert accepted == soup.LoginAccepted("TWOE000001", 1)
    twice = OuchClient(lab)
    assert twice.login() == soup.LoginRejected("S")  # one session per account
    twice.close()
    good.close()


def test_an_order_rests_is_published_on_itch_and_cancels(lab, exchange):
    c = OuchClient(lab)
    c.login()
    (start,) = c.messages(1)
    assert (start.TYPE, start.event_code) == ("S", "S")
    c.order(enter(1, SYM, "B", 300, 100))  # $0.01: far below the market, so it rests
    (acc,) = c.messages(1)
    assert (acc.TYPE, acc.user_ref_num, acc.order_state, acc.quantity) == ("A", 1, "L", 300)
    c.order(ouch.INBOUND["X"][1](user_ref_num=1, quantity=100))  # down to 100
    (canceled,) = c.messages(1)
    assert (canceled.TYPE, canceled.quantity, canceled.reason) == ("C", 200, "U")
    c.order(ouch.INBOUND["X"][1](user_ref_num=1, quantity=0))
    (rest,) = c.messages(1)
    assert (rest.TYPE, rest.quantity) == ("C", 100)
    c.order(ouch.INBOUND["X"][1](user_ref_num=1, quantity=0))
    assert c.messages(1)[0].TYPE == "I"  # nothing left to cancel
    c.close()
    exchange.stop()
    feed = [itch.decode(m) for _, m in sorted(feed_messages(exchange.record).items())]
    mine = [r for r in feed if getattr(r, "order_reference_number", None) == acc.order_reference_number]
    assert [r.TYPE for r in mine] == ["A", "X", "D"]
    assert (mine[0].shares, mine[0].price, mine[0].stock, mine[1].canceled_shares) == (300, 100, SYM, 200)


def test_a_marketable_order_fills_and_positions_follow(lab, exchange):
    time.sleep(0.5)  # let the flow build a book
    c = OuchClient(lab)
    c.login(sequence=0)
    c.order(enter(5, SYM, "B", 200, 99_999_9900, tif="3"))  # IOC, far through the offer
    acc = c.messages(1)[0]
    assert acc.TYPE == "A"
    execs, canceled = [], 0
    while sum(e.quantity for e in execs) + canceled < 200:
        m = c.messages(1)[0]
        if m.TYPE == "E":
            execs.append(m)
        elif m.TYPE == "C":
            canceled += m.quantity
    assert execs and all(e.liquidity_flag == "R" and e.user_ref_num == 5 for e in execs)
    c.close()
    report = exchange.stop()
    filled = sum(e.quantity for e in execs)
    assert report["order_entry"]["accounts"]["TWAPP1"]["position"] == {SYM: filled}
    feed = [itch.decode(m) for m in feed_messages(exchange.record).values()]
    feed_matches = {r.match_number for r in feed if r.TYPE in "EP"}
    assert {e.match_number for e in execs} <= feed_matches
    log = [json.loads(x) for x in (exchange.record / "orders.jsonl").read_text().splitlines()]
    fills = [x["fill"] for x in log if "fill" in x]
    assert sum(f["qty"] for f in fills if f.get("buyer", "").startswith("TWAPP1")) == filled


@pytest.mark.parametrize("order, reason", [
    (enter(1, "NOPE", "B", 100, 1_000_000), Reject.INVALID_SYMBOL),
    (enter(1, SYM, "Q", 100, 1_000_000), Reject.INVALID_SIDE),
    (enter(1, SYM, "B", 0, 1_000_000), Reject.INVALID_QUANTITY),
    (enter(1, SYM, "B", 100, 1_000_050), Reject.INVALID_PRICE),   # not a whole cent
    (enter(1, SYM, "B", 100, 500_000_0000), Reject.FAT_FINGER),
    (enter(1, SYM, "B", 100, 1_000_000, tif="6"), Reject.INVALID_TIME_IN_FORCE),
])
def test_bad_orders_are_rejected_with_their_reason(lab, exchange, order, reason):
    c = OuchClient(lab)
    c.login(sequence=0)
    c.order(order)
    (rej,) = c.messages(1)
    assert (rej.TYPE, rej.reason, rej.user_ref_num) == ("J", int(reason), 1)
    c.close()


def test_user_ref_nums_must_increase(lab, exchange):
    c = OuchClient(lab)
    c.login(sequence=0)
    c.order(enter(7, SYM, "B", 100, 100))
    assert c.messages(1)[0].TYPE == "A"
    c.order(enter(7, SYM, "B", 100, 100))
    rej = c.messages(1)[0]
    assert (rej.TYPE, rej.reason) == ("J", int(Reject.USER_REF_NUM_NOT_INCREASING))


def test_replace_and_modify(lab, exchange):
    c = OuchClient(lab)
    c.login(sequence=0)
    c.order(enter(1, SYM, "S", 500, 99_000_0000))  # $99,000: far above the market, rests
    acc = c.messages(1)[0]
    replace = ouch.INBOUND["U"][1](orig_user_ref_num=1, user_ref_num=2, quantity=400, price=98_000_0000,
                                   time_in_force="0", display="Y", intermarket_sweep="N", cl_ord_id="R2",
                                   appendage_length=0, appendage=())
    c.order(replace)
    rep = c.messages(1)[0]
    assert (rep.TYPE, rep.orig_user_ref_num, rep.user_ref_num, rep.quantity, rep.price) == ("U", 1, 2, 400,
                                                                                           98_000_0000)
    assert rep.order_reference_number != acc.order_reference_number
    c.order(ouch.INBOUND["M"][1](user_ref_num=2, side="T", quantity=300))  # sell short, smaller
    mod = c.messages(1)[0]
    assert (mod.TYPE, mod.side, mod.quantity) == ("M", "T", 300)
    c.order(ouch.INBOUND["M"][1](user_ref_num=2, side="B", quantity=100))  # a sell cannot become a buy
    assert c.messages(1)[0].reason == int(Reject.INVALID_SIDE)


def test_a_reconnect_replays_from_the_requested_sequence(lab, exchange):
    c = OuchClient(lab)
    c.login()
    for ref in (1, 2, 3):
        c.order(enter(ref, SYM, "B", 100, 100 * ref))
    first = [ouch.encode(m) for m in c.messages(4)]  # start of day + three accepts
    c.close()  # the lab's login has cancel-on-disconnect: the three are cancelled, in the stream too
    time.sleep(0.2)
    again = OuchClient(lab)
    assert again.login(sequence=2) == soup.LoginAccepted("TWOE000001", 2)
    replay = again.messages(6)
    assert [ouch.encode(m) for m in replay[:3]] == first[1:]  # the same bytes, in order
    assert [(m.TYPE, m.user_ref_num, m.quantity, m.reason) for m in replay[3:]] == [
        ("C", ref, 100, "L") for ref in (1, 2, 3)]
    again.close()
    time.sleep(0.2)
    fresh = OuchClient(lab)
    assert fresh.login(sequence=0) == soup.LoginAccepted("TWOE000001", 8)
    assert fresh.recv(timeout=0.5) is None
    fresh.close()


@pytest.mark.parametrize("cod", [True, False])
def test_cancel_on_disconnect_is_per_login(lab, tmp_path, cod):
    """A login with cancel_on_disconnect has nothing open once its session drops (a reset here), and the
    exchange's log says which orders and why; a login without keeps its orders working."""
    x = ExchangeProcess(lab, tmp_path, order_entry={"accounts": [
        {"username": "TWAPP1", "password": "lab-secret", "cancel_on_disconnect": cod}]})
    try:
        c = OuchClient(lab)
        c.login()
        for ref in (1, 2):
            c.order(enter(ref, SYM, "B", 100, 100 * ref))
        c.messages(3)  # start of day + two accepts
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # a reset, as a dead host's link looks
        time.sleep(0.5)
        report = x.stop()
    finally:
        if x.proc.poll() is None:
            x.stop()
    log = [json.loads(line) for line in (tmp_path / "record" / "orders.jsonl").read_text().splitlines()]
    cods = [r["cancel_on_disconnect"] for r in log if "cancel_on_disconnect" in r]
    account = report["order_entry"]["accounts"]["TWAPP1"]
    if cod:
        assert cods == [{"account": "TWAPP1", "why": "reset", "reason": "L",
                         "canceled": [{"user_ref": 1, "symbol": SYM, "qty": 100},
                                      {"user_ref": 2, "symbol": SYM, "qty": 100}]}]
        assert [(r["user_ref_num"], r["reason"]) for r in log if r.get("name") == "order_canceled"] == [
            (1, "L"), (2, "L")]
        assert account["open_orders"] == 0 and account["canceled_on_disconnect"] == 2
    else:
        assert cods == [] and account["open_orders"] == 2


def test_heartbeats_and_the_link_timeout(lab, tmp_path):
    x = ExchangeProcess(lab, tmp_path, order_entry={"heartbeat_interval": 0.2, "timeout": 1.0})
    try:
        c = OuchClient(lab)
        c.login(sequence=0)
        start = time.monotonic()
        assert c.recv(timeout=3.0) is None  # silent client: server heartbeats, then it hangs up
        assert c.heartbeats >= 3
        assert 0.9 < time.monotonic() - start < 3.0
        c.close()
        assert x.stop()["order_entry"]["timeouts"] == 1
    finally:
        if x.proc.poll() is None:
            x.stop()


def test_nasdaqs_own_soupbintcp_client_trades_with_us(lab, exchange):
    peer = pathlib.Path(__file__).with_name("nasdaq_peer.py")
    res = subprocess.run(["ip", "netns", "exec", lab.ns("app"), sys.executable, str(peer), "198.18.3.1", "15000",
                          "TWAPP1", "lab-secret", SYM], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    got = [json.loads(x) for x in res.stdout.splitlines()]
    assert [g["type"] for g in got] == ["S", "A"]
    assert (got[1]["cl_ord_id"], got[1]["quantity"], got[1]["symbol"]) == ("NASDAQPEER", 100, SYM)


def test_order_entry_is_recorded_as_a_decodable_capture(lab, exchange):
    c = OuchClient(lab)
    c.login(sequence=0)
    c.order(enter(1, SYM, "B", 100, 100, firm=b"TWFM"))
    c.messages(1)
    c.close()
    exchange.stop()
    items = list(decode.decode_file(exchange.record / "orders.pcapng"))
    assert not [i for i in items if isinstance(i, decode.Problem)]
    kinds = [(i["soupbintcp"], i.get("type") or i.get("packet")) for i in items if isinstance(i, dict)]
    assert ("L", "LoginRequest") in kinds and ("U", "O") in kinds and ("S", "A") in kinds
    entered = next(i for i in items if isinstance(i, dict) and i.get("type") == "O")
    assert entered["appendage"][0]["firm"] == "TWFM"


def test_blast_mode_publishes_a_generated_day_exactly(lab, tmp_path):
    day = tmp_path / "day.itch"
    gen.generate(day, symbols=5, messages=30_000, seed=9)
    sent = list(binaryfile.iter_messages(day.read_bytes()))
    sinks = {line: Sink(lab, "app", line, idle=2.0) for line in ("feed-a", "feed-b")}
    try:
        x = ExchangeProcess(lab, tmp_path, mode="blast", day=str(day), rate=50_000)
        report = x.finish()  # ends by itself once the day is out
        got = {line: s.result() for line, s in sinks.items()}
    finally:
        for s in sinks.values():
            s.kill()
    assert report["feed"]["messages"] == len(sent)
    for line, r in got.items():
        assert (r["messages"], r["gaps"], r["next_seq"]) == (len(sent), 0, len(sent) + 1), line
    recorded = feed_messages(x.record)
    assert [recorded[s] for s in range(1, len(sent) + 1)] == sent  # byte for byte, in sequence
