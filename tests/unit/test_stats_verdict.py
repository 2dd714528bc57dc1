"""harness.stats.verdict: pass/fail/inconclusive, margins, and the time-to-decide estimate."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.stats.intervals import Estimate
from harness.stats.verdict import combine, decide, relative_margin


def est(value: float, lo: float, hi: float) -> Estimate:
    return Estimate(value, lo, hi, 0.95, "test", 100)


@pytest.mark.parametrize(
    ("op", "thr", "e", "want"),
    [
        ("<", 10.0, est(5, 4, 6), "pass"),
        ("<", 10.0, est(12, 11, 13), "fail"),
        ("<", 10.0, est(9, 8, 11), "inconclusive"),
        ("<", 10.0, est(9, 8, 10), "inconclusive"),  # upper bound touching a strict limit is not inside
        ("<=", 10.0, est(9, 8, 10), "pass"),
        (">=", 500.0, est(600, 550, 650), "pass"),
        (">=", 500.0, est(400, 380, 420), "fail"),
        (">", 500.0, est(510, 490, 530), "inconclusive"),
    ],
)
def test_outcomes(op: str, thr: float, e: Estimate, want: str) -> None:
    assert decide(e, op, thr, duration_s=60).verdict == want


def test_margin_is_relative_and_positive_means_headroom() -> None:
    assert relative_margin(40.0, "<", 50.0) == pytest.approx(0.2)
    assert relative_margin(60.0, "<", 50.0) == pytest.approx(-0.2)
    assert relative_margin(600.0, ">=", 500.0) == pytest.approx(0.2)
    assert relative_margin(0.5, "<", 0.0) == pytest.approx(-0.5)  # zero threshold: absolute


def test_more_time_follows_inverse_square_root() -> None:
    # half-width 2 toward the threshold, distance 1: the CI must halve -> 4x the time -> 3x more.
    v = decide(est(9, 7, 11), "<", 10.0, duration_s=100.0)
    assert v.verdict == "inconclusive"
    assert v.more_time_s == pytest.approx(300.0)
    assert "more run time" in v.note


def test_more_time_for_a_slope_uses_its_faster_shrink() -> None:
    v = decide(est(9, 7, 11), "<", 10.0, duration_s=100.0, shrink_exponent=1.5)
    assert v.more_time_s == pytest.approx(100.0 * (2.0 ** (1 / 1.5) - 1.0))


def test_estimate_on_the_threshold_cannot_be_decided_by_running_longer() -> None:
    v = decide(est(10, 9, 11), "<", 10.0, duration_s=100.0)
    assert v.verdict == "inconclusive" and v.more_time_s is None
    assert "cannot decide" in v.note


def test_more_time_is_capped_and_says_so() -> None:
    v = decide(est(9.999, 5, 15), "<", 10.0, duration_s=3600.0, max_more_time_s=86400.0)
    assert v.more_time_s == 86400.0 and "capped" in v.note


def test_missing_ci_and_missing_value() -> None:
    assert decide(est(5, math.nan, math.nan), "<", 10, duration_s=1).verdict == "inconclusive"
    v = decide(est(math.nan, math.nan, math.nan), "<", 10, duration_s=1)
    assert v.verdict == "inconclusive" and v.margin is None


def test_unknown_operator() -> None:
    with pytest.raises(ConfigError, match="use one of"):
        decide(est(1, 0, 2), "==", 1, duration_s=1)


def test_combine_takes_the_weaker() -> None:
    ok = decide(est(600, 550, 650), ">=", 500.0, duration_s=1)
    bad = decide(est(12, 11, 13), "<", 10.0, duration_s=1)
    unsure = decide(est(9, 8, 11), "<", 10.0, duration_s=1)
    assert combine(ok, bad, "dropped").verdict == "fail"
    assert "dropped" in combine(ok, bad, "dropped").note
    assert combine(ok, unsure, "x").verdict == "inconclusive"
    assert combine(bad, ok, "x").verdict == "fail"


@given(value=st.floats(-1e6, 1e6), half=st.floats(0, 1e6), thr=st.floats(-1e6, 1e6),
       op=st.sampled_from(["<", "<=", ">", ">="]))
@example(value=0.0, half=1.0, thr=9.261237611763586e-277, op="<")  # once overflowed the time estimate
def test_verdict_is_consistent_with_the_ci(value: float, half: float, thr: float, op: str) -> None:
    v = decide(est(value, value - half, value + half), op, thr, duration_s=10.0)
    if v.verdict == "pass":
        assert (value + half < thr) if op == "<" else True
        assert (value - half > thr) if op == ">" else True
    if v.verdict == "inconclusive" and v.more_time_s is not None:
        assert 0 <= v.more_time_s <= 7 * 24 * 3600
