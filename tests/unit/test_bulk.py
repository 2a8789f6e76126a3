"""Bulk ITCH decoding (C indexer + numpy) agrees with the per-message decoder."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from appliance.protocols import binaryfile, bulk, itch
from common import paths


def every_type(n: int) -> list[bytes]:
    return [itch.encode(itch.example(s.type, i)) for i in range(n) for s in itch.SPECS]


def test_every_type_matches_the_per_message_decoder_field_by_field():
    msgs = every_type(5)
    result = bulk.decode_binaryfile(binaryfile.encode(msgs))
    assert result.counts() == {s.type: 5 for s in itch.SPECS}
    assert result.malformed == 0 and result.trailing_bytes == 0
    for s in itch.SPECS:
        arr = result.arrays[s.type]
        recs = [itch.decode(m) for m in msgs if m[:1] == s.type.encode()]
        for row, rec in zip(arr, recs, strict=True):
            for f in s.fields:
                got = row[f.name]
                got = got.decode().rstrip(" ") if f.kind == "alpha" else got.decode() if f.kind == "char" else int(got)
                assert got == getattr(rec, f.name), (s.type, f.name)


def test_offsets_point_at_each_record():
    msgs = every_type(2)
    data = binaryfile.encode(msgs)
    result = bulk.decode_binaryfile(data)
    for t, arr in result.arrays.items():
        for off in arr["offset"]:
            n = int.from_bytes(data[off:off + 2], "big")
            assert data[off + 2:off + 3] == t.encode() and n == itch.BY_TYPE[t].length


def test_malformed_and_truncated_records_are_counted_with_offsets():
    good = every_type(1)
    data = binaryfile.encode(good[:3] + [b"Z123", good[3][:-2]] + good[4:6]) + b"\x00\x09abc"
    result = bulk.decode_binaryfile(data)
    assert result.messages == 5 and result.malformed == 2 and result.trailing_bytes == 5
    bad_offset = len(binaryfile.encode(good[:3]))
    assert result.malformed_offsets == [bad_offset, bad_offset + 6]


def test_timestamps_use_all_48_bits():
    rec = dataclasses.replace(itch.example("D", 0), timestamp=(1 << 48) - 1)
    arr = bulk.decode_binaryfile(binaryfile.encode([itch.encode(rec)])).arrays["D"]
    assert arr["timestamp"][0] == np.uint64((1 << 48) - 1)


def test_the_genuine_sample_in_bulk():
    sample = paths.sample_itch()
    if sample is None:
        pytest.skip("../shared/data/nasdaq/sample-first-1000.itch is absent")
    result = bulk.decode_binaryfile(sample.read_bytes())
    assert result.counts() == {"S": 1, "R": 993, "H": 3, "Y": 3}
    r = result.arrays["R"]
    assert r["stock"][0] == b"A       " and r["stock_locate"][0] == 1 and r["round_lot_size"][0] == 100
