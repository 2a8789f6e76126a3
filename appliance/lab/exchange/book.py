"""The exchange's matching engine: price-time priority limit order books for N
instruments, every book event emitted as an ITCH 5.0 record.

* Prices are integers with 4 implied decimals; quantities are shares.
* An incoming order executes against the best opposite prices first, oldest
  first at each price; what is left rests (day) or is canceled (IOC).
* Resting displayed orders are published (``A``, or ``F`` with an MPID);
  executions against them are ``E``; partial cancels ``X``; full cancels ``D``;
  a replace is ``U`` (new reference, loses priority). Executions against a
  non-displayed order are ``P`` (trade, order reference 0), as on NASDAQ, and the
  order itself is never published.
* A replace that would cross the book is a delete plus a new, marketable order.
* Owners (an OUCH session and its UserRefNum) ride along so the order-entry
  server can tell each party about its fills; the engine does not interpret them.

The clock is injected (nanoseconds since midnight) so runs are deterministic.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from sortedcontainers import SortedDict

from appliance.protocols import itch

BUY, SELL = "B", "S"


class OrderError(ValueError):
    """An operation the book refuses (unknown order, bad quantity); the order-entry
    server turns it into a reject."""


@dataclasses.dataclass(slots=True)
class Order:
    ref: int
    symbol: str
    side: str
    price: int
    qty: int             # open (unexecuted, uncanceled) shares
    owner: Any = None
    mpid: str | None = None
    display: bool = True
    dead: bool = False   # canceled or filled; still in its level's queue until it reaches the front


class Level:
    """One price: orders in time priority. Removal marks an order dead (O(1)); dead
    orders leave the queue when they reach its front, so cancels never scan."""

    __slots__ = ("queue", "live")

    def __init__(self) -> None:
        self.queue: deque[Order] = deque()
        self.live = 0

    def append(self, order: Order) -> None:
        self.queue.append(order)
        self.live += 1

    def front(self) -> Order:
        q = self.queue
        while q[0].dead:
            q.popleft()
        return q[0]

    def orders(self) -> Iterable[Order]:
        return (o for o in self.queue if not o.dead)


@dataclasses.dataclass(frozen=True, slots=True)
class Fill:
    match: int
    symbol: str
    price: int
    qty: int
    resting_ref: int
    resting_owner: Any
    aggressor_owner: Any
    aggressor_side: str


@dataclasses.dataclass(slots=True)
class Result:
    ref: int | None      # the resting order's reference, None when nothing rests
    fills: list[Fill]
    rested: int          # shares left resting
    canceled: int        # shares canceled (IOC remainder)


class Book:
    """One instrument: bids and asks, each price -> :class:`Level`."""

    def __init__(self, symbol: str, locate: int):
        self.symbol, self.locate = symbol, locate
        self.bids: SortedDict = SortedDict(lambda p: -p)  # best (highest) first
        self.asks: SortedDict = SortedDict()               # best (lowest) first

    def side(self, side: str) -> SortedDict:
        return self.bids if side == BUY else self.asks

    def best(self, side: str) -> int | None:
        levels = self.side(side)
        return levels.keys()[0] if levels else None

    def depth(self, side: str, n: int = 5) -> list[tuple[int, int]]:
        """Top ``n`` levels as (price, displayed shares)."""
        out = []
        for price, level in self.side(side).items():
            shares = sum(o.qty for o in level.orders() if o.display)
            if shares:
                out.append((price, shares))
            if len(out) == n:
                break
        return out

    def displayed(self) -> dict[str, list[list[int]]]:
        """Every level a feed shows, best first: [price, shares, orders] per side
        (what a book built from this exchange's ITCH must hold)."""
        out: dict[str, list[list[int]]] = {}
        for name, side in (("bids", BUY), ("asks", SELL)):
            levels = []
            for price, level in self.side(side).items():
                shown = [o.qty for o in level.orders() if o.display]
                if shown:
                    levels.append([price, sum(shown), len(shown)])
            out[name] = levels
        return out


class Engine:
    def __init__(self, symbols: Iterable[str], clock: Callable[[], int],
                 emit: Callable[[itch.Message], None] | None = None):
        self.books: dict[str, Book] = {s: Book(s, i) for i, s in enumerate(symbols, start=1)}
        self.orders: dict[int, Order] = {}
        self.open_count: dict[str, int] = dict.fromkeys(self.books, 0)  # resting orders per symbol
        self.clock = clock
        self.events: list[itch.Message] = []
        self.emit = emit or self.events.append
        self.next_ref = 1
        self.next_match = 1
        self.on_fill: Callable[[Fill], None] | None = None  # told of every continuous-trading fill

    # ---- publishing ----------------------------------------------------------------

    def _header(self, symbol: str) -> dict[str, int]:
        return {"stock_locate": self.books[symbol].locate, "tracking_number": 0, "timestamp": self.clock()}

    def publish(self, t: str, symbol: str | None = None, **fields: Any) -> None:
        header = self._header(symbol) if symbol else {"stock_locate": 0, "tracking_number": 0,
                                                      "timestamp": self.clock()}
        self.emit(itch.RECORDS[t](**header, **fields))

    # ---- order flow ---------------------------------------------------------------

    def book(self, symbol: str) -> Book:
        try:
            return self.books[symbol]
        except KeyError:
            raise OrderError(f"unknown symbol {symbol!r}") from None

    def add(self, symbol: str, side: str, price: int, qty: int, owner: Any = None, mpid: str | None = None,
            ioc: bool = False, display: bool = True) -> Result:
        book = self.book(symbol)
        if side not in (BUY, SELL):
            raise OrderError(f"side {side!r} must be B or S")
        if qty <= 0 or price <= 0:
            raise OrderError(f"quantity {qty} and price {price} must be positive")
        fills = self._match(book, side, price, qty, owner)
        left = qty - sum(f.qty for f in fills)
        if left == 0 or ioc:
            return Result(None, fills, 0, left)
        order = Order(self.next_ref, symbol, side, price, left, owner, mpid, display)
        self.next_ref += 1
        self.orders[order.ref] = order
        self.open_count[symbol] += 1
        book.side(side).setdefault(price, Level()).append(order)
        if display:
            common = dict(order_reference_number=order.ref, side=side, shares=left, stock=symbol, price=price)
            if mpid:
                self.publish("F", symbol, **common, attribution=mpid)
            else:
                self.publish("A", symbol, **common)
        return Result(order.ref, fills, left, 0)

    def _match(self, book: Book, side: str, limit: int, qty: int, owner: Any) -> list[Fill]:
        contra = book.side(SELL if side == BUY else BUY)
        fills = []
        while qty and contra:
            price = contra.keys()[0]
            if (side == BUY and price > limit) or (side == SELL and price < limit):
                break
            level = contra[price]
            resting = level.front()
            n = min(qty, resting.qty)
            fill = Fill(self.next_match, book.symbol, price, n, resting.ref, resting.owner, owner, side)
            self.next_match += 1
            fills.append(fill)
            if self.on_fill is not None:
                self.on_fill(fill)
            qty -= n
            resting.qty -= n
            if resting.display:
                self.publish("E", book.symbol, order_reference_number=resting.ref, executed_shares=n,
                             match_number=fill.match)
            else:
                self.publish("P", book.symbol, order_reference_number=0, side=resting.side, shares=n,
                             stock=book.symbol, price=price, match_number=fill.match)
            if resting.qty == 0:
                self._retire(resting, contra, level)
        return fills

    def order(self, ref: int) -> Order:
        try:
            return self.orders[ref]
        except KeyError:
            raise OrderError(f"order {ref} is not open") from None

    def cancel(self, ref: int, qty: int | None = None) -> int:
        """Cancel ``qty`` shares (all when None or at least what is open). Returns
        the shares canceled."""
        order = self.order(ref)
        n = order.qty if qty is None or qty >= order.qty else qty
        if n <= 0:
            raise OrderError(f"cancel of {qty} shares: must be positive")
        if n == order.qty:
            self._remove(order)
            if order.display:
                self.publish("D", order.symbol, order_reference_number=ref)
        else:
            order.qty -= n
            if order.display:
                self.publish("X", order.symbol, order_reference_number=ref, canceled_shares=n)
        return n

    def _remove(self, order: Order) -> None:
        levels = self.books[order.symbol].side(order.side)
        self._retire(order, levels, levels[order.price])

    def _retire(self, order: Order, levels: SortedDict, level: Level) -> None:
        """The order leaves the book (filled or canceled)."""
        order.dead = True
        level.live -= 1
        if level.live == 0:
            del levels[order.price]
        del self.orders[order.ref]
        self.open_count[order.symbol] -= 1

    def replace(self, ref: int, qty: int, price: int, owner: Any = None) -> Result:
        """Replace an open order by a new one (new reference, back of the queue)."""
        old = self.order(ref)
        if qty <= 0 or price <= 0:
            raise OrderError(f"replace to {qty} shares at {price}: both must be positive")
        book = self.books[old.symbol]
        contra_best = book.best(SELL if old.side == BUY else BUY)
        crosses = contra_best is not None and (price >= contra_best if old.side == BUY else price <= contra_best)
        new_owner = owner if owner is not None else old.owner
        if crosses or not old.display:
            self.cancel(ref)
            return self.add(old.symbol, old.side, price, qty, new_owner, old.mpid, display=old.display)
        self._remove(old)
        new = Order(self.next_ref, old.symbol, old.side, price, qty, new_owner, old.mpid, old.display)
        self.next_ref += 1
        self.orders[new.ref] = new
        self.open_count[old.symbol] += 1
        book.side(old.side).setdefault(price, Level()).append(new)
        self.publish("U", old.symbol, original_order_reference_number=ref, new_order_reference_number=new.ref,
                     shares=qty, price=price)
        return Result(new.ref, [], qty, 0)

    def cross(self, symbol: str, cross_type: str, max_shares: int) -> int:
        """A simplified auction (opening ``O``, closing ``C``): up to ``max_shares``
        from the best bid and the best ask levels execute against each other at one
        price (the midpoint, rounded down to a cent). Every displayed order touched
        gets a ``C`` (executed with price, not printable: the cross prints once),
        then one ``Q`` reports the cross. Returns the shares crossed."""
        book = self.book(symbol)
        bid, ask = book.best(BUY), book.best(SELL)
        if bid is None or ask is None:
            return 0
        price = (bid + ask) // 2 // 100 * 100
        available = min(sum(o.qty for o in book.bids[bid].orders() if o.display),
                        sum(o.qty for o in book.asks[ask].orders() if o.display))
        shares = min(max_shares, available)
        match = self.next_match
        self.next_match += 1
        for side, at in ((BUY, bid), (SELL, ask)):
            left = shares
            levels = book.side(side)
            level = levels[at]
            for o in [o for o in level.orders() if o.display]:  # displayed orders only, in time priority
                if not left:
                    break
                n = min(left, o.qty)
                o.qty -= n
                left -= n
                self.publish("C", symbol, order_reference_number=o.ref, executed_shares=n, match_number=match,
                             printable="N", execution_price=price)
                if o.qty == 0:
                    self._retire(o, levels, level)
        if shares:
            self.publish("Q", symbol, shares=shares, stock=symbol, cross_price=price, match_number=match,
                         cross_type=cross_type)
        return shares

    # ---- the day's administrative messages ---------------------------------------------

    def system_event(self, code: str) -> None:
        self.publish("S", None, event_code=code)

    def directory(self, round_lot: int = 100) -> None:
        for symbol in self.books:
            self.publish("R", symbol, stock=symbol, market_category="Q", financial_status="N",
                         round_lot_size=round_lot, round_lots_only="N", issue_classification="C",
                         issue_sub_type="Z", authenticity="P", short_sale_threshold_indicator="N", ipo_flag="N",
                         luld_reference_price_tier="1", etp_flag="N", etp_leverage_factor=0,
                         inverse_indicator="N")

    def trading_action(self, symbol: str, state: str, reason: str = "") -> None:
        self.publish("H", symbol, stock=symbol, trading_state=state, reserved=" ", reason=reason)
