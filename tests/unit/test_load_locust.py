"""Locust as a separate process against a local control API, and the parsing of what it wrote."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError, HarnessError
from harness.load.locust_runner import (
    master_command,
    parse_final_json,
    parse_stats_history,
    plan,
    run_locust,
    worker_command,
)


@pytest.fixture
async def control_api() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """/health and /status answer 200; /metrics fails with 500 (so failures must be counted)."""
    hits = {"/health": 0, "/status": 0, "/metrics": 0}

    async def ok(request: web.Request) -> web.Response:
        hits[request.path] += 1
        return web.json_response({"ok": True})

    async def broken(request: web.Request) -> web.Response:
        hits[request.path] += 1
        return web.Response(status=500, text="scrape failed")

    app = web.Application()
    app.router.add_get("/health", ok)
    app.router.add_get("/status", ok)
    app.router.add_get("/metrics", broken)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", hits
    await runner.cleanup()


def _check_run(res: Any, hits: dict[str, int], rate: float, seconds: int) -> None:
    total = res.total
    assert total.requests == sum(hits.values())
    assert total.failures == hits["/metrics"]
    assert sum(iv["counters"]["api_requests"] for iv in res.intervals) == total.requests
    assert sum(iv["counters"]["api_failures"] for iv in res.intervals) == total.failures
    # Constant throughput per user: the total is near the target (loose: a shared, noisy box).
    assert 0.6 * rate * seconds <= total.requests <= 1.1 * rate * seconds + res.plan.users
    # Weights 6:3:1.
    assert hits["/health"] > hits["/status"] > hits["/metrics"] > 0
    assert set(res.by_endpoint) == {"GET /health", "GET /status", "GET /metrics"}
    assert 0 < total.p50_ms <= total.p99_ms <= total.max_ms + 1


async def test_local_locust_run_counts_requests_and_failures(control_api: tuple[str, dict[str, int]],
                                                             tmp_path: Path) -> None:
    url, hits = control_api
    p = plan(url, 100, 3)
    assert (p.users, p.user_rate) == (10, 10.0)
    res = await run_locust(p, tmp_path, t0=time.time())
    _check_run(res, hits, 100, 3)
    assert "locust_stats_history.csv" in res.artifacts
    history = parse_stats_history((tmp_path / "locust_stats_history.csv").read_text())
    # The CSV history is a periodic snapshot: never more than the complete per-second counts.
    assert sum(r for _, r, _ in history) <= res.total.requests


async def test_distributed_run_spreads_users_over_local_workers(control_api: tuple[str, dict[str, int]],
                                                               tmp_path: Path) -> None:
    url, hits = control_api
    p = plan(url, 60, 3, workers=2)
    res = await run_locust(p, tmp_path)
    _check_run(res, hits, 60, 3)


def test_commands_bind_the_master_to_loopback() -> None:
    p = plan("http://127.0.0.1:8080/", 500, 10, workers=2)
    assert p.host == "http://127.0.0.1:8080"
    argv = master_command(p, Path("/x/locust"), Path("/x/final.json"), master_port=5557)
    assert argv[argv.index("--master-bind-host") + 1] == "127.0.0.1"
    assert argv[argv.index("--expect-workers") + 1] == "2"
    assert argv[argv.index("--run-time") + 1] == "10s"
    assert argv[argv.index("-u") + 1] == "50"
    assert worker_command("127.0.0.1", 5557)[-4:] == ["--master-port", "5557", "--loglevel", "WARNING"]


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"host": "http://10.1.2.3:8080", "rate": 10, "run_time_s": 5}, "--allow-remote"),
    ({"host": "http://127.0.0.1:1", "rate": 0, "run_time_s": 5}, "rate must be > 0"),
    ({"host": "http://127.0.0.1:1", "rate": 10, "run_time_s": 0}, "run_time_s"),
    ({"host": "http://127.0.0.1:1", "rate": 10, "run_time_s": 5, "workers": -1}, "workers"),
])
def test_bad_plans_name_the_field(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        plan(**kwargs)


per_second = st.dictionaries(st.integers(1_700_000_000, 1_700_000_010).map(str), st.integers(0, 50), max_size=8)
endpoint = st.fixed_dictionaries({
    "name": st.sampled_from(["/health", "/status", "/metrics"]), "method": st.just("GET"),
    "num_reqs_per_sec": per_second, "num_fail_per_sec": per_second,
    "response_times": st.dictionaries(st.integers(0, 5000).map(str), st.integers(1, 20), max_size=10),
})


@given(st.lists(endpoint, min_size=1, max_size=3))
def test_final_json_intervals_keep_every_request(entries: list[dict[str, Any]]) -> None:
    for e in entries:
        e["num_requests"] = sum(e["num_reqs_per_sec"].values())
        e["num_failures"] = sum(e["num_fail_per_sec"].values())
        e["total_response_time"] = 1.0
        e["max_response_time"] = max((float(k) for k in e["response_times"]), default=0.0)
    intervals, total, _ = parse_final_json(orjson.dumps(entries))
    assert sum(iv["counters"]["api_requests"] for iv in intervals) == total.requests
    assert sum(iv["counters"]["api_failures"] for iv in intervals) == total.failures
    starts = [iv["start"] for iv in intervals]
    assert starts == [float(i) for i in range(len(starts))]
    assert total.p50_ms <= total.p95_ms <= total.p99_ms <= total.max_ms


def test_malformed_outputs_are_harness_errors() -> None:
    with pytest.raises(HarnessError, match="not JSON"):
        parse_final_json(b"{")
    with pytest.raises(HarnessError, match="per-endpoint"):
        parse_final_json(b'{"a": 1}')
    with pytest.raises(HarnessError, match="malformed"):
        parse_stats_history("Timestamp,Name,Total Request Count,Total Failure Count\nx,Aggregated,1,0\n")
