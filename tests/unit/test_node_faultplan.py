"""FaultPlan/FaultDecider: exact text round trip, validation, and seeded draws at the planned rates."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.node.faultplan import FAULT_KINDS, FaultDecider, FaultPlan

rates = st.floats(0, 0.2, allow_nan=False)
plans = st.builds(
    FaultPlan,
    latency_ms=st.floats(0, 1000, allow_nan=False),
    jitter_ms=st.floats(0, 100, allow_nan=False),
    rpc_error_rate=rates,
    http_5xx_rate=rates,
    rate_limit_rate=rates,
    retry_after_s=st.floats(0, 60, allow_nan=False),
    drop_rate=rates,
    garbage_rate=rates,
    ws_drop_after=st.none() | st.integers(1, 10_000),
    seed=st.integers(0, 2**32),
)


@given(plans)
def test_text_form_round_trips(plan: FaultPlan) -> None:
    assert FaultPlan.parse(str(plan)) == plan


def test_parse_units_and_percentages() -> None:
    plan = FaultPlan.parse("latency=0.5s, jitter=200us, error=1%, 429=0.02, retry_after=500ms, ws_drop_after=3, seed=9")
    assert plan == FaultPlan(
        latency_ms=500.0, jitter_ms=0.2, rpc_error_rate=0.01, rate_limit_rate=0.02, retry_after_s=0.5,
        ws_drop_after=3, seed=9,
    )  # fmt: skip
    assert FaultPlan.parse("").is_clean
    assert not plan.is_clean


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("latency", "key=value"),
        ("speed=3", "known keys"),
        ("error=lots", "not a number"),
        ("error=1.5", r"\[0, 1\]"),
        ("error=0.6,drop=0.6", "add up to 1.2"),
        ("latency=-1ms", ">= 0"),
        ("ws_drop_after=0", "ws_drop_after"),
    ],
)
def test_bad_plans_name_the_field(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FaultPlan.parse(text)


@settings(max_examples=30, deadline=None)
@given(plans)
def test_decisions_follow_the_rates(plan: FaultPlan) -> None:
    n = 4000
    decider = FaultDecider(plan)
    decisions = [decider.decide() for _ in range(n)]
    for kind in (*FAULT_KINDS, "pass"):
        p = plan.rate(kind)
        seen = sum(d.kind == kind for d in decisions)
        # six binomial standard deviations, plus one for rates near 0 or 1
        assert abs(seen - n * p) <= 6 * math.sqrt(n * p * (1 - p)) + 1, kind
    assert all(d.delay_s >= 0 for d in decisions)
    if plan.jitter_ms == 0:
        assert {d.delay_s for d in decisions} == {plan.latency_ms / 1e3}


def test_same_seed_same_decisions_other_seed_other_decisions() -> None:
    plan = FaultPlan(rpc_error_rate=0.3, drop_rate=0.3, jitter_ms=5, latency_ms=10, seed=3)
    assert _draw(plan, 200) == _draw(plan, 200)
    other = FaultPlan(rpc_error_rate=0.3, drop_rate=0.3, jitter_ms=5, latency_ms=10, seed=4)
    assert _draw(plan, 200) != _draw(other, 200)


def _draw(plan: FaultPlan, n: int) -> list[object]:
    decider = FaultDecider(plan)
    return [decider.decide() for _ in range(n)]


def test_jitter_is_centred_on_the_latency() -> None:
    decider = FaultDecider(FaultPlan(latency_ms=50, jitter_ms=5, seed=1))
    delays = [decider.delay() for _ in range(4000)]
    assert sum(delays) / len(delays) == pytest.approx(0.050, abs=0.001)
