"""Endpoint health (pure): EWMA latency and success rate, a circuit breaker, and ranking.

Each endpoint keeps an exponentially weighted moving average of its latency and of its
success (1 per success, 0 per failure). Its score is ``latency / success_rate``: the expected
time to one successful answer if failures cost about one latency each. Lower is better.

The breaker stops sending to an endpoint that keeps failing, so calls fail over at once
instead of each paying a connect timeout:

    CLOSED --failure_threshold consecutive failures--> OPEN --cooldown elapsed--> HALF_OPEN
    HALF_OPEN --probe succeeds--> CLOSED        HALF_OPEN --probe fails--> OPEN (cooldown again)

In HALF_OPEN one call at a time is let through as a probe, ahead of the healthy endpoints.
A rate-limited endpoint is not unhealthy, it is busy: it is parked until its ``Retry-After``
runs out, for at most ``max_retry_after`` (one header must not retire an endpoint for a day).
A park ranks the endpoint behind its available peers; it does not stop traffic by itself:
``EndpointPool`` slows a rate-limited endpoint with its adaptive limit (``bot.rpc.ratelimit``)
and waits only for the breaker (``blocked_for(parks=False)``).

Only failures of the endpoint count (transport, timeout, garbage); a JSON-RPC error such as
"execution reverted" is the node working correctly and counts as a success.
The clock is injected (seconds, monotonic), so every transition is tested without sleeping.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.rpc.config import HealthPolicy


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    name: str
    state: BreakerState
    score: float
    latency_ewma_ms: float
    success_rate: float
    consecutive_failures: int
    successes: int
    failures: int
    rate_limited: int
    blocked_for_s: float


class EndpointHealth:
    """The health record of one endpoint. Not thread-safe; one event loop owns it."""

    def __init__(self, name: str, policy: HealthPolicy, clock: Callable[[], float]) -> None:
        self.name = name
        self._policy = policy
        self._clock = clock
        self._latency = policy.initial_latency
        self._success = 1.0
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probe_started: float | None = None
        self._blocked_until = 0.0
        self.successes = 0
        self.failures = 0
        self.rate_limited = 0

    def __repr__(self) -> str:
        return (
            f"EndpointHealth({self.name!r}, state={self.state.value}, score={self.score():.6f}, "
            f"failures_in_a_row={self._consecutive})"
        )

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self._policy.cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def _probe_busy(self) -> bool:
        # A probe whose caller vanished (cancelled) must not block the endpoint forever.
        return self._probe_started is not None and self._clock() - self._probe_started < self._policy.cooldown

    def blocked_for(self, *, parks: bool = True) -> float:
        """Seconds until this endpoint may be tried (0: now); without ``parks``, the breaker's wait only."""
        now = self._clock()
        wait = max(0.0, self._blocked_until - now) if parks else 0.0
        state = self.state
        if state is BreakerState.OPEN:
            assert self._opened_at is not None
            wait = max(wait, self._opened_at + self._policy.cooldown - now)
        elif state is BreakerState.HALF_OPEN and self._probe_busy():
            assert self._probe_started is not None
            wait = max(wait, self._probe_started + self._policy.cooldown - now)
        return wait

    def available(self) -> bool:
        return self.blocked_for() == 0.0

    def on_attempt(self) -> None:
        """Call just before sending: in HALF_OPEN this call becomes the probe."""
        if self.state is BreakerState.HALF_OPEN:
            self._probe_started = self._clock()

    def record_success(self, latency: float) -> None:
        a = self._policy.alpha
        self._latency = a * max(0.0, latency) + (1 - a) * self._latency
        self._success = a + (1 - a) * self._success
        self._consecutive = 0
        self._opened_at = None
        self._probe_started = None
        self.successes += 1

    def record_failure(self) -> None:
        a = self._policy.alpha
        self._success = (1 - a) * self._success
        self._consecutive += 1
        self.failures += 1
        was_probe = self.state is BreakerState.HALF_OPEN
        self._probe_started = None
        if was_probe or self._consecutive >= self._policy.failure_threshold:
            self._opened_at = self._clock()

    def record_rate_limited(self, retry_after: float | None) -> float:
        """Park the endpoint for ``retry_after`` seconds, at most ``max_retry_after`` (the cooldown
        when the node did not say); returns the park's length."""
        self.rate_limited += 1
        self._probe_started = None
        if retry_after is None:
            wait = self._policy.cooldown
        else:
            wait = min(max(0.0, retry_after), self._policy.max_retry_after)
        self._blocked_until = max(self._blocked_until, self._clock() + wait)
        return wait

    def score(self) -> float:
        return self._latency / max(self._success, 0.01)

    def snapshot(self) -> HealthSnapshot:
        return HealthSnapshot(
            name=self.name,
            state=self.state,
            score=self.score(),
            latency_ewma_ms=self._latency * 1000.0,
            success_rate=self._success,
            consecutive_failures=self._consecutive,
            successes=self.successes,
            failures=self.failures,
            rate_limited=self.rate_limited,
            blocked_for_s=self.blocked_for(),
        )


def rank(endpoints: Sequence[EndpointHealth]) -> list[EndpointHealth]:
    """Best first: a half-open endpoint whose probe slot is free (the next call is its trial:
    without it an endpoint that recovered would never be used again while another works),
    then closed endpoints by score, then the unavailable ones by how soon they become
    available, so a caller with every endpoint down knows which to wait for."""

    def key(ep: EndpointHealth) -> tuple[int, float, float]:
        wait = ep.blocked_for()
        if wait > 0.0:
            return (2, wait, ep.score())
        return (1 if ep.state is BreakerState.CLOSED else 0, ep.score(), 0.0)

    return sorted(endpoints, key=key)
