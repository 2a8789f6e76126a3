"""What the worker trades with: a strategy, the risk limits and the order-entry
session, from one YAML file (see examples/trading.yaml). The C objects are made
here and handed to the worker; after it stops, their figures are read back."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import yaml

from dpdk.ouch import OuchSession
from dpdk.risk import Limits, Risk
from dpdk.strategy import Params, Strategy


class TradingConfigError(ValueError):
    pass


def _build(cls: type, section: str, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise TradingConfigError(f"{section}: expected a mapping of settings, got {raw!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise TradingConfigError(f"{section}.{unknown[0]}: no such setting; "
                                 f"the settings are {', '.join(sorted(names))}")
    try:
        return cls(**raw)
    except TypeError as exc:
        raise TradingConfigError(f"{section}: {exc}") from exc


@dataclasses.dataclass
class OrderEntry:
    address: str = "198.18.3.1"
    port: int = 15000
    username: str = "TWAPP1"
    password: str = "lab-secret"
    session: str = ""
    user_ref_base: int = 1          # the first UserRefNum of the day
    heartbeat_s: float = 1.0
    timeout_s: float = 15.0
    reconnect_s: float = 0.5


@dataclasses.dataclass
class Restart:
    """What a restart takes over from the journal of the run before."""
    next_user_ref: int                     # UserRefNums are never used twice in a day
    login_seq: int                         # the first sequenced message to ask the venue for
    positions: dict[int, int]              # locate -> shares
    open_orders: list[dict[str, Any]]      # user_ref, locate, side, qty (left), price


class Trading:
    def __init__(self, strategy: Params, risk: Limits, order_entry: OrderEntry):
        self.params, self.limits, self.oe = strategy, risk, order_entry
        self.strategy = self.risk = self.session = None
        self.restart: Restart | None = None

    @classmethod
    def load(cls, path: str | pathlib.Path) -> Trading:
        try:
            raw = yaml.safe_load(pathlib.Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise TradingConfigError(f"{path}: {exc}") from exc
        unknown = sorted(set(raw) - {"strategy", "risk", "order_entry"})
        if unknown:
            raise TradingConfigError(f"{path}: {unknown[0]}: no such section (strategy, risk, order_entry)")
        for section in ("strategy", "risk"):
            if section not in raw:
                raise TradingConfigError(f"{path}: the {section} section is missing")
        t = cls(_build(Params, "strategy", raw["strategy"]), _build(Limits, "risk", raw["risk"]),
                _build(OrderEntry, "order_entry", raw.get("order_entry", {})))
        if t.params.locate <= 0:
            raise TradingConfigError(f"{path}: strategy.locate {t.params.locate}: the stock locate it trades (1..)")
        return t

    def pointers(self, max_locate: int) -> tuple[Any, Any, Any]:
        """Make the C objects; (strategy, risk, session) pointers for the worker."""
        r = self.restart
        self.strategy = Strategy(self.params, max(self.oe.user_ref_base, r.next_user_ref if r else 0))
        self.risk = Risk(max_locate=max_locate)
        self.risk.set_limits(self.limits)
        if r is not None:
            for locate, shares in r.positions.items():
                self.risk.seed_position(locate, shares)
            for o in r.open_orders:
                self.risk.seed_order(o["user_ref"], o["locate"], o["side"], o["qty"], o["price"])
            self.strategy.seed_position(r.positions.get(self.params.locate, 0))
        o = self.oe
        self.session = OuchSession((o.address, o.port), o.username, o.password, o.session, o.heartbeat_s,
                                   o.timeout_s, o.reconnect_s, next_seq=r.login_seq if r else 0)
        return self.strategy._s, self.risk._r, self.session._o

    def report(self) -> dict[str, Any]:
        if self.strategy is None:
            return {}
        return {"strategy": self.strategy.stats(), "risk": self.risk.stats(), "order_entry": self.session.stats(),
                "position": self.risk.position(self.params.locate)}
