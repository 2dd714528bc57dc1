"""Adaptive concurrency for one endpoint (pure): AIMD on rate-limit answers, and lanes by urgency.

A 429 says "slower", not "stop": parking every call until the node's ``Retry-After`` ran out
stalled every pair of the bot for a second per injected 429. Instead each endpoint has a
*window*, the calls it may have in flight at once, run like TCP's congestion window:

- **multiplicative decrease**: a rate-limit answer multiplies the window by ``decrease`` (halves
  it), but at most once per *epoch*. Calls admitted before the last decrease were sent at the old
  rate; their 429s are the same event and do not shrink the window again (TCP's once per RTT).
- **additive increase**: each answered call adds ``increase / window``, so the window grows by
  ``increase`` per window's worth of answers, up to ``max_window``; never below ``min_window``.
- **hold**: until a 429's ``Retry-After`` (capped by the caller) has run out the window does not
  grow: the node's wish is honoured as "no faster", not as "nothing at all".

**Lanes.** When the window is full, callers queue by ``Lane``; a freed slot goes to the most
urgent non-empty lane (``SEND``, then ``CONFIRM``, then ``READ``), first come first served within
one. Sends and what confirms them decide a transaction's fate; a trade's reads are worth nothing
late, so they are the ones to wait (and their caller bounds that wait).

Waiters are opaque tokens (the async shell, ``bot.rpc.limiter``, uses futures); time is passed in
(monotonic seconds), so every rule is tested without a loop or a clock (tests/unit/test_rpc_ratelimit.py).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from bot.rpc.config import LimitPolicy

W = TypeVar("W")


class Lane(enum.IntEnum):
    """Lower is more urgent."""

    SEND = 0  # eth_sendRawTransaction: the bytes must reach a node
    CONFIRM = 1  # receipts, lookups, nonces, fees: what a sent transaction's fate depends on
    READ = 2  # a trade's reads: stale once the next tick arrives, so they fail fast (EndpointPool)

    @property
    def label(self) -> str:
        return self.name.lower()


class Outcome(enum.Enum):
    OK = "ok"  # the endpoint answered: the window may grow
    RATE_LIMITED = "rate_limited"  # the endpoint refused for load: the window shrinks
    NEUTRAL = "neutral"  # failed otherwise, or cancelled: says nothing about the endpoint's rate limit


@dataclass(frozen=True, slots=True)
class Ticket:
    """One admitted call; handed back to ``release`` exactly once."""

    serial: int
    epoch: int
    lane: Lane


@dataclass(frozen=True, slots=True)
class LimitStatistics:
    """``limit``: calls allowed in flight now (the window, floored); ``waiting``: queued per lane
    (``Lane`` order); ``admitted``/``queued``: every admission, and those that had to wait first;
    ``decreases``: times the window shrank; ``rate_limited``: 429s reported (the same epoch's
    counted, not acted on twice); ``hold_s``: seconds the window may not grow yet."""

    limit: int
    window: float
    in_flight: int
    max_in_flight: int
    waiting: tuple[int, ...]
    admitted: int
    queued: int
    decreases: int
    rate_limited: int
    hold_s: float


class AdaptiveLimit(Generic[W]):
    """One endpoint's window and its queue of waiters (see the module docstring). Not thread-safe."""

    def __init__(self, policy: LimitPolicy | None = None) -> None:
        self.policy = policy or LimitPolicy()
        self._window = float(self.policy.max_window)
        self._epoch = 0
        self._hold_until = -math.inf
        self._serial = 0
        self._in_flight: set[int] = set()
        self._queues: tuple[deque[W], ...] = tuple(deque() for _ in Lane)
        self._waiting = 0
        self._max_in_flight = 0
        self._admitted = 0
        self._queued = 0
        self._decreases = 0
        self._rate_limited = 0

    def __repr__(self) -> str:
        waiting = ", ".join(f"{lane.label}={len(q)}" for lane, q in zip(Lane, self._queues, strict=True) if q)
        return (f"AdaptiveLimit(in_flight={len(self._in_flight)}/{self.limit}, window={self._window:.2f}, "
                f"waiting=[{waiting}], decreases={self._decreases})")

    @property
    def limit(self) -> int:
        return max(self.policy.min_window, math.floor(self._window))

    @property
    def window(self) -> float:
        return self._window

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def try_acquire(self, lane: Lane) -> Ticket | None:
        """A ticket now, or None: the window is full or others queue first (then ``enqueue``)."""
        if self._waiting or len(self._in_flight) >= self.limit:
            return None
        return self._admit(lane)

    def enqueue(self, lane: Lane, waiter: W) -> None:
        """Queue ``waiter`` behind its lane; a later ``release`` hands it a ticket."""
        self._queues[lane].append(waiter)
        self._waiting += 1
        self._queued += 1

    def cancel(self, waiter: W) -> bool:
        """Withdraw a queued waiter; False if it is not queued (already granted, or never queued)."""
        for q in self._queues:
            try:
                q.remove(waiter)
            except ValueError:
                continue
            self._waiting -= 1
            return True
        return False

    def release(self, ticket: Ticket, outcome: Outcome, *, now: float, hold: float = 0.0) -> list[tuple[W, Ticket]]:
        """End ``ticket``'s call with ``outcome`` at ``now``; returns the waiters admitted in its place.

        ``hold`` (rate-limited only): seconds from ``now`` during which the window may not grow.
        """
        try:
            self._in_flight.remove(ticket.serial)
        except KeyError:
            raise ValueError(f"{ticket!r} released twice, or never admitted by this limit") from None
        if outcome is Outcome.RATE_LIMITED:
            self._rate_limited += 1
            self._hold_until = max(self._hold_until, now + max(0.0, hold))
            if ticket.epoch == self._epoch:
                self._window = max(float(self.policy.min_window), self._window * self.policy.decrease)
                self._epoch += 1
                self._decreases += 1
        elif outcome is Outcome.OK and now >= self._hold_until:
            self._window = min(float(self.policy.max_window), self._window + self.policy.increase / self._window)
        return self._grant()

    def _admit(self, lane: Lane) -> Ticket:
        self._serial += 1
        self._in_flight.add(self._serial)
        self._admitted += 1
        self._max_in_flight = max(self._max_in_flight, len(self._in_flight))
        return Ticket(self._serial, self._epoch, lane)

    def _grant(self) -> list[tuple[W, Ticket]]:
        granted: list[tuple[W, Ticket]] = []
        while self._waiting and len(self._in_flight) < self.limit:
            lane, q = next((Lane(i), q) for i, q in enumerate(self._queues) if q)
            waiter = q.popleft()
            self._waiting -= 1
            granted.append((waiter, self._admit(lane)))
        return granted

    def statistics(self, now: float) -> LimitStatistics:
        return LimitStatistics(
            limit=self.limit,
            window=self._window,
            in_flight=len(self._in_flight),
            max_in_flight=self._max_in_flight,
            waiting=tuple(len(q) for q in self._queues),
            admitted=self._admitted,
            queued=self._queued,
            decreases=self._decreases,
            rate_limited=self._rate_limited,
            hold_s=max(0.0, self._hold_until - now),
        )
