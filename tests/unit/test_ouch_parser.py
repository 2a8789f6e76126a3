"""The worker's SoupBinTCP/OUCH parser (dpdk/src/ouch.c) fed bytes directly:
every field it reads equals what the Python codecs encoded, however the bytes
are split, and random bytes never crash it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.protocols import ouch
from appliance.protocols import soupbintcp as soup
from dpdk.ouch import OuchSession


def session(next_seq: int = 7) -> OuchSession:
    """A session whose login asked for next_seq (stream()'s Login Accepted answers 7)."""
    return OuchSession(("127.0.0.1", 9), "TWAPP1", "secret", next_seq=next_seq)


def stream(n: int = 4) -> tuple[bytes, list]:
    recs = [ouch.example("outbound", t, i) for i in range(n) for t in "AECJUSP"]
    data = soup.encode(soup.LoginAccepted("TWOE000001", 7))
    data += soup.encode(soup.ServerHeartbeat())
    for r in recs:
        data += soup.encode(soup.SequencedData(ouch.encode(r)))
    return data, recs


def check(got: list[dict], recs: list) -> None:
    assert [m["seq"] for m in got] == list(range(7, 7 + len(recs)))
    for m, r in zip(got, recs, strict=True):
        assert m["type"] == r.TYPE and m["timestamp"] == r.timestamp
        if r.TYPE in "AECJP":
            assert m["user_ref"] == r.user_ref_num
        if r.TYPE == "A":
            assert (m["side"], m["qty"], m["price"], m["order_ref"], m["state"]) == (
                r.side, r.quantity, r.price, r.order_reference_number, r.order_state)
        elif r.TYPE == "U":
            assert (m["orig_user_ref"], m["user_ref"], m["qty"], m["price"], m["order_ref"]) == (
                r.orig_user_ref_num, r.user_ref_num, r.quantity, r.price, r.order_reference_number)
        elif r.TYPE == "E":
            assert (m["qty"], m["price"], m["liquidity"], m["match"]) == (
                r.quantity, r.price, r.liquidity_flag, r.match_number)
        elif r.TYPE == "C":
            assert (m["qty"], m["reason"]) == (r.quantity, ord(r.reason))
        elif r.TYPE == "J":
            assert m["reason"] == r.reason
        elif r.TYPE == "S":
            assert m["state"] == r.event_code


def test_every_field_equals_the_python_codec():
    data, recs = stream()
    o = session()
    got = o.inject(data)
    check(got, recs)
    st_ = o.stats()
    assert st_["state"] == "up" and st_["session"] == "TWOE000001" and st_["heartbeats_heard"] == 1
    assert st_["next_seq"] == 7 + len(recs)


@given(st.lists(st.integers(1, 97), min_size=1, max_size=40))
@settings(max_examples=100, deadline=None)
def test_however_the_bytes_are_split_the_messages_are_the_same(cuts):
    data, recs = stream(2)
    o = session()
    got, at = [], 0
    for c in cuts * (len(data) // sum(cuts) + 1):
        if at >= len(data):
            break
        got += o.inject(data[at:at + c])
        at += c
    check(got, recs)


def test_a_login_reject_and_an_end_of_session_stop_the_session():
    o = session()
    assert o.inject(soup.encode(soup.LoginRejected("A"))) == []
    assert o.stats()["state"] == "rejected" and o.stats()["reject_reason"] == "A"
    o = session()
    data, _ = stream(1)
    o.inject(data + soup.encode(soup.EndOfSession()) + soup.encode(soup.ServerHeartbeat()))
    assert o.stats()["state"] == "ended"


@given(st.binary(max_size=600))
@settings(max_examples=400, deadline=None)
def test_random_bytes_never_crash_the_parser(blob):
    o = session(1)
    o.inject(soup.encode(soup.LoginAccepted("TWOE000001", 1)) + blob)
    s = o.stats()  # (random bytes may hold another login accepted: a bad answer, never a renumbering)
    assert s["state"] in ("up", "login_sent", "down", "ended", "rejected") and s["next_seq"] >= 1
