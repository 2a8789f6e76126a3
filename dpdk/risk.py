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
        """Global limits only, no strategy rows."""
        self.lib.tw_risk_set_limits(self._r, limits.to_c(self.ffi))

    def set_table(self, global_: Limits, rows: list[Limits]) -> None:
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

    def check(self, books: Books, user_ref: int, locate: int, side: str, qty: int, price: int, now_ns: int = 0,
              stale: bool = False, strategy: int | None = None) -> str | None:
        """None when the order may go (it is then open), else the denial's name. strategy:
        the slot whose row it trades under (None: the global limits alone)."""
        o = self._intent
        o.user_ref, o.locate, o.side, o.qty, o.price = user_ref, locate, ord(side), qty, price
        o.strategy = self._slot(strategy)
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
