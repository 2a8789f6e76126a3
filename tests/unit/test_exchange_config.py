"""The exchange YAML: defaults fit the lab, errors name the field, the value and the rule."""

from __future__ import annotations

import pytest

from appliance.lab.exchange import config
from common.paths import ROOT


def test_the_shipped_example_is_valid_and_matches_the_defaults():
    assert config.load(ROOT / "examples" / "exchange.yaml") == config.ExchangeConfig()


def test_defaults_fit_the_lab():
    cfg = config.ExchangeConfig()
    assert (cfg.feed.line_a.group, cfg.feed.line_a.source) == ("239.198.1.1", "198.18.1.1")
    assert (cfg.feed.line_b.group, cfg.feed.line_b.source) == ("239.198.2.1", "198.18.2.1")
    assert cfg.order_entry.address == "198.18.3.1"


@pytest.mark.parametrize("text, messages", [
    ("rate: -5", ["rate: -5: Input should be greater than 0"]),
    ("feed: {session: WAYTOOLONGSESSION}", ["feed.session: 'WAYTOOLONGSESSION'"]),
    ("faults: [{kind: drop}]", ["a drop fault needs probability > 0"]),
    ("faults: [{kind: gap}]", ["a gap fault needs at_sequence >= 1"]),
    ("faults: [{kind: melt}]", ["faults.0.kind: 'melt'"]),
    ("mode: blast", ["mode blast needs day"]),
    ("symbols: 0", ["0 symbols: must be within 1..17576"]),
    ("colour: blue\nrate: 0", ["colour: 'blue': Extra inputs are not permitted", "rate: 0"]),
])
def test_errors_name_the_field_and_the_value(tmp_path, text, messages):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    for m in messages:
        assert m in str(exc.value)


def test_unreadable_files_say_why(tmp_path):
    with pytest.raises(config.ConfigError, match="No such file"):
        config.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rate: [1,")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(bad)
