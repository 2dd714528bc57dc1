from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.run.loadcmd import parse_steps

rates = st.floats(min_value=0.5, max_value=1e5, allow_nan=False, allow_infinity=False)
secs = st.floats(min_value=0.5, max_value=3600, allow_nan=False, allow_infinity=False)


@given(st.lists(st.tuples(rates, secs), min_size=1, max_size=10))
def test_steps_round_trip(steps: list[tuple[float, float]]) -> None:
    text = ",".join(f"{r!r}x{s!r}" for r, s in steps)
    assert parse_steps(text) == [[r, s] for r, s in steps]


@pytest.mark.parametrize("bad", ["", "100", "100x", "x5", "100x5,abc", "100y5"])
def test_bad_steps_name_the_item_and_the_form(bad: str) -> None:
    with pytest.raises(ConfigError, match="RATExSECONDS"):
        parse_steps(bad)


def test_bot_overrides_are_typed_nested_and_validated_up_front() -> None:
    from harness.run.botconfig import check_overrides, parse_overrides

    o = parse_overrides(["loop=asyncio", "engine.workers=3", "strategy.deadband_bps=1.5", "engine.signing=thread"])
    assert o == {"loop": "asyncio", "engine": {"workers": 3, "signing": "thread"}, "strategy": {"deadband_bps": 1.5}}
    check_overrides(o)
    with pytest.raises(ConfigError, match=r"engine\.signing"):
        check_overrides(parse_overrides(["engine.signing=sideways"]))
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["engine.workers"])
