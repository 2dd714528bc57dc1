"""What the chaos scenarios measure from the fault proxies' own records (pure).

Each proxy in a chaos scenario watches every HTTP request it handles (``FaultProxy(watch=...)``):
when it arrived, when it was answered and with which status (0: closed unanswered). From those:

- ``failover_times``: per outage, the seconds from its start to the first successful (2xx) reply
  the bot got through any *other* proxy; None when none came before the outage's horizon (the next
  outage, or the end of the observation);
- ``carrier``: the proxy that carried most of the bot's requests just now (the one an outage must
  hit to force a real failover);
- ``early_requests``: requests that reached a rate-limited endpoint while the bot should have kept
  it parked, i.e. after it could have seen a 429 and before that 429's (capped) Retry-After ran out;
- ``summarize``: n, p50, p99 and max of the failover times, nearest-rank (no interpolation: with a
  handful of outages p99 is the worst one, which is what a bound must hold for).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    """One HTTP request as a proxy saw it (monotonic seconds); ``status`` 0: closed unanswered."""

    proxy: str
    arrived: float
    answered: float
    status: int

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class Outage:
    start: float
    proxy: str  # the proxy that went down
    seconds: float


def failover_times(outages: Sequence[Outage], replies: Iterable[Reply], end: float) -> list[float | None]:
    """Per outage (in time order), seconds from its start to the first 2xx answered by another proxy at or
    after the start and before its horizon (the next outage's start, else ``end``); None: none came."""
    ordered = sorted(outages, key=lambda o: o.start)
    answered: dict[str, list[float]] = {}
    for r in replies:
        if r.ok:
            answered.setdefault(r.proxy, []).append(r.answered)
    for times in answered.values():
        times.sort()
    out: list[float | None] = []
    for i, o in enumerate(ordered):
        horizon = ordered[i + 1].start if i + 1 < len(ordered) else end
        firsts = [times[k] for proxy, times in answered.items() if proxy != o.proxy
                  for k in (bisect.bisect_left(times, o.start),) if k < len(times) and times[k] < horizon]
        out.append(min(firsts) - o.start if firsts else None)
    return out


def carrier(replies: Iterable[Reply], now: float, window: float = 0.5) -> str | None:
    """The proxy most requests arrived at in ``[now - window, now)`` (ties: the name first in order; None: no
    request in the window)."""
    counts: dict[str, int] = {}
    for r in replies:
        if now - window <= r.arrived < now:
            counts[r.proxy] = counts.get(r.proxy, 0) + 1
    if not counts:
        return None
    return min(counts, key=lambda p: (-counts[p], p))


def early_requests(requests: Sequence[float], limited: Sequence[float], cap: float, grace: float) -> list[float]:
    """Arrival times in ``requests`` that fall inside a park: after some 429 answered at ``t`` (in
    ``limited``) plus ``grace`` (requests the bot had sent before it read that 429 still arrive) and before
    ``t + cap`` (the Retry-After the bot honours, capped at its ``max_retry_after``). The latest 429 before
    a request decides: its park ends last."""
    answered = sorted(limited)
    out = []
    for r in requests:
        k = bisect.bisect_left(answered, r - grace)
        if k and r < answered[k - 1] + cap:
            out.append(r)
    return out


@dataclass(frozen=True)
class FailoverSummary:
    """Observed failover times in ms (nearest-rank percentiles); ``unobserved``: outages with none."""

    n: int
    unobserved: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q``% of the values at or below it."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(times: Sequence[float | None]) -> FailoverSummary:
    seen = sorted(t * 1e3 for t in times if t is not None)
    if not seen:
        return FailoverSummary(0, len(times), None, None, None)
    return FailoverSummary(len(seen), len(times) - len(seen), percentile(seen, 50), percentile(seen, 99), seen[-1])
