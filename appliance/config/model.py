"""The appliance YAML's sections as frozen models, and the integers the C tables get from them."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import pathlib
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    create_model,
    field_validator,
    model_validator,
)

from appliance.config.problems import ConfigError, Problem, Problems, did_you_mean
from common.lockdown import forget_env
from dpdk import risk
from dpdk.risk import PRICE_SCALE  # ITCH/OUCH prices: 4 implied decimals, as C holds them
from dpdk.strategy import Params

# ---- value types ----------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ns|us|µs|ms|s|m)?\s*$")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, None: 1.0}


def _duration(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError("a duration with a unit, e.g. 5ms, 1.5s, 200us")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        m = _DURATION.match(v)
        if m:
            return float(m.group(1)) * _UNIT[m.group(2)]
    raise ValueError("not a duration: give a number and a unit (ns, us, ms, s, m), e.g. 5ms; a bare number is seconds")


Seconds = Annotated[float, BeforeValidator(_duration), Field(ge=0)]
Price = Annotated[Decimal, Field(ge=0, decimal_places=4, max_digits=14)]
Shares = Annotated[int, Field(ge=0, le=2**32 - 1)]


def _multicast(v: str) -> str:
    try:
        addr = ipaddress.IPv4Address(v)
    except ValueError as exc:
        raise ValueError("not an IPv4 address") from exc
    if not addr.is_multicast:
        raise ValueError("not a multicast group: feed groups are in 224.0.0.0/4")
    return v


def _ipv4(v: str) -> str:
    try:
        ipaddress.IPv4Address(v)
    except ValueError as exc:
        raise ValueError("not an IPv4 address, e.g. 198.18.3.1") from exc
    return v


def _interface(v: str) -> str:
    if not v.strip():
        raise ValueError("empty: give the interface's name, e.g. feed-a")  # feed run --iface refuses it too
    return v


Multicast = Annotated[str, AfterValidator(_multicast)]
Interface = Annotated[str, AfterValidator(_interface)]
IPv4 = Annotated[str, AfterValidator(_ipv4)]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- sections -------------------------------------------------------------------------------


class Lcores(_Model):
    control: int = Field(0, ge=0, description="the CPU Python runs on (EAL's main lcore)")
    worker: int = Field(1, ge=0, description="the CPU the C worker busy-polls")

    @model_validator(mode="after")
    def _apart(self) -> Lcores:
        if self.control == self.worker:
            raise ValueError(f"control and worker are both CPU {self.worker}: the worker needs a core of its own")
        return self


class Host(_Model):
    lcores: Lcores = Lcores()
    numa_node: int = Field(0, ge=0)
    hugepages: Literal["auto", "on", "off"] = "auto"
    hugepages_2mb: int = Field(512, ge=0)           # 2 MiB pages to reserve on numa_node (tickwire tune, provisioning)
    isolated_cpus: list[int] | None = None          # kept off the kernel's housekeeping (default: the worker's)
    netns: str | None = None              # the network namespace the feed and venue are reached from
    cpu_latency_us: int | None = Field(None, ge=0)  # hold PM QoS at this while running (0: idle CPUs poll)


class Endpoint(_Model):
    address: IPv4
    port: Port


class Line(_Model):
    interface: Interface
    group: Multicast
    port: Port
    queue: int = Field(0, ge=0)
    source: Endpoint | None = None  # the exchange's publisher; datagrams from elsewhere are dropped (unset: any)


class Feed(_Model):
    session: str = Field("", max_length=10)   # the MoldUDP64 session expected ("": the first seen)
    input: Literal["af_xdp", "socket"] = "af_xdp"
    lines: dict[Literal["A", "B"], Line]
    retransmission: Endpoint | None = None
    give_up: Seconds = 5.0
    max_locate: int = Field(16383, ge=1, le=65535)
    max_orders: int = Field(1_000_000, ge=1)
    levels: int = Field(1024, ge=1)

    @field_validator("lines")
    @classmethod
    def _some(cls, v: dict) -> dict:
        if not v:
            raise ValueError("no feed line: give line A (and B for arbitration)")
        return v


class Venue(_Model):
    address: IPv4
    port: Port = 15000
    account: str = Field(min_length=1, max_length=6)   # the SoupBinTCP username
    password_env: str | None = None
    password_file: pathlib.Path | None = None
    session: str = Field("", max_length=10)
    heartbeat: Seconds = 1.0
    timeout: Seconds = 15.0
    reconnect: Seconds = 0.5
    user_ref_base: int = Field(1, ge=1, le=2**32 - 1)
    cancel_on_disconnect: bool | None = None  # the venue cancels this port's orders when its session drops

    @model_validator(mode="after")
    def _one_secret(self) -> Venue:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError("give exactly one of password_env (an environment variable's name) or "
                             "password_file (a file holding the password): it is never written in this file")
        return self

    def password(self) -> SecretStr:
        """The password, from where the YAML says; never logged, never in a message. Read from
        password_env, the variable then leaves this process (its children, /proc/PID/environ); a
        later call here gets the value read first. Raises SecretUnavailable when it is not there
        (config check warns: it may live only on the box) and ConfigError when it cannot be used:
        longer than SoupBinTCP carries, a character it cannot carry, a file others may read."""
        if self.password_env is not None:
            where, at = ("venue", "password_env"), self.password_env
            value = forget_env(self.password_env)
            if value is None:
                value = _TAKEN.get(self.password_env)
            if value is None:
                raise SecretUnavailable([Problem(where, None, at, f"the environment variable {at} is not set: "
                                                                  f"export it before starting")])
            _TAKEN[self.password_env] = value
        else:
            assert self.password_file is not None
            where, at = ("venue", "password_file"), str(self.password_file)
            try:
                fd = os.open(self.password_file, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise SecretUnavailable([Problem(where, None, at, f"cannot read it ({exc.strerror}): create it, "
                                                                  "readable by tickwire only (chmod 600)")]) from exc
            with os.fdopen(fd) as f:
                mode = os.fstat(f.fileno()).st_mode & 0o777
                if mode & 0o077:
                    raise ConfigError([Problem(where, None, at, f"its mode is {mode:04o}: others than its owner may "
                                                                f"read or change the venue's password; chmod 600 {at} "
                                                                "(owned by the appliance's user)")])
                value = f.read().strip()
        wrong = _password_wrong(value)
        if wrong:
            raise ConfigError([Problem(where, None, at, f"the password it holds {wrong}")])
        return SecretStr(value)


# SoupBinTCP's Login Request carries the password in 10 characters, space-padded (PROTOCOLS.md):
# printable ASCII without the space, which the padding would eat
PASSWORD_MAX = 10
_TAKEN: dict[str, str] = {}  # password_env's value, once it has left the environment


class SecretUnavailable(ConfigError):
    """The venue's secret is not where the YAML says (not set, not readable here)."""


