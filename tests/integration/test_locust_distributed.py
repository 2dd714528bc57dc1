"""Locust as a master with 2 worker processes (and as one process) on loopback: our HdrHistograms merge exactly.

One worker is started by the runner, the other through ``harness locust-worker`` (the verb a machine
without the master runs).
A local aiohttp server counts the requests it served and answers after a small delay. The locustfile
dumps every raw sample it timed (``TB_LOCUST_RAW_DIR``, a test-only switch). Exactness at the end:
the run stops its users gracefully (each finishes the request in flight) and the master waits for
every worker's final report before it quits, so every request the server served was timed by a
worker and reached the master. Hence, exactly, with no failures:
server count == Locust's request count == our merged count == sum of per-worker counts == raw samples.
"""

from __future__ import annotations

import asyncio
import math
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from hdrh.histogram import HdrHistogram

from harness.load.locust_hdr import ENV_RAW_DIR, to_us
from harness.load.locust_merge import decode
from harness.load.locust_runner import LocustResult, plan, run_locust
from harness.load.recorder import new_histogram

PERCENTILES = (1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 100.0)


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, dict[str, int]]]:
    served = {"n": 0}

    async def handle(request: web.Request) -> web.Response:
        # A delay of a few ms spreads the latencies over many HdrHistogram buckets.
        await asyncio.sleep(0.002 + (served["n"] % 7) * 0.0005)
        served["n"] += 1
        return web.json_response({"ok": True})

    app = web.Application()
    for path in ("/health", "/status", "/metrics"):
        app.router.add_get(path, handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", served
    await runner.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raw(raw_dir: Path) -> list[list[tuple[str, float, bool]]]:
    return [[(str(n), float(ms), bool(f)) for n, ms, f in orjson.loads(p.read_bytes())["samples"]]
            for p in sorted(raw_dir.glob("raw-*.json"))]


def _exact_percentile(sorted_us: list[int], p: float) -> int:
    # HdrHistogram's rank rule (get_target_count_at_percentile): the round(p% x n)-th smallest, at least the first.
    rank = max(int(p / 100.0 * len(sorted_us) + 0.5), 1)
    return sorted_us[min(rank, len(sorted_us)) - 1]


def _check_exact(res: LocustResult, served: int, raw: list[list[tuple[str, float, bool]]], processes: int) -> None:
    ours = res.ours
    merged = ours.histogram()
    # (a) every count agrees exactly
    assert ours.failures == res.total.failures == 0
    assert served == res.total.requests == ours.requests == merged.get_total_count()
    assert sum(w.requests for w in ours.workers.values()) == ours.requests
    assert sum(iv["counters"]["api_requests"] for iv in res.intervals) == ours.requests
    # (b) every process that ran users contributed, and its final report arrived
    assert len(ours.workers) == processes and ours.complete
    assert all(w.requests > 0 for w in ours.workers.values())
    assert len(raw) == processes
    assert sorted(len(r) for r in raw) == sorted(w.requests for w in ours.workers.values())
    # (c) the merged histogram is exactly the histogram of every raw sample pooled ...
    pooled = sorted(to_us(ms) for r in raw for _, ms, failed in r if not failed)
    alone = new_histogram()
    for us in pooled:
        alone.record_value(us)
    assert decode(alone.encode()).equals(merged)
    # ... so its percentiles are the exact ones within HdrHistogram's precision (same bucket, 3 digits).
    for p in PERCENTILES:
        exact, hdr = _exact_percentile(pooled, p), merged.get_value_at_percentile(p)
        assert merged.values_are_equivalent(exact, hdr), (p, exact, hdr)
        assert exact <= hdr <= exact + max(1, math.ceil(exact / 1000)), (p, exact, hdr)
    # The per-second histograms add up to the total.
    per_sec = new_histogram()
    for iv in ours.intervals:
        if iv["histograms"]:
            per_sec.add(HdrHistogram.decode(next(iter(iv["histograms"].values()))))
    assert per_sec.get_total_count() == merged.get_total_count()
    # Locust's own figures sit beside ours.
    s = res.summary_json()
    assert s["counts_agree"] and s["locust"]["requests"] == s["ours"]["requests"]
    assert s["locust"]["rate"] and s["ours"]["rate"] > 0 and "closed-loop" in s["model"]


async def test_master_and_two_workers_merge_counts_and_percentiles_exactly(
        server: tuple[str, dict[str, int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One worker is the runner's own; the other joins through ``harness locust-worker``, as from another machine."""
    url, served = server
    monkeypatch.setenv(ENV_RAW_DIR, str(tmp_path / "raw"))
    port = _free_port()
    p = plan(url, 100, 3, workers=1, remote_workers=1, master_bind=f"127.0.0.1:{port}", path="/health")
    run = asyncio.create_task(run_locust(p, tmp_path / "locust", grace_s=30))
    joined = await asyncio.create_subprocess_exec(sys.executable, "-m", "harness.cli", "locust-worker", "--master",
                                                  f"127.0.0.1:{port}", stdout=asyncio.subprocess.DEVNULL)
    try:
        res = await run
        # The master tells its workers to quit: the joined worker exits on its own.
        assert await asyncio.wait_for(joined.wait(), 30) == 0
    finally:
        if joined.returncode is None:
            joined.kill()
            await joined.wait()
    _check_exact(res, served["n"], _raw(tmp_path / "raw"), processes=2)
    assert set(res.ours.by_name) == {"GET /health"}


async def test_one_process_records_directly_with_the_same_exactness(
        server: tuple[str, dict[str, int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, served = server
    monkeypatch.setenv(ENV_RAW_DIR, str(tmp_path / "raw"))
    res = await run_locust(plan(url, 100, 3), tmp_path / "locust", grace_s=30)
    _check_exact(res, served["n"], _raw(tmp_path / "raw"), processes=1)
    assert set(res.ours.workers) == {"local"}
    assert set(res.ours.by_name) == {"GET /health", "GET /status", "GET /metrics"}  # the control API mix
