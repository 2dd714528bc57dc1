"""Endpoint health: EWMA scoring, the circuit breaker's transitions, rate-limit parking, ranking.
All with an injected clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.rpc.config import HealthPolicy
from bot.rpc.health import BreakerState, EndpointHealth, rank


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


POLICY = HealthPolicy(alpha=0.5, failure_threshold=3, cooldown=10.0, initial_latency=0.01)


def make(name: str, clock: Clock) -> EndpointHealth:
    return EndpointHealth(name, POLICY, clock)


def test_ewma_latency_moves_toward_samples() -> None:
    ep = make("a", Clock())
    ep.record_success(0.03)
    assert ep.snapshot().latency_ewma_ms == pytest.approx(20.0)
    ep.record_success(0.03)
    assert ep.snapshot().latency_ewma_ms == pytest.approx(25.0)


def test_breaker_opens_after_threshold_then_half_opens_after_cooldown() -> None:
    clock = Clock()
    ep = make("a", clock)
    for _ in range(2):
        ep.record_failure()
    assert ep.state is BreakerState.CLOSED and ep.available()
    ep.record_failure()
    assert ep.snapshot().state is BreakerState.OPEN and not ep.available()
    assert ep.blocked_for() == pytest.approx(10.0)
    clock.now += 10.0
    assert ep.snapshot().state is BreakerState.HALF_OPEN and ep.available()


def test_half_open_lets_one_probe_through_and_closes_on_success() -> None:
    clock = Clock()
    ep = make("a", clock)
    for _ in range(3):
        ep.record_failure()
    clock.now += 10.0
    ep.on_attempt()
    assert not ep.available()  # the probe is in flight
    ep.record_success(0.01)
    assert ep.state is BreakerState.CLOSED and ep.available()
    assert ep.snapshot().consecutive_failures == 0


def test_failed_probe_reopens_for_a_full_cooldown() -> None:
    clock = Clock()
    ep = make("a", clock)
    for _ in range(3):
        ep.record_failure()
    clock.now += 10.0
    ep.on_attempt()
    ep.record_failure()
    assert ep.state is BreakerState.OPEN
    assert ep.blocked_for() == pytest.approx(10.0)


def test_an_abandoned_probe_expires() -> None:
    clock = Clock()
    ep = make("a", clock)
    for _ in range(3):
        ep.record_failure()
    clock.now += 10.0
    ep.on_attempt()  # the caller is cancelled and never reports
    clock.now += 10.0
    assert ep.available()


def test_rate_limit_parks_for_retry_after_without_hurting_success_rate() -> None:
    clock = Clock()
    ep = make("a", clock)
    ep.record_rate_limited(2.5)
    assert ep.blocked_for() == pytest.approx(2.5)
    assert ep.snapshot().success_rate == 1.0
    assert ep.state is BreakerState.CLOSED
    clock.now += 2.5
    assert ep.available()


def test_rate_limit_without_retry_after_parks_for_the_cooldown() -> None:
    ep = make("a", Clock())
    ep.record_rate_limited(None)
    assert ep.blocked_for() == pytest.approx(POLICY.cooldown)


def test_rank_prefers_fast_then_reliable_and_puts_unavailable_last() -> None:
    clock = Clock()
    fast, slow, flaky, dead = (make(n, clock) for n in ("fast", "slow", "flaky", "dead"))
    fast.record_success(0.001)
    slow.record_success(0.05)
    flaky.record_success(0.001)
    flaky.record_failure()
    flaky.record_failure()
    for _ in range(3):
        dead.record_failure()
    assert [e.name for e in rank([dead, slow, flaky, fast])] == ["fast", "flaky", "slow", "dead"]


def test_rank_orders_unavailable_by_time_to_recovery() -> None:
    clock = Clock()
    a, b = make("a", clock), make("b", clock)
    a.record_rate_limited(5.0)
    b.record_rate_limited(1.0)
    assert [e.name for e in rank([a, b])] == ["b", "a"]


def test_half_open_gets_the_next_call_as_its_probe_then_waits() -> None:
    clock = Clock()
    recovering, healthy = make("recovering", clock), make("healthy", clock)
    for _ in range(3):
        recovering.record_failure()
    clock.now += 10.0
    healthy.record_success(0.001)
    assert [e.name for e in rank([healthy, recovering])] == ["recovering", "healthy"]
    recovering.on_attempt()  # the probe is out: others serve until it reports
    assert [e.name for e in rank([healthy, recovering])] == ["healthy", "recovering"]


@given(st.lists(st.one_of(st.floats(0, 5), st.none()), max_size=60))
def test_success_rate_stays_a_rate_and_score_positive(events: list[float | None]) -> None:
    ep = make("a", Clock())
    for latency in events:
        if latency is None:
            ep.record_failure()
        else:
            ep.record_success(latency)
    snap = ep.snapshot()
    assert 0.0 <= snap.success_rate <= 1.0
    assert snap.score > 0
    assert snap.successes + snap.failures == len(events)


def test_a_park_is_capped_at_max_retry_after() -> None:
    clock = Clock()
    ep = EndpointHealth("a", HealthPolicy(max_retry_after=5.0), clock)
    assert ep.record_rate_limited(86400.0) == 5.0
    assert ep.blocked_for() == pytest.approx(5.0)
    assert ep.blocked_for(parks=False) == 0.0  # a park is not the breaker: the pool does not wait it out
    clock.now += 5.0
    assert ep.available()
