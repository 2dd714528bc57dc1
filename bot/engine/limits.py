"""Resource pools that remember who holds them (after trio's ``CapacityLimiter``).

A ``CapacityLimiter`` hands out at most ``total`` tokens. Unlike a bare semaphore it records
*which holder* has each token, so the two classic bugs of pooled resources fail loudly instead of
deadlocking or leaking:

- a holder acquiring a token it already holds raises ``LimiterError`` (with a semaphore it would
  wait for itself forever once the pool is full);
- releasing a token the caller does not hold raises ``LimiterError`` (with a semaphore it would
  silently grow the pool).

The bot uses three of them: in-flight transactions, signing slots, RPC concurrency.

Lock ordering (what makes the engine deadlock-free): every limiter has a ``rank``. A task may only
wait for a limiter whose rank is *higher* than every limiter it already holds. The standard ranks
are ``RANK_IN_FLIGHT < RANK_SIGNING < RANK_RPC``: take the in-flight slot first, then a signing
slot, then an RPC slot; never wait for an in-flight slot while holding a signing or RPC slot.
Acquiring in a consistent global order rules out circular waits. The rule is checked at run time
for task holders (the default); an explicit non-task holder (e.g. a ledger entry that keeps its
slot across tasks) is not checked, since it is not a thread of control that could wait.

Waiters are served first-come first-served, so a steady stream of fresh acquirers cannot starve
an old waiter. Timeouts raise ``LimiterTimeout`` (a ``TimeoutError``) and count in statistics.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

RANK_IN_FLIGHT = 10
RANK_SIGNING = 20
RANK_RPC = 30

# Limiters the current task holds (as the default, task holder), in acquisition order.
_held: contextvars.ContextVar[tuple[CapacityLimiter, ...]] = contextvars.ContextVar("_held", default=())


class LimiterError(RuntimeError):
    """Misuse of a limiter: double acquire, releasing what is not held, or breaking the lock order."""


class LimiterTimeout(TimeoutError):
    """No token became free within the timeout."""


@dataclass(frozen=True, slots=True)
class LimiterStatistics:
    name: str
    total: int
    borrowed: int
    waiting: int
    holders: tuple[str, ...]
    acquired_total: int
    timeouts_total: int
    peak_borrowed: int


def _describe(holder: object) -> str:
    if isinstance(holder, asyncio.Task):
        return f"task:{holder.get_name()}"
    return repr(holder)


class CapacityLimiter:
    """At most ``total`` concurrent holders; see the module docstring for the rules."""

    def __init__(self, total: int, *, name: str = "limiter", rank: int = 0) -> None:
        if not isinstance(total, int) or isinstance(total, bool) or total < 1:
            raise ValueError(f"{name}: total must be an integer >= 1, got {total!r}")
        self._name = name
        self._rank = rank
        self._total = total
        self._holders: set[object] = set()
        self._waiters: deque[tuple[object, asyncio.Future[None]]] = deque()
        self._acquired_total = 0
        self._timeouts_total = 0
        self._peak = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def total(self) -> int:
        return self._total

    def set_total(self, total: int) -> None:
        """Resize the pool. Shrinking never revokes tokens: it only stops new grants until enough return."""
        if not isinstance(total, int) or isinstance(total, bool) or total < 1:
            raise ValueError(f"{self._name}: total must be an integer >= 1, got {total!r}")
        self._total = total
        self._wake()

    @property
    def borrowed(self) -> int:
        return len(self._holders)

    @property
    def available(self) -> int:
        return max(0, self._total - len(self._holders))

    def holds(self, holder: object | None = None) -> bool:
        return (holder if holder is not None else asyncio.current_task()) in self._holders

    def statistics(self) -> LimiterStatistics:
        return LimiterStatistics(
            name=self._name,
            total=self._total,
            borrowed=len(self._holders),
            waiting=sum(1 for _, f in self._waiters if not f.done()),
            holders=tuple(sorted(_describe(h) for h in self._holders)),
            acquired_total=self._acquired_total,
            timeouts_total=self._timeouts_total,
            peak_borrowed=self._peak,
        )

    def __repr__(self) -> str:
        return (
            f"<CapacityLimiter {self._name!r} rank={self._rank} borrowed={len(self._holders)}/{self._total}"
            f" waiting={len(self._waiters)}>"
        )

    def _resolve(self, holder: object | None) -> tuple[object, bool]:
        if holder is not None:
            return holder, False
        task = asyncio.current_task()
        if task is None:
            raise LimiterError(f"{self._name}: no running task; pass an explicit holder")
        return task, True

    def _check_order(self, task: object) -> None:
        for other in _held.get():
            # A child task inherits a copy of its parent's context: only count what *this* task holds.
            if other is not self and other._rank >= self._rank and task in other._holders:
                raise LimiterError(
                    f"lock order violation: waiting for {self._name!r} (rank {self._rank}) while holding "
                    f"{other._name!r} (rank {other._rank}); acquire limiters in increasing rank order"
                )

    def _grant(self, holder: object, is_task: bool) -> None:
        self._holders.add(holder)
        self._acquired_total += 1
        self._peak = max(self._peak, len(self._holders))
        if is_task:
            _held.set((*_held.get(), self))

    def acquire_nowait(self, holder: object | None = None) -> None:
        """Take a token now, or raise ``LimiterTimeout`` at once if none is free (never waits)."""
        who, is_task = self._resolve(holder)
        self._precheck(who, is_task)
        if self._waiters or len(self._holders) >= self._total:
            raise LimiterTimeout(f"{self._name}: no free token ({len(self._holders)}/{self._total} borrowed)")
        self._grant(who, is_task)

    def _precheck(self, who: object, is_task: bool) -> None:
        if who in self._holders:
            raise LimiterError(
                f"{self._name}: {_describe(who)} already holds a token; release it before acquiring again"
            )
        if is_task:
            self._check_order(who)

    # The timeout is a parameter (not left to asyncio.timeout around the call) so that it is counted in
    # statistics() and raised as LimiterTimeout naming the pool.
    async def acquire(self, holder: object | None = None, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait (FIFO) for a token; ``timeout`` in seconds raises ``LimiterTimeout`` when it runs out."""
        who, is_task = self._resolve(holder)
        self._precheck(who, is_task)
        if not self._waiters and len(self._holders) < self._total:
            self._grant(who, is_task)
            return
        if any(w is who for w, _ in self._waiters):
            raise LimiterError(f"{self._name}: {_describe(who)} is already waiting for a token")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (who, fut)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            self._abandon(entry)
            self._timeouts_total += 1
            raise LimiterTimeout(
                f"{self._name}: no token within {timeout} s ({len(self._holders)}/{self._total} borrowed,"
                f" {len(self._waiters)} waiting)"
            ) from None
        except BaseException:
            self._abandon(entry)
            raise
        # _wake() already moved the token to us; record it in this task's context.
        self._acquired_total += 1
        self._peak = max(self._peak, len(self._holders))
        if is_task:
            _held.set((*_held.get(), self))

    def _abandon(self, entry: tuple[object, asyncio.Future[None]]) -> None:
        who, fut = entry
        with suppress(ValueError):
            self._waiters.remove(entry)
        if fut.done() and not fut.cancelled() and who in self._holders:
            # Granted in the same instant we gave up: hand the token on rather than leak it.
            self._holders.discard(who)
            self._wake()

    def _wake(self) -> None:
        while self._waiters and len(self._holders) < self._total:
            who, fut = self._waiters.popleft()
            if fut.done():
                continue
            self._holders.add(who)
            fut.set_result(None)

    def release(self, holder: object | None = None) -> None:
        who, is_task = self._resolve(holder)
        if who not in self._holders:
            raise LimiterError(f"{self._name}: {_describe(who)} releases a token it does not hold")
        self._holders.remove(who)
        if is_task:
            _held.set(tuple(x for x in _held.get() if x is not self))
        self._wake()

    @asynccontextmanager
    async def hold(
        self, holder: object | None = None, *, timeout: float | None = None  # noqa: ASYNC109
    ) -> AsyncIterator[None]:
        """``async with limiter.hold():`` acquire, run the block, always release."""
        await self.acquire(holder, timeout=timeout)
        try:
            yield
        finally:
            self.release(holder)
