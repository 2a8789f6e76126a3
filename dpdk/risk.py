"""Inline pre-trade risk (dpdk/src/risk.c) from Python: publish a limits table,
run the chain, feed it the exchange's answers, read positions and denials.
The worker runs the same chain before every order; the denial codes are the C
enum itself (read through cffi), so Python and C cannot disagree on them."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from dpdk import native, to_struct
from dpdk.books import Books

TRADING_STATES = {"active": 0, "reduce_only": 1, "halted": 2}


@functools.cache
def denial_names() -> dict[int, str]:
    """enum tw_risk_denial: code -> name (e.g. 8 -> "max_position")."""
    ffi, _ = native()
    return {v: k.removeprefix("TW_RISK_").lower() for k, v in ffi.typeof("enum tw_risk_denial").relements.items()
            if k != "TW_RISK_NCODES"}


@dataclasses.dataclass
class Limits:
    """The table Python writes whole. Quantities in shares, prices with 4 decimals,
    notional = price x shares. A zero maximum allows nothing; a zero rate means
    no rate limit."""
    state: str = "active"
    kill: bool = False
    max_order_qty: int = 0
    max_order_notional: int = 0
    max_position: int = 0
    max_gross: int = 0
    collar_bps: int = 0
    max_open_orders: int = 0
    order_rate: int = 0
    order_burst: int = 0
    message_rate: int = 0
    message_burst: int = 0

    def to_c(self, ffi: Any) -> Any:
        return to_struct(ffi, "struct tw_risk_limits *", self, {"state": TRADING_STATES})


class Risk:
    def __init__(self, max_locate: int = 65535, max_own_orders: int = 4096):
        self.ffi, self.lib = native()
        ptr = self.lib.tw_risk_create(max_locate, max_own_orders)
        if ptr == self.ffi.NULL:
            raise MemoryError(f"tw_risk_create({max_locate}, {max_own_orders}) failed")
        self._r = self.ffi.gc(ptr, self.lib.tw_risk_destroy)
        self._intent = self.ffi.new("struct tw_order_intent *")

    def set_limits(self, limits: Limits) -> None:
        self.lib.tw_risk_set_limits(self._r, limits.to_c(self.ffi))

    def seed_position(self, locate: int, position: int) -> None:
        """After a restart: the position the journal says is held (not checked: it is there)."""
        if self.lib.tw_risk_seed_position(self._r, locate, position) < 0:
            raise ValueError(f"locate {locate} is out of range")

    def seed_order(self, user_ref: int, locate: int, side: str, qty: int, price: int) -> bool:
        """After a restart: an order the journal says is still open at the venue (not checked)."""
        o = self._intent
        o.user_ref, o.locate, o.side, o.qty, o.price = user_ref, locate, ord(side), qty, price
        return self.lib.tw_risk_seed_order(self._r, o) == 0

    def kill_instrument(self, locate: int, kill: bool = True) -> None:
        if self.lib.tw_risk_kill_instrument(self._r, locate, int(kill)) < 0:
            raise ValueError(f"locate {locate} is out of range")

    def check(self, books: Books, user_ref: int, locate: int, side: str, qty: int, price: int, now_ns: int = 0,
              stale: bool = False) -> str | None:
        """None when the order may go (it is then open), else the denial's name."""
        o = self._intent
        o.user_ref, o.locate, o.side, o.qty, o.price = user_ref, locate, ord(side), qty, price
        rc = self.lib.tw_risk_check(self._r, books._b, int(stale), o, now_ns)
        return denial_names()[rc] if rc else None

    def message(self, now_ns: int = 0) -> str | None:
        rc = self.lib.tw_risk_message(self._r, now_ns)
        return denial_names()[rc] if rc else None

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
