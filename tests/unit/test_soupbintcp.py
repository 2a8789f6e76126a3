"""SoupBinTCP 3.00: every packet type, tolerant numbers, stream framing."""

from __future__ import annotations

import pytest

from appliance.protocols import soupbintcp as soup

PACKETS = [
    soup.LoginRequest("TRADER", "secret", "SESSION01", 42), soup.LoginRequest("U1", "p"),
    soup.LoginAccepted("SESSION01", 1001), soup.LoginRejected("A"), soup.LoginRejected("S"),
    soup.UnsequencedData(b"O\x00\x01"), soup.SequencedData(b"A" + bytes(63)), soup.ClientHeartbeat(),
    soup.ServerHeartbeat(), soup.LogoutRequest(), soup.EndOfSession(), soup.Debug("hello"),
]


@pytest.mark.parametrize("pkt", PACKETS, ids=lambda p: type(p).__name__)
def test_every_packet_type_round_trips(pkt):
    raw = soup.encode(pkt)
    assert int.from_bytes(raw[:2], "big") == len(raw) - 2  # the length counts the type byte
    assert soup.decode(raw[2:]) == pkt


def test_login_layout_matches_the_spec():
    raw = soup.encode(soup.LoginRequest("TRADER", "secret", "SESSION01", 42))
    assert raw[2:3] == b"L" and len(raw) == 2 + 1 + 46
    assert raw[3:9] == b"TRADER" and raw[9:19] == b"secret    " and raw[19:29] == b"SESSION01 "
    assert raw[29:49] == b"42".rjust(20)


@pytest.mark.parametrize("field, expected", [(b"42".rjust(20), 42), (b"42".ljust(20), 42),
                                             (b"  42".ljust(20), 42), (b" " * 20, 0), (b"0" * 19 + b"7", 7)])
def test_ascii_numbers_are_parsed_whatever_the_padding(field, expected):
    assert soup.decode(b"A" + b"SESSION01 " + field).sequence == expected


@pytest.mark.parametrize("body, message", [
    (b"", "no type byte"), (b"Q", "unknown SoupBinTCP packet type 'Q'"), (b"A" + bytes(5), "payload is 30 bytes"),
    (b"A" + b"S" * 10 + b"12x".rjust(20), "is not a number"), (b"H!", "carries no payload"),
])
def test_bad_packets_raise_the_codecs_own_error(body, message):
    with pytest.raises(soup.SoupError, match=message):
        soup.decode(body)


def test_the_framer_reassembles_any_segmentation():
    stream = b"".join(soup.encode(p) for p in PACKETS)
    for cut in (1, 2, 3, 7, 64):
        framer, got = soup.Framer(), []
        for i in range(0, len(stream), cut):
            got += [(off, soup.decode(body)) for off, body in framer.feed(stream[i:i + cut])]
        assert [p for _, p in got] == PACKETS
        assert got[1][0] == len(soup.encode(PACKETS[0]))  # offsets are stream positions
        assert framer.pending == 0


def test_the_framer_refuses_a_zero_length_with_its_offset():
    framer = soup.Framer()
    with pytest.raises(soup.SoupError, match="stream offset 3: packet length 0"):
        list(framer.feed(soup.encode(soup.ServerHeartbeat()) + b"\x00\x00"))
