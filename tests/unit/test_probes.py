from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from harness.probes.health import HealthProber, HealthStatistics
from harness.probes.periodic import Periodic
from harness.probes.resources import Cumulative, ProcessTreeSampler, ResourceSeries, read_tree


def test_rates_come_from_differences_of_cumulative_counters() -> None:
    s = ResourceSeries(origin=100.0)
    assert s.add(Cumulative(100.0, 10, cpu_seconds=1.0, disk_bytes=0, net_bytes=0)) is None  # no rate from one reading
    r = s.add(Cumulative(102.0, 20, cpu_seconds=2.5, disk_bytes=4000, net_bytes=1000))
    assert r is not None
    assert r.t == 2.0 and r.rss_bytes == 20
    assert r.cpu_percent == pytest.approx(75.0)  # 1.5 CPU-seconds in 2 s: 75% of one core
    assert r.disk_bytes_per_s == 2000 and r.net_bytes_per_s == 500


@given(st.lists(st.tuples(st.floats(0.01, 10), st.floats(0, 5), st.integers(0, 10**6)), min_size=2, max_size=30))
def test_rates_are_never_negative_even_when_a_child_exits(steps: list[tuple[float, float, int]]) -> None:
    s = ResourceSeries(origin=0.0)
    t = 0.0
    for dt, cpu, disk in steps:  # cumulative values that jump around (children come and go)
        t += dt
        s.add(Cumulative(t, 1, cpu_seconds=cpu, disk_bytes=disk))
    assert all(x.cpu_percent >= 0 and x.disk_bytes_per_s >= 0 for x in s.samples)
    assert all(x.net_bytes_per_s is None for x in s.samples)


def test_a_later_series_carries_an_earlier_ones_samples_on_its_own_clock() -> None:
    # A fresh bot within one scenario: the first bot's samples keep their wall-clock place.
    first = ResourceSeries(origin=100.0)
    for t, cpu in ((100.0, 0.0), (101.0, 0.5), (102.0, 1.5)):
        first.add(Cumulative(t, 7, cpu_seconds=cpu, disk_bytes=0))
    second = ResourceSeries(origin=105.0)
    for t, cpu in ((105.0, 0.0), (106.0, 0.25)):
        second.add(Cumulative(t, 9, cpu_seconds=cpu, disk_bytes=0))
    second.carry(first)
    assert [round(x.t, 6) for x in second.samples] == [-4.0, -3.0, 1.0]  # 101 and 102 s, on the clock of 105 s
    assert [x.rss_bytes for x in second.samples] == [7, 7, 9]
    assert [x.cpu_percent for x in second.samples] == pytest.approx([50.0, 100.0, 25.0])


def test_a_prober_carries_an_earlier_probers_counts() -> None:
    p = HealthProber("http://127.0.0.1:1/health")
    p.carry(HealthStatistics(probes=40, ok=39, last_error="HTTP 503"))
    p.carry(HealthStatistics(probes=10, ok=10, last_error=None))
    stats = p.statistics()
    assert (stats.probes, stats.ok, stats.last_error) == (50, 49, "HTTP 503")


async def until(cond: Callable[[], bool], within_s: float = 30.0) -> None:
    """Wait for a count to be reached rather than for a fixed time, which a slow machine misses."""
    async with asyncio.timeout(within_s):
        while not cond():
            await asyncio.sleep(0.005)


def test_reading_our_own_process_tree_sees_memory_and_cpu() -> None:
    sum(i * i for i in range(200_000))  # spend some CPU
    c = read_tree(os.getpid())
    assert c.rss_bytes > 10 * 2**20 and c.cpu_seconds > 0


async def test_sampler_samples_until_stopped() -> None:
    sampler = ProcessTreeSampler(os.getpid(), interval=0.02, net_bytes=lambda: 123)
    sampler.start()
    await until(lambda: len(sampler.series.samples) >= 3)
    samples = await sampler.stop()
    assert len(samples) >= 3 and all(s.net_bytes_per_s == 0 for s in samples)


async def test_periodic_is_bounded_by_its_run_count() -> None:
    calls = []
    p = Periodic(lambda: calls.append(1), 0.001, name="t", max_runs=5)
    p.start()
    await until(lambda: not p.running)
    assert len(calls) == 5 and not p.running
    await p.stop()


async def test_a_step_that_raises_is_counted_and_the_probe_goes_on() -> None:
    calls: list[int] = []

    async def step() -> None:
        calls.append(1)
        if len(calls) in (1, 3):
            raise KeyError("seq")  # an answer of a shape the step did not foresee

    p = Periodic(step, 0.001, name="t", max_runs=6)
    p.start()
    await until(lambda: not p.running)
    assert len(calls) == 6 and p.errors == 2
    await p.stop()


@pytest.fixture
async def flaky_health() -> AsyncIterator[tuple[str, list[int]]]:
    statuses = [200, 200, 503, 200]
    seen: list[int] = []

    async def health(request: web.Request) -> web.Response:
        status = statuses[len(seen) % len(statuses)]
        seen.append(status)
        return web.json_response({}, status=status)

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/health", seen
    await runner.cleanup()


async def test_health_prober_counts_every_non_200_as_down(flaky_health: tuple[str, list[int]]) -> None:
    url, seen = flaky_health
    prober = HealthProber(url, interval=0.005)
    prober.start()
    await until(lambda: prober.statistics().probes >= 8)
    stats = await prober.stop()
    # the server may have answered one last probe that stop() cut off before it was counted
    assert stats.probes in (len(seen), len(seen) - 1) and stats.probes >= 8
    answered = seen[: stats.probes]
    assert stats.ok == answered.count(200) and stats.probes - stats.ok == answered.count(503) >= 1
    assert stats.last_error == "HTTP 503"


async def test_health_prober_counts_a_dead_endpoint() -> None:
    prober = HealthProber("http://127.0.0.1:9/health", interval=0.01, timeout=0.2)
    prober.start()
    await until(lambda: prober.statistics().probes >= 1)
    stats = await prober.stop()
    assert stats.probes >= 1 and stats.ok == 0 and stats.last_error
