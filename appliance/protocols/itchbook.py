"""A reference order book rebuilt from ITCH 5.0 alone (Python, for checking).

Applies ``A F E C X D U`` by order reference, keyed by stock locate (``R`` gives
the symbol); ``P`` and ``Q`` trades touch no resting displayed order. L2 is
derived from L3. The hot path has its own book in C; this one is the yardstick
tests hold it (and the simulator) against.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from appliance.protocols import itch


class BookError(ValueError):
    """An ITCH message that does not fit the book (unknown reference, overfill)."""


@dataclasses.dataclass(slots=True)
class Resting:
    locate: int
    side: str
    price: int
    shares: int


class ItchBook:
    def __init__(self) -> None:
        self.orders: dict[int, Resting] = {}
        self.symbols: dict[int, str] = {}
        self.trading_state: dict[int, str] = {}
        self.applied = 0

    def apply(self, rec: itch.Message) -> None:
        t = rec.TYPE
        if t in ("A", "F"):
            if rec.order_reference_number in self.orders:
                raise BookError(f"add of order {rec.order_reference_number}, which is already open")
            self.orders[rec.order_reference_number] = Resting(rec.stock_locate, rec.side, rec.price, rec.shares)
        elif t in ("E", "C"):
            self._reduce(rec.order_reference_number, rec.executed_shares, "execute")
        elif t == "X":
            self._reduce(rec.order_reference_number, rec.canceled_shares, "cancel")
        elif t == "D":
            self._get(rec.order_reference_number)
            del self.orders[rec.order_reference_number]
        elif t == "U":
            old = self._get(rec.original_order_reference_number)
            del self.orders[rec.original_order_reference_number]
            self.orders[rec.new_order_reference_number] = Resting(old.locate, old.side, rec.price, rec.shares)
        elif t == "R":
            self.symbols[rec.stock_locate] = rec.stock
        elif t == "H":
            self.trading_state[rec.stock_locate] = rec.trading_state
        else:
            return
        self.applied += 1

    def _get(self, ref: int) -> Resting:
        try:
            return self.orders[ref]
        except KeyError:
            raise BookError(f"order {ref} is not in the book") from None

    def _reduce(self, ref: int, shares: int, what: str) -> None:
        o = self._get(ref)
        if shares > o.shares:
            raise BookError(f"{what} of {shares} shares of order {ref}, which has {o.shares}")
        o.shares -= shares
        if o.shares == 0:
            del self.orders[ref]

    def levels(self, locate: int, side: str) -> list[tuple[int, int]]:
        """L2: (price, shares) best first."""
        agg: dict[int, int] = defaultdict(int)
        for o in self.orders.values():
            if o.locate == locate and o.side == side:
                agg[o.price] += o.shares
        return sorted(agg.items(), reverse=(side == "B"))

    def bbo(self, locate: int) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        bids, asks = self.levels(locate, "B"), self.levels(locate, "S")
        return (bids[0] if bids else None), (asks[0] if asks else None)
