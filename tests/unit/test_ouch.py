"""OUCH 5.0: every inbound and outbound message, appendages, errors, genuine captures."""

from __future__ import annotations

import dataclasses

import pytest

from appliance.protocols import capture, ouch, soupbintcp
from common import paths

IN_LENGTHS = {"O": 47, "U": 40, "X": 9, "M": 10}
OUT_LENGTHS = {"S": 10, "A": 64, "U": 68, "C": 18, "E": 36, "J": 29, "P": 13, "I": 13, "B": 36, "F": 49, "D": 31,
               "T": 30, "M": 18, "R": 16}
FIRM = ((ouch.TAG_FIRM, b"LIME"),)


def test_the_tables_hold_every_listed_message_at_its_length():
    assert {t: e[0].length for t, e in ouch.INBOUND.items()} == IN_LENGTHS
    assert {t: e[0].length for t, e in ouch.OUTBOUND.items()} == OUT_LENGTHS


@pytest.mark.parametrize("direction, t", [("inbound", t) for t in IN_LENGTHS] + [("outbound", t) for t in OUT_LENGTHS])
def test_every_message_round_trips_with_and_without_an_appendage(direction, t):
    decode = ouch.decode_inbound if direction == "inbound" else ouch.decode_outbound
    spec = (ouch.INBOUND if direction == "inbound" else ouch.OUTBOUND)[t][0]
    appendages = [(), FIRM, ((2, b"ABCD"), (9, b"\x01"))] if spec.fields[-1].name == "appendage_length" else [()]
    for app in appendages:
        rec = ouch.example(direction, t, 7, app)
        raw = ouch.encode(rec)
        assert len(raw) == spec.length + sum(2 + len(v) for _, v in app)
        assert decode(raw) == rec


def test_the_appendage_length_is_computed_from_the_entries():
    rec = dataclasses.replace(ouch.example("inbound", "O", 1, FIRM), appendage_length=999)
    raw = ouch.encode(rec)
    assert int.from_bytes(raw[45:47], "big") == 6 and raw[47:] == b"\x05\x02LIME"
    assert ouch.appendage_get(ouch.decode_inbound(raw), ouch.TAG_FIRM) == b"LIME"


def test_prices_are_eight_bytes_with_four_decimals():
    rec = dataclasses.replace(ouch.example("inbound", "O", 1), price=630200)
    raw = ouch.encode(rec)
    assert raw[18:26] == (630200).to_bytes(8, "big")
    assert ouch.to_json(ouch.decode_inbound(raw))["price_text"] == "63.0200"


@pytest.mark.parametrize("decode, raw, message", [
    (ouch.decode_inbound, b"", "empty OUCH inbound message"),
    (ouch.decode_inbound, b"Q" + bytes(8), "unknown OUCH inbound message type 'Q'"),
    (ouch.decode_inbound, b"X" + bytes(9), "'X' cancel_order is 9 bytes, got 10"),
    (ouch.decode_inbound, b"O" + bytes(40), "is at least 47 bytes, got 41"),
    (ouch.decode_outbound, b"E" + bytes(33) + b"\x00\x05", "appendage length 5 means 41 bytes, got 36"),
    (ouch.decode_outbound, b"E" + bytes(33) + b"\x00\x02\x05\x02", "entry at byte 0 claims 5 bytes, 1 remain"),
])
def test_malformed_messages_raise_the_codecs_own_error(decode, raw, message):
    with pytest.raises(ouch.OuchError, match=message.replace("(", r"\(")):
        decode(raw)


OUCH_DIR = (paths.shared_data() / "nasdaq" / "Nasdaq.Nsm.Ouch.v5.0") if paths.shared_data() else None
needs_data = pytest.mark.skipif(OUCH_DIR is None, reason="../shared/data is absent (set TICKWIRE_SHARED_DATA)")


def soup_payloads(name: str):
    frames = list(capture.read_frames(OUCH_DIR / f"{name}.pcap"))
    framer = soupbintcp.Framer()
    return [soupbintcp.decode(body) for fr in frames for _, body in framer.feed(fr.payload)]


# values read by hand from the frames' bytes
@needs_data
def test_the_genuine_enter_order_decodes_to_its_bytes():
    (pkt,) = soup_payloads("EnterOrderMessage")
    rec = ouch.decode_inbound(pkt.message)
    assert (rec.TYPE, rec.user_ref_num, rec.side, rec.quantity, rec.symbol, rec.price) == ("O", 113, "T", 225,
                                                                                         "CVLT", 630_200)
    assert (rec.time_in_force, rec.display, rec.capacity, rec.cl_ord_id) == ("0", "Y", "A", "H8FUB8IV")
    assert rec.appendage == ((2, b"LIME"),)
    assert ouch.encode(rec) == pkt.message


@needs_data
@pytest.mark.parametrize("name, direction, expected", [
    ("CancelOrderMessage", "inbound", {"TYPE": "X", "user_ref_num": 7_679_601, "quantity": 0}),
    ("CanceledMessage", "outbound", {"TYPE": "C", "user_ref_num": 7_682_701, "quantity": 40, "reason": "U"}),
    ("OrderAcceptedMessage", "outbound", {"TYPE": "A", "user_ref_num": 7_682_701, "side": "B", "quantity": 40,
                                          "symbol": "ADBE", "price": 4_777_800}),
])
def test_genuine_ouch_messages(name, direction, expected):
    (pkt,) = soup_payloads(name)
    rec = (ouch.decode_inbound if direction == "inbound" else ouch.decode_outbound)(pkt.message)
    assert {k: getattr(rec, k) for k in expected} == expected
    assert ouch.encode(rec) == pkt.message


@needs_data
@pytest.mark.parametrize("name, cls", [("ClientHeartbeatPacket", soupbintcp.ClientHeartbeat),
                                       ("ServerHeartbeatPacket", soupbintcp.ServerHeartbeat)])
def test_genuine_heartbeats(name, cls):
    assert soup_payloads(name) == [cls()]
