"""Strategies in C (dpdk/src/strategy.c) from Python: publish parameters, feed
book updates, own-order events and timer ticks, read the actions they answer
with. The worker drives the same functions on its lcore; this face serves tests
and replays."""

from __future__ import annotations

import dataclasses
from typing import Any

from dpdk import native, to_struct
from dpdk.books import Books

KINDS = {"none": 0, "market_maker": 1, "taker": 2}
ORDER_EVENTS = {"accepted": 1, "executed": 2, "done": 3, "denied": 4}


@dataclasses.dataclass
class Params:
    """One table, published whole. Prices with 4 decimals."""
    kind: str = "none"
    enabled: bool = True
    locate: int = 0
    tick: int = 100
    half_spread: int = 100
    quote_size: int = 100
    skew: int = 0
    min_move: int = 100
    refresh_ns: int = 0
    max_position: int = 1000
    imbalance_bps: int = 5000
    levels: int = 1
    take_size: int = 100
    cooldown_ns: int = 0
    quote_levels: int = 1     # market maker: quotes a side, each one tick further out

    def to_c(self, ffi: Any) -> Any:
        return to_struct(ffi, "struct tw_strategy_params *", self, {"kind": KINDS})


def _actions(out: Any) -> list[dict[str, Any]]:
    kinds = {1: "new", 2: "cancel"}
    res = []
    for i in range(out.n):
        a = out.a[i]
        d: dict[str, Any] = {"action": kinds[a.kind], "user_ref": a.user_ref, "side": chr(a.side)}
        if a.kind == 1:
            d.update(qty=a.qty, price=a.price, ioc=bool(a.ioc), locate=a.locate)
        res.append(d)
    return res


class Strategy:
    def __init__(self, params: Params, user_ref_base: int = 1):
        self.ffi, self.lib = native()
        if not 0 <= user_ref_base <= 0xFFFFFFFF:
            raise ValueError(f"user_ref_base {user_ref_base}: OUCH carries a UserRefNum in 4 bytes (1..4294967295)")
        ptr = self.lib.tw_strategy_create(user_ref_base)
        if ptr == self.ffi.NULL:
            raise MemoryError("tw_strategy_create failed")
        self._s = self.ffi.gc(ptr, self.lib.tw_strategy_destroy)
        self._out = self.ffi.new("struct tw_actions *")
        self.set_params(params)

    def set_params(self, params: Params) -> None:
        self.lib.tw_strategy_set_params(self._s, params.to_c(self.ffi))

    def share_refs(self, other: Strategy) -> None:
        """Hand out UserRefNums from other's series from now on (one series a session)."""
        self.lib.tw_strategy_share_refs(self._s, other._s)
        self._shares = other  # other's counter must live as long as this strategy

    def seed_position(self, position: int) -> None:
        """After a restart: the position the journal says the strategy holds."""
        self.lib.tw_strategy_seed_position(self._s, position)

    def on_book(self, books: Books, locate: int, now_ns: int, stale: bool = False) -> list[dict[str, Any]]:
        self.lib.tw_strategy_on_book(self._s, books._b, int(stale), locate, now_ns, self._out)
        return _actions(self._out)

    def on_order(self, user_ref: int, event: str, qty: int = 0, now_ns: int = 0) -> list[dict[str, Any]]:
        self.lib.tw_strategy_on_order(self._s, user_ref, ORDER_EVENTS[event], qty, now_ns, self._out)
        return _actions(self._out)

    def on_timer(self, books: Books, now_ns: int, stale: bool = False) -> list[dict[str, Any]]:
        self.lib.tw_strategy_on_timer(self._s, books._b, int(stale), now_ns, self._out)
        return _actions(self._out)

    def stats(self) -> dict[str, Any]:
        st = self.ffi.new("struct tw_strategy_stats *")
        self.lib.tw_strategy_stats(self._s, st)
        return {k: getattr(st, k) for k in ("book_updates", "skipped", "orders", "cancels", "executions",
                                            "position", "params_version")}
