"""Bulk ITCH decoding: a whole BinaryFILE into numpy structured arrays, one per
message type, for analysis.

The C indexer (``tw_itch_census`` / ``tw_itch_split`` in dpdk/src/itch_index.c)
walks the length prefixes and copies each message into its type's array of raw
rows; numpy then turns the big-endian wire layout (a dtype generated from
:data:`appliance.protocols.itch.SPECS`) into native columns. Each array also has
an ``offset`` column: the file offset of the message's record.

Prices stay integers (4 implied decimals; 8 for ``V``); timestamps are uint64
nanoseconds since midnight; text fields are fixed-width bytes with their padding.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from appliance.protocols import itch
from dpdk import native

_WIRE_CODE = {1: "u1", 2: ">u2", 4: ">u4", 8: ">u8"}
_NATIVE_CODE = {1: "u1", 2: "u2", 4: "u4", 8: "u8"}
BAD_OFFSETS_KEPT = 1000


def wire_dtype(spec: itch.Spec) -> np.dtype:
    """The message's bytes as numpy sees them (big-endian, packed, type byte first)."""
    names, formats = ["type"], ["S1"]
    for f in spec.fields:
        if f.kind == itch.TS48:
            names += [f"{f.name}_hi", f"{f.name}_lo"]
            formats += [">u2", ">u4"]
        elif f.kind in (itch.ALPHA, itch.CHAR):
            names.append(f.name)
            formats.append(f"S{f.size}")
        else:
            names.append(f.name)
            formats.append(_WIRE_CODE[f.size])
    dt = np.dtype({"names": names, "formats": formats})
    assert dt.itemsize == spec.length, (spec.type, dt.itemsize)
    return dt


def native_dtype(spec: itch.Spec) -> np.dtype:
    fields = [("offset", "u8")]
    for f in spec.fields:
        if f.kind == itch.TS48:
            fields.append((f.name, "u8"))
        elif f.kind in (itch.ALPHA, itch.CHAR):
            fields.append((f.name, f"S{f.size}"))
        else:
            fields.append((f.name, _NATIVE_CODE[f.size]))
    return np.dtype(fields)


WIRE = {s.type: wire_dtype(s) for s in itch.SPECS}
NATIVE = {s.type: native_dtype(s) for s in itch.SPECS}


@dataclasses.dataclass
class BulkResult:
    arrays: dict[str, np.ndarray]   # type -> structured array (only types present)
    malformed: int                   # records with an unknown type or a wrong length
    malformed_offsets: list[int]     # the first BAD_OFFSETS_KEPT of them
    trailing_bytes: int              # bytes after the last whole record (a truncated file)

    @property
    def messages(self) -> int:
        return sum(len(a) for a in self.arrays.values())

    def counts(self) -> dict[str, int]:
        return {t: len(a) for t, a in self.arrays.items()}


def _expected_lengths(ffi):
    expected = ffi.new("uint16_t[256]")
    for s in itch.SPECS:
        expected[ord(s.type)] = s.length
    return expected


def decode_binaryfile(data: bytes | bytearray | memoryview | np.ndarray) -> BulkResult:
    """Every ITCH message of a BinaryFILE image, by type, as numpy arrays."""
    ffi, lib = native()
    buf = np.frombuffer(data, dtype=np.uint8)
    cbuf = ffi.from_buffer("uint8_t[]", buf)
    expected = _expected_lengths(ffi)
    counts = ffi.new("uint64_t[256]")
    malformed = ffi.new("uint64_t *")
    covered = lib.tw_itch_census(cbuf, len(buf), expected, counts, malformed)

    raw: dict[str, np.ndarray] = {}
    offs: dict[str, np.ndarray] = {}
    dest = ffi.new("uint8_t *[256]")
    offsets = ffi.new("uint64_t *[256]")
    keep = []  # cffi buffers must outlive the call
    for s in itch.SPECS:
        n = counts[ord(s.type)]
        if n == 0:
            continue
        raw[s.type] = np.empty(n * s.length, dtype=np.uint8)
        offs[s.type] = np.empty(n, dtype=np.uint64)
        keep += [ffi.from_buffer("uint8_t[]", raw[s.type]), ffi.from_buffer("uint64_t[]", offs[s.type])]
        dest[ord(s.type)] = keep[-2]
        offsets[ord(s.type)] = keep[-1]
    cursor = ffi.new("uint64_t[256]")
    bad = np.empty(BAD_OFFSETS_KEPT, dtype=np.uint64)
    nbad = ffi.new("uint64_t *")
    lib.tw_itch_split(cbuf, len(buf), expected, dest, offsets, cursor,
                      ffi.from_buffer("uint64_t[]", bad), BAD_OFFSETS_KEPT, nbad)

    arrays = {}
    for t, rows in raw.items():
        spec = itch.BY_TYPE[t]
        wire = rows.view(WIRE[t])
        out = np.empty(len(wire), dtype=NATIVE[t])
        out["offset"] = offs[t]
        for f in spec.fields:
            if f.kind == itch.TS48:
                out[f.name] = (wire[f"{f.name}_hi"].astype(np.uint64) << np.uint64(32)) | wire[f"{f.name}_lo"]
            else:
                out[f.name] = wire[f.name]
        arrays[t] = out
    return BulkResult(arrays=arrays, malformed=malformed[0], malformed_offsets=bad[:min(nbad[0], BAD_OFFSETS_KEPT)]
                      .tolist(), trailing_bytes=len(buf) - covered)