def _password_wrong(value: str) -> str | None:
    """What makes ``value`` unusable as the SoupBinTCP password, without saying the value."""
    fix = (f"; the venue's password for this port is at most {PASSWORD_MAX} printable ASCII characters "
           "(letters, digits, punctuation; no spaces): put that one there")
    if not value:
        return "is empty" + fix
    if len(value) > PASSWORD_MAX:
        return f"is longer than the {PASSWORD_MAX} characters SoupBinTCP's login carries" + fix
    if not all("!" <= c <= "~" for c in value):
        return "holds a character SoupBinTCP's login cannot carry (a space, a control character or one " \
               "outside ASCII)" + fix
    return None


class Instrument(_Model):
    symbol: str = Field(min_length=1, max_length=8)
    locate: int = Field(ge=1, le=65535)
    tick: Price = Decimal("0.01")


class MarketMakerParams(_Model):
    half_spread: Price = Decimal("0.02")     # from the fair price to each quote
    quote_size: Shares = 100
    skew: Price = Decimal("0")               # the fair price moves this much a share held, against the position
    min_move: Price = Decimal("0.01")        # requote only when a quote would move at least this much
    refresh: Seconds = 0.005                 # at most one requote a side per this interval
    max_position: Shares = 1000              # stop quoting the side that would grow |position| past this
    levels: int = Field(1, ge=1, le=64)      # quotes a side, each one tick further out


class TakerParams(_Model):
    imbalance_bps: int = Field(5000, ge=1, le=10000)  # (bid - ask) / (bid + ask) shares over `levels`
    levels: int = Field(1, ge=1, le=8)
    take_size: Shares = 100
    cooldown: Seconds = 0.01


class _Strategy(_Model):
    name: str = Field(min_length=1)
    instrument: str
    enabled: bool = True


