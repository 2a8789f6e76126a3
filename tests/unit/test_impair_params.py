"""Impairment parameters mean what netem's do; impossible ones are refused with the fix."""

from __future__ import annotations

import pytest

from appliance.lab.impair import Impairment


def test_valid_parameters_become_relay_arguments():
    imp = Impairment(loss=1.5, delay=10, jitter=2, reorder=25, duplicate=0.5, seed=3)
    assert imp.to_args() == ["--loss=1.5", "--delay=10", "--jitter=2", "--reorder=25", "--duplicate=0.5",
                             "--seed=3"]


@pytest.mark.parametrize("kwargs, message", [
    ({"loss": -1}, "--loss -1: a percentage must be within 0..100"),
    ({"duplicate": 101}, "--duplicate 101: a percentage"),
    ({"delay": -5}, "--delay -5: milliseconds must be within 0..60000"),
    ({"delay": 1, "jitter": 70000}, "--jitter 70000"),
    ({"reorder": 10}, "--reorder 10 needs a delay"),
    ({}, "no impairment given"),
])
def test_impossible_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Impairment(**kwargs)


def test_several_errors_are_reported_together():
    with pytest.raises(ValueError) as exc:
        Impairment(loss=200, delay=-1)
    assert "--loss 200" in str(exc.value) and "--delay -1" in str(exc.value)
