"""ITCH 5.0: the layout table, every type's round trip, errors, and genuine NASDAQ
captures with fields checked against values read by hand from their bytes."""

from __future__ import annotations

import dataclasses

import pytest

from appliance.protocols import capture, itch, moldudp64
from common import paths

# PROTOCOLS.md's table of types and lengths
LENGTHS = {"S": 12, "R": 39, "H": 25, "Y": 20, "L": 26, "V": 35, "W": 12, "K": 28, "J": 35, "h": 21, "A": 36,
           "F": 40, "E": 31, "C": 36, "X": 23, "D": 19, "U": 35, "P": 44, "Q": 40, "B": 19, "I": 50, "N": 20,
           "O": 48}


def test_the_table_has_every_type_at_its_documented_length():
    assert {s.type: s.length for s in itch.SPECS} == LENGTHS


@pytest.mark.parametrize("t", sorted(LENGTHS))
def test_every_type_round_trips(t):
    for n in (0, 1, 977):
        rec = itch.example(t, n)
        raw = itch.encode(rec)
        assert len(raw) == LENGTHS[t] and raw[:1] == t.encode()
        assert itch.decode(raw) == rec


def test_prices_are_integers_with_four_implied_decimals():
    rec = itch.decode(itch.encode(_with(itch.example("A", 0), price=1502500)))
    assert rec.price == 1502500 and isinstance(rec.price, int)
    assert itch.to_json(rec)["price_text"] == "150.2500"
    assert itch.format_price(1, 4) == "0.0001" and itch.format_price(123456789, 8) == "1.23456789"


def _with(rec, **changes):
    return dataclasses.replace(rec, **changes)


@pytest.mark.parametrize("raw, message", [
    (b"", "empty message"),
    (b"Z" + bytes(11), "unknown ITCH message type 'Z'"),
    (b"A" + bytes(30), "ITCH 'A' add_order is 36 bytes, got 31"),
    (b"S" + bytes(12), "ITCH 'S' system_event is 12 bytes, got 13"),
])
def test_bad_messages_raise_the_codecs_own_error(raw, message):
    with pytest.raises(itch.ItchError, match=message):
        itch.decode(raw)


@pytest.mark.parametrize("change, message", [
    ({"stock": "TOOLONGSYM"}, "longer than 8 characters"),
    ({"shares": -1}, "does not fit 4 bytes"),
    ({"price": 1 << 32}, "does not fit 4 bytes"),
    ({"timestamp": 1 << 48}, "does not fit 48 bits"),
    ({"stock": "ÄPFEL"}, "not ASCII"),
])
def test_unencodable_fields_are_named(change, message):
    with pytest.raises(itch.ItchError, match=message):
        itch.encode(_with(itch.example("A", 1), **change))


def test_a_space_in_a_one_character_field_is_kept():
    rec = itch.decode(itch.encode(_with(itch.example("R", 2), financial_status=" ")))
    assert rec.financial_status == " "


DATA = paths.shared_data()
needs_data = pytest.mark.skipif(DATA is None, reason="../shared/data is absent (set TICKWIRE_SHARED_DATA)")
DAY = "nasdaq/Nasdaq.Equities.TotalView.Itch.v5.0.20230822"


def genuine(name: str) -> itch.Message:
    frame = next(capture.read_frames(DATA / DAY / f"{name}.pcap"))
    (msg,) = moldudp64.unpack(frame.payload).messages
    return itch.decode(msg)


# Each row was read by hand from the message bytes (hex in the comment).
@needs_data
@pytest.mark.parametrize("name, expected", [
    # 41 1598 0000 1f1aced85306 000000000166b53e 42 00000640 49564f4f20202020 000d55ac
    ("AddOrderNoMPID", dict(stock_locate=5528, timestamp=34_199_999_894_278, order_reference_number=23_508_286,
                            side="B", shares=1600, stock="IVOO", price=873_900)),
    # 46 06ca ... 0000000001 20be7553 53 00000064 4341535920202020 0026fd40 464c5455
    ("AddOrderWithMPID", dict(stock_locate=1738, order_reference_number=18_923_125, side="S", shares=100,
                              stock="CASY", price=2_555_200, attribution="FLTU")),
    # 43 13e4 0001 ... 00000000013113de 0000133e 00000000 0003e65d 4e 00036e20
    ("OrderExecutedWithPrice", dict(stock_locate=5092, tracking_number=1, order_reference_number=19_993_566,
                                    executed_shares=4926, match_number=255_581, printable="N",
                                    execution_price=224_800)),
    # 55 1db3 ... 0000000000e6897f 000000000145f2c7 00000064 001036c8
    ("OrderReplace", dict(stock_locate=7603, original_order_reference_number=15_108_479,
                          new_order_reference_number=21_361_351, shares=100, price=1_062_600)),
    # 48 2c3d 0000 1f1e7036e465 5a585a5a54202020 50 20 4c554450
    ("StockTradingAction", dict(stock_locate=11325, stock="ZXZZT", trading_state="P", reason="LUDP")),
    # 50 1193 0002 ... 0000000000000000 42 00000064 474f4f474c202020 001399f8 00000000 0003e642
    ("NonCrossTrade", dict(stock_locate=4499, order_reference_number=0, side="B", shares=100, stock="GOOGL",
                           price=1_284_600, match_number=255_554)),
    # 51 03d7 0001 ... 0000000000000000 4241432d51202020 00000000 000000000003e63e 4f
    ("CrossTrade", dict(stock="BAC-Q", shares=0, cross_price=0, match_number=255_550, cross_type="O")),
])
def test_genuine_messages_decode_to_the_values_in_their_bytes(name, expected):
    rec = genuine(name)
    got = {k: getattr(rec, k) for k in expected}
    assert got == expected


@needs_data
def test_every_genuine_itch_capture_decodes_and_re_encodes_exactly():
    files = sorted((DATA / "nasdaq").glob("*Itch*/*.pcap"))
    assert len(files) >= 30
    seen = set()
    for f in files:
        for frame in capture.read_frames(f):
            for msg in moldudp64.unpack(frame.payload).messages:
                rec = itch.decode(msg)
                assert itch.encode(rec) == msg, f
                seen.add(rec.TYPE)
    assert seen >= set("SAFECXDUPQHYLIJN")
