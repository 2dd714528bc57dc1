"""``EndpointLimiter``: the async shell over one endpoint's ``AdaptiveLimit`` (bot.rpc.ratelimit).

It only parks callers on futures and wakes the ones the pure limit admits; every decision (the
window, the lanes, the epochs) is the pure class's. A call that finds a free slot and nobody
queued takes it without a future or a task, so an unthrottled endpoint costs a set insertion.

A wait is bounded by the caller's ``timeout``: past it the call fails with ``Throttled`` (a
``RateLimited`` that never reached the node). A waiter cancelled or timed out just as it was
granted passes the slot on, so no slot leaks.
"""

# The wait bound is the caller's per-call ``timeout`` (the RpcClient contract).
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bot.rpc.config import LimitPolicy
from bot.rpc.errors import Throttled
from bot.rpc.ratelimit import AdaptiveLimit, Lane, LimitStatistics, Outcome, Ticket


class EndpointLimiter:
    def __init__(self, name: str, policy: LimitPolicy | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._limit: AdaptiveLimit[asyncio.Future[Ticket]] = AdaptiveLimit(policy)
        self._clock = clock

    def __repr__(self) -> str:
        return f"EndpointLimiter({self.name!r}, {self._limit!r})"

    @property
    def limit(self) -> int:
        return self._limit.limit

    async def acquire(self, lane: Lane, timeout: float | None = None) -> Ticket:
        """A slot for one call; ``Throttled`` if none came within ``timeout`` seconds (None: no bound)."""
        ticket = self._limit.try_acquire(lane)
        if ticket is not None:
            return ticket
        fut: asyncio.Future[Ticket] = asyncio.get_running_loop().create_future()
        self._limit.enqueue(lane, fut)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except BaseException as exc:
            if not self._limit.cancel(fut) and fut.done() and not fut.cancelled():
                self.release(fut.result(), Outcome.NEUTRAL)  # granted as we gave up: pass it on
            if isinstance(exc, TimeoutError):
                raise Throttled(
                    f"{self.name}: no slot for a {lane.label} call within {timeout:g}s "
                    f"({self._limit.in_flight}/{self._limit.limit} in flight after rate limiting)"
                ) from None
            raise

    def release(self, ticket: Ticket, outcome: Outcome, *, hold: float = 0.0) -> None:
        """End the call holding ``ticket``; ``hold``: seconds the window may not grow (a 429's park)."""
        for waiter, granted in self._limit.release(ticket, outcome, now=self._clock(), hold=hold):
            if waiter.done():  # cannot happen while acquire withdraws its waiter first; never leak the slot
                self.release(granted, Outcome.NEUTRAL)
            else:
                waiter.set_result(granted)

    def statistics(self) -> LimitStatistics:
        return self._limit.statistics(self._clock())
