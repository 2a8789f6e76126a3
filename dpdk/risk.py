"""Inline pre-trade risk (dpdk/src/risk.c) from Python: publish a limits table,
run the chain, feed it the exchange's answers, read positions and denials.

The C face (dpdk/include/risk.h) is the one definition; everything here is read
from it through cffi:
- the limits are the fields of ``struct tw_risk_limits``, in its order (:data:`LIMITS`);
  each one's unit is read from its name's ending (:data:`UNITS`, the one table of
  what C's types cannot say), and a field whose ending is not there is refused at import;
- the denial codes are ``enum tw_risk_denial`` (:func:`denial_names`), the trading
  states ``enum tw_trading_state`` (:data:`TRADING_STATES`);
- the rule that merges two levels (the stricter wins, field by field) is risk.c's own
  ``tw_risk_limits_merge`` (:func:`merge`), and so is "no limit" (:func:`no_ceiling`).
Adding a check: dpdk/README.md."""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import re
from decimal import Decimal
from typing import Any

from dpdk import native, to_struct

_ffi, _lib = native()

PRICE_SCALE = 10_000  # C prices: 4 implied decimals

# A limit's unit, by the ending of its name in struct tw_risk_limits (the longest ending wins).
# shares and dollars: 0 allows nothing; basis points and rates: 0 is no limit (as risk.c merges them).
UNITS = {
    "state": "state",            # enum tw_trading_state, by name in the YAML
    "_qty": "shares", "_position": "shares", "_gross": "shares",
    "_notional": "dollars",      # YAML dollars; C price (4 decimals) x shares
    "_price": "dollars",         # YAML dollars; C 4 decimals
    "_bps": "basis points",
    "_orders": "orders",         # a count of open orders
    "_rate": "per second",
    "_burst": "orders",          # a token bucket's size
}
NOT_IN_YAML = ("kill",)          # the kill switch's flag: set by `tickwire kill`, never by the YAML


def _unit(name: str) -> str:
    endings = [e for e in UNITS if name == e or (e.startswith("_") and name.endswith(e))]
    if not endings:
        raise TypeError(f"struct tw_risk_limits.{name}: no unit for its name; end it with one of "
                        f"{', '.join(e for e in UNITS if e.startswith('_'))} (dpdk/risk.py UNITS)")
    return UNITS[max(endings, key=len)]


_FIELDS = [(n, f.type) for n, f in _ffi.typeof("struct tw_risk_limits").fields if not n.startswith("_")]
# the YAML's limits, in the struct's order: name -> unit
LIMITS: dict[str, str] = {n: _unit(n) for n, _ in _FIELDS if n not in NOT_IN_YAML}
TRADING_STATES: dict[str, int] = {k.removeprefix("TW_TRADING_").lower(): v for v, k in
                                  sorted(_ffi.typeof("enum tw_trading_state").elements.items())}


@functools.cache
def denial_names() -> dict[int, str]:
    """enum tw_risk_denial: code -> name (e.g. 8 -> "max_position")."""
    codes = sorted(_ffi.typeof("enum tw_risk_denial").elements.items())
    return {v: k.removeprefix("TW_RISK_").lower() for v, k in codes if k != "TW_RISK_NCODES"}


@functools.cache
def denial_limits() -> dict[int, str | None]:
    """Each denial code -> the field of struct tw_risk_limits its check compares against, None
    for none: risk.c's own answer (tw_risk_denial_limit)."""
    return {code: _ffi.string(_lib.tw_risk_denial_limit(code)).decode() or None for code in denial_names()}


def yaml_units(name: str, value: int) -> Any:
    """A limit's value from C's units to the YAML's (dollars from 4 decimals, a state by name)."""
    unit = LIMITS.get(name)
    if unit == "state":
        return next(k for k, v in TRADING_STATES.items() if v == value)
    return Decimal(value) / PRICE_SCALE if unit == "dollars" else value


def _context(code: int, limit: Any = "…", value: Any = "…") -> str:
    name, field = denial_names()[code], denial_limits()[code]
    if name == "self_match":  # no limit: our resting order's price against this one's
        return f"resting={limit}, order={value}"
    if field not in LIMITS:   # none, or the kill switch's flag
        return ""
    if LIMITS[field] == "state":
        return f"state={limit}"
    if LIMITS[field] == "per second":  # the bucket held no token: nothing to show but the rate
        return f"{field}={limit}"
    return f"{field}={limit}, order={value}"


def denial_reason(code: int, limit: int = 0, value: int = 0) -> str:
    """A denial as its stable code and ``key=value`` context, from a TW_EV_RISK_DENIED event's code,
    limit and value, e.g. ``MAX_NOTIONAL: max_order_notional=100000, order=150000.5``: the limit by
    its YAML name and both values in the YAML's units (risk.h says what each code's values are)."""
    field = denial_limits()[code]
    if denial_names()[code] == "self_match":
        limit, value = Decimal(limit) / PRICE_SCALE, Decimal(value) / PRICE_SCALE
    elif field in LIMITS:
        limit, value = yaml_units(field, limit), yaml_units(field, value)
    context = _context(code, limit, value)
    return f"{denial_names()[code].upper()}: {context}" if context else denial_names()[code].upper()


