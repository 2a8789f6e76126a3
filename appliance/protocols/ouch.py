"""NASDAQ OUCH 5.0: order-entry messages, carried in SoupBinTCP ``U`` (client to
exchange, "inbound") and ``S`` (exchange to client, "outbound") packets.

Inbound and outbound are two tables because their type letters overlap (``U`` is
Replace Order inbound and Order Replaced outbound). Prices are 8 bytes with 4
implied decimals; timestamps 8-byte nanoseconds since midnight.

Several messages end in an optional appendage: the fixed part's last field is
``appendage_length`` (u16), then that many bytes of entries, each
``[u8 length of tag+value][u8 tag][value]``. Records keep the entries as
``((tag, value), ...)`` in order, so any appendage round-trips byte for byte;
:data:`TAG_FIRM` (2, four characters) is the one named here.

Layouts are those of PROTOCOLS.md; for the outbound messages it lists only by
length (B, F, D, T, M, R) the fields follow the OUCH 5.0 specification, and the
import-time tiling check proves they add up to those lengths.
"""

from __future__ import annotations

import struct
from typing import Any

from appliance.protocols import layout
from appliance.protocols.layout import ALPHA, CHAR, PRICE, Field, Spec, U, format_price

__all__ = ["INBOUND", "OUTBOUND", "OuchError", "Message", "decode_inbound", "decode_outbound", "encode",
           "appendage_get", "TAG_FIRM", "format_price", "example"]

TAG_FIRM = 2
APPENDAGE = "appendage_length"


class OuchError(layout.LayoutError):
    """A message that is not valid OUCH 5.0."""


def _f(name: str, offset: int, size: int, kind: str) -> Field:
    return Field(name, offset, size, kind, 4 if kind == PRICE else 0)


TS = ("timestamp", 1, 8, U)
OUTREF = ("user_ref_num", 9, 4, U)


def _spec(t: str, name: str, length: int, *fields: tuple[str, int, int, str]) -> Spec:
    return Spec(t, name, length, tuple(_f(*f) for f in fields))


INBOUND_SPECS = (
    _spec("O", "enter_order", 47, ("user_ref_num", 1, 4, U), ("side", 5, 1, CHAR), ("quantity", 6, 4, U),
          ("symbol", 10, 8, ALPHA), ("price", 18, 8, PRICE), ("time_in_force", 26, 1, CHAR),
          ("display", 27, 1, CHAR), ("capacity", 28, 1, CHAR), ("intermarket_sweep", 29, 1, CHAR),
          ("cross_type", 30, 1, CHAR), ("cl_ord_id", 31, 14, ALPHA), (APPENDAGE, 45, 2, U)),
    _spec("U", "replace_order", 40, ("orig_user_ref_num", 1, 4, U), ("user_ref_num", 5, 4, U),
          ("quantity", 9, 4, U), ("price", 13, 8, PRICE), ("time_in_force", 21, 1, CHAR),
          ("display", 22, 1, CHAR), ("intermarket_sweep", 23, 1, CHAR), ("cl_ord_id", 24, 14, ALPHA),
          (APPENDAGE, 38, 2, U)),
    _spec("X", "cancel_order", 9, ("user_ref_num", 1, 4, U), ("quantity", 5, 4, U)),
    _spec("M", "modify_order", 10, ("user_ref_num", 1, 4, U), ("side", 5, 1, CHAR), ("quantity", 6, 4, U)),
)