class MarketMaker(_Strategy):
    kind: Literal["market_maker"]
    params: MarketMakerParams = MarketMakerParams()


class Taker(_Strategy):
    kind: Literal["taker"]
    params: TakerParams = TakerParams()


Strategy = Annotated[MarketMaker | Taker, Field(discriminator="kind")]
STRATEGY_KINDS = ("market_maker", "taker")


# The risk limits of one level (global, a strategy, an instrument): the fields of the C struct
# tw_risk_limits (dpdk/include/risk.h), in its order, each as its unit says (dpdk.risk.UNITS); unset
# fields take the level above (global: allow nothing). Adding one: dpdk/README.md.
_LIMIT_TYPES: dict[str, Any] = {
    "state": Literal[tuple(risk.TRADING_STATES)],           # active, reduce_only or halted
    "shares": Shares,
    "dollars": Price,                                       # a notional is price x shares
    "basis points": Annotated[int, Field(ge=0, le=10000)],  # 0: no limit
    "orders": Annotated[int, Field(ge=0)],
    "per second": Annotated[int, Field(ge=0)],              # 0: no limit
}
Limits = create_model("Limits", __base__=_Model, __doc__="Limits at one level; unset fields take the level above "
                      "(global: allow nothing).",
                      **{n: (_LIMIT_TYPES[unit] | None, None) for n, unit in risk.LIMITS.items()})


class RiskManager(_Model):
    """What the Python risk manager watches; a breach trips the kill switch (unset: not watched):
    the strategy's for its loss, drawdown and reject rate, the whole worker's for the rest."""
    max_loss: Price | None = None          # dollars a strategy loses, realized + unrealized (marked to the micro-price)
    max_drawdown: Price | None = None      # dollars a strategy gives back from its best P&L of the day
    max_reject_rate: float | None = Field(None, gt=0, le=1)  # a strategy's rejected / sent over reject_window
    reject_window: Seconds = 10.0
    min_orders: int = Field(20, ge=1)      # the reject rate counts once this many orders went in the window
    max_total_loss: Price | None = None    # dollars lost by every strategy together
    max_message_rate: int | None = Field(None, ge=1)  # the session's orders + cancels a second, over one second
    stale_books: Seconds | None = None     # books stale this long
    session_down: Seconds | None = None    # order entry down this long (after it was first up)


class Risk(_Model):
    global_: Limits = Field(Limits(), alias="global")
    strategies: dict[str, Limits] = {}
    instruments: dict[str, Limits] = {}
    manager: RiskManager = RiskManager()
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PtpServo(_Model):
    """ptp4l's clock servo (a slave that steers its clock; never in the lab: free_running)."""
    step_threshold: Seconds = 0.0           # step the clock when the offset passes this (0: never after start)
    first_step_threshold: Seconds = 0.00002  # at start, step when the offset passes this
    max_frequency: int = Field(900_000_000, ge=1)  # ppb the servo may adjust by
    pi_proportional_const: float = Field(0.0, ge=0)  # 0: ptp4l derives it from the sync interval
    pi_integral_const: float = Field(0.0, ge=0)


class Phc2sys(_Model):
    """phc2sys: the system clock disciplined from the NIC's PTP hardware clock (hardware timestamping)."""
    enabled: bool = True
    log: pathlib.Path | None = None         # its output, to read its offset from (else journalctl -u)


