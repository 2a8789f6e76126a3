"""What the worker trades with: its strategies, the risk table (global limits and
a row per strategy) and the order-entry session they share, as plain values (the
appliance YAML's, validated by appliance/config.py and handed over by
appliance/feed/settings.py). The C objects are made here and handed to the worker;
after it stops, their figures are read back."""

from __future__ import annotations

import dataclasses
from typing import Any

from dpdk.ouch import OuchSession
from dpdk.risk import Limits, Risk
from dpdk.strategy import Params, Strategy

MAX_STRATEGIES = 64  # TW_WORKER_MAX_STRATEGIES


class TradingConfigError(ValueError):
    pass


@dataclasses.dataclass
class OrderEntry:
    """The venue's order-entry session, as the appliance YAML's venue section gives it."""
    address: str
    port: int
    username: str
    password: str = dataclasses.field(repr=False)  # never in a repr (a log line, a traceback)
    session: str                    # "" asks for the current session
    user_ref_base: int              # the first UserRefNum of the day
    heartbeat_s: float
    timeout_s: float
    reconnect_s: float


@dataclasses.dataclass
class Restart:
    """What a restart takes over from the journal of the run before."""
    next_user_ref: int                     # UserRefNums are never used twice in a day
    login_seq: int                         # the first sequenced message to ask the venue for
    positions: dict[int, int]              # locate -> shares
    open_orders: list[dict[str, Any]]      # user_ref, locate, side, qty (left), price, strategy (its name, or None)
    strategy_positions: dict[str, int] = dataclasses.field(default_factory=dict)  # strategy name -> shares


@dataclasses.dataclass
class StrategySpec:
    """One strategy of the worker: its name, its parameter table and its row of the risk table
    (the limits it trades under: the strictest of its levels)."""
    name: str
    params: Params
    limits: Limits


class Trading:
    """The worker's strategies (one slot each, in order), the risk table (global limits and a row
    per strategy) and the order-entry session they share."""

    def __init__(self, strategies: list[StrategySpec], risk: Limits, order_entry: OrderEntry):
        if not strategies:
            raise TradingConfigError("no strategy to trade")
        if len(strategies) > MAX_STRATEGIES:
            raise TradingConfigError(f"{len(strategies)} strategies: one worker runs at most {MAX_STRATEGIES}")
        names = [s.name for s in strategies]
        if len(set(names)) != len(names):
            raise TradingConfigError(f"strategy names {names}: each is unique")
        self.specs, self.limits, self.oe = list(strategies), risk, order_entry
        self.strategies: list[Strategy] = []
        self.risk: Risk | None = None
        self.session: OuchSession | None = None
        self.restart: Restart | None = None

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def rows(self) -> list[Limits]:
        return [s.limits for s in self.specs]

    def pointers(self, max_locate: int) -> tuple[list[Any], Any, Any]:
        """Make the C objects; (strategy pointers by slot, risk, session) for the worker."""
        for s in self.specs:
            if not 0 < s.params.locate <= max_locate and s.params.kind != "none":
                raise TradingConfigError(f"strategy {s.name}: locate {s.params.locate} is past the books' "
                                         f"max_locate {max_locate}")
        r = self.restart
        base = max(self.oe.user_ref_base, r.next_user_ref if r else 0)
        self.strategies = [Strategy(s.params, base) for s in self.specs]
        for s in self.strategies[1:]:
            s.share_refs(self.strategies[0])  # one increasing series of UserRefNums for the session
        self.risk = Risk(max_locate=max_locate)
        self.risk.set_table(self.limits, self.rows())
        if r is not None:
            for locate, shares in r.positions.items():
                self.risk.seed_position(locate, shares)
            for o in r.open_orders:
                self.risk.seed_order(o["user_ref"], o["locate"], o["side"], o["qty"], o["price"],
                                     self._owner(o.get("strategy"), o["locate"]))
            for spec, strat in zip(self.specs, self.strategies, strict=True):
                strat.seed_position(self._seed(spec, r))
        o = self.oe
        self.session = OuchSession((o.address, o.port), o.username, o.password, o.session, o.heartbeat_s,
                                   o.timeout_s, o.reconnect_s, next_seq=r.login_seq if r else 0)
        return [s._s for s in self.strategies], self.risk._r, self.session._o

    def _owner(self, name: str | None, locate: int) -> int | None:
        """The slot a journal's open order goes back to: its strategy's when it still runs,
        else the first strategy trading its instrument (a kill of that one cancels it)."""
        if name in self.names:
            return self.names.index(name)
        return next((i for i, s in enumerate(self.specs) if s.params.locate == locate), None)

    def _seed(self, spec: StrategySpec, r: Restart) -> int:
        if spec.name in r.strategy_positions:
            return r.strategy_positions[spec.name]
        sharing = [s for s in self.specs if s.params.locate == spec.params.locate]
        return r.positions.get(spec.params.locate, 0) if sharing[0] is spec else 0

    def set_params(self, slot: int, params: Params) -> None:
        self.strategies[slot].set_params(params)
        self.specs[slot].params = params

    def set_limits(self, global_: Limits, rows: list[Limits]) -> None:
        """The whole risk table, global and every row, in one publish."""
        assert self.risk is not None
        self.risk.set_table(global_, rows)
        self.limits = global_
        for spec, row in zip(self.specs, rows, strict=True):
            spec.limits = row

    def report(self) -> dict[str, Any]:
        if not self.strategies or self.risk is None or self.session is None:
            return {}
        positions = {s.params.locate: self.risk.position(s.params.locate) for s in self.specs}
        return {"strategies": {spec.name: {**strat.stats(), "locate": spec.params.locate,
                                           "instrument_position": positions[spec.params.locate]}
                               for spec, strat in zip(self.specs, self.strategies, strict=True)},
                "risk": self.risk.stats(), "order_entry": self.session.stats(),
                "positions": {str(k): v for k, v in positions.items()}}
