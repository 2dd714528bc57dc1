"""Market data reaches the pair's actor by conflation: the newest tick per pair, one wake-up per look,
and every tick ends in exactly one counter (handled or conflated), none silently lost."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from functools import partial

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.engine.actors import Engine
from bot.engine.mailbox import MailboxClosed, Message, Priority, PutResult
from bot.feed import FeedClient
from bot.market.conflation import CONFLATED, DELIVERY_OP, Conflator, MarketSlot
from bot.telemetry.recorder import Telemetry
from tests.waiting import until as _wait

_until = partial(_wait, every=0.001)  # these conditions can be brief: look often

PAIRS = ("A/USD", "B/USD", "C/USD")


class Mailboxes:
    """A stand-in for ``Engine.post``: records each pair's queued wake-ups; may refuse or be closed."""

    def __init__(self) -> None:
        self.queued: list[Message] = []
        self.refuse = 0  # refuse this many puts before accepting
        self.closed = False

    def post(self, pair: str, message: Message) -> PutResult:
        if self.closed:
            raise MailboxClosed(pair)
        if self.refuse:
            self.refuse -= 1
            return PutResult.REJECTED
        self.queued.append(message)
        return PutResult.ACCEPTED

    def look_all(self) -> int:
        """What the actors do: one look per queued wake-up."""
        msgs, self.queued = self.queued, []
        for m in msgs:
            assert m.priority is Priority.MARKET_DATA and m.kind == "market"
            assert isinstance(m.payload, MarketSlot)
            m.payload.look()
        return len(msgs)


def _tagged(t: Telemetry) -> dict[str, Counter[str]]:
    """Counters per tag of everything counted so far (closes the open interval)."""
    iv = t.rotate()
    return {tag: Counter(sl.counters) for tag, sl in iv.tags.items()}


def _conflator(boxes: Mailboxes, window_s: float = 0.0) -> tuple[Conflator, Telemetry, dict[str, float]]:
    t = Telemetry()
    ref: dict[str, float] = {}
    return Conflator(PAIRS, boxes.post, t, ref, window_s=window_s), t, ref


async def test_the_newest_tick_is_looked_at_and_the_ones_it_superseded_are_conflated() -> None:
    boxes = Mailboxes()
    c, t, ref = _conflator(boxes)
    for i in range(5):
        c.offer("A/USD", 100.0 + i, time.time(), "s1" if i < 2 else "s2")
    await _until(lambda: len(boxes.queued) == 1)
    assert ref == {}  # nothing reaches the strategy before its actor looks
    assert c.statistics().pending == 5
    assert boxes.look_all() == 1
    assert ref == {"A/USD": 104.0}
    by_tag = _tagged(t)
    assert by_tag["s2"] == Counter({"ticks_handled": 1, CONFLATED: 2})
    assert by_tag["s1"] == Counter({CONFLATED: 2})  # counted under the superseded ticks' own tag
    s = c.statistics()
    assert (s.pending, s.armed, s.wakes_total, s.looks_total) == (0, 0, 1, 1)


async def test_one_wake_up_per_pair_however_many_ticks() -> None:
    boxes = Mailboxes()
    c, t, _ = _conflator(boxes)
    for i in range(300):
        c.offer(PAIRS[i % 3], float(i), None, None)
    await _until(lambda: c.statistics().awaiting_flush == 0)
    assert sorted(m.payload.pair for m in boxes.queued) == sorted(PAIRS)
    boxes.look_all()
    totals = t.counter_totals()
    assert totals["ticks_handled"] == 3 and totals[CONFLATED] == 297
    assert DELIVERY_OP not in t.operations()  # ticks without a scheduled time are not timed


async def test_a_look_records_the_delivery_time_of_the_tick_it_took() -> None:
    boxes = Mailboxes()
    c, t, _ = _conflator(boxes)
    c.offer("B/USD", 1.0, time.time() - 0.5, "s")
    await _until(lambda: bool(boxes.queued))
    boxes.look_all()
    iv = t.rotate()
    assert DELIVERY_OP in iv.histograms and DELIVERY_OP in iv.tags["s"].histograms


async def test_a_refused_wake_up_is_retried_and_its_ticks_wait_in_the_slot() -> None:
    boxes = Mailboxes()
    boxes.refuse = 2  # the mailbox is full of more urgent work, twice
    c, t, ref = _conflator(boxes)
    c.offer("C/USD", 1.0, None, "s")
    await _until(lambda: c.statistics().wakes_refused_total >= 1)
    c.offer("C/USD", 2.0, None, "s")  # while refused, ticks keep conflating: none is dropped
    await _until(lambda: len(boxes.queued) == 1)
    assert c.statistics().wakes_refused_total == 2
    boxes.look_all()
    assert ref["C/USD"] == 2.0
    assert _tagged(t)["s"] == Counter({"ticks_handled": 1, CONFLATED: 1})


