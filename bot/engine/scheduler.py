"""Pure scheduling decisions: which waiting pair gets the next free dispatch slot.

The engine runs one actor per pair, but only ``slots`` handlers at a time (CPU, RPC and signing
capacity are shared). When actors wait for a slot, ``FairScheduler.next()`` decides who goes:

1. Priority first: a pair whose most urgent queued message is a risk exit goes before a pair with
   only market data (``Priority`` order).
2. Fairness within a priority: first come, first served, and a pair holds at most one request. A
   pair that was just served must ask again and joins the back of the line, so a hot pair with a
   thousand queued ticks gets one turn per round, the same as a quiet pair with one tick.
3. No starvation across priorities: a request that has watched more than ``starvation_limit``
   grants go to others is served next regardless of priority (oldest such first).

No I/O, no clocks, no asyncio: "time" is the grant counter, so the behaviour is exactly
reproducible in tests. ``bot.engine.dispatch.FairGate`` is the async shell around it. Its size is
bounded by the number of pairs: a pair holds at most one request.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from bot.engine.mailbox import Priority


@dataclass(frozen=True, slots=True)
class SchedulerStatistics:
    waiting: int
    waiting_by_priority: tuple[int, ...]
    grants_total: int
    starvation_promotions: int


class FairScheduler:
    """Strict priority, round-robin within a priority, with anti-starvation aging."""

    def __init__(self, *, starvation_limit: int = 1000) -> None:
        if starvation_limit < 1:
            raise ValueError(f"starvation_limit must be >= 1, got {starvation_limit}")
        self._limit = starvation_limit
        # Lazy deletion: a queue entry is live only if _pending[pair] still names its ticket.
        self._queues: tuple[deque[tuple[str, int]], ...] = tuple(deque() for _ in Priority)
        self._pending: dict[str, tuple[Priority, int, int]] = {}  # pair -> (priority, ticket, enqueued_at)
        self._live_by_priority = [0] * len(Priority)
        self._ticket = 0
        self._grants = 0
        self._promotions = 0

    def __len__(self) -> int:
        return len(self._pending)

    def __repr__(self) -> str:
        return f"<FairScheduler waiting={len(self._pending)} grants={self._grants} limit={self._limit}>"

    def __contains__(self, pair: object) -> bool:
        return pair in self._pending

    def request(self, pair: str, priority: Priority) -> None:
        """``pair`` waits for a slot for work of ``priority``. A second request only ever raises priority."""
        current = self._pending.get(pair)
        if current is not None:
            if priority >= current[0]:
                return
            # More urgent work arrived while waiting: move up, keeping its age for aging purposes.
            self._drop(pair)
            self._enqueue(pair, priority, current[2])
            return
        self._enqueue(pair, priority, self._grants)

    def _enqueue(self, pair: str, priority: Priority, enqueued_at: int) -> None:
        self._ticket += 1
        self._pending[pair] = (priority, self._ticket, enqueued_at)
        self._queues[priority].append((pair, self._ticket))
        self._live_by_priority[priority] += 1

    def _drop(self, pair: str) -> None:
        prio, _, _ = self._pending.pop(pair)
        self._live_by_priority[prio] -= 1

    def cancel(self, pair: str) -> bool:
        """Withdraw a request (the waiter gave up). Returns whether there was one."""
        if pair not in self._pending:
            return False
        self._drop(pair)
        return True

    def _head(self, priority: int) -> tuple[str, int] | None:
        q = self._queues[priority]
        while q:
            pair, ticket = q[0]
            pending = self._pending.get(pair)
            if pending is not None and pending[1] == ticket:
                return q[0]
            q.popleft()  # stale entry from a cancel or a priority change
        return None

    def next(self) -> str | None:
        """Choose and remove the request to serve now, or ``None`` if nobody waits."""
        if not self._pending:
            return None
        chosen: str | None = None
        starving_since: int | None = None
        first: str | None = None
        for prio in range(len(Priority)):
            head = self._head(prio)
            if head is None:
                continue
            pair = head[0]
            if first is None:
                first = pair
            enqueued_at = self._pending[pair][2]
            if self._grants - enqueued_at > self._limit and (
                starving_since is None or enqueued_at < starving_since
            ):
                chosen, starving_since = pair, enqueued_at
        if chosen is not None and chosen != first:
            self._promotions += 1
        else:
            chosen = first
        assert chosen is not None  # _pending was non-empty, so some queue has a live head
        prio = self._pending[chosen][0]
        self._queues[prio].popleft()
        self._drop(chosen)
        self._grants += 1
        return chosen

    def statistics(self) -> SchedulerStatistics:
        return SchedulerStatistics(
            waiting=len(self._pending),
            waiting_by_priority=tuple(self._live_by_priority),
            grants_total=self._grants,
            starvation_promotions=self._promotions,
        )
