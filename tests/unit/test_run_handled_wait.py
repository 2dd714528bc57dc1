"""A websocket scenario is collected only once the bot has counted the ticks the feed sent."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any, cast

from harness.run.collect import tag_filter
from harness.run.drive import wait_handled
from harness.run.stack import Stack


def _iv(end: float, tag: str, n: int, conflated: int = 0) -> dict[str, Any]:
    counters = {"ticks_handled": n, "ticks_conflated{kind=market}": conflated}
    return {"start": end - 1, "end": end, "histograms": {}, "counters": counters,
            "tags": {tag: {"histograms": {}, "counters": counters}}}


async def test_waits_until_the_bots_late_reads_are_counted() -> None:
    t0 = time.time()
    puller = SimpleNamespace(intervals=[_iv(t0 + 1, "websocket", 900), _iv(t0 + 1, "burst", 100)])
    st = cast(Stack, SimpleNamespace(puller=puller))
    waiter = asyncio.create_task(wait_handled(st, t0, tag_filter("websocket"), 1000, seconds=60.0))
    # 900 of 1000 counted (the burst's 100 are not this scenario's): it must still be waiting once
    # it has polled, whatever the machine's speed.
    await asyncio.wait({waiter}, timeout=0.5)
    assert not waiter.done()
    puller.intervals.append(_iv(t0 + 2, "websocket", 100))  # the last ticks leave the socket buffer
    waited = await asyncio.wait_for(waiter, timeout=60.0)
    assert waited < 60.0  # it ended on the count, not at its bound


async def test_gives_up_at_its_bound_when_ticks_were_really_lost() -> None:
    t0 = time.time()
    puller = SimpleNamespace(intervals=[_iv(t0 + 1, "websocket", 900), _iv(t0 - 5, "websocket", 500)])
    st = cast(Stack, SimpleNamespace(puller=puller))
    # The interval before the scenario started does not count toward its ticks.
    waited = await wait_handled(st, t0, tag_filter("websocket"), 1000, seconds=0.3)
    assert waited >= 0.3


async def test_conflated_ticks_count_as_handled() -> None:
    # 300 looked at, 700 superseded by a newer tick of their pair that was looked at: all handled.
    t0 = time.time()
    puller = SimpleNamespace(intervals=[_iv(t0 + 1, "websocket_stress/2", 300, conflated=700)])
    st = cast(Stack, SimpleNamespace(puller=puller))
    waited = await wait_handled(st, t0, tag_filter("websocket_stress/2"), 1000, seconds=60.0)
    assert waited < 60.0
