"""The exchange's order entry: OUCH 5.0 over SoupBinTCP 3.00 (asyncio TCP server).

Session rules (SoupBinTCP):
* the first packet must be a login within ``login_timeout``; a wrong username or
  password gets ``J A``, a session name other than ours (or an account already
  logged in) ``J S``;
* each account has one sequenced stream for the day: a login asking for sequence
  ``n`` gets ``A`` with next sequence ``n`` and the replay of every message from
  ``n``; ``0`` means "from now on";
* the server sends a heartbeat after ``heartbeat_interval`` of silence and drops a
  client silent for ``timeout``.

Order rules (OUCH 5.0): UserRefNum strictly increasing per account; an Enter is
accepted (``A``) then filled (``E``, liquidity ``R`` for the taker and ``A`` for
the maker, whoever they are) or canceled (``C``, reason ``I``) for an IOC
remainder; Replace gives ``U``; Cancel gives ``C`` (reason ``U``) or ``I`` when
nothing is open; Modify (side to a short variant, or a smaller quantity) gives
``M``. Bad orders get ``J`` with a :class:`Reject` code.

Cancel-on-disconnect, per login as venues offer it per port: when the session of a login
that has it ends (logout, the client closing, a reset, a heartbeat timeout, a protocol
error), the exchange cancels the login's open orders, each with an Order Canceled (reason
``L``) in its sequenced stream (its next login's replay tells it), and records the cancels
and why in its log (``orders.jsonl``: ``{"cancel_on_disconnect": {...}}``).

Faults (tests only, ``order_entry.faults``): an answer no venue may send, so a client's
checks can be seen to catch it; each one sent is recorded (``{"fault": {...}}``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from appliance.lab.exchange.book import BUY, SELL, Engine, Fill, OrderError
from appliance.protocols import ouch
from appliance.protocols import soupbintcp as soup

MAX_QUANTITY = 1_000_000
MAX_PRICE = 199_999_9900  # $199,999.99: above this, an order is a fat finger
TIF_DAY, TIF_IOC = "0", "3"
SELL_SIDES = ("S", "T", "E")  # sell, sell short, sell short exempt
# The Order Canceled reason of a cancel-on-disconnect: tickwire's own letter ("logged off"), as this
# project has no copy of OUCH 5.0's table of cancel reasons; change it here once it has.
CANCEL_ON_DISCONNECT = "L"


class Reject(enum.IntEnum):
    """Reasons in an Order Rejected (``J``) message.

    The names follow OUCH 5.0's reject reasons (its Appendix C); the numbers are
    tickwire's own, because this project has no copy of that appendix to take
    the official values from. Change them here, in one place, once it has."""

    INVALID_SYMBOL = 1
    HALTED = 2
    INVALID_SIDE = 3
    INVALID_QUANTITY = 4
    INVALID_PRICE = 5
    FAT_FINGER = 6
    INVALID_TIME_IN_FORCE = 7
    USER_REF_NUM_NOT_INCREASING = 8
    DESTINATION_CLOSED = 9
    UNKNOWN_ORDER = 10
    PROCESSING_ERROR = 11


@dataclasses.dataclass
class LiveOrder:
    user_ref_num: int
    engine_ref: int
    symbol: str
    side: str           # as the client sent it (B, S, T, E)
    price: int
    open_qty: int
    cl_ord_id: str
    tif: str
    display: str
    capacity: str


@dataclasses.dataclass
class Account:
    username: str
    password: str
    outbound: list[bytes] = dataclasses.field(default_factory=list)  # sequenced messages, seq i+1
    last_user_ref: int = 0
    orders: dict[int, LiveOrder] = dataclasses.field(default_factory=dict)  # open, by UserRefNum
    position: dict[str, int] = dataclasses.field(default_factory=dict)
    connection: Connection | None = None
    cancel_on_disconnect: bool = False
    canceled_on_disconnect: int = 0  # orders its sessions' ends cancelled
    resting_fills: int = 0           # fills of its resting orders it was told of (the faults count them)


Owner = tuple[str, int]  # (username, UserRefNum)


class OrderEntry:
    """Accounts, the orders they own, and the OUCH logic; transport-free."""

    def __init__(self, engine: Engine, accounts: dict[str, str], session: str, clock: Callable[[], int],
                 log: Callable[[dict[str, Any]], None] | None = None, cancel_on_disconnect: Iterable[str] = (),
                 faults: Iterable[Any] = ()):
        self.engine = engine
        cod = set(cancel_on_disconnect)
        self.accounts = {u: Account(u, p, cancel_on_disconnect=u in cod) for u, p in accounts.items()}
        self.faults = list(faults)  # config.AnswerFaultConfig: kind, account, at_fill
        self.session = session
        self.clock = clock  # ns since midnight
        self.log = log or (lambda rec: None)
        self.halted: set[str] = set()
        self.open = True
        self.rejects: dict[str, int] = {}
        self.fills: list[dict[str, Any]] = []
        # fills during our own engine call wait until the Accepted/Replaced is sent
        self._deferred: list[Fill] | None = None
        engine.on_fill = self._on_fill

    def _on_fill(self, fill: Fill) -> None:
        if self._deferred is not None:
            self._deferred.append(fill)
        else:
            self.report_fills([fill])

    def _release_fills(self) -> None:
        fills, self._deferred = self._deferred or [], None
        self.report_fills(fills)

    # ---- outbound -------------------------------------------------------------------

    def send(self, account: Account, rec: ouch.Message) -> None:
        raw = ouch.encode(rec)
        account.outbound.append(raw)
        self.log({"dir": "out", "account": account.username, "seq": len(account.outbound),
                  **ouch.to_json(rec)})
        if account.connection is not None:
            account.connection.send_packet(soup.SequencedData(raw))

    def _out(self, t: str, **fields: Any) -> ouch.Message:
        return ouch.OUTBOUND[t][1](timestamp=self.clock(), **fields)

    def reject(self, account: Account, user_ref: int, reason: Reject, cl_ord_id: str = "") -> None:
        self.rejects[reason.name] = self.rejects.get(reason.name, 0) + 1
        self.send(account, self._out("J", user_ref_num=user_ref, reason=int(reason), cl_ord_id=cl_ord_id))

    # ---- inbound --------------------------------------------------------------------

    def handle(self, account: Account, raw: bytes) -> None:
        try:
            rec = ouch.decode_inbound(raw)
        except ouch.OuchError as exc:
            self.log({"dir": "in", "account": account.username, "error": str(exc), "raw": raw.hex()})
            return
        self.log({"dir": "in", "account": account.username, **ouch.to_json(rec)})
        if rec.TYPE == "O":
            self.enter(account, rec)
        elif rec.TYPE == "U":
            self.replace(account, rec)
        elif rec.TYPE == "X":
            self.cancel(account, rec)
        elif rec.TYPE == "M":
            self.modify(account, rec)

    def _check_new(self, account: Account, user_ref: int, symbol: str, side: str | None, qty: int, price: int,
                   tif: str) -> Reject | None:
        if user_ref <= account.last_user_ref:
            return Reject.USER_REF_NUM_NOT_INCREASING
        if not self.open:
            return Reject.DESTINATION_CLOSED
        if symbol not in self.engine.books:
            return Reject.INVALID_SYMBOL
        if symbol in self.halted:
            return Reject.HALTED
        if side is not None and side not in (BUY, *SELL_SIDES):
            return Reject.INVALID_SIDE
        if not 1 <= qty <= MAX_QUANTITY:
            return Reject.INVALID_QUANTITY
        if price <= 0 or price % 100:
            return Reject.INVALID_PRICE  # zero, negative or finer than a cent
        if price > MAX_PRICE:
            return Reject.FAT_FINGER
        if tif not in (TIF_DAY, TIF_IOC):
            return Reject.INVALID_TIME_IN_FORCE
        return None

    def enter(self, account: Account, rec: Any) -> None:
        problem = self._check_new(account, rec.user_ref_num, rec.symbol, rec.side, rec.quantity, rec.price,
                                  rec.time_in_force)
        if rec.user_ref_num > account.last_user_ref:
            account.last_user_ref = rec.user_ref_num
        if problem:
            self.reject(account, rec.user_ref_num, problem, rec.cl_ord_id)
            return
        side = BUY if rec.side == BUY else SELL
        owner: Owner = (account.username, rec.user_ref_num)
        self._deferred = []
        try:
            result = self.engine.add(rec.symbol, side, rec.price, rec.quantity, owner=owner,
                                     ioc=rec.time_in_force == TIF_IOC, display=rec.display != "N")
        except OrderError:
            self._deferred = None
            self.reject(account, rec.user_ref_num, Reject.PROCESSING_ERROR, rec.cl_ord_id)
            return
        live = result.ref is not None
        self.send(account, self._out(
            "A", user_ref_num=rec.user_ref_num, side=rec.side, quantity=rec.quantity, symbol=rec.symbol,
            price=rec.price, time_in_force=rec.time_in_force, display=rec.display,
            order_reference_number=result.ref or 0, capacity=rec.capacity, intermarket_sweep=rec.intermarket_sweep,
            cross_type=rec.cross_type, order_state="L" if live else "D", cl_ord_id=rec.cl_ord_id,
            appendage_length=0, appendage=rec.appendage))
        if live:
            account.orders[rec.user_ref_num] = LiveOrder(rec.user_ref_num, result.ref, rec.symbol, rec.side,
                                                         rec.price, result.rested, rec.cl_ord_id,
                                                         rec.time_in_force, rec.display, rec.capacity)
        self._release_fills()
        if result.canceled:
            self.send(account, self._out("C", user_ref_num=rec.user_ref_num, quantity=result.canceled, reason="I"))

    def report_fills(self, fills: list[Fill]) -> None:
        """Tell each owned party of each fill; keep positions and the fill log."""
        for f in fills:
            sides = ((f.aggressor_owner, f.aggressor_side, "R"),
                     (f.resting_owner, SELL if f.aggressor_side == BUY else BUY, "A"))
            if not any(owner and owner[0] in self.accounts for owner, _, _ in sides):
                continue  # between synthetic participants: the feed tells it, nobody here owns it
            record = {"match": f.match, "symbol": f.symbol, "price": f.price, "qty": f.qty,
                      "aggressor_side": f.aggressor_side, "ts": self.clock()}
            for owner, side, liquidity in sides:
                if not owner or owner[0] not in self.accounts:
                    continue
                account = self.accounts[owner[0]]
                user_ref = owner[1]
                signed = f.qty if side == BUY else -f.qty
                account.position[f.symbol] = account.position.get(f.symbol, 0) + signed
                order = account.orders.get(user_ref) if liquidity == "A" else None  # a taker's order
                told = f.qty
                if order is not None:                          # was recorded net of its fills
                    account.resting_fills += 1
                    told = self._overfill(account, order, f.qty)
                    order.open_qty -= f.qty
                    if order.open_qty <= 0:
                        del account.orders[user_ref]
                self.send(account, self._out("E", user_ref_num=user_ref, quantity=told, price=f.price,
                                             liquidity_flag=liquidity, match_number=f.match, appendage_length=0,
                                             appendage=()))
                record["buyer" if side == BUY else "seller"] = f"{owner[0]}:{user_ref}"
            self.fills.append(record)
            self.log({"fill": record})

    def _overfill(self, account: Account, order: LiveOrder, qty: int) -> int:
        """The quantity an Executed tells: the fill's, or, where an overfill fault hits this fill, one
        share more than the order had open."""
        for f in self.faults:
            if f.kind == "overfill" and f.account in (None, account.username) and account.resting_fills == f.at_fill:
                told = order.open_qty + 1
                self.log({"fault": {"kind": f.kind, "account": account.username, "user_ref": order.user_ref_num,
                                    "open": order.open_qty, "filled": qty, "told": told}})
                return told
        return qty

    def session_ended(self, account: Account, why: str) -> list[dict[str, Any]]:
        """A login's session ended (why: logout, closed, reset, timeout, protocol_error). With
        cancel-on-disconnect, every order it has open is cancelled (an Order Canceled, reason
        CANCEL_ON_DISCONNECT, in its stream) and the cancels are recorded with why; the cancels."""
        if not account.cancel_on_disconnect or not self.open:
            return []  # (after the close the day's orders end with it)
        canceled = []
        for ref in sorted(account.orders):
            order = self._live(account, ref)
            if order is None:
                continue
            qty = self.engine.cancel(order.engine_ref)
            del account.orders[ref]
            self.send(account, self._out("C", user_ref_num=ref, quantity=qty, reason=CANCEL_ON_DISCONNECT))
            canceled.append({"user_ref": ref, "symbol": order.symbol.strip(), "qty": qty})
        account.canceled_on_disconnect += len(canceled)
        self.log({"cancel_on_disconnect": {"account": account.username, "why": why, "reason": CANCEL_ON_DISCONNECT,
                                           "canceled": canceled}})
        return canceled

    def _live(self, account: Account, user_ref: int) -> LiveOrder | None:
        order = account.orders.get(user_ref)
        if order is not None and order.engine_ref not in self.engine.orders:
            del account.orders[user_ref]  # filled or gone meanwhile
            return None
        return order

    def replace(self, account: Account, rec: Any) -> None:
        old = self._live(account, rec.orig_user_ref_num)
        problem = (Reject.UNKNOWN_ORDER if old is None else
                   self._check_new(account, rec.user_ref_num, old.symbol, None, rec.quantity, rec.price,
                                   rec.time_in_force))
        if rec.user_ref_num > account.last_user_ref:
            account.last_user_ref = rec.user_ref_num
        if problem:
            self.reject(account, rec.user_ref_num, problem, rec.cl_ord_id)
            return
        assert old is not None
        owner: Owner = (account.username, rec.user_ref_num)
        self._deferred = []
        try:
            result = self.engine.replace(old.engine_ref, rec.quantity, rec.price, owner=owner)
        except OrderError:
            self._deferred = None
            self.reject(account, rec.user_ref_num, Reject.UNKNOWN_ORDER, rec.cl_ord_id)
            return
        del account.orders[rec.orig_user_ref_num]
        live = result.ref is not None
        if live:
            account.orders[rec.user_ref_num] = LiveOrder(rec.user_ref_num, result.ref, old.symbol, old.side,
                                                         rec.price, result.rested, rec.cl_ord_id,
                                                         rec.time_in_force, rec.display, old.capacity)
        self.send(account, self._out(
            "U", orig_user_ref_num=rec.orig_user_ref_num, user_ref_num=rec.user_ref_num, side=old.side,
            quantity=rec.quantity, symbol=old.symbol, price=rec.price, time_in_force=rec.time_in_force,
            display=rec.display, order_reference_number=result.ref or 0, capacity=old.capacity,
            intermarket_sweep=rec.intermarket_sweep, cross_type="N", order_state="L" if live else "D",
            cl_ord_id=rec.cl_ord_id, appendage_length=0, appendage=rec.appendage))
        self._release_fills()

    def cancel(self, account: Account, rec: Any) -> None:
        order = self._live(account, rec.user_ref_num)
        if order is None or rec.quantity >= order.open_qty:
            if order is None:
                self.send(account, self._out("I", user_ref_num=rec.user_ref_num))
            return  # asking for a size at or above what is open changes nothing
        decrement = order.open_qty - rec.quantity
        self.engine.cancel(order.engine_ref, decrement)
        order.open_qty = rec.quantity
        if order.open_qty == 0:
            del account.orders[rec.user_ref_num]
        self.send(account, self._out("C", user_ref_num=rec.user_ref_num, quantity=decrement, reason="U"))

    def modify(self, account: Account, rec: Any) -> None:
        order = self._live(account, rec.user_ref_num)
        side_ok = order is not None and (rec.side == order.side or (order.side in SELL_SIDES and
                                                                    rec.side in SELL_SIDES))
        if order is None or not side_ok or not 0 < rec.quantity <= order.open_qty:
            self.reject(account, rec.user_ref_num, Reject.UNKNOWN_ORDER if order is None else
                        Reject.INVALID_SIDE if not side_ok else Reject.INVALID_QUANTITY)
            return
        if rec.quantity < order.open_qty:
            self.engine.cancel(order.engine_ref, order.open_qty - rec.quantity)
        order.open_qty, order.side = rec.quantity, rec.side
        self.send(account, self._out("M", user_ref_num=rec.user_ref_num, side=rec.side, quantity=rec.quantity))

    def system_event(self, code: str) -> None:
        for account in self.accounts.values():
            self.send(account, self._out("S", event_code=code))


class Connection:
    """One client's TCP connection, speaking SoupBinTCP."""

    def __init__(self, server: OrderEntryServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server, self.reader, self.writer = server, reader, writer
        self.account: Account | None = None
        self.last_sent = self.last_heard = time.monotonic()
        self.peer = writer.get_extra_info("peername")
        self.record = server.record_connection(self.peer)

    def send_packet(self, pkt: soup.Packet) -> None:
        raw = soup.encode(pkt)
        self.writer.write(raw)
        self.last_sent = time.monotonic()
        if self.record:
            self.record.send("server", raw)

    async def run(self) -> None:
        framer = soup.Framer()
        oe, cfg = self.server.oe, self.server
        why = "closed"  # how the session ended, for cancel-on-disconnect's record
        try:
            while True:
                timeout = cfg.login_timeout if self.account is None else cfg.timeout
                try:
                    data = await asyncio.wait_for(self.reader.read(65536), timeout)
                except asyncio.TimeoutError:
                    self.server.timeouts += 1
                    why = "timeout"
                    return
                if not data:
                    return
                if self.record:
                    self.record.send("client", data)
                self.last_heard = time.monotonic()
                for _, body in framer.feed(data):
                    pkt = soup.decode(body)
                    if self.account is None:
                        if not isinstance(pkt, soup.LoginRequest) or not self.login(pkt):
                            return
                        continue
                    if isinstance(pkt, soup.UnsequencedData):
                        oe.handle(self.account, pkt.message)
                    elif isinstance(pkt, soup.LogoutRequest):
                        why = "logout"
                        return
                    elif isinstance(pkt, soup.LoginRequest):
                        why = "protocol_error"
                        return  # a second login on a live session is a protocol error
                await self.writer.drain()
        except soup.SoupError:
            self.server.protocol_errors += 1
            why = "protocol_error"
        except ConnectionResetError:
            why = "reset"
        except (ConnectionError, asyncio.IncompleteReadError):
            why = "broken"
        finally:
            if self.account is not None and self.account.connection is self:
                self.account.connection = None
                oe.session_ended(self.account, why)
            self.writer.close()

    def login(self, pkt: soup.LoginRequest) -> bool:
        oe = self.server.oe
        account = oe.accounts.get(pkt.username)
        if account is None or account.password != pkt.password:
            self.send_packet(soup.LoginRejected("A"))
            self.server.logins_rejected += 1
            return False
        if (pkt.session and pkt.session != oe.session) or account.connection is not None:
            self.send_packet(soup.LoginRejected("S"))
            self.server.logins_rejected += 1
            return False
        total = len(account.outbound)
        start = total + 1 if pkt.sequence == 0 else min(pkt.sequence, total + 1)
        self.send_packet(soup.LoginAccepted(oe.session, start))
        for raw in account.outbound[start - 1:]:
            self.send_packet(soup.SequencedData(raw))
        self.server.replayed += total - start + 1
        account.connection = self
        self.account = account
        self.server.logins += 1
        return True


class OrderEntryServer:
    def __init__(self, oe: OrderEntry, heartbeat_interval: float = 1.0, timeout: float = 15.0,
                 login_timeout: float = 5.0, recorder: Any = None, address: tuple[str, int] = ("0.0.0.0", 0)):
        self.oe = oe
        self.heartbeat_interval = heartbeat_interval
        self.timeout = timeout
        self.login_timeout = login_timeout
        self.recorder = recorder
        self.address = address
        self.connections: set[Connection] = set()
        self.logins = self.logins_rejected = self.timeouts = self.protocol_errors = self.replayed = 0

    def record_connection(self, peer: tuple[str, int]):
        if self.recorder is None:
            return None
        return self.recorder.tcp_connection((peer[0], peer[1]), self.address)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(self, reader, writer)
        self.connections.add(conn)
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)

    def heartbeats(self) -> None:
        now = time.monotonic()
        for conn in list(self.connections):
            if conn.account is not None and now - conn.last_sent >= self.heartbeat_interval:
                conn.send_packet(soup.ServerHeartbeat())

    def end_of_session(self) -> None:
        for conn in list(self.connections):
            if conn.account is not None:
                conn.send_packet(soup.EndOfSession())

    def stats(self) -> dict[str, Any]:
        return {"connections": len(self.connections), "logins": self.logins,
                "logins_rejected": self.logins_rejected, "timeouts": self.timeouts,
                "protocol_errors": self.protocol_errors, "replayed": self.replayed, "rejects": self.oe.rejects,
                "fills": len(self.oe.fills),
                "accounts": {a.username: {"sequenced": len(a.outbound), "open_orders": len(a.orders),
                                          "open_by_symbol": _count_by_symbol(a.orders.values()),
                                          "position": a.position, "cancel_on_disconnect": a.cancel_on_disconnect,
                                          "canceled_on_disconnect": a.canceled_on_disconnect}
                             for a in self.oe.accounts.values()}}


def _count_by_symbol(orders: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in orders:
        sym = o.symbol.strip()
        out[sym] = out.get(sym, 0) + 1
    return out


def json_log(path) -> Callable[[dict[str, Any]], None]:
    f = open(path, "a", buffering=1)

    def write(rec: dict[str, Any]) -> None:
        f.write(json.dumps(rec, separators=(",", ":"), default=str) + "\n")

    write.file = f  # type: ignore[attr-defined]
    return write
