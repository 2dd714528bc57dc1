"""Market data delivered to the pair's actor by conflation: the newest tick per pair, one wake-up per look.

At 10k+ ticks/s a hop through the actor's mailbox per tick costs more than the work it carries (a
message, a task wake-up, the dispatch gate and the handler's timeout, for one dictionary store). A
price is a state, not an event: the strategy needs the newest one, and a tick superseded before the
strategy looked carries nothing the newer one does not. So:

- ``Conflator.offer`` (the feed client, per tick): the pair's ``MarketSlot`` keeps the newest tick. An
  empty slot takes it and is *armed*; an armed slot's tick is replaced, and the replaced one is counted
  as superseded, under its own tag.
- Armed slots are flushed together, at most once per ``window_s`` (one loop timer for all pairs; the
  first tick after a quiet spell goes at once): each gets one ``MARKET_DATA`` message (kind
  ``"market"``, payload the slot) in its pair's mailbox. Looks per second are thus bounded by
  pairs / window whatever the tick rate, and a price waits at most ``window_s`` plus the actor's
  queue before the strategy sees it.
- ``MarketSlot.look`` (the pair's actor): the strategy takes the newest price as its reference
  (the price ``bot.strategy.decide`` trades the pool toward) and the slot is disarmed.

Accounting. Every market tick ends in exactly one counter, counted at the look, so a count means the
strategy has seen that price or a newer one of the same pair:

- ``ticks_handled``: the strategy looked at it (it was the newest when the actor took the slot);
- ``ticks_conflated{kind=market}``: superseded by a newer tick of its pair, which the strategy then looked
  at (the family of the mailbox's ``ticks_conflated{kind=trade}``, whose superseded signals are dropped).

The harness counts both as handled (a conflated tick's information reached the strategy in the newer
price) and reports them apart. Until the look a tick is pending (``statistics().pending``). A wake-up
the mailbox refuses (full of more urgent work) is retried at the next flush: the ticks stay in the
slot, conflating; none is dropped for it. The look also records ``tick_delivery``: from the looked-at
tick's intended send time (``scheduled``) to the look, in µs, under the tick's tag.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass

from bot.engine.mailbox import MailboxClosed, Message, Priority, PutResult
from bot.telemetry.recorder import TAG, Telemetry, counter_key

DELIVERY_OP = "tick_delivery"
CONFLATED = counter_key("ticks_conflated", kind="market")
# The harness mines a block every 50 ms: a reference at most 20 ms older than the feed's is fresher than
# the pool state it is compared with, and 100 pairs cost at most 5k looks/s. Measured at 12.5k ticks/s
# over 100 pairs: 10 ms gave 9.2k looks/s and the bot 64% of a core, 20 ms 5.0k looks/s and 40%, with
# the tick-to-look p99 at 17 ms either way (the feed's own lag and the loop's dominate it).
DEFAULT_WINDOW_S = 0.02
MAX_WINDOW_S = 1.0
RETRY_S = 0.01  # at least this long before a refused wake-up is tried again: a full mailbox is no spin loop

Post = Callable[[str, Message], PutResult]


@dataclass(frozen=True, slots=True)
class ConflationStatistics:
    pairs: int
    window_s: float
    armed: int  # pairs holding a tick their actor has not looked at yet
    pending: int  # ticks not yet counted: each armed slot's newest and those it superseded
    awaiting_flush: int  # armed pairs whose wake-up is not in their mailbox yet
    wakes_total: int  # wake-ups queued
    wakes_refused_total: int  # wake-ups a full mailbox refused (retried at the next flush)
    looks_total: int
    flushes_total: int


class MarketSlot:
    """One pair's newest undelivered tick. Written by the feed (``Conflator.offer``), taken by the actor."""

    __slots__ = ("_reference", "_t", "armed", "looks", "pair", "price", "scheduled", "superseded", "tag", "wake")

    def __init__(self, pair: str, telemetry: Telemetry, reference: MutableMapping[str, float]) -> None:
        self.pair = pair
        self._t = telemetry
        self._reference = reference
        self.armed = False
        self.price = math.nan
        self.scheduled: float | None = None
        self.tag: str | None = None
        self.superseded: dict[str | None, int] = {}  # tag -> ticks replaced since the last look
        self.looks = 0
        # Immutable and the same every time: the wake-up allocates nothing per flush.
        self.wake = Message(Priority.MARKET_DATA, "market", self)

    def __repr__(self) -> str:
        return f"<MarketSlot {self.pair} armed={self.armed} superseded={sum(self.superseded.values())}>"

    @property
    def pending(self) -> int:
        return (1 + sum(self.superseded.values())) if self.armed else 0

    def look(self) -> bool:
        """The actor's look: the strategy takes the newest price; returns False if there was none."""
        if not self.armed:
            return False  # a wake-up whose tick an earlier look already took
        self.armed = False
        self.looks += 1
        self._reference[self.pair] = self.price
        t, tag = self._t, self.tag
        t.count("ticks_handled", tag=tag)
        if self.superseded:
            for old_tag, n in self.superseded.items():
                t.count(CONFLATED, n, tag=old_tag)
            self.superseded.clear()
        if self.scheduled is not None:
            token = TAG.set(tag)  # the latency lands in the tick's scenario, as its counters do
            try:
                t.record_since_scheduled(DELIVERY_OP, self.scheduled)
            finally:
                TAG.reset(token)
        return True