class Ptp(_Model):
    """What the box's clock must be, and ptp4l's configuration (tickwire ptp config writes it)."""
    profile: Literal["hft", "rts25"] = "hft"   # hft: warn above 100 ns, fail above 1 us; rts25: fail above 100 us
    domain: int = Field(0, ge=0, le=255)
    interface: str | None = None
    transport: Literal["UDPv4", "L2"] = "UDPv4"
    timestamping: Literal["hardware", "software"] = "hardware"
    delay_mechanism: Literal["E2E", "P2P"] = "E2E"
    sync_interval: int = Field(-4, ge=-7, le=4)       # log2 seconds
    announce_interval: int = Field(1, ge=-3, le=4)    # log2 seconds
    announce_receipt_timeout: int = Field(3, ge=2, le=255)  # announce intervals before the master is given up
    delay_req_interval: int = Field(0, ge=-7, le=5)   # log2 seconds
    slave_only: bool = True
    priority1: int = Field(128, ge=0, le=255)
    priority2: int = Field(128, ge=0, le=255)
    clock_class: int = Field(248, ge=0, le=255)
    free_running: bool = False                        # never steer the clock (the lab: it shares the host's)
    uds_address: pathlib.Path = pathlib.Path("/var/run/ptp4l")  # ptp4l's management socket
    log: pathlib.Path | None = None                   # ptp4l's output, for the servo state (else journalctl -u)
    servo: PtpServo = PtpServo()
    phc2sys: Phc2sys = Phc2sys()
    max_offset: Seconds | None = None                 # overrides the profile's failure threshold
    warn_offset: Seconds | None = None                # overrides the profile's warning threshold
    max_path_delay: Seconds | None = None             # mean path delay above this fails (default: the profile's)
    max_sync_age: Seconds | None = None               # the last sync older than this fails (default: 8 intervals)
    window: Seconds = 600.0                           # grandmaster changes and port-state flaps are counted over this
    max_gm_changes: int = Field(1, ge=0)              # more in the window fails (any is a warning)
    max_state_changes: int = Field(4, ge=0)           # port-state changes in the window above this: a warning
    fail_after: Seconds = 2.0                         # a failure this long stops trading (stop_trading_on_failure)
    stop_trading_on_failure: bool = True


class Failover(_Model):
    role: Literal["primary", "standby", "none"] = "none"
    peer: IPv4 | None = None
    heartbeat: Seconds = 0.1
    takeover_after: Seconds = 0.5

    @model_validator(mode="after")
    def _peer(self) -> Failover:
        if self.role != "none" and self.peer is None:
            raise ValueError(f"role {self.role} needs the peer's address (failover.peer)")
        return self


class Journal(_Model):
    dir: pathlib.Path = pathlib.Path("/var/lib/tickwire/journal")
    fsync: Literal["always", "batch", "none"] = "batch"
    fsync_interval: Seconds = 0.01
    market_data: bool = True                  # keep every feed frame as pcap per line, in DIR/market-data
    pcap_rotate_mb: float = Field(256, gt=0)  # a line's capture is closed and the next begun past this size
    market_data_keep_mb: float = Field(8192, gt=0)  # the kept captures' total: the oldest files go past this
    events_rotate_mb: float = Field(64, gt=0)  # the run's events file (under /run/tickwire) rotates past this size
    events_keep: int = Field(4, ge=1)          # rotated events files kept; the oldest is deleted
    warn_free_pct: float = Field(10, gt=0, lt=100)  # alert when the journal's or /run's filesystem has less free


class Watchdog(_Model):
    """The dead-man switch: the worker's lcore throws its own kill switch (refuses new orders, cancels the open
    ones) when the control loop's heartbeat is older than `deadman`, or when its event ring drops an event."""
    deadman: Seconds = Field(0.5, gt=0)


