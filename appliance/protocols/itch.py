"""NASDAQ TotalView-ITCH 5.0: every message type, decoded into typed records and
encoded back, from one layout table (PROTOCOLS.md).

* Integers are big-endian and unsigned. Timestamps are nanoseconds since midnight
  (48 bits). Prices stay integers: 4 implied decimals (``1502500`` is 150.2500),
  8 for the MWCB levels in ``V``. Use :func:`format_price` to show one.
* Text fields are ASCII, space padded; records hold them stripped of the padding,
  and encoding pads them again.
* Every error this module raises is an :class:`ItchError` naming the type, the
  expected and the actual length.

The same table gives numpy dtypes for bulk decoding (:mod:`appliance.protocols.bulk`).
"""

from __future__ import annotations

from typing import Any

from appliance.protocols import layout
from appliance.protocols.layout import ALPHA, CHAR, PRICE, TS48, Field, Spec, U, format_price

__all__ = ["SPECS", "BY_TYPE", "RECORDS", "ItchError", "Message", "decode", "encode", "example", "format_price",
           "message_type", "to_json"]


class ItchError(layout.LayoutError):
    """A message that is not valid ITCH 5.0 (unknown type, wrong length, bad field)."""


P4 = (PRICE, 4)  # 4-byte price, 4 implied decimals
P8 = (PRICE, 8)  # 8-byte MWCB level, 8 implied decimals

HEADER = (Field("stock_locate", 1, 2, U), Field("tracking_number", 3, 2, U), Field("timestamp", 5, 6, TS48))


def _field(name: str, offset: int, size: int, kind: str | tuple[str, int]) -> Field:
    if isinstance(kind, tuple):
        return Field(name, offset, size, kind[0], kind[1])
    return Field(name, offset, size, kind)


def _spec(t: str, name: str, length: int, *fields: tuple[str, int, int, Any]) -> Spec:
    return Spec(t, name, length, HEADER + tuple(_field(*f) for f in fields))


STOCK = ("stock", 11, 8, ALPHA)
REF = ("order_reference_number", 11, 8, U)

