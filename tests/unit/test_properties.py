"""Property tests (hypothesis): encode then decode is the identity for any valid
record, and arbitrary bytes never raise anything but the codec's own error."""

from __future__ import annotations

import dataclasses
import io
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance import decode as decode_mod
from appliance.protocols import binaryfile, bulk, capture, itch, layout, moldudp64, ouch, soupbintcp

PRINTABLE = string.ascii_letters + string.digits + string.punctuation + " "


def field_strategy(f: layout.Field):
    if f.kind == layout.CHAR:
        return st.sampled_from(PRINTABLE)
    if f.kind == layout.ALPHA:  # held without trailing padding, so no trailing spaces
        return st.text(PRINTABLE, max_size=f.size).map(lambda s: s.rstrip(" "))
    if f.kind == layout.TS48:
        return st.integers(0, (1 << 48) - 1)
    return st.integers(0, (1 << (8 * f.size)) - 1)


def record_strategy(spec: layout.Spec, cls, extra=None):
    fields = {f.name: field_strategy(f) for f in spec.fields}
    if extra:
        fields.update(extra)
    return st.builds(cls, **fields)


ITCH_RECORDS = st.one_of(*[record_strategy(s, itch.RECORDS[s.type]) for s in itch.SPECS])
APPENDAGE = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=12)), max_size=3).map(tuple)


def ouch_strategy(table):
    out = []
    for spec, cls, _, _ in table.values():
        extra = {"appendage": APPENDAGE, "appendage_length": st.just(0)} if "appendage" in cls.__dataclass_fields__ \
            else None
        out.append(record_strategy(spec, cls, extra))
    return st.one_of(*out)


@given(ITCH_RECORDS)
def test_itch_encode_decode_is_the_identity(rec):
    assert itch.decode(itch.encode(rec)) == rec


@given(ouch_strategy(ouch.INBOUND))
def test_ouch_inbound_round_trips(rec):
    _same(ouch.decode_inbound(ouch.encode(rec)), rec)


@given(ouch_strategy(ouch.OUTBOUND))
def test_ouch_outbound_round_trips(rec):
    _same(ouch.decode_outbound(ouch.encode(rec)), rec)


def _same(back, rec):
    """Equal but for appendage_length, which encode computes from the entries."""
    fields = [f.name for f in dataclasses.fields(rec) if f.name != "appendage_length"]
    assert [getattr(back, f) for f in fields] == [getattr(rec, f) for f in fields]


@given(st.binary(max_size=80))
@settings(max_examples=500)
def test_random_bytes_raise_only_codec_errors(data):
    for fn, error in ((itch.decode, itch.ItchError), (ouch.decode_inbound, ouch.OuchError),
                      (ouch.decode_outbound, ouch.OuchError), (soupbintcp.decode, soupbintcp.SoupError),
                      (moldudp64.unpack, moldudp64.MoldError), (moldudp64.unpack_request, moldudp64.MoldError)):
        try:
            fn(data)
        except error:
            pass


MAGICS = sorted(decode_mod.PCAP_MAGICS)
FILES = st.one_of(st.binary(max_size=400),
                  st.tuples(st.sampled_from(MAGICS), st.binary(max_size=400)).map(lambda t: t[0] + t[1]))


def _valid_capture() -> bytes:
    buf = io.BytesIO()
    writer = capture.PcapWriter(buf)
    msgs = [itch.encode(itch.example(t, 1)) for t in "SAFED"]
    writer.write(capture.udp_frame(("198.18.1.1", 1), ("239.198.1.1", 2), moldudp64.pack("S", 1, msgs)), 1)
    writer.write(capture.tcp_frame(("198.18.3.11", 3), ("198.18.3.1", 4), 1, 1, capture.TCP_ACK,
                                   soupbintcp.encode(soupbintcp.UnsequencedData(ouch.encode(
                                       ouch.example("inbound", "O", 1))))), 2)
    return buf.getvalue()


VALID_CAPTURE = _valid_capture()


@given(st.lists(st.tuples(st.integers(0, len(VALID_CAPTURE) - 1), st.integers(0, 255)), min_size=1, max_size=8))
@settings(max_examples=300, deadline=None)
def test_damaged_captures_decode_without_crashing(tmp_path_factory, flips):
    data = bytearray(VALID_CAPTURE)
    for pos, value in flips:
        data[pos] = value
    path = tmp_path_factory.mktemp("fuzz") / "f.pcap"
    path.write_bytes(bytes(data))
    stats = decode_mod.Stats()
    for _ in decode_mod.decode_file(path, stats):
        pass


@given(FILES)
@settings(max_examples=300, deadline=None)
def test_random_files_decode_without_crashing(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "f.itch"
    path.write_bytes(data)
    stats = decode_mod.Stats()
    items = list(decode_mod.decode_file(path, stats))
    assert sum(stats.by_type.values()) + sum(stats.problems.values()) == len(items)
    if decode_mod.file_kind(path) == "binaryfile":
        result = bulk.decode_binaryfile(data)  # the C indexer on the same bytes agrees
        assert result.messages == sum(stats.by_type.values())
        assert result.malformed == stats.problems["unknown type"] + stats.problems["length mismatch"] + \
            stats.problems["empty message"]


@given(st.lists(ITCH_RECORDS, max_size=20), st.integers(0, 2**40))
def test_mold_packets_carry_any_messages(recs, seq):
    msgs = [itch.encode(r) for r in recs]
    for raw in moldudp64.packetize("S", seq, msgs, max_payload=300):
        moldudp64.unpack(raw)
    got = [m for raw in moldudp64.packetize("S", seq, msgs, 300) for m in moldudp64.unpack(raw).messages]
    assert got == msgs
    assert list(binaryfile.iter_messages(binaryfile.encode(msgs))) == msgs