async def test_a_quiet_pair_is_delivered_at_once_then_at_most_once_a_window() -> None:
    boxes = Mailboxes()
    c, _, _ = _conflator(boxes, window_s=1.0)
    c.offer("A/USD", 1.0, None, None)
    await _until(lambda: len(boxes.queued) == 1)  # the first tick after a quiet spell goes at once
    boxes.look_all()
    c.offer("A/USD", 2.0, None, None)
    await asyncio.sleep(0)
    assert not boxes.queued  # within the window: it waits for the next flush
    await _until(lambda: len(boxes.queued) == 1)
    assert c.statistics().flushes_total == 2


async def test_a_closed_mailbox_or_conflator_stops_the_wake_ups_without_raising() -> None:
    boxes = Mailboxes()
    boxes.closed = True
    c, _, _ = _conflator(boxes)
    c.offer("A/USD", 1.0, None, None)
    await _until(lambda: c.statistics().flushes_total == 1)
    assert c.statistics().awaiting_flush == 0  # not retried: the engine is stopping
    c2, _, _ = _conflator(Mailboxes())
    c2.close()
    c2.offer("B/USD", 1.0, None, None)
    for _ in range(3):
        await asyncio.sleep(0)  # a flush, had one been scheduled, would have run by now (window 0: call_soon)
    assert c2.statistics().flushes_total == 0 and c2.statistics().pending == 1


def test_a_bad_window_is_refused() -> None:
    with pytest.raises(ValueError, match="window_s"):
        Conflator(PAIRS, Mailboxes().post, Telemetry(), {}, window_s=-1.0)


ops = st.lists(st.one_of(
    st.tuples(st.just("offer"), st.sampled_from(PAIRS), st.sampled_from(["s1", "s2", None])),
    st.tuples(st.just("flush"), st.just(""), st.none()),
    st.tuples(st.just("look"), st.just(""), st.none()),
), max_size=60)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_every_tick_ends_in_exactly_one_counter_and_the_strategy_sees_the_newest(script: list[
        tuple[str, str, str | None]]) -> None:
    async def play() -> None:
        boxes = Mailboxes()
        c, t, ref = _conflator(boxes)
        offered: Counter[str | None] = Counter()
        newest: dict[str, float] = {}
        for i, (op, pair, tag) in enumerate(script):
            if op == "offer":
                c.offer(pair, float(i), None, tag)
                offered[tag] += 1
                newest[pair] = float(i)
            elif op == "flush":
                await asyncio.sleep(0)
            else:
                boxes.look_all()
        await _until(lambda: c.statistics().awaiting_flush == 0)
        boxes.look_all()
        assert c.statistics().pending == 0
        assert ref == newest
        counted: Counter[str | None] = Counter()
        totals = t.rotate()
        for tag in offered:
            if tag is not None:
                sl = totals.tags[tag].counters
                counted[tag] = sl.get("ticks_handled", 0) + sl.get(CONFLATED, 0)
        counted[None] = (totals.counters.get("ticks_handled", 0) + totals.counters.get(CONFLATED, 0)
                         - sum(v for k, v in counted.items() if k is not None))
        assert +counted == +offered

    asyncio.run(play())


async def test_the_feed_delivers_market_ticks_through_the_pairs_actors_and_trades_as_before() -> None:
    t = Telemetry()
    looks: list[str] = []
    trades: list[float | None] = []

    async def handle(pair: str, message: Message) -> None:
        if message.kind == "market":
            assert isinstance(message.payload, MarketSlot) and message.payload.look()
            looks.append(pair)
        else:
            trades.append(message.scheduled)

    engine = Engine(handle)
    for p in PAIRS:
        engine.add_pair(p)
    await engine.start()
    ref: dict[str, float] = {}
    feed = FeedClient("ws://127.0.0.1:9/none", t, engine.post, ref, dict.fromkeys(PAIRS))
    try:
        now = time.time()
        ticks = [{"seq": i, "pair": PAIRS[i % 3], "price": 100.0 + i, "scheduled": now, "trade": False, "tag": "ws"}
                 for i in range(90)]
        ticks.append({"seq": 90, "pair": "A/USD", "price": 7.0, "scheduled": now, "trade": True, "tag": "ws"})
        feed.handle_frame(orjson.dumps(ticks))

        def counted() -> int:
            c = t.counter_totals()
            return c.get("ticks_handled", 0) + c.get(CONFLATED, 0)

        await _until(lambda: counted() == 91)  # 90 market ticks handled or conflated, plus the trade
        assert trades == [now]  # the trade signal took its own path, as an ENTRY with its schedule
        assert sorted(set(looks)) == sorted(PAIRS)
        assert ref == {"A/USD": 187.0, "B/USD": 188.0, "C/USD": 189.0}  # the newest market price of each
        assert feed.conflation().pending == 0
    finally:
        await feed.stop()
        await engine.stop()
