"""The live simulator's configuration: one YAML file, validated into frozen models.

Every field has a default that fits the lab (see ``examples/exchange.yaml``);
errors name the field path, the bad value and what is allowed.
"""

from __future__ import annotations

import pathlib
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from appliance.lab.topology import NETWORKS, PUBLISHER_PORT

LINE_A, LINE_B = NETWORKS[0], NETWORKS[1]
ORDER_NET = NETWORKS[2]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LineConfig(Frozen):
    group: str
    port: int = Field(26400, ge=1, le=65535)
    source: str  # the exchange's address on that line's network
    source_port: int = Field(PUBLISHER_PORT, ge=1, le=65535)  # the publisher's own UDP port: appliances filter on it


class FeedConfig(Frozen):
    session: str = Field("TWLAB00001", min_length=1, max_length=10)
    line_a: LineConfig = LineConfig(group=LINE_A.group, port=LINE_A.group_port, source=LINE_A.address("exch"))
    line_b: LineConfig = LineConfig(group=LINE_B.group, port=LINE_B.group_port, source=LINE_B.address("exch"))
    max_payload: int = Field(1400, ge=64, le=1452)
    heartbeat_interval: float = Field(1.0, gt=0)
    end_of_session_packets: int = Field(3, ge=1)
    retransmission_port: int = Field(26401, ge=1, le=65535)
    retransmission_max_messages: int = Field(1000, ge=1, le=65534)


class AccountConfig(Frozen):
    username: str = Field(min_length=1, max_length=6)
    password: str = Field(min_length=1, max_length=10)
    cancel_on_disconnect: bool = Field(False, description="when this login's session ends (logout, close, "
                                       "reset, timeout), cancel its open orders, as venues offer per port")


class AnswerFaultConfig(Frozen):
    """A test-only way to make order entry misbehave: an answer no venue may send, so that a client's
    checks can be seen to catch it. Never set outside tests."""
    kind: Literal["overfill"] = Field(description="overfill: a fill of a resting order reports one share "
                                      "more than the order had open")
    account: str | None = Field(None, description="the login it hits; none: every one")
    at_fill: int = Field(1, ge=1, description="the n-th fill of a resting order the account is told of")


class OrderEntryConfig(Frozen):
    address: str = ORDER_NET.address("exch")
    port: int = Field(15000, ge=1, le=65535)
    session: str = Field("TWOE000001", min_length=1, max_length=10)
    accounts: tuple[AccountConfig, ...] = (AccountConfig(username="TWAPP1", password="lab-secret",
                                                         cancel_on_disconnect=True),)
    heartbeat_interval: float = Field(1.0, gt=0)
    timeout: float = Field(15.0, gt=0)
    login_timeout: float = Field(5.0, gt=0)
    faults: tuple[AnswerFaultConfig, ...] = ()

    @model_validator(mode="after")
    def _fault_accounts(self) -> OrderEntryConfig:
        names = [a.username for a in self.accounts]
        for f in self.faults:
            if f.account is not None and f.account not in names:
                raise ValueError(f"order_entry.faults: account {f.account!r} is not a login here; the logins are "
                                 f"{', '.join(names)}")
        return self


class FaultConfig(Frozen):
    kind: Literal["drop", "duplicate", "reorder", "gap", "line_down"]
    line: Literal["A", "B", "both"] = "both"
    probability: float = Field(0.0, ge=0, le=1)
    at_sequence: int = Field(0, ge=0)
    packets: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _complete(self) -> FaultConfig:
        if self.kind in ("drop", "duplicate", "reorder") and not self.probability:
            raise ValueError(f"a {self.kind} fault needs probability > 0 (e.g. probability: 0.01)")
        if self.kind in ("gap", "line_down") and not self.at_sequence:
            raise ValueError(f"a {self.kind} fault needs at_sequence >= 1 (the first sequence number it hits)")
        return self


class ExchangeConfig(Frozen):
    mode: Literal["live", "blast"] = "live"
    day: str | None = Field(None, description="blast mode: the BinaryFILE to publish (from exchange gen)")
    symbols: int | tuple[str, ...] = 10
    seed: int = 1
    rate: float = Field(20_000.0, gt=0, description="live: order-flow events per second; blast: ITCH messages "
                        "per second")
    duration: float | None = Field(None, gt=0, description="seconds to run; none: until stopped")
    tick: float = Field(0.001, gt=0, le=0.1, description="seconds between flushes of the feed")
    feed: FeedConfig = FeedConfig()
    order_entry: OrderEntryConfig = OrderEntryConfig()
    faults: tuple[FaultConfig, ...] = ()
    record: str | None = Field(None, description="folder for feed.pcapng, orders.pcapng, orders.jsonl, status")

    @model_validator(mode="after")
    def _mode(self) -> ExchangeConfig:
        if self.mode == "blast" and not self.day:
            raise ValueError("mode blast needs day: a BinaryFILE written by `tickwire exchange gen`")
        if self.mode == "blast" and self.faults:
            raise ValueError("faults apply to mode live only (blast sends precomputed packets from C)")
        return self

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v):
        if isinstance(v, int) and not 1 <= v <= 17576:
            raise ValueError(f"{v} symbols: must be within 1..17576")
        if isinstance(v, tuple) and (not v or any(not 1 <= len(s) <= 8 for s in v)):
            raise ValueError("symbols must be a count or a list of 1-8 character names")
        return v


class ConfigError(ValueError):
    """The file is unreadable or invalid; the message lists every problem."""


def load(path: str | pathlib.Path | None) -> ExchangeConfig:
    if path is None:
        return ExchangeConfig()
    p = pathlib.Path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{p}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    try:
        return ExchangeConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{p}: {len(exc.errors())} problem(s):"]
        for err in exc.errors():
            where = ".".join(str(x) for x in err["loc"]) or "(top)"
            value = err.get("input")
            lines.append(f"  {where}: {value!r}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from exc