class AppConfig(_Model):
    host: Host = Host()
    feed: Feed
    venue: Venue
    instruments: list[Instrument] = Field(min_length=1)
    strategies: list[Strategy] = []
    risk: Risk = Risk()
    ptp: Ptp = Ptp()
    failover: Failover = Failover()
    journal: Journal = Journal()
    watchdog: Watchdog = Watchdog()

    @model_validator(mode="after")
    def _references(self) -> AppConfig:
        problems: list[Problem] = []
        seen: dict[Any, int] = {}
        for i, ins in enumerate(self.instruments):
            for key, what in ((ins.symbol, "symbol"), (ins.locate, "locate")):
                if (what, key) in seen:
                    problems.append(Problem(("instruments", i, what), None, key,
                                            f"instruments[{seen[(what, key)]}] has this {what} too: each is unique"))
                seen[(what, key)] = i
        symbols = list(dict.fromkeys(i.symbol for i in self.instruments))  # each once, even when given twice
        names: dict[str, int] = {}
        for i, s in enumerate(self.strategies):
            if s.instrument not in symbols:
                problems.append(Problem(("strategies", i, "instrument"), None, s.instrument,
                                        f"no such instrument{did_you_mean(s.instrument, symbols)}; "
                                        f"the instruments are {', '.join(symbols)}"))
            if s.name in names:
                problems.append(Problem(("strategies", i, "name"), None, s.name,
                                        f"strategies[{names[s.name]}] has this name too: each is unique"))
            names[s.name] = i
        for key in self.risk.strategies:
            if key not in names:
                problems.append(Problem(("risk", "strategies", key), None, key,
                                        f"no such strategy{did_you_mean(key, list(names))}; "
                                        f"the strategies are {', '.join(names) or 'none'}"))
        for key in self.risk.instruments:
            if key not in symbols:
                problems.append(Problem(("risk", "instruments", key), None, key,
                                        f"no such instrument{did_you_mean(key, symbols)}; "
                                        f"the instruments are {', '.join(symbols)}"))
        if problems:
            raise Problems(problems)
        return self

    # ---- what the C tables get ----------------------------------------------------------------

    def instrument(self, symbol: str) -> Instrument:
        return next(i for i in self.instruments if i.symbol == symbol)

    def strategy(self, name: str | None = None) -> MarketMaker | Taker:
        if not self.strategies:
            raise ConfigError([Problem(("strategies",), None, [], "no strategy: add one (see examples/)")])
        if name is None:
            return self.strategies[0]
        for s in self.strategies:
            if s.name == name:
                return s
        raise ConfigError([Problem(("strategies",), None, name, "no strategy of that name; the strategies are "
                                   + ", ".join(s.name for s in self.strategies))])

    def effective_limits(self, name: str | None = None) -> dict[str, tuple[Any, str]]:
        """The limits one strategy trades under: for each field the strictest of the global, the
        strategy's and its instrument's, by risk.c's own merge (dpdk.risk.merge), and which level
        set it (the first to, on a tie). A level's unset fields take the level above."""
        s = self.strategy(name)
        levels = [("risk.global", self.risk.global_), (f"risk.strategies.{s.name}", self.risk.strategies.get(s.name)),
                  (f"risk.instruments.{s.instrument}", self.risk.instruments.get(s.instrument))]
        out: dict[str, tuple[Any, str]] = {}
        above = risk.no_ceiling()
        for where, lim in levels:
            given = {f: v for f in risk.LIMITS if lim is not None and (v := getattr(lim, f)) is not None}
            mine = {f: risk.c_units(f, v) for f, v in given.items()}
            above = dataclasses.replace(above, **{f: v for f, v in mine.items() if f not in out})  # first set here
            merged = risk.merge(above, dataclasses.replace(above, **mine))
            for f, v in given.items():
                if f not in out or getattr(merged, f) != getattr(above, f):
                    out[f] = (v, where)
            above = merged
        return {f: out.get(f, (_unset(unit), "default (allows nothing)")) for f, unit in risk.LIMITS.items()}

    def limits(self, name: str | None = None) -> Any:
        """The risk table's row (dpdk.risk.Limits) for one strategy."""
        return risk.Limits(**{f: risk.c_units(f, v) for f, (v, _) in self.effective_limits(name).items()})

    def global_limits(self) -> Any:
        """The worker's global row of the risk table (dpdk.risk.Limits): what risk.global sets,
        and no ceiling where it sets nothing (each strategy's row still holds its own limits,
        "allow nothing" where no level sets one). The open orders, gross and rates it sets are
        the whole worker's, summed over its strategies."""
        g = self.risk.global_
        return dataclasses.replace(risk.no_ceiling(), **{f: risk.c_units(f, v) for f in risk.LIMITS
                                                        if (v := getattr(g, f)) is not None})

    def strategy_params(self, name: str | None = None) -> Any:
        """The parameter table (dpdk.strategy.Params) for one strategy."""
        s = self.strategy(name)
        ins = self.instrument(s.instrument)
        common = {"kind": s.kind, "enabled": s.enabled, "locate": ins.locate, "tick": _price(ins.tick)}
        p = s.params
        if isinstance(p, MarketMakerParams):
            return Params(**common, half_spread=_price(p.half_spread), quote_size=p.quote_size,
                          skew=int(p.skew * PRICE_SCALE * 1000), min_move=_price(p.min_move),
                          refresh_ns=_ns(p.refresh), max_position=p.max_position, quote_levels=p.levels)
        return Params(**common, imbalance_bps=p.imbalance_bps, levels=p.levels, take_size=p.take_size,
                      cooldown_ns=_ns(p.cooldown))


def _unset(unit: str) -> Any:
    """A limit no level sets: active, or 0 (allows nothing)."""
    return "active" if unit == "state" else Decimal(0) if unit == "dollars" else 0


def _price(d: Decimal) -> int:
    return int(d * PRICE_SCALE)


def _ns(s: float) -> int:
    return int(round(s * 1e9))
