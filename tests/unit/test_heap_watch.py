"""The bot's heap watch: growth by allocation site (pure diffing, and tracemalloc for real with a planted
leak), levels held steady while a snapshot lives, its /debug/heap API, and the harness's poller."""

from __future__ import annotations

import asyncio
import inspect
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

import bot.debug
from bot.api import ApiHooks, create_app
from bot.debug import PlantedLeak
from bot.heapwatch import HeapWatch, HeapWatchError, diff_sites, group_sites
from harness.run.heapgrowth import GrowthPoller, growth_times, tracing_frames, warmup_of
from tests.waiting import until

FILES = ("a.py", "b.py", "c.py")
frames_st = st.tuples(st.tuples(st.sampled_from(FILES), st.integers(1, 5)))  # one frame: (file, line)
totals_st = st.dictionaries(frames_st, st.tuples(st.integers(0, 10**9), st.integers(0, 10**6)), max_size=12)


@given(totals_st, totals_st, st.integers(0, 20))
def test_diff_lists_exactly_the_sites_that_grew_largest_first(base: dict[Any, Any], now: dict[Any, Any],
                                                              top: int) -> None:
    sites, n = diff_sites(base, now, top)
    grown = {f: now[f][0] - base.get(f, (0, 0))[0] for f in now if now[f][0] - base.get(f, (0, 0))[0] > 0}
    assert n == len(grown) and len(sites) == min(top, n)
    assert [s.bytes_grown for s in sites] == sorted((s.bytes_grown for s in sites), reverse=True)
    for s in sites:
        key = ((s.file, s.line),)
        assert s.bytes_grown == grown[key] and s.bytes_now == now[key][0]
        assert s.count_grown == now[key][1] - base.get(key, (0, 0))[1]
    if sites:  # nothing left out grew more than the smallest shown
        assert sorted(grown.values(), reverse=True)[len(sites) - 1] == sites[-1].bytes_grown


@given(st.lists(st.tuples(frames_st, st.integers(0, 1000), st.integers(1, 10)), max_size=30))
def test_grouping_sums_per_site_and_leaves_ignored_files_out(stats: list[Any]) -> None:
    out = group_sites(stats, ignored=("c.py",))
    assert all(f[0][0] != "c.py" for f in out)
    for f, (size, count) in out.items():
        assert size == sum(s for fr, s, _ in stats if fr == f) and count == sum(c for fr, _, c in stats if fr == f)


def _leak_line() -> int:
    src, first = inspect.getsourcelines(PlantedLeak.keep)
    return first + next(i for i, line in enumerate(src) if "self._kept.append" in line)


@pytest.fixture
def watch() -> Any:
    w = HeapWatch(1, min_interval_s=0.0)
    w.start()
    yield w
    w.stop()


async def test_a_planted_leak_is_the_top_growth_site_and_heap_bytes_see_it(watch: HeapWatch) -> None:
    leak = PlantedLeak(65_536)
    churn = [bytes(100) for _ in range(1000)]
    await watch.baseline()
    before = watch.heap_bytes()
    for _ in range(40):
        leak.keep()
        churn = [bytes(100) for _ in range(1000)]  # replaced, not grown
    g = await watch.growth(5)
    top = g.sites[0]
    assert (top.file, top.line) == (bot.debug.__file__, _leak_line()), g.sites
    assert top.bytes_grown >= 40 * 65_536 and top.count_grown >= 40
    assert before is not None and (watch.heap_bytes() or 0) - before >= 40 * 65_536
    assert g.span_s >= 0 and g.snapshot_ms > 0 and g.frames == 1 and len(churn) == 1000
    assert g.to_json()["sites"][0]["file"] == bot.debug.__file__


async def test_levels_hold_while_a_snapshot_lives_and_growth_is_cached(watch: HeapWatch) -> None:
    seen: list[tuple[float | None, float]] = []
    stop = False

    async def sample() -> None:
        while not stop:
            seen.append((watch.heap_bytes(), watch.heap_blocks()))
            await asyncio.sleep(0)

    task = asyncio.create_task(sample())
    await watch.baseline()  # the snapshot's own objects are traced and counted while it lives
    stop = True
    await task
    bytes_seen = [b for b, _ in seen if b is not None]
    assert len(seen) >= 2 and max(bytes_seen) - min(bytes_seen) < 1_000_000  # no spike of the snapshot's size
    watch.min_interval_s = 60.0
    first = await watch.growth()
    assert await watch.growth() is first  # fresher than min_interval_s: no second snapshot


