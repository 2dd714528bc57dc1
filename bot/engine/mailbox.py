"""A bounded priority mailbox with an explicit overflow policy per priority.

Each pair actor owns one. Messages come out highest priority first
(``RISK_EXIT > CANCEL > ENTRY > MARKET_DATA``) and first-in first-out within a priority.

When the mailbox is full, what happens depends on the *incoming* message's priority:

- ``DROP_OLDEST`` (default for market data): the oldest queued message of the same priority is
  dropped; a newer tick supersedes an older one, so the stale one is the right one to lose.
- ``REJECT_NEW`` (default for entries): the new message is refused; the caller learns it at once
  from the return value and can tell its client.
- ``EVICT_LOWER`` (default for cancels): the oldest message of the lowest queued priority below the
  incoming one is evicted; if there is none, the new message is refused.
- ``NEVER_DROP`` (default for risk exits): like ``EVICT_LOWER``, but if only equal or higher
  priority work is queued the message is admitted beyond ``capacity`` into a reserve of
  ``reserve`` slots, because losing a risk exit is worse than a longer queue. Past the reserve,
  ``put`` raises ``MailboxOverflow``: even then the loss is loud, never silent.

**Conflation.** Messages whose ``kind`` is in ``conflate`` (the bot: ``"trade"``) keep at most one
of their priority and kind queued: a newer one takes the queued one's place in line (newest wins,
without losing the older one's turn), whether or not the mailbox is full. The superseded message is
counted as dropped with reason ``conflated`` and handed to ``on_conflate(old)``. A trade signal the
actor could not take before a newer one of its pair arrived is stale: acting on it would trade on
an old price and delay the fresh one behind it.

Every message that does not get delivered is counted by priority and reason in ``statistics()``
(and reported to ``on_drop(priority, reason, n)`` if given).
All operations are O(1). The async ``get``/``wait`` are for a single consumer (the actor).
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any


class Priority(enum.IntEnum):
    """Lower value = more urgent."""

    RISK_EXIT = 0
    CANCEL = 1
    ENTRY = 2
    MARKET_DATA = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class Overflow(enum.Enum):
    DROP_OLDEST = "drop_oldest"
    REJECT_NEW = "reject_new"
    EVICT_LOWER = "evict_lower"
    NEVER_DROP = "never_drop"


DEFAULT_POLICY: Mapping[Priority, Overflow] = {
    Priority.RISK_EXIT: Overflow.NEVER_DROP,
    Priority.CANCEL: Overflow.EVICT_LOWER,
    Priority.ENTRY: Overflow.REJECT_NEW,
    Priority.MARKET_DATA: Overflow.DROP_OLDEST,
}


class PutResult(enum.Enum):
    ACCEPTED = "accepted"
    REPLACED_OLDEST = "replaced_oldest"  # accepted; the oldest message of its priority was dropped
    EVICTED_LOWER = "evicted_lower"  # accepted; a lower-priority message was evicted
    OVERCOMMITTED = "overcommitted"  # accepted into the reserve beyond capacity
    CONFLATED = "conflated"  # accepted in the place of a queued message of its kind, which was dropped
    REJECTED = "rejected"

    @property
    def accepted(self) -> bool:
        return self is not PutResult.REJECTED


class MailboxOverflow(RuntimeError):
    """A never-drop message found the mailbox and its reserve full."""


class MailboxClosed(RuntimeError):
    """The mailbox was closed; no more messages are accepted."""


@dataclass(frozen=True, slots=True)
class Message:
    """One unit of work for an actor. ``scheduled`` is the Unix time a tick was meant to be sent, if any."""

    priority: Priority
    kind: str
    payload: Any = None
    scheduled: float | None = None


@dataclass(frozen=True, slots=True)
class MailboxStatistics:
    capacity: int
    reserve: int
    depth: int
    depth_by_priority: Mapping[str, int]
    high_water: int
    put_total: int
    delivered_total: int
    # "<priority>.<reason>" -> count; reasons: dropped_oldest, rejected, evicted, overflow, closed, conflated
    drops: Mapping[str, int] = field(default_factory=dict)
    overcommitted_total: int = 0

    @property
    def dropped_total(self) -> int:
        return sum(self.drops.values())


class _Place:
    """A conflating message's place in its queue: a newer message of its kind replaces ``message``."""

    __slots__ = ("key", "message")

    def __init__(self, key: tuple[Priority, str], message: Message) -> None:
        self.key = key
        self.message = message


