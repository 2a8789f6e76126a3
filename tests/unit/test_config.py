"""The appliance YAML (appliance/config.py): the shipped examples are valid; a table
of bad files gives the exact messages, each with its line, value and fix, every
problem at once; explain shows every effective value and where it came from; the
strictest risk level wins; the password never shows."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys
from decimal import Decimal

import pytest

from appliance import cli, config
from appliance.config.model import _duration
from dpdk import native, risk

EXAMPLES = pathlib.Path(__file__).parents[2] / "examples"
MM = (EXAMPLES / "market_maker.yaml").read_text()
# the example without its instruments, and so without the strategies and limits that name them
NO_INSTRUMENTS = re.sub(r"  strategies:.*?\n  manager:", "  manager:",
                        MM.split("\ninstruments:")[0] + "\ninstruments: []\n" + MM[MM.index("\nrisk:"):], flags=re.S)


def problems(text: str) -> list[str]:
    with pytest.raises(config.ConfigError) as err:
        config.loads(text, "mm.yaml")
    return [p.text("mm.yaml") for p in err.value.problems]


@pytest.mark.parametrize("name", ["market_maker.yaml", "taker.yaml"])
def test_the_shipped_examples_are_valid_and_become_the_c_tables(name):
    cfg = config.load(EXAMPLES / name)
    params, limits = cfg.strategy_params(), cfg.limits()
    assert params.locate == 1 and params.tick == 100 and params.kind == cfg.strategies[0].kind
    assert limits.max_order_notional == 100_000 * 10_000 and limits.state == "active"


def test_prices_durations_and_shares_reach_c_in_its_units():
    cfg = config.loads(MM)
    p = cfg.strategy_params()
    assert (p.half_spread, p.skew, p.min_move, p.refresh_ns, p.quote_size) == (200, 1000, 100, 5_000_000, 100)
    taker = config.load(EXAMPLES / "taker.yaml").strategy_params()
    assert (taker.imbalance_bps, taker.levels, taker.take_size, taker.cooldown_ns) == (6000, 3, 100, 20_000_000)
    for text, seconds in (("5ms", 0.005), ("1.5s", 1.5), ("200us", 0.0002), ("250ns", 2.5e-7), (2, 2.0),
                          ("1m", 60.0)):
        assert _duration(text) == pytest.approx(seconds)


BAD = [
    ("a misspelt setting, with the closest name",
     MM.replace("half_spread: 0.02", "half_sprad: 0.02", 1),
     ["mm.yaml:51: strategies[0].params.half_sprad: no such setting for a market_maker (did you mean "
      "'half_spread'?); the settings here are half_spread, levels, max_position, min_move, quote_size, refresh, skew"]),
    ("a price finer than OUCH carries",
     MM.replace("half_spread: 0.02", "half_spread: '0.00001'", 1),
     ["mm.yaml:51: strategies[0].params.half_spread '0.00001': at most 4 decimals: ITCH and OUCH carry prices "
      "to 1/10,000 of a dollar"]),
    ("a strategy on an instrument not listed",
     MM.replace("instrument: TAAA", "instrument: TAAX"),
     ["mm.yaml:48: strategies[0].instrument 'TAAX': no such instrument (did you mean 'TAAD'?); the instruments "
      "are TAAA, TAAB, TAAC, TAAD"]),
    ("an unknown strategy kind",
     MM.replace("kind: market_maker", "kind: maker", 1),
     ["mm.yaml:47: strategies[0].kind 'maker': the strategy's kind: give one of market_maker, taker"]),
    ("an empty interface name",
     MM.replace("{interface: feed-a,", "{interface: '',"),
     ["mm.yaml:20: feed.lines.A.interface '': empty: give the interface's name, e.g. feed-a"]),
    ("a unicast address as a feed group",
     MM.replace("group: 239.198.1.1", "group: 198.18.1.1"),
     ["mm.yaml:20: feed.lines.A.group '198.18.1.1': not a multicast group: feed groups are in 224.0.0.0/4"]),
    ("a line that is neither A nor B",
     MM.replace("    B: {interface", "    C: {interface"),
     ["mm.yaml:21: feed.lines.C 'C': not a name this mapping takes: give one of 'A' or 'B'"]),
    ("a duration without a unit that parses",
     MM.replace("refresh: 5ms", "refresh: 5 parsecs", 1),
     ["mm.yaml:55: strategies[0].params.refresh '5 parsecs': not a duration: give a number and a unit (ns, us, "
      "ms, s, m), e.g. 5ms; a bare number is seconds"]),
    ("no password source",
     MM.replace("  password_env: TW_OUCH_PASSWORD", "  # password_env: TW_OUCH_PASSWORD"),
     ["mm.yaml:28: venue: give exactly one of password_env (an environment variable's name) or password_file "
      "(a file holding the password): it is never written in this file"]),
    ("a key given twice",
     MM.replace("      quote_size: 100\n", "      quote_size: 100\n      quote_size: 200\n"),
     ["mm.yaml:53: strategies[0].params.quote_size: given twice (first on line 52): keep one"]),
    ("risk limits for a strategy that does not exist",
     MM.replace("mm-taaa: {max_position: 1000", "mm-tab: {max_position: 1000"),
     ["mm.yaml:81: risk.strategies.mm-tab 'mm-tab': no such strategy (did you mean 'mm-taab'?); the strategies "
      "are mm-taaa, mm-taab, mm-taac"]),
    ("a trading state that is not one",
     MM.replace("state: active", "state: paused"),
     ["mm.yaml:69: risk.global.state 'paused': give one of 'active', 'reduce_only' or 'halted'"]),
    ("the worker and Python on one core",
     MM.replace("{control: 0, worker: 1}", "{control: 1, worker: 1}"),
     ["mm.yaml:10: host.lcores: control and worker are both CPU 1: the worker needs a core of its own"]),
    ("a missing section",
     MM.split("feed:")[0] + "venue:" + MM.split("venue:")[1],
     ["mm.yaml:9: feed: missing: this setting is required"]),
    ("broken YAML",
     MM.replace("  numa_node: 0", "  numa_node: [0"),
     ["mm.yaml:12: not valid YAML: expected ',' or ']', but got ':'"]),
    ("two instruments with one symbol",
     MM.replace("{symbol: TAAC, locate: 3", "{symbol: TAAA, locate: 3"),
     ["mm.yaml:42: instruments[2].symbol 'TAAA': instruments[0] has this symbol too: each is unique",
      "mm.yaml:64: strategies[2].instrument 'TAAC': no such instrument (did you mean 'TAAD'?); the instruments "
      "are TAAA, TAAB, TAAD"]),
    ("no instruments, a name too long",
     NO_INSTRUMENTS.replace("account: TWAPP1", "account: TWAPP1234"),
     ["mm.yaml:31: venue.account 'TWAPP1234': at most 6 characters",
      "mm.yaml:39: instruments: at least 1 entry (none given)"]),
    ("not a mapping at all", "- a\n- b\n",
     ["mm.yaml:1: the file must be a mapping of sections (host, feed, venue, instruments, strategies, risk, ...)"]),
    ("several problems at once, in file order",
     MM.replace("max_gross: 5000", "max_gros: 5000").replace("port: 15000", "port: 150000"),
     ["mm.yaml:30: venue.port 150000: at most 65535",
      "mm.yaml:73: risk.global.max_gros: no such setting (did you mean 'max_gross'?); the settings here are "
      "collar_bps, max_gross, max_open_orders, max_order_notional, max_order_qty, max_position, message_burst, "
      "message_rate, order_burst, order_rate, round_lot_qty, state"]),
]


@pytest.mark.parametrize("what,text,expected", BAD, ids=[b[0] for b in BAD])
def test_a_bad_file_is_refused_with_every_problem_its_line_value_and_fix(what, text, expected):
    assert problems(text) == expected


def test_a_taker_given_market_maker_settings_hears_which_settings_a_taker_has():
    got = problems(MM.replace("kind: market_maker", "kind: taker", 1))
    assert len(got) == 6
    assert got[0] == ("mm.yaml:51: strategies[0].params.half_spread: no such setting for a taker; the settings "
                      "here are cooldown, imbalance_bps, levels, take_size")
    assert "(did you mean 'take_size'?)" in got[1]


def test_the_strictest_risk_level_wins_and_says_which_it_was():
    eff = config.loads(MM).effective_limits()
    assert eff["max_order_qty"] == (300, "risk.instruments.TAAA")
    assert eff["max_position"] == (1000, "risk.strategies.mm-taaa")
    assert eff["max_gross"] == (5000, "risk.global")
    halted = config.loads(MM.replace("TAAA: {max_order_qty: 300}", "TAAA: {state: halted}"))
    assert halted.effective_limits()["state"] == ("halted", "risk.instruments.TAAA")
    unlimited = config.loads(MM.replace("order_rate: 200 ", "order_rate: 0 ").replace(
        "mm-taaa: {max_position: 1000, max_open_orders: 10, order_rate: 200", "mm-taaa: {order_rate: 50"))
    assert unlimited.effective_limits()["order_rate"] == (50, "risk.strategies.mm-taaa")  # 0 is "no limit"
    bare = config.loads(MM[:MM.index("risk:")])
    assert bare.effective_limits()["max_order_qty"] == (0, "default (allows nothing)")


def test_the_global_row_is_the_whole_workers_and_caps_nothing_it_does_not_set():
    cfg = config.loads(MM)
    g = cfg.global_limits()
    assert (g.max_open_orders, g.order_rate, g.max_order_qty) == (30, 600, 500)  # as risk.global says
    rows = [cfg.limits(s.name) for s in cfg.strategies]
    assert [r.max_open_orders for r in rows] == [10, 10, 10] and [r.max_order_qty for r in rows] == [300, 500, 500]
    bare = config.loads(MM.replace("    max_open_orders: 30\n", "").replace("    order_rate: 600 ", "    # "))
    g = bare.global_limits()
    assert g.max_open_orders == 2**32 - 1 and g.order_rate == 0  # unset: no ceiling (the rows hold theirs)


def test_a_burst_goes_with_its_rate_as_the_worker_merges_them():
    # global: no order rate (its burst means nothing); the strategy's rate brings its own burst
    cfg = config.loads(MM.replace("order_rate: 600 ", "order_rate: 0   ").replace("order_burst: 60\n",
                                                                               "order_burst: 5\n"))
    eff = cfg.effective_limits("mm-taab")
    assert eff["order_rate"] == (200, "risk.strategies.mm-taab")
    assert eff["order_burst"] == (20, "risk.strategies.mm-taab")
    # a level that sets a burst alone keeps the rate above it
    cfg = config.loads(MM.replace("mm-taab: {max_open_orders: 10, order_rate: 200, order_burst: 20}",
                                  "mm-taab: {order_burst: 7}"))
    assert cfg.effective_limits("mm-taab")["order_rate"] == (600, "risk.global")
    assert cfg.effective_limits("mm-taab")["order_burst"] == (7, "risk.strategies.mm-taab")


def test_the_limits_are_the_c_structs_fields_in_its_order():
    ffi, _ = native()
    fields = [n for n, _ in ffi.typeof("struct tw_risk_limits").fields if not n.startswith("_")]
    # the YAML's keys and their units, pinned: a field added to the struct shows up here with its unit
    assert list(risk.LIMITS.items()) == [
        ("state", "state"), ("max_order_qty", "shares"), ("max_order_notional", "dollars"),
        ("max_position", "shares"), ("max_gross", "shares"), ("collar_bps", "basis points"),
        ("max_open_orders", "orders"), ("order_rate", "per second"), ("order_burst", "orders"),
        ("message_rate", "per second"), ("message_burst", "orders"), ("round_lot_qty", "shares")]
    assert list(config.Limits.model_fields) == [n for n in fields if n != "kill"] == list(risk.LIMITS)
    assert [f.name for f in dataclasses.fields(risk.Limits)] == fields
    with pytest.raises(TypeError, match="max_foo: no unit for its name"):
        risk._unit("max_foo")


def test_no_ceiling_is_what_the_c_merge_reads_as_none():
    u32, u64 = 2**32 - 1, 2**64 - 1
    assert risk.no_ceiling() == risk.Limits(max_order_qty=u32, max_order_notional=u64, max_position=u64,
                                            max_gross=u64, max_open_orders=u32)


@pytest.mark.parametrize("name", ["market_maker.yaml", "taker.yaml"])
def test_what_explain_says_is_what_the_worker_applies(name):
    cfg = config.load(EXAMPLES / name)
    for s in cfg.strategies:
        row = cfg.limits(s.name)  # the effective limits explain shows, as the table's row
        assert risk.merge(cfg.global_limits(), row) == row  # risk.c's merge with the global row adds nothing


def test_explain_gives_every_effective_value_and_its_source():
    rows = {r["path"]: r for r in config.explain(EXAMPLES / "market_maker.yaml")}
    src = str(EXAMPLES / "market_maker.yaml")
    assert rows["strategies[0].params.half_spread"] == {"path": "strategies[0].params.half_spread", "value": "0.02",
                                                         "source": f"{src}:51"}
    assert rows["venue.port"]["source"] == f"{src}:30"
    assert rows["feed.lines.B.queue"] == {"path": "feed.lines.B.queue", "value": 0, "source": f"{src}:21"}
    assert rows["ptp.max_offset"] == {"path": "ptp.max_offset", "value": None, "source": "default"}
    assert rows["effective risk of mm-taaa.max_order_qty"] == {
        "path": "effective risk of mm-taaa.max_order_qty", "value": 300, "source": "risk.instruments.TAAA"}


def test_the_password_comes_from_its_file_or_variable_and_never_shows(tmp_path, monkeypatch, capsys):
    secret = tmp_path / "ouch.secret"
    secret.write_text("hunter2-ok\n")  # SoupBinTCP carries 10 characters; the file is its owner's alone
    secret.chmod(0o600)
    text = MM.replace("password_env: TW_OUCH_PASSWORD", f"password_file: {secret}")
    path = tmp_path / "a.yaml"
    path.write_text(text)
    cfg = config.load(path)
    assert cfg.venue.password().get_secret_value() == "hunter2-ok"
    assert "hunter2" not in repr(cfg.venue.password()) and "hunter2" not in json.dumps(config.explain(path))
    assert cli.main(["config", "explain", str(path), "--json"]) == 0
    assert cli.main(["config", "check", str(path)]) == 0
    assert "hunter2" not in capsys.readouterr().out
    monkeypatch.setenv("TW_OUCH_PASSWORD", "from-env")
    assert config.loads(MM).venue.password().get_secret_value() == "from-env"
    missing = config.loads(MM.replace("password_env: TW_OUCH_PASSWORD", f"password_file: {tmp_path / 'none'}"))
    with pytest.raises(config.ConfigError, match=r"venue.password_file '.*none': cannot read it \(No such file"):
        missing.venue.password()


def test_config_check_exits_1_with_the_problems_as_json(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(MM.replace("half_spread: 0.02", "half_sprad: 0.02", 1))
    assert cli.main(["config", "check", str(bad), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] is False and out["problems"] == [{
        "file": str(bad), "line": 51, "path": "strategies[0].params.half_sprad", "value": None,
        "message": "no such setting for a market_maker (did you mean 'half_spread'?); the settings here are "
                   "half_spread, levels, max_position, min_move, quote_size, refresh, skew"}]
    assert cli.main(["config", "explain", str(bad)]) == 2  # nothing to explain: says so
    assert "tickwire config check" in capsys.readouterr().err


def test_models_are_frozen():
    cfg = config.loads(MM)
    with pytest.raises(Exception, match="frozen"):
        cfg.venue.port = 1  # type: ignore[misc]
    assert cfg.instruments[0].tick == Decimal("0.01")


def _without(text: str, key: str) -> str:
    """The YAML with no line setting `key` (comments kept)."""
    return "".join(ln for ln in text.splitlines(keepends=True) if key not in ln or ln.lstrip().startswith("#"))


def test_config_check_warns_of_what_a_safe_run_needs_said(tmp_path, capsys):
    bare = re.sub(r",\s*source: \{[^}]*\}", "", _without(MM, "cancel_on_disconnect"))  # the lines' sources (B)
    bare = _without(bare, "source:").replace("TW_OUCH_PASSWORD", "TW_TEST_UNSET")
    told = re.sub(r"(    [AB]: \{interface: [^}]*?)\s*\}", r"\1, source: {address: 198.18.1.1, port: 26400}}", bare)
    told = told.replace("\nvenue:", "\nvenue:\n  cancel_on_disconnect: false", 1)
    for text, expect in ((bare, ["venue.cancel_on_disconnect is not set", "feed.lines.A.source is not set",
                                 "feed.lines.B.source is not set"]), (told, [])):
        (tmp_path / "mm.yaml").write_text(text)
        assert cli.main(["config", "check", str(tmp_path / "mm.yaml"), "--json"]) == 0
        warned = [w for w in json.loads(capsys.readouterr().out)["warnings"] if "TW_TEST_UNSET" not in w]
        assert [e for e in expect if not any(e in w for w in warned)] == [] and len(warned) == len(expect), warned


# ---- the venue's password: what SoupBinTCP carries, in a file its owner's alone, never shown ------------


@pytest.mark.parametrize("secret, mode, says", [
    ("hunter2-too-long", 0o600, "is longer than the 10 characters SoupBinTCP's login carries"),
    ("hunter 2", 0o600, "holds a character SoupBinTCP's login cannot carry"),
    ("hunter\u00e92", 0o600, "holds a character SoupBinTCP's login cannot carry"),
    ("hunter2", 0o644, "its mode is 0644: others than its owner may read or change the venue's password; "
                       "chmod 600 {file}"),
    ("hunter2", 0o620, "its mode is 0620"),
])
def test_a_password_file_ouch_cannot_carry_or_others_can_read_is_a_problem_naming_the_fix_not_the_value(
        tmp_path, capsys, secret, mode, says):
    file = tmp_path / "ouch.secret"
    file.write_text(secret + "\n", encoding="utf-8")
    file.chmod(mode)
    path = tmp_path / "mm.yaml"
    path.write_text(MM.replace("password_env: TW_OUCH_PASSWORD", f"password_file: {file}"))
    with pytest.raises(config.ConfigError) as err:
        config.load(path).venue.password()
    assert not isinstance(err.value, config.model.SecretUnavailable)
    assert says.format(file=file) in str(err.value) and "venue.password_file" in str(err.value)
    assert cli.main(["config", "check", str(path), "--json"]) == 1
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["valid"] is False and [p["path"] for p in report["problems"]] == ["venue.password_file"]
    assert report["problems"][0]["value"] == str(file) and says.format(file=file) in report["problems"][0]["message"]
    assert cli.main(["config", "check", str(path)]) == 1
    out += capsys.readouterr().out
    for shown in (str(err.value), out):
        assert secret not in shown and "hunter" not in shown


def test_a_password_in_the_environment_is_checked_the_same_and_then_leaves_it(monkeypatch, tmp_path, capsys):
    path = tmp_path / "mm.yaml"
    path.write_text(MM.replace("TW_OUCH_PASSWORD", "TW_TEST_OUCH_PW"))
    monkeypatch.setenv("TW_TEST_OUCH_PW", "far-too-long-secret")
    assert cli.main(["config", "check", str(path), "--json"]) == 1
    out = capsys.readouterr().out
    assert "far-too" not in out and json.loads(out)["problems"][0]["path"] == "venue.password_env"
    assert "longer than the 10 characters" in json.loads(out)["problems"][0]["message"]
    monkeypatch.setenv("TW_TEST_OUCH_PW", "lab-secret")
    venue = config.load(path).venue
    assert venue.password().get_secret_value() == "lab-secret"
    # gone from the environment: a child this process starts does not get it; asked again, the value read first
    assert "TW_TEST_OUCH_PW" not in os.environ
    child = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('TW_TEST_OUCH_PW'))"],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "None"
    assert venue.password().get_secret_value() == "lab-secret"
    # and out of the block the kernel shows as /proc/PID/environ (a process started with it, as a unit starts)
    shown = subprocess.run([sys.executable, "-c", "import pathlib; from common.lockdown import forget_env; "
                            "assert forget_env('TW_TEST_OUCH_PW') == 'lab-secret'; "
                            "print(pathlib.Path('/proc/self/environ').read_bytes())"],
                           env={**os.environ, "TW_TEST_OUCH_PW": "lab-secret"}, capture_output=True, text=True,
                           check=True).stdout
    assert "lab-secret" not in shown and "TW_TEST_OUCH_PW=" in shown


def test_a_missing_secret_is_still_a_warning_only(tmp_path, capsys):
    path = tmp_path / "mm.yaml"
    path.write_text(MM.replace("password_env: TW_OUCH_PASSWORD", f"password_file: {tmp_path / 'absent'}"))
    assert cli.main(["config", "check", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True and any("cannot read it" in w for w in report["warnings"])


def test_the_settings_that_carry_the_password_never_show_it_in_a_repr():
    from appliance.protocols import soupbintcp
    from dpdk.trading import OrderEntry

    oe = OrderEntry(address="198.18.3.1", port=15000, username="TWAPP1", password="lab-secret", session="",
                    user_ref_base=1, heartbeat_s=1.0, timeout_s=15.0, reconnect_s=0.5)
    login = soupbintcp.LoginRequest("TWAPP1", "lab-secret")
    for shown in (repr(oe), str(oe), repr(login), repr([oe, login])):
        assert "lab-secret" not in shown and "TWAPP1" in shown
    assert oe.password == login.password == "lab-secret"
