"""What one run of the worker is given: :class:`RunSettings`, made either from the
appliance YAML (:func:`from_config`, validated by appliance/config.py) or from
``feed run``'s options (:func:`from_flags`), never by writing one into the other;
and where a live feed arrives (:class:`LiveFeed`: interfaces, groups, the
retransmission server), from the lab's plan or from the options.
"""

from __future__ import annotations

import datetime
import hashlib
import pathlib
from dataclasses import dataclass, field
from typing import Any

from appliance import config, journal
from appliance.feed.errors import FeedError
from appliance.lab import topology
from appliance.lab.exchange.config import FeedConfig
from appliance.oms import Oms
from dpdk.trading import OrderEntry, Restart, StrategySpec, Trading, TradingConfigError


@dataclass
class LiveFeed:
    netns: str | None
    ifaces: dict[str, str]                       # line -> interface
    groups: dict[str, tuple[str, int]]           # line -> (group, port)
    retrans: tuple[str, int] | None
    retrans_source: str | None
    sources: dict[str, tuple[str, int]] = field(default_factory=dict)  # line -> its publisher (address, port):
                                                 # the XDP rule and the worker refuse anyone else (none: any)
    session: str = ""                            # the MoldUDP64 session taken ("": the first seen)


@dataclass(frozen=True)
class RunSettings:
    """Everything a run takes, as plain values (the defaults are feed run's)."""
    name: str = "tw"
    feed: LiveFeed = field(default_factory=lambda: LiveFeed(None, {}, {}, None, None))
    pcap: str | None = None                      # replay this capture (DPDK's pcap port) instead
    input: str = "af_xdp"                        # af_xdp, socket or asyncio (a live feed)
    busy_budget: int = 0
    retrans_port: int = 26401                    # a capture's retransmission answers' source port
    unsequenced: bool = False                    # a capture whose MoldUDP64 sequence numbers are 0
    burst: int = 32
    give_up: float = 5.0
    idle_stop: float = 0.5
    idle_sleep_us: int = 0
    max_locate: int = 16383
    max_orders: int = 1_000_000
    levels: int = 1024
    lcores: str = "0,1"
    hugepages: str = "auto"
    prefault: bool = True
    cpu_latency_us: int | None = None
    record: str | None = None
    record_rotate_mb: float = 256.0
    record_keep_mb: float = 0.0  # the kept captures' total past which the oldest go (0: no cap)
    journal: str | None = None
    journal_fsync: str = "batch"
    journal_interval: float = 0.01
    duration: float = 0.0
    until_end: bool = False
    cancel_timeout: float = 2.0
    cancel_each: bool = False
    top: int = 5
    books_out: str | None = None
    # trading: the appliance YAML the run was started with (--config: reload, the clock, the risk manager), or
    # the one --trade names (its strategies, risk table and venue only)
    config: str | None = None
    config_sha256: str | None = None
    app_config: config.AppConfig | None = None
    trade: str | None = None
    trade_config: config.AppConfig | None = None
    strategies: tuple[str, ...] = ()             # which of the config's strategies (all, or --strategy's)
    instruments: dict[str, int] | None = None    # symbol -> stock locate, with --config

    def trading(self) -> Trading | None:
        """The worker's strategies, risk table and session (the C objects are made when it starts);
        None when the run does not trade. With --config, what the journal of today's earlier run
        leaves to this one."""
        cfg = self.app_config or self.trade_config
        if cfg is None:
            return None
        file = self.config or self.trade
        v = cfg.venue
        try:
            password = v.password()
        except config.ConfigError as exc:
            raise FeedError(f"{exc}") from exc
        oe = OrderEntry(address=v.address, port=v.port, username=v.account, password=password.get_secret_value(),
                        session=v.session, user_ref_base=v.user_ref_base, heartbeat_s=v.heartbeat,
                        timeout_s=v.timeout, reconnect_s=v.reconnect)
        try:
            trading = Trading([StrategySpec(n, cfg.strategy_params(n), cfg.limits(n)) for n in self.strategies],
                              cfg.global_limits(), oe)
        except TradingConfigError as exc:
            raise FeedError(f"{file}: {exc}") from exc
        if self.app_config is not None and self.journal:
            trading.restart = restart_from_journal(pathlib.Path(self.journal), self.instruments or {})
        return trading


def lab_feed(prefix: str, role: str = "app") -> LiveFeed:
    """Where the lab's feed arrives at ``role`` (app or standby)."""
    lab = topology.plan(topology.check_prefix(prefix))
    a, b = lab.network("feed-a"), lab.network("feed-b")
    fc = FeedConfig()
    return LiveFeed(
        netns=lab.ns(role),
        ifaces={"A": a.host_ifname, "B": b.host_ifname},
        groups={"A": (a.group, a.group_port), "B": (b.group, b.group_port)},
        retrans=(fc.line_a.source, fc.retransmission_port),
        retrans_source=a.address(role),
        sources={"A": (fc.line_a.source, fc.line_a.source_port), "B": (fc.line_b.source, fc.line_b.source_port)},
    )