class Mailbox:
    """Bounded priority mailbox; see the module docstring for the overflow and conflation rules."""

    def __init__(
        self,
        capacity: int,
        *,
        policy: Mapping[Priority, Overflow] | None = None,
        reserve: int | None = None,
        name: str = "mailbox",
        on_drop: Callable[[Priority, str, int], None] | None = None,
        conflate: Collection[str] = (),
        on_conflate: Callable[[Message], None] | None = None,
    ) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError(f"{name}: capacity must be an integer >= 1, got {capacity!r}")
        self._name = name
        self._capacity = capacity
        self._reserve = max(1, capacity // 4) if reserve is None else reserve
        if self._reserve < 0:
            raise ValueError(f"{name}: reserve must be >= 0, got {reserve!r}")
        merged = dict(DEFAULT_POLICY)
        if policy:
            merged.update(policy)
        self._policy = merged
        self._queues: tuple[deque[Message | _Place], ...] = tuple(deque() for _ in Priority)
        self._conflate = frozenset(conflate)
        self._places: dict[tuple[Priority, str], _Place] = {}
        self._on_conflate = on_conflate
        self._depth = 0
        self._high_water = 0
        self._put_total = 0
        self._delivered_total = 0
        self._overcommitted = 0
        self._drops: dict[str, int] = {}
        self._closed = False
        self._nonempty = asyncio.Event()
        self._on_drop = on_drop

    def __repr__(self) -> str:
        return (
            f"<Mailbox {self._name!r} depth={self._depth}/{self._capacity}(+{self._reserve})"
            f" dropped={sum(self._drops.values())}{' closed' if self._closed else ''}>"
        )

    def __len__(self) -> int:
        return self._depth

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def closed(self) -> bool:
        return self._closed

    def _count_drop(self, priority: Priority, reason: str, n: int = 1) -> None:
        key = f"{priority.label}.{reason}"
        self._drops[key] = self._drops.get(key, 0) + n
        if self._on_drop is not None:
            self._on_drop(priority, reason, n)

    def _popleft(self, q: deque[Message | _Place]) -> Message:
        item = q.popleft()
        self._depth -= 1
        if isinstance(item, _Place):
            del self._places[item.key]
            return item.message
        return item

    def _evict_lower_than(self, priority: Priority) -> bool:
        for p in range(len(Priority) - 1, priority, -1):
            q = self._queues[p]
            if q:
                self._popleft(q)
                self._count_drop(Priority(p), "evicted")
                return True
        return False

    def _admit(self, message: Message) -> None:
        if message.kind in self._conflate:
            key = (message.priority, message.kind)
            place = self._places[key] = _Place(key, message)
            self._queues[message.priority].append(place)
        else:
            self._queues[message.priority].append(message)
        self._depth += 1
        self._put_total += 1
        self._high_water = max(self._high_water, self._depth)
        self._nonempty.set()

    def put(self, message: Message) -> PutResult:
        """Enqueue without waiting; the result says what the overflow policy did."""
        prio = message.priority
        if self._closed:
            self._count_drop(prio, "closed")
            raise MailboxClosed(f"{self._name} is closed")
        if self._places and (place := self._places.get((prio, message.kind))) is not None:
            old, place.message = place.message, message
            self._put_total += 1
            self._count_drop(prio, "conflated")
            if self._on_conflate is not None:
                self._on_conflate(old)
            return PutResult.CONFLATED
        if self._depth < self._capacity:
            self._admit(message)
            return PutResult.ACCEPTED
        action = self._policy[prio]
        if action is Overflow.DROP_OLDEST:
            q = self._queues[prio]
            if q:
                self._popleft(q)
                self._count_drop(prio, "dropped_oldest")
                self._admit(message)
                return PutResult.REPLACED_OLDEST
            action = Overflow.EVICT_LOWER
        if action in (Overflow.EVICT_LOWER, Overflow.NEVER_DROP) and self._evict_lower_than(prio):
            self._admit(message)
            return PutResult.EVICTED_LOWER
        if action is Overflow.NEVER_DROP:
            if self._depth < self._capacity + self._reserve:
                self._overcommitted += 1
                self._admit(message)
                return PutResult.OVERCOMMITTED
            self._count_drop(prio, "overflow")
            raise MailboxOverflow(
                f"{self._name}: {prio.label} message {message.kind!r} found the mailbox and its reserve full"
                f" ({self._depth}/{self._capacity}+{self._reserve}); raise engine.mailbox_size"
            )
        self._count_drop(prio, "rejected")
        return PutResult.REJECTED

    def peek_priority(self) -> Priority | None:
        for p, q in enumerate(self._queues):
            if q:
                return Priority(p)
        return None

    def get_nowait(self) -> Message | None:
        for q in self._queues:
            if q:
                message = self._popleft(q)
                self._delivered_total += 1
                if self._depth == 0:
                    self._nonempty.clear()
                return message
        return None

    async def wait(self) -> None:
        """Return once a message is queued (at once if one already is)."""
        if self._depth:
            return
        await self._nonempty.wait()

    async def get(self) -> Message:
        while True:
            await self.wait()
            msg = self.get_nowait()
            if msg is not None:
                return msg

    def close(self) -> list[Message]:
        """Refuse further puts; return (and count) what was still queued so the caller can account for it."""
        self._closed = True
        left: list[Message] = []
        for p, q in enumerate(self._queues):
            if q:
                self._count_drop(Priority(p), "closed", len(q))
                left.extend(item.message if isinstance(item, _Place) else item for item in q)
                q.clear()
        self._places.clear()
        self._depth = 0
        self._nonempty.clear()
        return left

    def statistics(self) -> MailboxStatistics:
        return MailboxStatistics(
            capacity=self._capacity,
            reserve=self._reserve,
            depth=self._depth,
            depth_by_priority={p.label: len(self._queues[p]) for p in Priority},
            high_water=self._high_water,
            put_total=self._put_total,
            delivered_total=self._delivered_total,
            drops=dict(self._drops),
            overcommitted_total=self._overcommitted,
        )