class Conflator:
    """The feed's side: one slot per pair, and the timer that wakes the actors of armed pairs."""

    def __init__(self, pairs: Iterable[str], post: Post, telemetry: Telemetry,
                 reference: MutableMapping[str, float], *, window_s: float = DEFAULT_WINDOW_S) -> None:
        if not (math.isfinite(window_s) and 0 <= window_s <= MAX_WINDOW_S):
            raise ValueError(f"conflation window_s must be in [0, {MAX_WINDOW_S:g}] s, got {window_s}")
        self.window_s = window_s
        self._slots = {p: MarketSlot(p, telemetry, reference) for p in pairs}
        self._post = post
        self._due: list[MarketSlot] = []  # armed, wake-up not queued yet
        self._timer: asyncio.Handle | None = None
        self._last_flush = -math.inf  # loop time
        self._wakes = 0
        self._refused = 0
        self._flushes = 0
        self._closed = False

    def __repr__(self) -> str:
        s = self.statistics()
        return f"<Conflator pairs={s.pairs} window={s.window_s:g}s armed={s.armed} pending={s.pending}>"

    def slot(self, pair: str) -> MarketSlot:
        return self._slots[pair]

    def offer(self, pair: str, price: float, scheduled: float | None, tag: str | None) -> None:
        """The newest market tick of ``pair`` (a known pair): keep it, superseding the one not yet looked at."""
        slot = self._slots[pair]
        if slot.armed:
            sup, old = slot.superseded, slot.tag
            sup[old] = sup.get(old, 0) + 1
        else:
            slot.armed = True
            self._due.append(slot)
            if self._timer is None and not self._closed:
                self._schedule()
        slot.price = price
        slot.scheduled = scheduled
        slot.tag = tag

    def _schedule(self, wait_s: float = 0.0) -> None:
        loop = asyncio.get_running_loop()
        # At most one flush per window: the first tick after a quiet spell is delivered at once.
        delay = max(self._last_flush + self.window_s - loop.time(), wait_s)
        self._timer = loop.call_later(delay, self._flush) if delay > 0 else loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._timer = None
        self._flushes += 1
        self._last_flush = asyncio.get_running_loop().time()
        due, self._due = self._due, []
        for slot in due:
            try:
                result = self._post(slot.pair, slot.wake)
            except MailboxClosed:
                continue  # the engine is stopping: this pair's actor will not look again
            if result is PutResult.REJECTED:
                self._refused += 1
                self._due.append(slot)  # its ticks stay, conflating; the next flush tries again
            else:
                self._wakes += 1
        if self._due and not self._closed:
            self._schedule(RETRY_S)

    def close(self) -> None:
        """Stop waking actors (the feed is stopping); ticks still in slots stay pending."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def statistics(self) -> ConflationStatistics:
        slots = self._slots.values()
        return ConflationStatistics(
            pairs=len(self._slots),
            window_s=self.window_s,
            armed=sum(1 for s in slots if s.armed),
            pending=sum(s.pending for s in slots),
            awaiting_flush=len(self._due),
            wakes_total=self._wakes,
            wakes_refused_total=self._refused,
            looks_total=sum(s.looks for s in slots),
            flushes_total=self._flushes,
        )
