"""``FairGate``: the async shell that lets at most ``slots`` pair handlers run at once.

Who gets a freed slot is decided by the pure ``FairScheduler`` (priority first, round-robin across
pairs, anti-starvation); this module only parks and wakes the waiting actors. Each pair holds at
most one slot, since an actor handles one message at a time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot.engine.mailbox import Priority
from bot.engine.scheduler import FairScheduler


class GateError(RuntimeError):
    """Misuse: a pair asking for a second slot, or releasing a slot it does not hold."""


@dataclass(frozen=True, slots=True)
class GateStatistics:
    slots: int
    busy: int
    waiting: int
    waiting_by_priority: tuple[int, ...]
    grants_total: int  # every slot handed out
    contended_grants: int  # of which went through the scheduler (a pair had to wait)
    starvation_promotions: int


class FairGate:
    def __init__(self, slots: int, *, starvation_limit: int = 1000, name: str = "dispatch") -> None:
        if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
            raise ValueError(f"{name}: slots must be an integer >= 1, got {slots!r}")
        self._slots = slots
        self._name = name
        self._scheduler = FairScheduler(starvation_limit=starvation_limit)
        self._running: set[str] = set()
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._immediate = 0  # grants that found a free slot and nobody waiting

    def __repr__(self) -> str:
        return f"<FairGate {self._name!r} busy={len(self._running)}/{self._slots} waiting={len(self._waiters)}>"

    @property
    def slots(self) -> int:
        return self._slots

    def holds(self, pair: str) -> bool:
        return pair in self._running

    async def acquire(self, pair: str, priority: Priority) -> None:
        if pair in self._running or pair in self._waiters:
            raise GateError(f"{self._name}: pair {pair!r} already holds or waits for a slot")
        if not self._waiters and len(self._running) < self._slots:
            self._running.add(pair)
            self._immediate += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[pair] = fut
        self._scheduler.request(pair, priority)
        try:
            await fut
        except BaseException:
            if self._waiters.get(pair) is fut:
                del self._waiters[pair]
                self._scheduler.cancel(pair)
            elif pair in self._running and fut.done() and not fut.cancelled():
                # Granted as we were cancelled: pass the slot on instead of leaking it.
                self.release(pair)
            raise

    def raise_priority(self, pair: str, priority: Priority) -> None:
        """More urgent work arrived for a waiting pair: let the scheduler see it."""
        if pair in self._waiters:
            self._scheduler.request(pair, priority)

    def release(self, pair: str) -> None:
        if pair not in self._running:
            raise GateError(f"{self._name}: pair {pair!r} releases a slot it does not hold")
        self._running.remove(pair)
        self._dispatch()

    def _dispatch(self) -> None:
        while len(self._running) < self._slots:
            pair = self._scheduler.next()
            if pair is None:
                return
            fut = self._waiters.pop(pair)
            self._running.add(pair)
            fut.set_result(None)

    def statistics(self) -> GateStatistics:
        s = self._scheduler.statistics()
        return GateStatistics(
            slots=self._slots,
            busy=len(self._running),
            waiting=s.waiting,
            waiting_by_priority=s.waiting_by_priority,
            grants_total=s.grants_total + self._immediate,
            contended_grants=s.grants_total,
            starvation_promotions=s.starvation_promotions,
        )
