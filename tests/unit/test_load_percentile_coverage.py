"""Percentile coverage: the reported confidence intervals contain the true percentiles.

A local server delays each request by a draw from a known distribution (20 ms + exponential with
mean 300 ms, seeded per run). The true percentiles are those of that distribution plus the
machine's own round trip, measured beside each wave of runs by a run the server answers at once:
the truth is a band [percentile + p1 round trip, percentile + p99 round trip], a few ms wide beside
intervals 100+ ms wide. (A single overhead figure, measured before the runs, let a loaded CI box push
7-9 of 60 lower bounds past the truth.) Twenty short
runs, each a separate seeded open-loop run of 100 requests, are judged by the harness's own
statistics (``harness.stats.intervals``): the block bootstrap over 0.1-s intervals, and the
order-statistic CI (what a run with too few intervals falls back to). At 95% confidence, for
each method, at least 90% of the (run, percentile) checks must cover the truth.
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from harness.load.generator import OpenLoopGenerator
from harness.load.jsonrpc import JsonRpcDriver
from harness.load.recorder import LoadResult
from harness.load.schedules import ConstantRate
from harness.stats.histograms import series_from_encoded
from harness.stats.intervals import latency_cis, quantile_order_stat_ci, stat_key

OFFSET_S, MEAN_S = 0.020, 0.300
RUNS, WAVE = 20, 4
RATE, DURATION = 40.0, 2.5  # 100 requests per run
PERCENTILES = (50.0, 75.0, 90.0)
OK_BODY = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'


def true_quantile_us(q_percent: float) -> float:
    return (OFFSET_S - MEAN_S * math.log(1.0 - q_percent / 100.0)) * 1e6


@pytest.fixture
async def known_latency_server() -> AsyncIterator[str]:
    rngs: dict[str, random.Random] = {}

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        run = request.match_info["run"]
        if run.startswith("zero"):  # the machine's own round trip, measured beside the runs
            return web.Response(body=OK_BODY, content_type="application/json")
        rng = rngs.setdefault(run, random.Random(f"coverage-{run}"))
        await asyncio.sleep(OFFSET_S + rng.expovariate(1.0 / MEAN_S))
        return web.Response(body=OK_BODY, content_type="application/json")

    app = web.Application()
    app.router.add_post("/r/{run}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def _one_run(base: str, run: int | str) -> LoadResult:
    async with JsonRpcDriver(f"{base}/r/{run}", "eth_blockNumber", [], connections=32) as drv:
        gen = OpenLoopGenerator(drv.call, ConstantRate(RATE, DURATION), name="op", interval_s=0.1)
        return await gen.run()


async def _wave(base: str, runs: range) -> tuple[list[LoadResult], LoadResult]:
    """WAVE real runs and, beside them under the same load, one whose requests the server answers at
    once: what the client, the server and the shared loop add to every delay at that moment."""
    *real, zero = await asyncio.gather(*(_one_run(base, run) for run in runs), _one_run(base, f"zero{runs.start}"))
    return real, zero


async def test_true_percentiles_fall_inside_reported_intervals(known_latency_server: str) -> None:
    # A full collection in a process that has run a thousand tests stalls the shared loop for tens
    # of milliseconds, adding to every request in flight at once; this test judges the statistics,
    # not the test process's collector.
    gc.collect()
    gc.freeze()
    try:
        results: list[LoadResult] = []
        zeros: list[LoadResult] = []
        for wave in range(0, RUNS, WAVE):
            real, zero = await _wave(known_latency_server, range(wave, wave + WAVE))
            results += real
            zeros.append(zero)
    finally:
        gc.unfreeze()
    # Every observed latency is a delay plus the machine's own round trip, so a percentile of what the
    # client sees lies between the delay's percentile plus the smallest and plus the largest round trip
    # (p1 and p99 here: a loaded CI box adds 1-10 ms). A check covers when the interval meets that band.
    overhead = series_from_encoded([iv.histograms.get("op") for z in zeros for iv in z.intervals])
    ov_lo, ov_hi = overhead.percentile_us(1.0), overhead.percentile_us(99.0)
    assert ov_hi < 50_000, f"the machine's own round trip reached {ov_hi / 1000:.1f} ms: too busy to judge"
    covered: Counter[str] = Counter()
    checks = 0
    widths = []
    for res in results:
        assert res.summary.ok == 100
        series = series_from_encoded([iv.histograms.get("op") for iv in res.intervals])
        assert series.n_intervals >= 25
        boot = latency_cis(series, PERCENTILES, confidence=0.95, n_boot=400, seed=1)
        for q in PERCENTILES:
            truth = true_quantile_us(q)
            # The same samples, judged both ways the harness can: the block bootstrap over
            # intervals, and the order-statistic CI a run with too few intervals falls back to.
            for est in (boot[stat_key(q)], quantile_order_stat_ci(series.merged_full(), q, confidence=0.95)):
                covered[est.method] += est.lo <= truth + ov_hi and truth + ov_lo <= est.hi
                widths.append((est.hi - est.lo) / truth)
            checks += 1
    assert set(covered) <= {"block-bootstrap", "order-statistic"}
    for method in ("block-bootstrap", "order-statistic"):
        assert covered[method] / checks >= 0.90, (method, covered[method], checks)
    # Coverage by intervals too wide to mean anything would prove nothing.
    assert sorted(widths)[len(widths) // 2] < 0.7
