"""Backoff schedule (full jitter, cap, attempts, budget, Retry-After) and the settings' validation."""

from __future__ import annotations

import email.utils
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.rpc.backoff import backoff_ceiling, decide, full_jitter, parse_retry_after, schedule
from bot.rpc.config import HealthPolicy, PoolLimits, RetryPolicy, RpcSettingError, Timeouts, WsOptions


class FixedRandom:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_ceiling_doubles_until_the_cap() -> None:
    assert [backoff_ceiling(i, 0.1, 1.0) for i in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_huge_retry_index_does_not_overflow() -> None:
    assert backoff_ceiling(10_000, 0.1, 3.0) == 3.0


@given(st.integers(0, 100), st.floats(1e-4, 1.0), st.floats(1.0, 60.0), st.integers(0, 2**32))
def test_full_jitter_stays_within_zero_and_ceiling(index: int, base: float, cap: float, seed: int) -> None:
    delay = full_jitter(index, base, cap, random.Random(seed))
    assert 0.0 <= delay <= backoff_ceiling(index, base, cap) <= cap


def test_jitter_spans_the_whole_interval() -> None:
    assert full_jitter(3, 0.1, 10.0, FixedRandom(0.0)) == 0.0
    assert full_jitter(3, 0.1, 10.0, FixedRandom(0.999999)) == pytest.approx(0.8, rel=1e-5)


def test_schedule_has_one_delay_per_retry_and_is_reproducible() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=0.1, max_delay=0.3)
    first = schedule(policy, random.Random(7))
    assert len(first) == 4
    assert first == schedule(policy, random.Random(7))
    assert all(0 <= d <= 0.3 for d in first)


def test_decide_stops_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    rng = FixedRandom(0.5)
    assert decide(policy, attempts=2, elapsed=0.0, retry_after=None, rng=rng).retry
    final = decide(policy, attempts=3, elapsed=0.0, retry_after=None, rng=rng)
    assert not final.retry and "attempts" in final.reason


def test_retry_after_wins_over_backoff() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.02, max_retry_after=10.0)
    decision = decide(policy, attempts=1, elapsed=0.0, retry_after=3.0, rng=FixedRandom(0.9))
    assert (decision.retry, decision.delay, decision.reason) == (True, 3.0, "retry-after")


def test_retry_after_beyond_the_limit_gives_up() -> None:
    policy = RetryPolicy(max_retry_after=5.0)
    decision = decide(policy, attempts=1, elapsed=0.0, retry_after=60.0, rng=FixedRandom(0.0))
    assert not decision.retry and "Retry-After" in decision.reason


def test_budget_bounds_total_time() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=1.0, budget=5.0)
    assert decide(policy, attempts=1, elapsed=3.5, retry_after=None, rng=FixedRandom(0.99)).retry
    assert not decide(policy, attempts=1, elapsed=4.5, retry_after=None, rng=FixedRandom(0.99)).retry


def test_decide_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError, match="attempts"):
        decide(RetryPolicy(), attempts=0, elapsed=0.0, retry_after=None, rng=FixedRandom(0.0))


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), (" 0 ", 0.0), ("1.5", 1.5), ("-1", None), ("soon", None), ("", None), (None, None), ("nan", None)],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=1_000_000.0) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_764_068_400.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(header, now) == pytest.approx(30.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now) == 0.0


@given(st.text(max_size=40))
def test_parse_retry_after_never_raises_and_never_negative(value: str) -> None:
    result = parse_retry_after(value, now=1_764_068_400.0)
    assert result is None or result >= 0.0


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Timeouts(connect=0), "Timeouts.connect"),
        (lambda: Timeouts(connect=5, total=1, read=1), "total"),
        (lambda: PoolLimits(max_connections=0), "PoolLimits.max_connections"),
        (lambda: PoolLimits(max_connections=4, per_host=8), "per_host"),
        (lambda: RetryPolicy(max_attempts=0), "RetryPolicy.max_attempts"),
        (lambda: RetryPolicy(base_delay=3, max_delay=1), "base_delay"),
        (lambda: RetryPolicy(budget=float("inf")), "RetryPolicy.budget"),
        (lambda: HealthPolicy(alpha=0), "HealthPolicy.alpha"),
        (lambda: WsOptions(queue_size=0), "WsOptions.queue_size"),
        (lambda: WsOptions(heartbeat=True), "WsOptions.heartbeat"),
    ],
)
def test_bad_settings_name_the_field(make: object, field: str) -> None:
    with pytest.raises(RpcSettingError, match=field.replace(".", r"\.")):
        make()  # type: ignore[operator]


def test_defaults_are_valid() -> None:
    Timeouts()
    PoolLimits()
    RetryPolicy()
    HealthPolicy()
    WsOptions()
