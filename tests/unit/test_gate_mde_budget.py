"""The minimum detectable effect and the time budget (pure): monotone where they must be, exact where known."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.gate.budget import MAX_ROUNDS, MIN_ROUNDS, SLACK_S, parse_duration, rounds_that_fit, split
from harness.gate.e2e import MIN_QUARTETS, quartets_fit
from harness.gate.mde import mde, multiplier, predicted_mde, units_for

_sigma = st.floats(0.001, 1.0)
_level = st.floats(1e-4, 0.1)
_power = st.floats(0.5, 0.99)


@given(_sigma, st.integers(2, 500), _level, _power)
def test_more_units_never_worsen_the_mde(sigma: float, n: int, level: float, power: float) -> None:
    assert predicted_mde(sigma, n + 1, level, power) <= predicted_mde(sigma, n, level, power) + 1e-12


@given(_sigma, _sigma, st.integers(2, 500), _level, _power)
def test_more_noise_never_improves_the_mde(s1: float, s2: float, n: int, level: float, power: float) -> None:
    lo, hi = sorted((s1, s2))
    assert predicted_mde(lo, n, level, power) <= predicted_mde(hi, n, level, power)


@given(st.floats(0.0, 0.5), st.integers(1, 100), _level, _power, st.floats(0.0, 0.5))
def test_the_mde_never_falls_below_a_floor(se: float, df: int, level: float, power: float, floor: float) -> None:
    assert mde(se, df, level, power, (floor,)) >= math.expm1(floor) - 1e-12
    assert mde(se, df, level, power) >= 0


def test_known_values() -> None:
    # Large df: t -> z. One-sided 5% and 50% power: the MDE is 1.645 standard errors.
    assert math.isclose(multiplier(10**6, 0.05, 0.5), 1.6449, abs_tol=1e-3)
    assert math.isclose(mde(0.01, 10**6, 0.05, 0.5), math.expm1(0.016449), rel_tol=1e-3)
    assert multiplier(0, 0.05) == math.inf and predicted_mde(0.1, 1, 0.01) == math.inf
    assert mde(0.0, 5, 0.01, floors=(math.log1p(0.02),)) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="level"):
        multiplier(5, 1.5)
    with pytest.raises(ValueError, match="se"):
        mde(-1.0, 5, 0.01)


@given(st.floats(0.01, 0.5), _sigma, _level)
def test_units_for_is_the_fewest_that_reach_the_target(target: float, sigma: float, level: float) -> None:
    n = units_for(target, sigma, level, max_units=20_000)
    assume(n is not None)
    assert n is not None
    assert predicted_mde(sigma, n, level) <= target
    assert n == 2 or predicted_mde(sigma, n - 1, level) > target


@pytest.mark.parametrize(("text", "seconds"), [("10m", 600), ("90s", 90), ("1h", 3600), ("1m30s", 90),
                                               ("600", 600), (" 2.5m ", 150)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "10x", "0m", "m"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ConfigError, match="10m"):
        parse_duration(text)


@given(st.floats(60, 7200), st.booleans(), st.booleans(), st.booleans())
def test_the_split_uses_the_budget_and_only_for_tiers_that_run(total: float, micro: bool, e2e: bool,
                                                               callgrind: bool) -> None:
    assume(micro or e2e)
    b = split(total, micro=micro, e2e=e2e, callgrind=callgrind)
    assert math.isclose(b.micro_s + b.e2e_s, total - SLACK_S)
    assert (b.micro_s > 0) == micro and (b.e2e_s > 0) == e2e
    assert (b.micro_callgrind_s > 0) == (micro and callgrind)
    if micro and e2e:
        # The speed-corrected end-to-end tier resolves ~5% in 150 s; the instruction counts need 100 s.
        assert b.micro_s > b.e2e_s
    if micro and callgrind:
        assert b.micro_callgrind_s > b.micro_wall_s


def test_a_budget_too_short_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least"):
        split(30, micro=True, e2e=True, callgrind=True)


@given(st.floats(-10, 3600), st.integers(1, 20), st.floats(0.001, 30))
def test_rounds_fit_the_time_within_bounds(remaining: float, cases: int, cost: float) -> None:
    r = rounds_that_fit(remaining, cases, cost)
    assert MIN_ROUNDS <= r <= MAX_ROUNDS
    if MIN_ROUNDS < r < MAX_ROUNDS:
        assert r * cost * cases <= remaining + 1e-9
        assert (r + 1) * cost * cases > remaining - 1e-9
    assert rounds_that_fit(remaining + 100, cases, cost) >= r


@given(st.integers(0, 50), st.floats(0, 3000), st.floats(-100, 3000), st.floats(1, 200))
def test_quartets_run_while_the_next_fits(done: int, elapsed: float, remaining: float, guess: float) -> None:
    go = quartets_fit(done, elapsed, remaining, guess)
    if done < MIN_QUARTETS:
        assert go
    elif remaining < 0:
        assert not go
    elif done and elapsed / done <= remaining:
        assert go


@given(st.floats(0, 1000), st.floats(1, 300), st.floats(0, 1000), st.floats(0, 600))
def test_the_counts_keep_their_share_when_the_wall_tier_runs_over(planned: float, share: float, now: float,
                                                                  limit_after: float) -> None:
    from harness.gate.micro import MicroSettings, callgrind_deadline

    limit = planned + limit_after
    s = MicroSettings(callgrind_deadline=planned, callgrind_share_s=share, callgrind_limit=limit)
    d = callgrind_deadline(s, now)
    assert d is not None and planned <= d <= max(planned, limit)
    if now + share <= planned:  # the wall tier left the counts their time: nothing moves
        assert d == planned
    elif now + share <= limit:  # it ran over: the counts get their whole share from now
        assert d == now + share
    assert callgrind_deadline(MicroSettings(), now) is None  # no budget, no deadline
