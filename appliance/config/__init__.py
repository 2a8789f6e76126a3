"""The appliance YAML: one file, validated into typed, frozen models.

Everything the box does comes from here (DESIGN.md, principle 4): the host's
cores and interfaces, the feed lines and their retransmission server, the venue
and its credentials, the instruments, the strategies and their parameters, the
risk limits (global, per strategy, per instrument), the PTP expectations,
failover and the journal. ``examples/market_maker.yaml`` and
``examples/taker.yaml`` are complete, commented files.

Units are the trader's: prices in dollars (at most 4 decimals, as ITCH and OUCH
carry them), durations with a unit (``5ms``, ``1.5s``, ``200us``; a bare number
is seconds), quantities in shares. The C tables get integers (prices x 10,000,
nanoseconds) from :meth:`AppConfig.strategy_params` and :meth:`AppConfig.limits`.

A bad file is refused with every problem at once, each naming the YAML path, its
line, the value and the fix (:class:`ConfigError`). Credentials are read from an
environment variable or a file named in the YAML, never from the YAML itself, and
never printed.

The package's face is this module: the sections (``config.model``), the problems
(``config.problems``), and ``load``/``loads``/``explain`` (``config.parse``).
"""

from __future__ import annotations

from appliance.config.model import (
    PRICE_SCALE,
    STRATEGY_KINDS,
    AppConfig,
    Endpoint,
    Failover,
    Feed,
    Host,
    Instrument,
    Journal,
    Lcores,
    Limits,
    Line,
    MarketMaker,
    MarketMakerParams,
    Multicast,
    Phc2sys,
    Port,
    Price,
    Ptp,
    PtpServo,
    Risk,
    RiskManager,
    Seconds,
    Shares,
    Strategy,
    Taker,
    TakerParams,
    Venue,
)
from appliance.config.parse import explain, load, loads
from appliance.config.problems import MISSING, ConfigError, Problem

__all__ = [
    "AppConfig",
    "ConfigError",
    "Endpoint",
    "Failover",
    "Feed",
    "Host",
    "Instrument",
    "Journal",
    "Lcores",
    "Limits",
    "Line",
    "MISSING",
    "MarketMaker",
    "MarketMakerParams",
    "Multicast",
    "PRICE_SCALE",
    "Phc2sys",
    "Port",
    "Price",
    "Problem",
    "Ptp",
    "PtpServo",
    "Risk",
    "RiskManager",
    "STRATEGY_KINDS",
    "Seconds",
    "Shares",
    "Strategy",
    "Taker",
    "TakerParams",
    "Venue",
    "explain",
    "load",
    "loads",
]