def parse_endpoint(text: str, what: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise FeedError(f"{what} {text!r}: write it as ADDRESS:PORT, e.g. 239.198.1.1:26400")
    return host, int(port)


def parse_line_map(items: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        line, sep, value = item.partition("=")
        if not sep or line not in ("A", "B") or not value:
            raise FeedError(f"{what} {item!r}: write it as LINE=VALUE with LINE A or B, e.g. A=feed-a")
        out[line] = value
    return out


def parse_groups(items: list[str], what: str = "--group") -> dict[str, tuple[str, int]]:
    """--group (or --source) LINE=ADDR:PORT options: line -> (address, port)."""
    return {k: parse_endpoint(v, what) for k, v in parse_line_map(items, what).items()}


def parse_session(text: str | None) -> str:
    """--session: the MoldUDP64 session, 1 to 10 printable ASCII characters (None, "": the first seen)."""
    if not text:
        return ""
    if len(text) > 10 or not text.isascii() or not text.isprintable():
        raise FeedError(f"--session {text!r}: a MoldUDP64 session is 1 to 10 printable ASCII characters, "
                        "e.g. TWLAB00001")
    return text


# feed run's options that say where the feed is and what to trade: the YAML says it with --config
CONFIG_EXCLUDES = ("prefix", "iface", "group", "retrans", "netns", "trade", "pcap", "source", "session")
# feed run's options that keep their meaning beside --config
KEPT_WITH_CONFIG = ("name", "busy_budget", "burst", "idle_stop", "idle_sleep_us", "duration", "until_end",
                    "cancel_timeout", "cancel_each", "top", "books_out")


def from_flags(opts: Any) -> RunSettings:
    """``feed run``'s options (argparse's namespace, read here and nowhere else); with
    ``--config FILE`` the YAML says the feed, the host and the trading (:func:`from_config`)."""
    if getattr(opts, "config", None):
        given = [f"--{k.replace('_', '-')}" for k in CONFIG_EXCLUDES if getattr(opts, k, None)]
        if given:
            raise FeedError(f"--config {opts.config} says where the feed is and what to trade; drop "
                            f"{', '.join(given)}")
        return from_config(opts.config, getattr(opts, "strategy", None), journal=getattr(opts, "journal", None),
                           record=getattr(opts, "record", None),
                           record_rotate_mb=getattr(opts, "record_rotate_mb", RunSettings.record_rotate_mb),
                           cpu_latency_us=getattr(opts, "cpu_latency_us", None),
                           **{k: getattr(opts, k) for k in KEPT_WITH_CONFIG if hasattr(opts, k)})
    pcap, source = opts.pcap, opts.input
    if pcap and source in ("socket", "asyncio"):
        raise FeedError(f"--input {source} reads a live feed; --pcap replays a capture: give one of them")
    if pcap:
        if not pathlib.Path(pcap).is_file():
            raise FeedError(f"--pcap {pcap}: no such file")
        feed = LiveFeed(None, {}, {}, None, None)
        if opts.group:
            feed.groups = parse_groups(opts.group)
        if getattr(opts, "source", None):
            feed.sources = parse_groups(opts.source, "--source")
    else:
        feed = lab_feed(opts.prefix, opts.role) if opts.prefix else LiveFeed(opts.netns, {}, {}, None, None)
        if opts.iface:
            feed.ifaces = parse_line_map(opts.iface, "--iface")
        if opts.group:
            feed.groups = parse_groups(opts.group)
        if opts.retrans:
            feed.retrans = parse_endpoint(opts.retrans, "--retrans")
        if getattr(opts, "source", None):
            feed.sources = parse_groups(opts.source, "--source")
        if opts.netns:
            feed.netns = opts.netns
        if not feed.ifaces:
            raise FeedError("no feed interface: give --prefix (the lab) or --iface A=IFACE [--iface B=IFACE]")
        missing = [line for line in feed.ifaces if line not in feed.groups]
        if missing:
            raise FeedError(f"line {missing[0]} has an interface but no --group {missing[0]}=ADDRESS:PORT")
    feed.session = parse_session(getattr(opts, "session", None))
    unknown = [line for line in feed.sources if line not in feed.groups]
    if unknown:
        raise FeedError(f"--source {unknown[0]}=...: line {unknown[0]} has no --group {unknown[0]}=ADDRESS:PORT")
    if opts.record and pcap:
        raise FeedError(f"--record {opts.record} keeps a live feed; a replay of --pcap {pcap} is a capture already")
    trade_config, strategies = None, ()
    if opts.trade:
        if pcap:
            raise FeedError("--trade needs a live feed, not --pcap")
        trade_config = _load(opts.trade)
        strategies = tuple(s.name for s in trade_config.strategies)
        if not strategies:
            raise FeedError(f"{opts.trade}: no strategy to trade")
    return RunSettings(
        name=opts.name, feed=feed, pcap=pcap, input=source, busy_budget=opts.busy_budget,
        retrans_port=opts.retrans_port, burst=opts.burst, give_up=opts.give_up, idle_stop=opts.idle_stop,
        idle_sleep_us=opts.idle_sleep_us, max_locate=opts.max_locate, max_orders=opts.max_orders, levels=opts.levels,
        lcores=opts.lcores, hugepages=opts.hugepages, cpu_latency_us=opts.cpu_latency_us, record=opts.record,
        record_rotate_mb=opts.record_rotate_mb, journal=opts.journal, journal_fsync=opts.journal_fsync,
        duration=opts.duration, until_end=opts.until_end, cancel_timeout=opts.cancel_timeout,
        cancel_each=opts.cancel_each, top=opts.top, books_out=opts.books_out, trade=opts.trade,
        trade_config=trade_config, strategies=strategies)


def _load(path: str) -> config.AppConfig:
    try:
        return config.load(path)
    except config.ConfigError as exc:
        raise FeedError(f"{exc}") from exc


def from_config(path: str, strategy: str | None = None, *, journal: str | None = None, record: str | None = None,
                record_rotate_mb: float = RunSettings.record_rotate_mb, cpu_latency_us: int | None = None,
                **kept: Any) -> RunSettings:
    """``tickwire run FILE`` and ``feed run --config FILE``: the feed, the host and the trading of
    every strategy (or the one ``strategy`` names) from the appliance YAML; ``journal``,
    ``record`` (and its ``record_rotate_mb``) and ``cpu_latency_us`` given win over the file's, ``kept`` are the options
    the YAML does not say (the worker's name, how long it runs, ...)."""
    cfg = _load(path)
    try:
        cfg.venue.password()  # a secret that is not there stops the run before anything starts
        strategies = [cfg.strategy(strategy)] if strategy else list(cfg.strategies) or [cfg.strategy()]
    except config.ConfigError as exc:
        raise FeedError(f"{exc}") from exc
    f, h = cfg.feed, cfg.host
    journal = journal or str(cfg.journal.dir)
    rotate, keep = record_rotate_mb, 0.0
    if not record and cfg.journal.market_data:
        kept_dir = pathlib.Path(journal) / "market-data"  # a capture per line, rotated
        try:
            kept_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FeedError(f"journal.dir {journal}: cannot make {kept_dir} for the market data "
                            f"({exc.strerror})") from exc
        record, rotate, keep = str(kept_dir), cfg.journal.pcap_rotate_mb, cfg.journal.market_data_keep_mb
    return RunSettings(
        feed=LiveFeed(h.netns, {line: ln.interface for line, ln in f.lines.items()},
                      {line: (str(ln.group), ln.port) for line, ln in f.lines.items()},
                      (str(f.retransmission.address), f.retransmission.port) if f.retransmission else None, None,
                      {line: (str(ln.source.address), ln.source.port) for line, ln in f.lines.items() if ln.source},
                      f.session),
        input=f.input, give_up=f.give_up, max_locate=f.max_locate, max_orders=f.max_orders, levels=f.levels,
        lcores=f"{h.lcores.control},{h.lcores.worker}", hugepages=h.hugepages,
        cpu_latency_us=cpu_latency_us if cpu_latency_us is not None else h.cpu_latency_us,
        record=record, record_rotate_mb=rotate, record_keep_mb=keep, journal=journal, journal_fsync=cfg.journal.fsync,
        journal_interval=cfg.journal.fsync_interval, config=path,
        config_sha256=hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest(), app_config=cfg,
        strategies=tuple(s.name for s in strategies), instruments={i.symbol: i.locate for i in cfg.instruments},
        **kept)


def restart_from_journal(directory: pathlib.Path, instruments: dict[str, int]) -> Restart | None:
    """What the journal of an earlier run today (UTC) leaves to this one (None when nothing):
    the next UserRefNum (never one twice), the venue's next sequence number to ask for
    at login (its replay then brings what happened while nobody listened), the
    positions and the orders still open."""
    if not journal.segments(directory):
        return None
    midnight = datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    oms = Oms.from_journal(directory, since_ns=int(midnight.timestamp()) * 1_000_000_000)  # not another day's
    if not oms.orders:
        return None
    positions = {instruments[sym]: p.shares for sym, p in oms.positions.items() if sym in instruments}
    open_orders = [{"user_ref": o.user_ref, "locate": instruments[o.symbol], "side": o.side, "qty": o.leaves,
                    "price": o.price, "strategy": o.strategy} for o in oms.open_orders()
                   if o.symbol in instruments and o.leaves]
    return Restart(next_user_ref=max(oms.orders) + 1, login_seq=oms.last_venue_seq + 1, positions=positions,
                   open_orders=open_orders,
                   strategy_positions={n: p.shares for n, p in oms.strategy_positions.items()})

