"""harness.stats.leak: a planted leak is found; flat noisy memory is never called a leak."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from harness.errors import ConfigError
from harness.stats.leak import detect_leak

MB = 1e6


def _rss(seed: int, slope_mb_per_min: float, seconds: int = 3600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(float(seconds))
    # GC sawtooth + slow correlated wander + white noise, around 150 MB
    saw = (t % 97) / 97 * 3 * MB
    wander = signal.lfilter([1], [1, -0.99], rng.normal(0, 0.3 * MB, len(t)))
    y = 150 * MB + saw + wander + rng.normal(0, 2 * MB, len(t)) + slope_mb_per_min * MB * t / 60
    return t, y


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_planted_leak_of_one_mb_per_minute_is_found(seed: int) -> None:
    t, y = _rss(seed, 1.0)
    res = detect_leak(t, y, sensitivity_bph=1 * MB)
    assert res.verdict == "leak"
    assert 50 * MB < res.slope_bph < 70 * MB


def test_planted_leak_ci_covers_the_true_slope() -> None:
    results = [detect_leak(*_rss(s, 1.0), sensitivity_bph=MB) for s in range(60)]
    hits = sum(r.lo_bph <= 60 * MB <= r.hi_bph for r in results)
    assert hits / 60 >= 0.8


def test_flat_noisy_memory_is_rarely_called_a_leak() -> None:
    """A 95% CI must, by construction, sometimes miss; with slow wander (100 s correlation time) on
    a one-hour run a false "leak" must stay rare, and the CI must cover zero most of the time."""
    results = [detect_leak(*_rss(s, 0.0), sensitivity_bph=1 * MB) for s in range(100)]
    assert sum(r.verdict == "leak" for r in results) <= 6
    assert sum(r.lo_bph <= 0 <= r.hi_bph for r in results) >= 85


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), level=st.floats(10, 500), noise=st.floats(0.1, 20))
def test_flat_white_noise_is_never_a_leak(seed: int, level: float, noise: float) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, 7200.0, 2.0)
    res = detect_leak(t, level * MB + rng.normal(0, noise * MB, len(t)), sensitivity_bph=1 * MB)
    assert res.verdict != "leak"


def test_long_flat_run_proves_no_leak_and_reports_its_resolution() -> None:
    t, y = _rss(1, 0.0, seconds=6 * 3600)
    res = detect_leak(t, y, sensitivity_bph=1 * MB)
    assert res.verdict == "no leak"
    assert 0 < res.resolution_bph < 1 * MB
    assert "resolves growth" in res.note


def test_short_run_gives_no_verdict_even_for_a_clear_slope() -> None:
    t, y = _rss(2, 1.0, seconds=300)
    res = detect_leak(t, y, sensitivity_bph=1 * MB)
    assert res.verdict == "inconclusive"
    assert "no verdict" in res.note
    assert res.more_time_s is not None and res.more_time_s >= 1800 - 240


def test_warmup_is_excluded() -> None:
    t = np.arange(3600.0)
    y = np.where(t < 600, 50 * MB + t * 1e5, 110 * MB) + np.random.default_rng(0).normal(0, MB, len(t))
    res = detect_leak(t, y, sensitivity_bph=5 * MB, warmup_s=700)
    assert res.verdict == "no leak" and res.warmup_s == 700
    with_warmup = detect_leak(t, y, sensitivity_bph=5 * MB, warmup_s=0)
    assert with_warmup.slope_bph > 10 * MB  # the warm-up ramp would masquerade as growth


def test_too_few_samples_and_bad_input() -> None:
    assert detect_leak([0, 1, 2], [1, 2, 3], sensitivity_bph=1.0).verdict == "inconclusive"
    with pytest.raises(ConfigError, match="sensitivity"):
        detect_leak([0, 1], [1, 2], sensitivity_bph=0)
    with pytest.raises(ConfigError, match="one time per sample"):
        detect_leak([0, 1, 2], [1, 2], sensitivity_bph=1.0)


def _short(slope_mb_per_h: float, seconds: int = 60, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A short real-soak-like RSS series: 2 samples/s, smooth, 0.2 MB of white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, seconds, 0.5)
    return t, 80 * MB + slope_mb_per_h * MB * t / 3600 + rng.normal(0, 0.2 * MB, len(t))


def test_a_short_window_calls_a_leak_only_above_its_floor_and_never_passes() -> None:
    floor = 750 * MB
    leak = detect_leak(*_short(4700), sensitivity_bph=MB, short_floor_bph=floor)  # a planted 128 KiB x 10/s
    assert leak.verdict == "leak" and leak.lo_bph > floor
    assert "short-window floor" in leak.note and leak.more_time_s is None
    clean = detect_leak(*_short(100), sensitivity_bph=MB, short_floor_bph=floor)  # caches filling
    assert clean.verdict == "inconclusive" and "no pass" in clean.note
    flat = detect_leak(*_short(0), sensitivity_bph=MB, short_floor_bph=floor)
    assert flat.verdict == "inconclusive"  # a short window never proves the absence of a leak
    # what the window could have called: the floor plus its CI half-width, stated
    assert clean.detectable_bph == pytest.approx(floor + clean.resolution_bph)
    assert "would have called a leak from" in clean.note


def test_without_a_floor_a_short_window_gives_no_verdict_and_nothing_detectable() -> None:
    res = detect_leak(*_short(4700), sensitivity_bph=MB)
    assert res.verdict == "inconclusive" and "no verdict" in res.note
    assert res.detectable_bph == float("inf")
    long = detect_leak(*_rss(1, 0.0, seconds=6 * 3600), sensitivity_bph=MB)
    assert long.detectable_bph == pytest.approx(MB + long.resolution_bph)