OUTBOUND_SPECS = (
    _spec("S", "system_event", 10, TS, ("event_code", 9, 1, CHAR)),
    _spec("A", "order_accepted", 64, TS, OUTREF, ("side", 13, 1, CHAR), ("quantity", 14, 4, U),
          ("symbol", 18, 8, ALPHA), ("price", 26, 8, PRICE), ("time_in_force", 34, 1, CHAR),
          ("display", 35, 1, CHAR), ("order_reference_number", 36, 8, U), ("capacity", 44, 1, CHAR),
          ("intermarket_sweep", 45, 1, CHAR), ("cross_type", 46, 1, CHAR), ("order_state", 47, 1, CHAR),
          ("cl_ord_id", 48, 14, ALPHA), (APPENDAGE, 62, 2, U)),
    _spec("U", "order_replaced", 68, TS, ("orig_user_ref_num", 9, 4, U), ("user_ref_num", 13, 4, U),
          ("side", 17, 1, CHAR), ("quantity", 18, 4, U), ("symbol", 22, 8, ALPHA), ("price", 30, 8, PRICE),
          ("time_in_force", 38, 1, CHAR), ("display", 39, 1, CHAR), ("order_reference_number", 40, 8, U),
          ("capacity", 48, 1, CHAR), ("intermarket_sweep", 49, 1, CHAR), ("cross_type", 50, 1, CHAR),
          ("order_state", 51, 1, CHAR), ("cl_ord_id", 52, 14, ALPHA), (APPENDAGE, 66, 2, U)),
    _spec("C", "order_canceled", 18, TS, OUTREF, ("quantity", 13, 4, U), ("reason", 17, 1, CHAR)),
    _spec("E", "order_executed", 36, TS, OUTREF, ("quantity", 13, 4, U), ("price", 17, 8, PRICE),
          ("liquidity_flag", 25, 1, CHAR), ("match_number", 26, 8, U), (APPENDAGE, 34, 2, U)),
    _spec("J", "order_rejected", 29, TS, OUTREF, ("reason", 13, 2, U), ("cl_ord_id", 15, 14, ALPHA)),
    _spec("P", "cancel_pending", 13, TS, OUTREF),
    _spec("I", "cancel_reject", 13, TS, OUTREF),
    _spec("B", "broken_trade", 36, TS, OUTREF, ("match_number", 13, 8, U), ("reason", 21, 1, CHAR),
          ("cl_ord_id", 22, 14, ALPHA)),
    _spec("F", "trade_correction", 49, TS, OUTREF, ("quantity", 13, 4, U), ("price", 17, 8, PRICE),
          ("liquidity_flag", 25, 1, CHAR), ("match_number", 26, 8, U), ("reason", 34, 1, CHAR),
          ("cl_ord_id", 35, 14, ALPHA)),
    _spec("D", "aiq_canceled", 31, TS, OUTREF, ("decrement_shares", 13, 4, U), ("reason", 17, 1, CHAR),
          ("quantity_prevented_from_trading", 18, 4, U), ("execution_price", 22, 8, PRICE),
          ("liquidity_flag", 30, 1, CHAR)),
    _spec("T", "priority_update", 30, TS, OUTREF, ("price", 13, 8, PRICE), ("display", 21, 1, CHAR),
          ("order_reference_number", 22, 8, U)),
    _spec("M", "order_modified", 18, TS, OUTREF, ("side", 13, 1, CHAR), ("quantity", 14, 4, U)),
    _spec("R", "order_restated", 16, TS, OUTREF, ("reason", 13, 1, CHAR), (APPENDAGE, 14, 2, U)),
)


class Message(layout.Record):
    """Base of the OUCH record classes; ``DIRECTION`` is inbound or outbound."""

    DIRECTION = ""


def _has_appendage(spec: Spec) -> bool:
    return spec.fields[-1].name == APPENDAGE


def _table(specs: tuple[Spec, ...], direction: str) -> dict[str, tuple[Spec, type, Any, struct.Struct]]:
    table = {}
    for spec in specs:
        layout.check_tiling(spec)
        extra = (("appendage", tuple, ()),) if _has_appendage(spec) else ()
        cls = layout.record_class(spec, Message, __name__, extra,
                                  f"OUCH 5.0 {direction} '{spec.type}' {spec.name.replace('_', ' ')} "
                                  f"({spec.length} bytes{' + appendage' if extra else ''}).")
        cls.__name__ = cls.__qualname__ = ("In" if direction == "inbound" else "Out") + cls.__name__
        cls.DIRECTION = direction
        st = layout.struct_for(spec)
        table[spec.type] = (spec, cls, layout.make_decoder(spec, cls, st), st)
    return table


