"""MiningMode: the canonical string form reads back exactly, bad input names the fix."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.node.mining import MiningMode


@given(st.floats(min_value=1e-6, max_value=3600, allow_nan=False, allow_infinity=False))
def test_interval_round_trips_through_its_string(seconds: float) -> None:
    mode = MiningMode.interval(seconds)
    assert MiningMode.parse(str(mode)) == mode
    assert float(mode.anvil_args()[1]) == seconds


@pytest.mark.parametrize(
    ("text", "expected", "string"),
    [
        ("automine", MiningMode.automine(), "automine"),
        (" Manual ", MiningMode.manual(), "manual"),
        ("interval:1s", MiningMode.interval(1.0), "interval:1s"),
        ("interval:0.05", MiningMode.interval(0.05), "interval:0.05s"),
        ("interval:50ms", MiningMode.interval(0.05), "interval:0.05s"),
    ],
)
def test_parse_known_forms(text: str, expected: MiningMode, string: str) -> None:
    assert MiningMode.parse(text) == expected
    assert str(expected) == string


def test_anvil_flags_per_mode() -> None:
    assert MiningMode.automine().anvil_args() == []
    assert MiningMode.manual().anvil_args() == ["--no-mining"]
    assert MiningMode.interval(0.05).anvil_args() == ["--block-time", "0.05"]


@pytest.mark.parametrize("text", ["interval:", "interval:-1s", "interval:0", "interval:abc", "interval:nan", "fast"])
def test_bad_text_is_a_config_error_that_names_the_fix(text: str) -> None:
    with pytest.raises(ConfigError, match="mining"):
        MiningMode.parse(text)


def test_interval_needs_positive_seconds_and_others_take_none() -> None:
    with pytest.raises(ConfigError, match="positive"):
        MiningMode.interval(0)
    with pytest.raises(ConfigError, match="takes no interval"):
        MiningMode("manual", 1.0)