README = pathlib.Path(__file__).with_name("README.md")
HEADER = pathlib.Path(__file__).parent / "include" / "risk.h"
_TABLE = re.compile(r"(<!-- denial-table:[^\n]*-->\n).*?(<!-- /denial-table -->)", re.DOTALL)


def denial_table() -> str:
    """dpdk/README.md's table of denial codes: each code of the enum (cffi), the context its reason
    gives (the limit risk.c names for it), and its comment in risk.h."""
    text = HEADER.read_text()
    enum = text[text.index("enum tw_risk_denial {"):]
    enum = enum[:enum.index("};")]
    notes = {m[1]: " ".join(m[2].split()) for m in re.finditer(r"(TW_RISK_\w+) = \d+,\s*/\*(.*?)\*/", enum, re.DOTALL)}
    rows = ["| code | denial | context | when |", "|---:|---|---|---|"]
    for code, name in denial_names().items():
        if code:
            context = _context(code)
            when = notes.get(f"TW_RISK_{name.upper()}") or f"the order is past `{denial_limits()[code]}`"
            rows.append(f"| {code} | `{name.upper()}` | {f'`{context}`' if context else ''} | {when} |")
    return "\n".join(rows) + "\n"


def write_denial_table() -> None:
    """Regenerate the table in dpdk/README.md (after adding a denial code)."""
    README.write_text(_TABLE.sub(lambda m: m[1] + denial_table() + m[2], README.read_text()))


def _to_c(self: Any, ffi: Any = None) -> Any:
    return to_struct(ffi or _ffi, "struct tw_risk_limits *", self, {"state": TRADING_STATES})


# The table Python writes whole: struct tw_risk_limits field by field, in C's units (quantities in
# shares, prices with 4 decimals, notional = price x shares) with the state by name. A zero maximum
# allows nothing; a zero rate or collar means no limit.
Limits = dataclasses.make_dataclass(
    "Limits",
    [(n, str, dataclasses.field(default="active")) if n == "state" else
     (n, bool, dataclasses.field(default=False)) if n in NOT_IN_YAML else
     (n, int, dataclasses.field(default=0)) for n, _ in _FIELDS],
    namespace={"to_c": _to_c, "__doc__": "struct tw_risk_limits in C's units, the state by name (dpdk/risk.py).",
               "__module__": __name__})


def from_c(c: Any) -> Any:
    """A struct tw_risk_limits (pointer or value) as Limits."""
    states = {v: k for k, v in TRADING_STATES.items()}
    return Limits(**{n: states[c.state] if n == "state" else bool(getattr(c, n)) if n in NOT_IN_YAML
                     else int(getattr(c, n)) for n, _ in _FIELDS})


def merge(a: Any, b: Any) -> Any:
    """The stricter of two levels, field by field: risk.c's own rule (tw_risk_limits_merge),
    the one the worker applies to the global limits and a strategy's row."""
    out = _ffi.new("struct tw_risk_limits *")
    _lib.tw_risk_limits_merge(out, a.to_c(), b.to_c())
    return from_c(out)


@functools.cache
def no_ceiling() -> Any:
    """The limits that hold nothing back, found by asking the merge itself: a field is 0 where
    risk.c reads 0 as "no limit" (merging 0 with any value gives that value), else the largest
    value its C type holds. No table to keep beside the merge."""
    zero, one = _ffi.new("struct tw_risk_limits *"), _ffi.new("struct tw_risk_limits *")
    for n, _ in _FIELDS:
        setattr(one, n, 1)
    out = _ffi.new("struct tw_risk_limits *")
    _lib.tw_risk_limits_merge(out, zero, one)
    for n, ctype in _FIELDS:
        if getattr(out, n) != 1:
            setattr(zero, n, 2 ** (8 * _ffi.sizeof(ctype)) - 1)
    return from_c(zero)


def c_units(name: str, value: Any) -> Any:
    """A limit's YAML value in Limits' units: dollars with 4 decimals as an integer, a state by name."""
    unit = LIMITS[name]
    if unit == "state":
        return value
    return int(value * PRICE_SCALE) if unit == "dollars" else int(value)


