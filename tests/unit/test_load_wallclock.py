"""The feed's wall-clock stamps follow a step of the wall clock (a VM paused by its host, an NTP step)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import harness.load.feed as feed_module
from harness.load.feed import MarketFeed
from harness.load.schedules import ConstantRate
from harness.load.wallclock import NS_PER_S, STEP_S, WallAnchor
from tests.unit.test_load_feed import PAIRS, _read_all


@given(jitter=st.lists(st.floats(-STEP_S, STEP_S), min_size=1, max_size=50),
       step=st.floats(0.2, 100.0) | st.floats(-100.0, -0.2))
def test_jitter_leaves_the_anchor_and_a_step_moves_it_once(jitter: list[float], step: float) -> None:
    a = WallAnchor(wall0=1_000.0, t0_ns=0)
    for i, j in enumerate(jitter):  # the two clocks read a little apart: no correction
        assert a.check(i * NS_PER_S, 1_000.0 + i + j) == 0.0
    assert a.stamp(2.5) == 1_002.5 and a.steps == []
    n = len(jitter)
    assert a.check(n * NS_PER_S, 1_000.0 + n + step) == pytest.approx(step)
    assert a.stamp(n + 1.0) == pytest.approx(1_000.0 + n + 1.0 + step)  # later ticks in the new frame
    assert a.check((n + 1) * NS_PER_S, 1_000.0 + n + 1 + step) == 0.0  # once, not again
    assert len(a.steps) == 1


def test_small_drifts_that_add_up_are_corrected_when_they_pass_the_limit() -> None:
    a = WallAnchor(wall0=0.0, t0_ns=0)
    drift = STEP_S / 3
    taken = [a.check(k * NS_PER_S, k + k * drift) for k in range(1, 8)]
    assert taken[:3] == [0.0, 0.0, 0.0] and sum(1 for x in taken if x) >= 1
    assert abs(a.stamp(7.0) - (7 + 7 * drift)) <= STEP_S


class _SteppedClock:
    """``time`` as the feed sees it, with the wall clock stepped forward once ``after_s`` in."""

    def __init__(self, step_s: float, after_s: float) -> None:
        self.step_s, self.after_ns = step_s, time.perf_counter_ns() + int(after_s * NS_PER_S)

    def perf_counter_ns(self) -> int:
        return time.perf_counter_ns()

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time() + (self.step_s if time.perf_counter_ns() >= self.after_ns else 0.0)


async def test_ticks_after_a_wall_clock_step_are_stamped_in_the_new_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _SteppedClock(step_s=16.0, after_s=0.5)
    monkeypatch.setattr(feed_module, "time", clock)
    got: list[dict[str, Any]] = []
    async with MarketFeed(PAIRS, seed=3, batch_max=1) as feed:
        reader = asyncio.create_task(_read_all(feed.url, got, stop_after_s=5.0))
        await feed.wait_for_client(5.0)
        start = time.time()
        await feed.run(market=ConstantRate(50, 1.0))
    await reader
    assert len(got) == 50
    assert feed.wall_anchor is not None and len(feed.wall_anchor.steps) == 1
    assert feed.wall_anchor.steps[0][1] == pytest.approx(16.0, abs=0.01)
    early = [t["scheduled"] - start for t in got[:20]]  # before the step: the real clock's frame
    late = [t["scheduled"] - start for t in got[-20:]]  # after it: 16 s ahead, as the bot's clock now reads
    assert all(-0.1 < x < 2.0 for x in early), early
    assert all(16.0 < x < 18.0 for x in late), late