INBOUND = _table(INBOUND_SPECS, "inbound")
OUTBOUND = _table(OUTBOUND_SPECS, "outbound")
globals().update({entry[1].__name__: entry[1] for entry in (*INBOUND.values(), *OUTBOUND.values())})


def parse_appendage(data: bytes | memoryview, where: str) -> tuple[tuple[int, bytes], ...]:
    entries, i = [], 0
    while i < len(data):
        n = data[i]
        if n < 1 or i + 1 + n > len(data):
            raise OuchError(f"{where}: appendage entry at byte {i} claims {n} bytes, {len(data) - i - 1} remain")
        entries.append((data[i + 1], bytes(data[i + 2:i + 1 + n])))
        i += 1 + n
    return tuple(entries)


def pack_appendage(entries: tuple[tuple[int, bytes], ...]) -> bytes:
    out = bytearray()
    for tag, value in entries:
        if not 0 <= tag <= 255 or len(value) > 254:
            raise OuchError(f"appendage entry tag {tag} with {len(value)} bytes does not fit")
        out += bytes((len(value) + 1, tag)) + value
    return bytes(out)


def appendage_get(rec: Message, tag: int) -> bytes | None:
    for t, value in getattr(rec, "appendage", ()):
        if t == tag:
            return value
    return None


def _decode(table: dict, direction: str, msg: bytes | memoryview) -> Message:
    if not msg:
        raise OuchError(f"empty OUCH {direction} message")
    t = chr(msg[0])
    entry = table.get(t)
    if entry is None:
        raise OuchError(f"unknown OUCH {direction} message type {t!r} (0x{msg[0]:02x})")
    spec, cls, dec, _ = entry
    where = f"OUCH {direction} '{t}' {spec.name}"
    if not _has_appendage(spec):
        if len(msg) != spec.length:
            raise OuchError(f"{where} is {spec.length} bytes, got {len(msg)}")
        return dec(msg)
    if len(msg) < spec.length:
        raise OuchError(f"{where} is at least {spec.length} bytes, got {len(msg)}")
    (app_len,) = struct.unpack_from(">H", msg, spec.length - 2)
    if len(msg) != spec.length + app_len:
        raise OuchError(f"{where}: appendage length {app_len} means {spec.length + app_len} bytes, got {len(msg)}")
    return dec(msg, parse_appendage(memoryview(msg)[spec.length:], where))


def decode_inbound(msg: bytes | memoryview) -> Message:
    """A message a client sends (the payload of a SoupBinTCP ``U`` packet)."""
    return _decode(INBOUND, "inbound", msg)


def decode_outbound(msg: bytes | memoryview) -> Message:
    """A message the exchange sends (the payload of a SoupBinTCP ``S`` packet)."""
    return _decode(OUTBOUND, "outbound", msg)


def encode(rec: Message) -> bytes:
    """Encode a record; ``appendage_length`` is computed from the entries."""
    table = INBOUND if rec.DIRECTION == "inbound" else OUTBOUND
    spec, _, _, st = table[rec.TYPE]
    values = layout.pack_values(spec, rec, OuchError)
    if not _has_appendage(spec):
        return st.pack(*values)
    tail = pack_appendage(rec.appendage)
    values[-1] = len(tail)
    return st.pack(*values) + tail


def to_json(rec: Message) -> dict[str, Any]:
    d = layout.to_json(rec)
    if "appendage" in d:
        d["appendage"] = [{"tag": t, "value": v.hex(), **({"firm": v.decode("ascii", "replace")}
                                                            if t == TAG_FIRM else {})} for t, v in rec.appendage]
    d["direction"] = rec.DIRECTION
    return d


def example(direction: str, t: str, n: int = 0, appendage: tuple[tuple[int, bytes], ...] = ()) -> Message:
    spec, cls, _, _ = (INBOUND if direction == "inbound" else OUTBOUND)[t]
    values = layout.example_values(spec, n)
    if _has_appendage(spec):
        values[APPENDAGE] = len(pack_appendage(appendage))
        values["appendage"] = appendage
    return cls(**values)