# (type, name, length, fields after the 11-byte header: name, offset, size, kind)
SPECS: tuple[Spec, ...] = (
    _spec("S", "system_event", 12, ("event_code", 11, 1, CHAR)),
    _spec("R", "stock_directory", 39, STOCK, ("market_category", 19, 1, CHAR), ("financial_status", 20, 1, CHAR),
          ("round_lot_size", 21, 4, U), ("round_lots_only", 25, 1, CHAR), ("issue_classification", 26, 1, CHAR),
          ("issue_sub_type", 27, 2, ALPHA), ("authenticity", 29, 1, CHAR),
          ("short_sale_threshold_indicator", 30, 1, CHAR), ("ipo_flag", 31, 1, CHAR),
          ("luld_reference_price_tier", 32, 1, CHAR), ("etp_flag", 33, 1, CHAR),
          ("etp_leverage_factor", 34, 4, U), ("inverse_indicator", 38, 1, CHAR)),
    _spec("H", "stock_trading_action", 25, STOCK, ("trading_state", 19, 1, CHAR), ("reserved", 20, 1, CHAR),
          ("reason", 21, 4, ALPHA)),
    _spec("Y", "reg_sho_restriction", 20, STOCK, ("reg_sho_action", 19, 1, CHAR)),
    _spec("L", "market_participant_position", 26, ("mpid", 11, 4, ALPHA), ("stock", 15, 8, ALPHA),
          ("primary_market_maker", 23, 1, CHAR), ("market_maker_mode", 24, 1, CHAR),
          ("market_participant_state", 25, 1, CHAR)),
    _spec("V", "mwcb_decline_level", 35, ("level_1", 11, 8, P8), ("level_2", 19, 8, P8),
          ("level_3", 27, 8, P8)),
    _spec("W", "mwcb_status", 12, ("breached_level", 11, 1, CHAR)),
    _spec("K", "ipo_quoting_period_update", 28, STOCK, ("ipo_quotation_release_time", 19, 4, U),
          ("ipo_quotation_release_qualifier", 23, 1, CHAR), ("ipo_price", 24, 4, P4)),
    _spec("J", "luld_auction_collar", 35, STOCK, ("auction_collar_reference_price", 19, 4, P4),
          ("upper_auction_collar_price", 23, 4, P4), ("lower_auction_collar_price", 27, 4, P4),
          ("auction_collar_extension", 31, 4, U)),
    _spec("h", "operational_halt", 21, STOCK, ("market_code", 19, 1, CHAR),
          ("operational_halt_action", 20, 1, CHAR)),
    _spec("A", "add_order", 36, REF, ("side", 19, 1, CHAR), ("shares", 20, 4, U), ("stock", 24, 8, ALPHA),
          ("price", 32, 4, P4)),
    _spec("F", "add_order_mpid", 40, REF, ("side", 19, 1, CHAR), ("shares", 20, 4, U), ("stock", 24, 8, ALPHA),
          ("price", 32, 4, P4), ("attribution", 36, 4, ALPHA)),
    _spec("E", "order_executed", 31, REF, ("executed_shares", 19, 4, U), ("match_number", 23, 8, U)),
    _spec("C", "order_executed_with_price", 36, REF, ("executed_shares", 19, 4, U), ("match_number", 23, 8, U),
          ("printable", 31, 1, CHAR), ("execution_price", 32, 4, P4)),
    _spec("X", "order_cancel", 23, REF, ("canceled_shares", 19, 4, U)),
    _spec("D", "order_delete", 19, REF),
    _spec("U", "order_replace", 35, ("original_order_reference_number", 11, 8, U),
          ("new_order_reference_number", 19, 8, U), ("shares", 27, 4, U), ("price", 31, 4, P4)),
    _spec("P", "trade", 44, REF, ("side", 19, 1, CHAR), ("shares", 20, 4, U), ("stock", 24, 8, ALPHA),
          ("price", 32, 4, P4), ("match_number", 36, 8, U)),
    _spec("Q", "cross_trade", 40, ("shares", 11, 8, U), ("stock", 19, 8, ALPHA), ("cross_price", 27, 4, P4),
          ("match_number", 31, 8, U), ("cross_type", 39, 1, CHAR)),
    _spec("B", "broken_trade", 19, ("match_number", 11, 8, U)),
    _spec("I", "noii", 50, ("paired_shares", 11, 8, U), ("imbalance_shares", 19, 8, U),
          ("imbalance_direction", 27, 1, CHAR), ("stock", 28, 8, ALPHA), ("far_price", 36, 4, P4),
          ("near_price", 40, 4, P4), ("current_reference_price", 44, 4, P4), ("cross_type", 48, 1, CHAR),
          ("price_variation_indicator", 49, 1, CHAR)),
    _spec("N", "retail_price_improvement", 20, STOCK, ("interest_flag", 19, 1, CHAR)),
    _spec("O", "dlcr_price_discovery", 48, STOCK, ("open_eligibility_status", 19, 1, CHAR),
          ("minimum_allowable_price", 20, 4, P4), ("maximum_allowable_price", 24, 4, P4),
          ("near_execution_price", 28, 4, P4), ("near_execution_time", 32, 8, U),
          ("lower_price_range_collar", 40, 4, P4), ("upper_price_range_collar", 44, 4, P4)),
)
BY_TYPE: dict[str, Spec] = {s.type: s for s in SPECS}
BY_TYPE_BYTE: dict[int, Spec] = {ord(s.type): s for s in SPECS}



class Message(layout.Record):
    """Base of the ITCH record classes."""


for _s in SPECS:
    layout.check_tiling(_s)

RECORDS: dict[str, type[Message]] = {
    s.type: layout.record_class(s, Message, __name__, doc=f"ITCH 5.0 '{s.type}' {s.name.replace('_', ' ')} "
                                f"({s.length} bytes).")
    for s in SPECS
}
globals().update({cls.__name__: cls for cls in RECORDS.values()})
_STRUCTS = {s.type: layout.struct_for(s) for s in SPECS}
_DECODERS = {ord(s.type): (s, layout.make_decoder(s, RECORDS[s.type], _STRUCTS[s.type])) for s in SPECS}


def decode(msg: bytes | memoryview) -> Message:
    """One ITCH message (type byte first, no length prefix) into its record."""
    if not msg:
        raise ItchError("empty message")
    entry = _DECODERS.get(msg[0])
    if entry is None:
        raise ItchError(f"unknown ITCH message type {chr(msg[0])!r} (0x{msg[0]:02x})")
    spec, dec = entry
    if len(msg) != spec.length:
        raise ItchError(f"ITCH '{spec.type}' {spec.name} is {spec.length} bytes, got {len(msg)}")
    return dec(msg)


def encode(rec: Message) -> bytes:
    return _STRUCTS[rec.TYPE].pack(*layout.pack_values(rec.SPEC, rec, ItchError))


def message_type(msg: bytes) -> str:
    return chr(msg[0]) if msg else ""


def to_json(rec: Message) -> dict[str, Any]:
    return layout.to_json(rec)


def example(t: str, n: int = 0) -> Message:
    """A valid record of type ``t`` whose fields all derive from ``n``: for tests,
    fuzzing seeds and benchmarks (not market-realistic; the generator is)."""
    return RECORDS[t](**layout.example_values(BY_TYPE[t], n))
