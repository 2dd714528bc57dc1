"""A websocket scenario is collected only once the bot has counted the ticks the feed sent."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any, cast

from harness.run.collect import tag_filter
from harness.run.scenario_exec import _wait_handled
from harness.run.stack import Stack


def _iv(end: float, tag: str, n: int) -> dict[str, Any]:
    return {"start": end - 1, "end": end, "histograms": {}, "counters": {"ticks_handled": n},
            "tags": {tag: {"histograms": {}, "counters": {"ticks_handled": n}}}}


async def test_waits_until_the_bots_late_reads_are_counted() -> None:
    t0 = time.time()
    puller = SimpleNamespace(intervals=[_iv(t0 + 1, "websocket", 900), _iv(t0 + 1, "burst", 100)])
    st = cast(Stack, SimpleNamespace(puller=puller))

    async def late_read() -> None:
        await asyncio.sleep(0.3)  # the last ticks leave the socket buffer after the schedule ended
        puller.intervals.append(_iv(t0 + 2, "websocket", 100))

    reader = asyncio.create_task(late_read())
    waited = await _wait_handled(st, t0, tag_filter("websocket"), 1000, seconds=30.0)
    await reader
    assert 0.2 < waited < 30.0  # it waited for the read, and not to its bound


async def test_gives_up_at_its_bound_when_ticks_were_really_lost() -> None:
    t0 = time.time()
    puller = SimpleNamespace(intervals=[_iv(t0 + 1, "websocket", 900), _iv(t0 - 5, "websocket", 500)])
    st = cast(Stack, SimpleNamespace(puller=puller))
    # The interval before the scenario started does not count toward its ticks.
    waited = await _wait_handled(st, t0, tag_filter("websocket"), 1000, seconds=0.3)
    assert waited >= 0.3
