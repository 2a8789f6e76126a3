"""Inline pre-trade risk: ns per order for the whole C chain (dpdk/src/risk.c),
beside the same checks written plainly in Python, in the same run.

Every order passes all fifteen checks (so each runs: the kill flags, trading
states, instrument state from the books, quantity, notional, position, gross,
both collars, open orders, two token buckets, self-match) and is then closed,
as a cancel would. The C figure comes from a loop in C (tw_risk_check_many) so
that no Python call is counted; median of --runs.

    .venv/bin/python bench/bench_risk.py [--orders 1000000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

from appliance.protocols import itch
from dpdk.books import Books
from dpdk.risk import Limits, Risk, denial_names

BID, ASK = 1_000_000, 1_000_100
LIMITS = Limits(max_order_qty=10_000, max_order_notional=10**15, max_position=10**9, max_gross=10**10,
                collar_bps=50, max_open_orders=1000, order_rate=10**9, order_burst=10**6, message_rate=10**9,
                message_burst=10**6)


def msg(t: str, locate: int, **fields) -> bytes:
    return itch.encode(dataclasses.replace(itch.example(t, 0), stock_locate=locate, **fields))


def books(n_instruments: int) -> Books:
    b = Books(max_locate=n_instruments + 1, max_orders=10 * n_instruments, levels_per_side=16)
    for loc in range(1, n_instruments + 1):
        b.apply(msg("H", loc, stock=f"S{loc}", trading_state="T"))
        b.apply(msg("A", loc, order_reference_number=10 * loc, side="B", shares=500, price=BID))
        b.apply(msg("A", loc, order_reference_number=10 * loc + 1, side="S", shares=500, price=ASK))
        b.apply(msg("E", loc, order_reference_number=10 * loc, executed_shares=100))
    return b


class PyRisk:
    """The same chain in plain Python: what a Python risk manager does per order."""

    def __init__(self, lim: Limits, b: Books):
        self.lim, self.books = lim, b
        self.killed: set[int] = set()
        self.open: dict[int, tuple[int, str, int, int]] = {}
        self.pos: dict[int, int] = {}
        self.open_qty: dict[tuple[int, str], int] = {}
        self.gross = 0
        self.tokens = {"o": float(lim.order_burst), "m": float(lim.message_burst)}
        self.last = 0

    def check(self, ref: int, loc: int, side: str, qty: int, price: int, now: int) -> str | None:
        lim = self.lim
        if qty <= 0 or price <= 0 or side not in "BS" or ref in self.open:
            return "bad_order"
        if lim.kill or loc in self.killed:
            return "killed"
        if lim.state == "halted":
            return "halted"
        ins = self.books.instrument(loc)
        if ins["trading_state"] != "T" or ins["operational_halt"]:
            return "not_trading"
        if qty > lim.max_order_qty:
            return "max_qty"
        if qty * price > lim.max_order_notional:
            return "max_notional"
        p = self.pos.get(loc, 0)
        ob = self.open_qty.get((loc, "B"), 0) + (qty if side == "B" else 0)
        os_ = self.open_qty.get((loc, "S"), 0) + (qty if side == "S" else 0)
        e = max(abs(p + ob), abs(p - os_))
        if e > lim.max_position:
            return "max_position"
        if self.gross + e > lim.max_gross:
            return "max_gross"
        far = self.books.depth(loc, "S" if side == "B" else "B", 1)
        ref_px = far[0][0]
        slack = ref_px * lim.collar_bps // 10_000
        if (side == "B" and price > ref_px + slack) or (side == "S" and price + slack < ref_px):
            return "collar_bbo"
        last = ins["last_trade"]
        if last and abs(price - last) * 10_000 > last * lim.collar_bps:
            return "collar_last"
        if len(self.open) + 1 > lim.max_open_orders:
            return "max_open_orders"
        elapsed = (now - self.last) / 1e9
        self.last = now
        for k, rate, burst in (("o", lim.order_rate, lim.order_burst), ("m", lim.message_rate, lim.message_burst)):
            self.tokens[k] = min(burst, self.tokens[k] + elapsed * rate)
            if self.tokens[k] < 1:
                return "order_rate" if k == "o" else "message_rate"
        other = [o[3] for o in self.open.values() if o[0] == loc and o[1] != side]
        if other and ((side == "B" and price >= min(other)) or (side == "S" and price <= max(other))):
            return "self_match"
        if lim.round_lot_qty and qty % lim.round_lot_qty:
            return "odd_lot"
        self.tokens["o"] -= 1
        self.tokens["m"] -= 1
        self.open[ref] = (loc, side, qty, price)
        self.open_qty[(loc, side)] = self.open_qty.get((loc, side), 0) + qty
        return None

    def done(self, ref: int) -> None:
        loc, side, qty, _ = self.open.pop(ref)
        self.open_qty[(loc, side)] -= qty


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--instruments", type=int, default=100)
    ap.add_argument("--baseline", type=int, default=100_000, help="orders through the Python chain")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    b = books(args.instruments)
    r = Risk(max_locate=args.instruments + 1, max_own_orders=1024)
    r.set_limits(LIMITS)
    ffi = r.ffi
    intents = ffi.new("struct tw_order_intent[]", args.orders)
    for i in range(args.orders):
        o = intents[i]
        o.user_ref, o.locate, o.qty = i + 1, 1 + i % args.instruments, 100
        o.side, o.price = (ord("B"), BID) if i % 2 else (ord("S"), ASK)
    c_ns = []
    for run in range(args.runs):
        base = 10**12 * (run + 1)
        t0 = time.perf_counter_ns()
        passed = r.lib.tw_risk_check_many(r._r, b._b, intents, args.orders, base)
        c_ns.append((time.perf_counter_ns() - t0) / args.orders)
        assert passed == args.orders, r.stats()
        # a fresh set of references for the next run
        for i in range(args.orders):
            intents[i].user_ref += args.orders
    py = PyRisk(LIMITS, b)
    t0 = time.perf_counter_ns()
    for i in range(args.baseline):
        side, price = ("B", BID) if i % 2 else ("S", ASK)
        assert py.check(i + 1, 1 + i % args.instruments, side, 100, price, 10**12 + i) is None
        py.done(i + 1)
    py_ns = (time.perf_counter_ns() - t0) / args.baseline
    c = statistics.median(c_ns)
    out = {"benchmark": "risk_chain", "orders": args.orders, "c_ns_per_order": round(c, 1),
           "python_ns_per_order": round(py_ns, 1), "ratio": round(py_ns / c, 1)}
    if args.json:
        print(json.dumps(out))
        return
    checks = len(denial_names()) - 1  # every code but OK: the chain C runs, and PyRisk beside it
    print(f"pre-trade risk, the whole chain ({checks} checks) per order, {args.instruments} instruments:")
    print(f"  C, inline (dpdk/src/risk.c):   {c:8.1f} ns/order  (median of {args.runs} runs of {args.orders:,})")
    print(f"  the same checks in Python:     {py_ns:8.1f} ns/order  (baseline, {args.baseline:,} orders)")
    print(f"  ratio: {py_ns / c:.1f}x")


if __name__ == "__main__":
    main()
