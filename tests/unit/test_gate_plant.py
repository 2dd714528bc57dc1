"""The planted slowdown: parsing names the variable and the fix; the extra work is exact in calls."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.gate.plant import ENV_VAR, Plant, PlantSpecError, parse_plant, plant_from_env, planted


def test_parse_and_env() -> None:
    assert parse_plant(None) is None and parse_plant("  ") is None
    assert parse_plant("orjson.encode_request:0.1") == Plant("orjson.encode_request", 0.1)
    assert plant_from_env({ENV_VAR: "a.b:c:0.5"}) == Plant("a.b:c", 0.5)


@pytest.mark.parametrize(
    ("spec", "fix"),
    [("nofraction", "'<case>:<fraction>'"), (":0.1", "'<case>:<fraction>'"), ("x:ten", "not a number"),
     ("x:0", "fraction must be"), ("x:1.5", "fraction must be")],
)  # fmt: skip
def test_bad_specs_name_the_variable_and_the_fix(spec: str, fix: str) -> None:
    with pytest.raises(PlantSpecError, match=ENV_VAR) as info:
        parse_plant(spec)
    assert fix in str(info.value)


@given(st.sampled_from([1.0, 0.5, 0.25, 0.1, 0.05, 0.02, 0.01]), st.integers(1, 40))
def test_extra_calls_are_exactly_the_planted_fraction(fraction: float, cycles: int) -> None:
    plant = Plant("c", fraction)
    calls = 0

    def hot() -> int:
        nonlocal calls
        calls += 1
        return calls

    op = planted(hot, plant)
    n = plant.every * cycles
    for _ in range(n):
        op()
    assert calls == n + cycles
    assert (calls - n) / n == pytest.approx(fraction)


def test_unplanted_wrapper_calls_once_and_returns_the_result() -> None:
    results = iter(range(1000))
    op = planted(lambda: next(results), None)
    assert [op() for _ in range(300)] == list(range(300))
