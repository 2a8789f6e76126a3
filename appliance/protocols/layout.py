"""Fixed-layout binary messages described by a table (shared by ITCH and OUCH).

A :class:`Spec` lists a message's fields by offset and size; from it this module
makes the typed record class, the struct format, a generated decode function and
the encoder, and checks at import that the fields tile the message exactly.

Field kinds:
* ``U``: big-endian unsigned integer of 1, 2, 4 or 8 bytes;
* ``TS48``: 6-byte nanoseconds since midnight (ITCH);
* ``PRICE``: unsigned integer with ``decimals`` implied decimals, kept as int;
* ``ALPHA``: space-padded ASCII text, held without its padding;
* ``CHAR``: one ASCII character, held as is (a space is a value).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from typing import Any, ClassVar

U, TS48, PRICE, ALPHA, CHAR = "u", "ts48", "price", "alpha", "char"
_STRUCT_CODE = {1: "B", 2: "H", 4: "I", 8: "Q"}


class LayoutError(ValueError):
    """A message that does not match its layout; subclassed by each protocol."""


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    offset: int
    size: int
    kind: str
    decimals: int = 0  # PRICE only


@dataclasses.dataclass(frozen=True)
class Spec:
    type: str
    name: str
    length: int  # fixed part, type byte included
    fields: tuple[Field, ...]


def check_tiling(spec: Spec) -> None:
    """Fields cover bytes 1..length exactly: no gap, no overlap."""
    at = 1
    for f in sorted(spec.fields, key=lambda f: f.offset):
        if f.offset != at:
            raise AssertionError(f"{spec.name} '{spec.type}': field {f.name} at {f.offset}, expected {at}")
        at += f.size
    if at != spec.length:
        raise AssertionError(f"{spec.name} '{spec.type}': fields end at {at}, length is {spec.length}")


def struct_for(spec: Spec) -> struct.Struct:
    parts = [">c"]
    for f in spec.fields:
        if f.kind == TS48:
            parts.append("HI")  # high 16 bits, low 32 bits
        elif f.kind in (ALPHA, CHAR):
            parts.append(f"{f.size}s")
        else:
            parts.append(_STRUCT_CODE[f.size])
    return struct.Struct("".join(parts))


class Record:
    """Base of generated record classes."""

    TYPE: ClassVar[str]
    SPEC: ClassVar[Spec]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, **dataclasses.asdict(self)}


def record_class(spec: Spec, base: type, module: str, extra: tuple[tuple[str, Any, Any], ...] = (),
                 doc: str = "") -> type:
    name = "".join(w.capitalize() for w in spec.name.split("_"))
    fields: list[Any] = [(f.name, str if f.kind in (ALPHA, CHAR) else int) for f in spec.fields]
    fields += [(n, t, dataclasses.field(default=d)) for n, t, d in extra]
    cls = dataclasses.make_dataclass(name, fields, bases=(base,), frozen=True, slots=True)
    cls.TYPE = spec.type
    cls.SPEC = spec
    cls.__module__ = module
    cls.__doc__ = doc or f"'{spec.type}' {spec.name.replace('_', ' ')} ({spec.length} bytes)."
    return cls


def make_decoder(spec: Spec, cls: type, st: struct.Struct) -> Callable[..., Any]:
    """``decode(msg, *extra)``: unpack the fixed part and build the record in one
    step (generated from the table, much faster than interpreting it)."""
    parts, i = [], 1
    for f in spec.fields:
        if f.kind == TS48:
            parts.append(f"v[{i}] << 32 | v[{i + 1}]")
            i += 2
            continue
        if f.kind == ALPHA:
            parts.append(f"v[{i}].decode('ascii', 'replace').rstrip(' ')")
        elif f.kind == CHAR:
            parts.append(f"v[{i}].decode('ascii', 'replace')")
        else:
            parts.append(f"v[{i}]")
        i += 1
    namespace: dict[str, Any] = {"unpack": st.unpack_from, "cls": cls}
    exec(f"def decode(msg, *extra):\n    v = unpack(msg)\n    return cls({', '.join(parts)}, *extra)\n", namespace)
    return namespace["decode"]


def pack_values(spec: Spec, rec: Any, error: type[LayoutError]) -> list[Any]:
    """The struct values of a record's fixed part, range-checked."""
    values: list[Any] = [spec.type.encode()]
    for f in spec.fields:
        v = getattr(rec, f.name)
        where = f"{spec.name} '{spec.type}'.{f.name}"
        if f.kind == TS48:
            if not isinstance(v, int) or not 0 <= v < 1 << 48:
                raise error(f"{where}: {v!r} does not fit 48 bits")
            values += [v >> 32, v & 0xFFFFFFFF]
        elif f.kind in (ALPHA, CHAR):
            try:
                raw = v.encode("ascii")
            except (AttributeError, UnicodeEncodeError) as exc:
                raise error(f"{where}: {v!r} is not ASCII text") from exc
            if len(raw) > f.size:
                raise error(f"{where}: {v!r} is longer than {f.size} characters")
            values.append(raw.ljust(f.size, b" "))
        else:
            if not isinstance(v, int) or not 0 <= v < 1 << (8 * f.size):
                raise error(f"{where}: {v!r} does not fit {f.size} bytes unsigned")
            values.append(v)
    return values


def format_price(value: int, decimals: int = 4) -> str:
    """``1502500`` -> ``"150.2500"``, exactly (no floats)."""
    whole, frac = divmod(value, 10**decimals)
    return f"{whole}.{frac:0{decimals}d}"


def to_json(rec: Record) -> dict[str, Any]:
    """A record as JSON-friendly data: prices stay integers, plus a ``*_text`` form."""
    d = rec.to_dict()
    for f in rec.SPEC.fields:
        if f.kind == PRICE:
            d[f"{f.name}_text"] = format_price(d[f.name], f.decimals)
    d["name"] = rec.SPEC.name
    return d


def example_values(spec: Spec, n: int) -> dict[str, Any]:
    """Valid field values derived from ``n``: for tests, fuzz seeds and benchmarks."""
    values: dict[str, Any] = {}
    for i, f in enumerate(spec.fields):
        seed = n * 31 + i * 7 + 1
        if f.kind == TS48:
            values[f.name] = (34_200_000_000_000 + n * 1_000) % (1 << 48)
        elif f.kind == CHAR:
            values[f.name] = "BSYNTQ"[seed % 6]
        elif f.kind == ALPHA:
            values[f.name] = ("SYM" + str(seed % 1000))[: f.size]
        elif f.kind == PRICE:
            values[f.name] = (1_000_000 + seed * 100) % (1 << (8 * f.size))
        else:
            values[f.name] = seed % (1 << (8 * f.size))
    return values