async def test_blocks_only_without_tracing_and_no_growth_before_a_baseline() -> None:
    off = HeapWatch(0)
    off.start()
    assert off.heap_bytes() is None and off.heap_blocks() > 0 and not off.tracing
    with pytest.raises(HeapWatchError, match="heap_trace_frames"):
        await off.baseline()
    on = HeapWatch(1)
    on.start()
    try:
        with pytest.raises(HeapWatchError, match="no baseline"):
            await on.growth()
    finally:
        on.stop()
    assert not tracemalloc.is_tracing()
    with pytest.raises(ValueError, match="0-16"):
        HeapWatch(17)


@pytest.fixture
async def api(watch: HeapWatch) -> AsyncIterator[TestClient[Any, Any]]:
    hooks = ApiHooks(health=lambda: (True, {}), status=lambda: {}, stats=lambda since: {}, metrics=lambda: b"",
                     heap=watch)
    async with TestClient(TestServer(create_app(hooks, token="t0ken"), host="127.0.0.1")) as client:
        yield client


async def test_the_api_needs_the_token_for_a_baseline_and_a_baseline_for_growth(api: TestClient[Any, Any]) -> None:
    auth = {"Authorization": "Bearer t0ken"}
    r = await api.get("/debug/heap")
    assert r.status == 200 and (await r.json())["tracing"] is True
    assert (await api.get("/debug/heap/growth", headers=auth)).status == 409
    assert (await api.post("/debug/heap/baseline")).status == 401
    r = await api.post("/debug/heap/baseline", headers=auth)
    assert r.status == 200 and (await r.json())["sites"] > 0
    # A growth table takes a snapshot, which stalls the bot's loop: behind the token too.
    assert (await api.get("/debug/heap/growth?top=3")).status == 401
    assert (await api.get("/debug/heap/growth?top=x", headers=auth)).status == 400
    r = await api.get("/debug/heap/growth?top=3", headers=auth)
    body = await r.json()
    assert r.status == 200 and len(body["sites"]) <= 3 and body["frames"] == 1


async def test_the_poller_primes_takes_the_baseline_after_warm_up_and_hands_each_table_once(
        api: TestClient[Any, Any]) -> None:
    url = str(api.make_url("/")).rstrip("/")
    t0 = time.time()
    poller = GrowthPoller(url, "t0ken", t0, warmup_s=2.0, planned_s=600.0)
    try:
        poller.poll(0.5)
        assert poller._task is None  # nothing before half the warm-up
        poller.poll(1.0)  # the throw-away snapshot
        await until(lambda: poller._task is not None and poller._task.done(), within=30, what="priming")
        assert poller.baseline is None
        poller.poll(2.0)
        await until(lambda: poller.baseline is not None, within=30, what="the baseline")
        poller.poll(11.0)  # not yet: the first growth request is due at max(2 x warm-up, warm-up + 10 s)
        assert poller.latest is None and (poller._task is None or poller._task.done())
        poller.poll(12.0)
        await until(lambda: poller.latest is not None, within=30, what="a growth table")
        assert poller.take_new() is poller.latest and poller.take_new() is None
        final = await poller.final(5.0)
        assert final is not None and final["baseline_t"] >= 0 and "sites" in final and poller.error is None
        what = [label.split(")")[0] for _, label in poller.events]
        assert len(what) == 4 and "throw-away" in what[0] and "baseline" in what[1], poller.events
        assert all(t >= 0 for t, _ in poller.events)
    finally:
        await poller.aclose()


def test_a_soak_whose_bot_traces_its_heap_is_offered_a_lower_rate() -> None:
    from harness.run.soakrate import choose_rate

    cal = {"cpu_ref_per_s": 5_500_000.0}
    traced, how = choose_rate(cal, memray=True, heap_trace=True)
    assert traced < choose_rate(cal, memray=True)[0] and "heap traced" in how


def test_few_snapshots_at_doubling_times_and_tracing_frames() -> None:
    assert warmup_of(45.0) == 9.0 and growth_times(9.0, 45.0) == []  # short: baseline and final only
    assert growth_times(120.0, 600.0) == [240.0, 480.0]
    assert warmup_of(24 * 3600.0) == 1800.0
    assert growth_times(1800.0, 24 * 3600.0) == [3600.0, 7200.0, 14400.0, 28800.0, 57600.0]
    assert tracing_frames({"debug": {"heap_trace_frames": 1}}) == 1
    assert tracing_frames({"debug": {"heap_trace_frames": 0}}) == 0 and tracing_frames(None) == 0


@settings(max_examples=20)
@given(st.integers(0, 16))
def test_frames_in_range_are_accepted(frames: int) -> None:
    assert HeapWatch(frames).frames == frames