class Risk:
    def __init__(self, max_locate: int = 65535, max_own_orders: int = 4096):
        self.ffi, self.lib = native()
        ptr = self.lib.tw_risk_create(max_locate, max_own_orders)
        if ptr == self.ffi.NULL:
            raise MemoryError(f"tw_risk_create({max_locate}, {max_own_orders}) failed")
        self._r = self.ffi.gc(ptr, self.lib.tw_risk_destroy)
        self._intent = self.ffi.new("struct tw_order_intent *")

    def set_limits(self, limits: Any) -> None:
        """Global limits only, no strategy rows."""
        self.lib.tw_risk_set_limits(self._r, limits.to_c(self.ffi))

    def set_table(self, global_: Any, rows: list[Any]) -> None:
        """The whole table in one publish: the worker's global limits and one row per
        strategy (slot i: rows[i]); a strategy's order trades under the stricter of the two."""
        if len(rows) > self.lib.TW_RISK_MAX_ROWS:
            raise ValueError(f"{len(rows)} strategy rows: a risk table holds at most {self.lib.TW_RISK_MAX_ROWS}")
        t = self.ffi.new("struct tw_risk_table *")
        setattr(t, "global", global_.to_c(self.ffi)[0])  # noqa: B010 - `global` is a Python keyword
        t.nrows = len(rows)
        for i, row in enumerate(rows):
            t.rows[i] = row.to_c(self.ffi)[0]
        self.lib.tw_risk_set_table(self._r, t)

    def seed_position(self, locate: int, position: int) -> None:
        """After a restart: the position the journal says is held (not checked: it is there)."""
        if self.lib.tw_risk_seed_position(self._r, locate, position) < 0:
            raise ValueError(f"locate {locate} is out of range")

    def seed_order(self, user_ref: int, locate: int, side: str, qty: int, price: int,
                   strategy: int | None = None) -> bool:
        """After a restart: an order the journal says is still open at the venue (not checked),
        counted in strategy slot ``strategy``'s row (None: no strategy's)."""
        o = self._intent
        o.user_ref, o.locate, o.side, o.qty, o.price = user_ref, locate, ord(side), qty, price
        o.strategy = self._slot(strategy)
        return self.lib.tw_risk_seed_order(self._r, o) == 0

    def _slot(self, strategy: int | None) -> int:
        if strategy is None:
            return self.lib.TW_RISK_ANY
        if not 0 <= strategy < self.lib.TW_RISK_MAX_ROWS:
            raise ValueError(f"strategy slot {strategy}: 0..{self.lib.TW_RISK_MAX_ROWS - 1}")
        return strategy

    def kill_instrument(self, locate: int, kill: bool = True) -> None:
        if self.lib.tw_risk_kill_instrument(self._r, locate, int(kill)) < 0:
            raise ValueError(f"locate {locate} is out of range")

    def kill_strategy(self, strategy: int, kill: bool = True) -> None:
        self.lib.tw_risk_kill_strategy(self._r, self._slot(strategy), int(kill))

    def check(self, books: Any, user_ref: int, locate: int, side: str, qty: int, price: int, now_ns: int = 0,
              stale: bool = False, strategy: int | None = None) -> str | None:
        """None when the order may go (it is then open), else the denial's name. books: a
        dpdk.books.Books (not imported: books imports this module for its denials). strategy:
        the slot whose row it trades under (None: the global limits alone)."""
        o = self._intent
        o.user_ref, o.locate, o.side, o.qty, o.price = user_ref, locate, ord(side), qty, price
        o.strategy = self._slot(strategy)
        self.lib.tw_risk_set_events(self._r, books._sink)  # its denials go where the books' events go
        rc = self.lib.tw_risk_check(self._r, books._b, int(stale), o, now_ns)
        return denial_names()[rc] if rc else None

    def message(self, now_ns: int = 0, strategy: int | None = None) -> str | None:
        rc = self.lib.tw_risk_message(self._r, self._slot(strategy), now_ns)
        return denial_names()[rc] if rc else None

    def open_orders(self, locate: int = 0, strategy: int | None = None) -> list[int]:
        """UserRefNums of the open orders (of one instrument, 0: all; of one strategy, None: all)."""
        refs = self.ffi.new("uint64_t[]", 4096)
        n = self.lib.tw_risk_open_orders(self._r, locate, self._slot(strategy), refs, 4096)
        return sorted(refs[i] for i in range(n))

    def order_strategy(self, user_ref: int) -> int | None:
        """The slot an open order counts in (None: no strategy's); KeyError when it is not open."""
        rc = self.lib.tw_risk_order_strategy(self._r, user_ref)
        if rc < 0:
            raise KeyError(f"no open order {user_ref}")
        return None if rc == self.lib.TW_RISK_ANY else rc

    def on_execution(self, user_ref: int, qty: int) -> None:
        if self.lib.tw_risk_on_execution(self._r, user_ref, qty) < 0:
            raise KeyError(f"no open order {user_ref}")

    def on_done(self, user_ref: int) -> None:
        if self.lib.tw_risk_on_done(self._r, user_ref) < 0:
            raise KeyError(f"no open order {user_ref}")

    def position(self, locate: int) -> int:
        return self.lib.tw_risk_position(self._r, locate)

    def stats(self) -> dict[str, Any]:
        st = self.ffi.new("struct tw_risk_stats *")
        self.lib.tw_risk_stats(self._r, st)
        names = denial_names()
        return {"checked": st.checked, "passed": st.passed, "open_orders": st.open_orders, "gross": st.gross,
                "limits_version": st.limits_version,
                "denied": {names[i]: st.denied[i] for i in range(1, len(names)) if st.denied[i]}}
