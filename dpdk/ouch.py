"""The worker's OUCH 5.0 / SoupBinTCP session (dpdk/src/session.c, its OUCH messages dpdk/src/ouch.c) from Python:
for tests and tools. The worker drives the same C session from its loop; the
socket is made by the C code, in the calling thread's network namespace."""

from __future__ import annotations

import socket
from typing import Any

from dpdk import native

STATES = ("down", "connecting", "login_sent", "up", "ended", "rejected")
STAT_FIELDS = ("next_seq", "connects", "logins", "disconnects", "timeouts", "heartbeats_sent", "heartbeats_heard",
               "messages", "orders_sent", "cancels_sent", "send_errors", "orders_lost", "protocol_errors",
               "bad_answers")
SECRET_FIELDS = frozenset({"password"})  # named in an error, never shown

# order_entry.h's enum tw_bad_answer, by value: what made a venue answer impossible
BAD_ANSWERS = ("", "login_mid_session", "login_sequence", "before_login", "unknown_order", "accepted_twice",
               "accept_mismatch", "not_accepted", "overfill", "fill_price", "cancel_size", "reject_accepted",
               "unasked_change", "unaccounted")


def _field(value: str, width: int, what: str) -> bytes:
    """A SoupBinTCP/OUCH alphanumeric field: printable ASCII, space-padded to width. The error names
    the field and the fix; a secret's value (the password) is never in it."""
    shown = f"{what} ({len(value)} characters)" if what in SECRET_FIELDS else f"{what} {value!r}"
    if not all(" " <= c <= "~" for c in value):
        raise ValueError(f"{shown}: only printable ASCII characters go in the SoupBinTCP login; "
                         f"{'choose another ' + what if what in SECRET_FIELDS else 'change it'}")
    raw = value.encode("ascii")
    if len(raw) > width:
        raise ValueError(f"{shown}: at most {width} characters, as SoupBinTCP's {what} field holds; "
                         f"{'use a shorter ' + what if what in SECRET_FIELDS else 'shorten it'}")
    return raw.ljust(width)


def bad_answer_bytes(stats: Any, n: int) -> dict[str, Any]:
    """The bytes the worker kept of its n-th bad answer (stats: its struct tw_worker_stats), as hex:
    ``{"bytes": ..., "length": ...}``, or ``{"bytes_lost": True}`` when later ones took its slot."""
    ffi, _ = native()
    slot = stats.bad_answer[n % len(stats.bad_answer)]
    if slot.n != n:
        return {"bytes_lost": True}
    data = bytes(ffi.buffer(slot.bytes, min(slot.len, len(slot.bytes))))
    if slot.n != n:  # overwritten while read
        return {"bytes_lost": True}
    out: dict[str, Any] = {"bytes": data.hex(), "length": slot.len}
    if slot.len > len(slot.bytes):
        out["bytes_cut"] = True
    return out


class OuchSession:
    def __init__(self, address: tuple[str, int], username: str, password: str, session: str = "",
                 heartbeat_s: float = 1.0, timeout_s: float = 15.0, reconnect_s: float = 0.1, next_seq: int = 0):
        self.ffi, self.lib = ffi, lib = native()
        c = ffi.new("struct tw_ouch_config *")
        c.addr = int.from_bytes(socket.inet_aton(address[0]), "little")  # network order in memory
        c.port = address[1]
        ffi.memmove(c.username, _field(username, 6, "username"), 6)
        ffi.memmove(c.password, _field(password, 10, "password"), 10)
        ffi.memmove(c.session, _field(session, 10, "session"), 10)
        c.heartbeat_ns, c.timeout_ns, c.reconnect_ns = (int(x * 1e9) for x in (heartbeat_s, timeout_s, reconnect_s))
        c.next_seq = next_seq  # 0: the whole day from 1; after a restart, the one after the last kept
        ptr = lib.tw_ouch_create(c)
        if ptr == ffi.NULL:
            raise MemoryError("tw_ouch_create failed")
        self._o = ffi.gc(ptr, lib.tw_ouch_destroy)
        self._out = ffi.new("struct tw_ouch_msg[]", 256)

    def poll(self, now_ns: int) -> list[dict[str, Any]]:
        return self._messages(self.lib.tw_ouch_poll(self._o, now_ns, self._out, len(self._out)))

    def _messages(self, n: int) -> list[dict[str, Any]]:
        out = []
        for i in range(n):
            m = self._out[i]
            d = {k: getattr(m, k) for k in ("seq", "timestamp", "order_ref", "price", "match", "user_ref",
                                             "orig_user_ref", "qty", "reason")}
            own = {self.lib.TW_OUCH_MSG_NOT_SENT: "not_sent", self.lib.TW_OUCH_MSG_BAD: "bad"}
            d.update(type=own.get(m.type) or chr(m.type),
                     side=chr(m.side) if m.side else None, state=chr(m.state) if m.state else None,
                     liquidity=chr(m.liquidity) if m.liquidity else None)
            out.append(d)
        return out

    def enter(self, user_ref: int, side: str, qty: int, symbol: str, price: int, now_ns: int, tif: str = "0") -> bool:
        return self.lib.tw_ouch_enter(self._o, user_ref, ord(side), qty, _field(symbol, 8, "symbol"), price,
                                      ord(tif), now_ns) == 0

    def cancel(self, user_ref: int, now_ns: int, qty: int = 0) -> bool:
        return self.lib.tw_ouch_cancel(self._o, user_ref, qty, now_ns) == 0

    def cork(self) -> None:
        """Hold what is queued from now on until :meth:`flush` (one send for several orders)."""
        self.lib.tw_ouch_cork(self._o)

    def flush(self, now_ns: int) -> bool:
        """Write what is queued; False when the link broke (the orders come back from
        :meth:`poll` as ``not_sent``)."""
        return self.lib.tw_ouch_flush(self._o, now_ns) == 0

    def inject(self, data: bytes) -> list[dict[str, Any]]:
        """Parse bytes as if the exchange had sent them (tests and fuzzing)."""
        n = self.lib.tw_ouch_inject(self._o, data, len(data), self._out, len(self._out))
        return self._messages(n)

    def drop(self) -> None:
        self.lib.tw_ouch_drop(self._o)

    def logout(self) -> None:
        self.lib.tw_ouch_logout(self._o)

    @property
    def state(self) -> str:
        return self.stats()["state"]

    def stats(self) -> dict[str, Any]:
        st = self.ffi.new("struct tw_ouch_stats *")
        self.lib.tw_ouch_stats(self._o, st)
        out = {k: getattr(st, k) for k in STAT_FIELDS}
        out["state"] = STATES[st.state]
        out["session"] = self.ffi.unpack(st.session, 10).decode("ascii", "replace").strip()
        out["reject_reason"] = chr(st.reject_reason) if st.reject_reason else None
        return out
