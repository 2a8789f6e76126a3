"""Synthetic order flow with the shape of a real equity book, deterministic for a seed.

* Arrivals are a Poisson process (exponential gaps) at ``rate`` events per second,
  spread over symbols by Zipf-like weights (a few names carry most of the flow).
* Each symbol's mid follows a mean-reverting (Ornstein-Uhlenbeck) walk in ticks.
* Passive orders land a geometric number of ticks behind the touch; sizes are
  heavy-tailed (Pareto multiples of a round lot, with some odd lots).
* Most orders die by cancellation, not execution: the event mix below gives about
  forty deletes and cancels for every few executions, as in TotalView data.
* Marketable orders are IOC and cross the spread; a small share of orders are
  hidden and trade as ``P``.

The generator drives an :class:`~appliance.lab.exchange.book.Engine`; it never
sees the wire format.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import random

from appliance.lab.exchange.book import BUY, SELL, Engine, OrderError

TICK = 100  # $0.01 in 4-decimal price units
MPIDS = ("TWMM", "TWLQ", "TWHF", "TWAB")


@dataclasses.dataclass(frozen=True)
class FlowParams:
    rate: float = 100_000.0      # events per second, all symbols together
    add: float = 0.47            # shares of the event mix; they need not sum to 1
    cancel: float = 0.38
    partial_cancel: float = 0.03
    replace: float = 0.07
    marketable: float = 0.025
    hidden: float = 0.01
    mean_reversion: float = 0.02  # per event, pull of the mid towards its anchor
    volatility: float = 0.35      # ticks per event, standard deviation of the mid's step
    depth_decay: float = 0.35     # geometric parameter of a passive order's distance in ticks
    size_alpha: float = 1.6       # Pareto tail index of order sizes (lower: heavier tail)
    odd_lot_share: float = 0.08
    mpid_share: float = 0.03      # displayed adds that carry a market maker's MPID (F)
    old_cancel_share: float = 0.3  # cancels that pick any open order, not a recent one
    max_open: int = 2_000          # open orders per symbol; past it the oldest is canceled
    round_lot: int = 100


@dataclasses.dataclass
class _SymbolState:
    mid: float         # in ticks
    anchor: float
    open_refs: list[int]  # for random picks; dead references are dropped when met
    by_age: collections.deque = dataclasses.field(default_factory=collections.deque)  # oldest first


class FlowGenerator:
    """Feeds an engine one event at a time; ``step()`` returns the event's time."""

    def __init__(self, engine: Engine, seed: int, params: FlowParams = FlowParams(), start_ns: int = 0):
        self.engine = engine
        self.p = params
        self.rng = random.Random(seed)
        self.now_ns = start_ns
        symbols = list(engine.books)
        self.symbols = symbols
        self.cum_weights = list(itertools.accumulate(1.0 / (i + 1) ** 0.8 for i in range(len(symbols))))
        self.state = {}
        for s in symbols:
            anchor = float(self.rng.randint(1_000, 50_000))  # $10 .. $500
            self.state[s] = _SymbolState(anchor, anchor, [])
        kinds = ("add", "cancel", "partial_cancel", "replace", "marketable", "hidden")
        self.kinds = kinds
        self.kind_cum_weights = list(itertools.accumulate(getattr(params, k) for k in kinds))

    # ---- draws ------------------------------------------------------------------------

    def size(self) -> int:
        if self.rng.random() < self.p.odd_lot_share:
            return self.rng.randint(1, self.p.round_lot - 1)
        lots = min(int(self.rng.paretovariate(self.p.size_alpha)), 100)
        return lots * self.p.round_lot

    def distance(self) -> int:
        """Ticks behind the touch, 0, 1, 2... with a geometric law."""
        u = 1.0 - self.rng.random()
        return int(math.log(u) / math.log(1.0 - self.p.depth_decay))

    def _walk(self, st: _SymbolState) -> None:
        st.mid += self.p.mean_reversion * (st.anchor - st.mid) + self.rng.gauss(0.0, self.p.volatility)
        st.mid = max(st.mid, 2.0)

    # ---- events -------------------------------------------------------------------------

    def _pick_open(self, st: _SymbolState) -> int | None:
        """A live order of this symbol, recent ones far likelier (as real cancels
        are); references that died meanwhile are dropped as they are met."""
        refs, orders = st.open_refs, self.engine.orders
        while refs:
            if self.rng.random() < self.p.old_cancel_share:
                idx = self.rng.randrange(len(refs))
            else:
                idx = len(refs) - 1 - min(int(self.rng.expovariate(0.15)), len(refs) - 1)
            if refs[idx] in orders:
                return refs[idx]
            refs[idx] = refs[-1]  # drop the dead reference (order in the list is only roughly by age)
            refs.pop()
        return None

    def _pick_oldest(self, st: _SymbolState) -> int | None:
        orders = self.engine.orders
        while st.by_age and st.by_age[0] not in orders:
            st.by_age.popleft()
        return st.by_age[0] if st.by_age else None

    def step(self) -> int:
        self.now_ns += max(1, int(self.rng.expovariate(self.p.rate) * 1e9))
        symbol = self.rng.choices(self.symbols, cum_weights=self.cum_weights)[0]
        st = self.state[symbol]
        self._walk(st)
        kind = self.rng.choices(self.kinds, cum_weights=self.kind_cum_weights)[0]
        forced = None
        if self.engine.open_count[symbol] > self.p.max_open:  # a book does not grow without end
            forced = self._pick_oldest(st)                    # the stalest order goes
            if forced is not None:
                kind = "cancel"
        ref = forced or (self._pick_open(st) if kind in ("cancel", "partial_cancel", "replace") else None)
        if ref is None and kind in ("cancel", "partial_cancel", "replace"):
            kind = "add"
        try:
            if kind in ("add", "hidden"):
                self._passive(symbol, st, display=kind == "add")
            elif kind == "marketable":
                self._marketable(symbol, st)
            elif kind == "cancel":
                self.engine.cancel(ref)
            elif kind == "partial_cancel":
                open_qty = self.engine.orders[ref].qty
                self.engine.cancel(ref, self.rng.randint(1, open_qty - 1) if open_qty > 1 else None)
            else:
                order = self.engine.orders[ref]
                res = self.engine.replace(ref, self.size(), self._passive_price(symbol, st, order.side))
                if res.ref is not None:
                    st.open_refs.append(res.ref)
                    st.by_age.append(res.ref)
        except OrderError:
            pass
        return self.now_ns

    def pre_open(self, orders_per_symbol: int) -> None:
        """Resting interest entered before the open (adds only, both sides)."""
        for symbol in self.symbols:
            st = self.state[symbol]
            for _ in range(orders_per_symbol):
                self._passive(symbol, st, True)

    def cross_size(self) -> int:
        return self.size() * 5

    def _passive_price(self, symbol: str, st: _SymbolState, side: str) -> int:
        book = self.engine.books[symbol]
        mid = round(st.mid)
        if side == BUY:
            ask = book.best(SELL)
            top = min(mid - 1, ask // TICK - 1) if ask else mid - 1
            return max(1, top - self.distance()) * TICK
        bid = book.best(BUY)
        top = max(mid + 1, bid // TICK + 1) if bid else mid + 1
        return (top + self.distance()) * TICK

    def _passive(self, symbol: str, st: _SymbolState, display: bool) -> None:
        side = BUY if self.rng.random() < 0.5 else SELL
        mpid = self.rng.choice(MPIDS) if display and self.rng.random() < self.p.mpid_share else None
        res = self.engine.add(symbol, side, self._passive_price(symbol, st, side), self.size(), mpid=mpid,
                              display=display)
        if res.ref is not None:
            st.open_refs.append(res.ref)
            st.by_age.append(res.ref)

    def _marketable(self, symbol: str, st: _SymbolState) -> None:
        side = BUY if self.rng.random() < 0.5 else SELL
        book = self.engine.books[symbol]
        contra = book.best(SELL if side == BUY else BUY)
        if contra is None:
            self._passive(symbol, st, True)
            return
        sweep = self.rng.choice((0, 0, 0, 1, 2)) * TICK
        price = contra + sweep if side == BUY else max(TICK, contra - sweep)
        self.engine.add(symbol, side, price, max(1, self.size() // 2), ioc=True)
