"""The rotation off the hot path: a memset clear equal to hdrh's reset, and an async rotation that
lets the loop run between histograms without losing or doubling a sample (also when cancelled)."""

from __future__ import annotations

import asyncio

import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.telemetry.recorder import HIGHEST_US, TAG, Telemetry, clear, new_histogram

values = st.lists(st.integers(min_value=0, max_value=HIGHEST_US), min_size=1, max_size=200)


@settings(max_examples=40, deadline=None)
@given(before=values, after=values)
def test_clear_leaves_the_histogram_as_hdrh_reset_does(before: list[int], after: list[int]) -> None:
    ours, theirs = new_histogram(), new_histogram()
    for v in before:
        ours.record_value(v)
        theirs.record_value(v)
    clear(ours)
    theirs.reset()
    for attr in ("total_count", "min_value", "max_value", "start_time_stamp_msec", "end_time_stamp_msec"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert list(ours.counts) == list(theirs.counts)
    for v in after:
        ours.record_value(v)
        theirs.record_value(v)
    assert HdrHistogram.decode(ours.encode()).get_total_count() == len(after)
    assert ours.encode() == theirs.encode()


def _total(t: Telemetry, op: str) -> int:
    return sum(HdrHistogram.decode(iv.histograms[op]).get_total_count()
               for iv in t.intervals_since() if op in iv.histograms)


async def _recorder(t: Telemetry, n: int, stop: asyncio.Event) -> int:
    """Records ``n`` samples, one per loop iteration, into every operation and a tag."""
    TAG.set("scn")
    for i in range(n):
        for op in ("tx_submission", "price_fetch", "balance_check", "trade_execution"):
            t.record(op, 1000 + i)
        t.count("trades_ok")
        await asyncio.sleep(0)
    stop.set()
    return n


@pytest.mark.asyncio
async def test_samples_recorded_during_async_rotations_land_exactly_once() -> None:
    t = Telemetry()
    stop = asyncio.Event()
    n = 3000
    rec = asyncio.create_task(_recorder(t, n, stop))
    rotations = 0
    while not stop.is_set() and rotations < 10_000:
        await t.rotate_async()
        rotations += 1
    await rec
    t.rotate()
    assert rotations > 1
    for op in ("tx_submission", "price_fetch", "balance_check", "trade_execution"):
        assert _total(t, op) == n, op
        tagged = sum(HdrHistogram.decode(iv.tags["scn"].histograms[op]).get_total_count()
                     for iv in t.intervals_since() if "scn" in iv.tags and op in iv.tags["scn"].histograms)
        assert tagged == n, op
    assert sum(iv.counters.get("trades_ok", 0) for iv in t.intervals_since()) == n
    assert sum(iv.tags["scn"].counters.get("trades_ok", 0) for iv in t.intervals_since() if "scn" in iv.tags) == n


@pytest.mark.asyncio
async def test_a_rotation_cancelled_midway_still_closes_its_interval() -> None:
    t = Telemetry()
    for op in ("tx_submission", "price_fetch", "balance_check", "trade_execution"):
        t.record(op, 5000)
    task = asyncio.create_task(t.rotate_async())
    # Until the rotation has closed some histograms but not all: cancelled there, it is midway.
    live = [t._ops[op].hist for op in ("tx_submission", "price_fetch", "balance_check", "trade_execution")]
    async with asyncio.timeout(10):
        while not any(h.get_total_count() == 0 for h in live):
            await asyncio.sleep(0)
    assert not task.done() and any(h.get_total_count() for h in live)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [closed] = t.intervals_since()
    assert set(closed.histograms) == {"tx_submission", "price_fetch", "balance_check", "trade_execution"}
    assert t.rotate().histograms == {}


def test_a_tags_first_sample_of_an_operation_during_its_rotation_is_kept() -> None:
    """The rotation yields between a tag's histograms; a trade completing in that gap records an
    operation the tag had not seen yet. That once raised "dictionary changed size during
    iteration", killed the rotation task, and no interval closed for the rest of the bot's life
    (a whole run's burst and sustained judged with no samples)."""
    t = Telemetry()
    token = TAG.set("burst")
    try:
        t.record("price_fetch", 1000)
        t.record("balance_check", 1000)
        steps = t._rotation()
        # Until the rotation has encoded one of the tag's histograms, and so is inside its slice.
        tagged = t._tagged["burst"]
        for _ in range(100):
            next(steps)
            if any(h.get_total_count() == 0 for h in tagged.hists.values()):
                break
        t.record("trade_execution", 7000)  # the tag's first trade_execution, mid-rotation
        closed = None
        while closed is None:
            try:
                next(steps)
            except StopIteration as done:
                closed = done.value
    finally:
        TAG.reset(token)
    assert set(closed.tags["burst"].histograms) >= {"price_fetch", "balance_check"}
    later = t.rotate()
    kept = {**closed.tags["burst"].histograms, **later.tags["burst"].histograms}
    assert HdrHistogram.decode(kept["trade_execution"]).get_total_count() == 1
