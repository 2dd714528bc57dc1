"""Open-loop schedules: exact counts, monotonic offsets inside the duration, rates within rounding."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.load.schedules import (
    Burst,
    ConstantRate,
    RampingRate,
    Schedule,
    Steps,
    schedule_from_spec,
)

rates = st.floats(min_value=0.5, max_value=2000.0, allow_nan=False)
durations = st.floats(min_value=0.05, max_value=5.0, allow_nan=False)


def _check_shape(s: Schedule) -> list[float]:
    ts = list(s.times())
    assert len(ts) == s.count
    assert ts[0] == 0.0
    assert all(b >= a for a, b in itertools.pairwise(ts))
    assert ts[-1] < s.duration
    return ts


@settings(max_examples=60, deadline=None)
@given(rates, durations)
def test_constant_count_and_spacing(rate: float, duration: float) -> None:
    s = ConstantRate(rate, duration)
    ts = _check_shape(s)
    assert abs(len(ts) - rate * duration) < 1 + 1e-6
    # Arrival i is exactly at i/rate: spacing is the inverse rate.
    for i in (0, len(ts) // 2, len(ts) - 1):
        assert math.isclose(ts[i], i / rate, rel_tol=1e-12, abs_tol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=0.0, max_value=1000.0), st.floats(min_value=0.0, max_value=1000.0), durations)
def test_ramp_follows_the_integral_of_the_rate(r0: float, r1: float, duration: float) -> None:
    if r0 + r1 < 1.0:
        r1 = r0 + 1.0
    s = RampingRate(r0, r1, duration)
    ts = _check_shape(s)
    total = (r0 + r1) * duration / 2
    assert abs(len(ts) - total) < 1 + 1e-6

    def cumulative(t: float) -> float:
        return r0 * t + (r1 - r0) * t * t / (2 * duration)

    # Over any prefix window [0, w) the count matches the integral of the rate within one.
    for frac in (0.1, 0.25, 0.5, 0.75, 0.9):
        w = duration * frac
        n = sum(1 for t in ts if t < w)
        assert abs(n - cumulative(w)) <= 1 + 1e-6


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(min_value=1.0, max_value=500.0), st.floats(min_value=0.1, max_value=2.0)),
                min_size=1, max_size=5))
def test_steps_concatenate_constant_segments(steps: list[tuple[float, float]]) -> None:
    s = Steps(tuple(steps))
    ts = _check_shape(s)
    assert math.isclose(s.duration, sum(d for _, d in steps))
    offset = 0.0
    for rate, dur in steps:
        n = sum(1 for t in ts if offset <= t < offset + dur - 1e-9)
        assert abs(n - rate * dur) <= 1 + 1e-6, (rate, dur, n)
        offset += dur
    labels = [a.label for a in s.annotations()]
    assert labels == [f"step {k}: {r:g}/s" for k, (r, _) in enumerate(steps, start=1)]


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=5000), st.floats(min_value=0.01, max_value=5.0))
def test_burst_spreads_count_evenly(n: int, within: float) -> None:
    s = Burst(n, within)
    ts = _check_shape(s)
    assert len(ts) == n
    if n > 1:
        gaps = [b - a for a, b in itertools.pairwise(ts)]
        assert max(gaps) - min(gaps) < 1e-9


@settings(max_examples=40, deadline=None)
@given(st.one_of(
    st.builds(ConstantRate, rates, durations),
    st.builds(RampingRate, rates, rates, durations),
    st.builds(Burst, st.integers(1, 1000), durations),
    st.builds(lambda a, b: Steps(((a, 1.0), (b, 0.5))), rates, rates),
))
def test_spec_round_trips(s: ConstantRate | RampingRate | Burst | Steps) -> None:
    back = schedule_from_spec(s.spec())
    assert back == s
    assert list(back.times()) == list(s.times())


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"kind": "constant", "rate": 0, "duration": 1}, "rate must be > 0"),
        ({"kind": "constant", "rate": 10, "duration": -1}, "duration must be > 0"),
        ({"kind": "constant", "rate": float("nan"), "duration": 1}, "rate must be finite"),
        ({"kind": "constant", "rate": "100", "duration": 1}, "rate must be a number"),
        ({"kind": "constant", "rate": True, "duration": 1}, "rate must be a number"),
        ({"kind": "constant", "rate": 10}, "missing schedule.duration"),
        ({"kind": "constant", "rate": 10, "duration": 1, "burst": 3}, "unknown field"),
        ({"kind": "poisson", "rate": 10}, "schedule.kind must be one of"),
        ({"kind": "ramp", "start_rate": 0, "end_rate": 0, "duration": 1}, "both are 0"),
        ({"kind": "steps", "steps": []}, "at least one"),
        ({"kind": "steps", "steps": [[10]]}, "steps[0] must be [rate, duration]"),
        ({"kind": "steps", "steps": [[10, 1], [0, 1]]}, "steps[1].rate must be > 0"),
        ({"kind": "burst", "count": 0, "within": 1}, "burst count must be an integer >= 1"),
        ({"kind": "constant", "rate": 1e6, "duration": 3600}, "lower the rate or the duration"),
    ],
)
def test_bad_specs_name_the_field(spec: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        schedule_from_spec(spec)
    assert needle in str(exc.value)


def test_ramp_down_ends_near_zero_rate() -> None:
    s = RampingRate(100.0, 0.0, 2.0)
    ts = list(s.times())
    assert len(ts) == 100
    first_half = sum(1 for t in ts if t < 1.0)
    # r(t) = 100 - 50t integrates to 75 over the first second and 25 over the second.
    assert abs(first_half - 75) <= 1
