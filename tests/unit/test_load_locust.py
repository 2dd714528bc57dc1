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
    parse_bind,
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
    # Ours and Locust's see the same requests; failures are counted, not timed.
    assert res.counts_agree and res.ours.complete
    assert res.ours.histogram().get_total_count() == total.requests - total.failures
    assert set(res.ours.by_name) == {"GET /health", "GET /status"}
    assert sum(iv["counters"]["api_requests"] for iv in res.intervals) == total.requests
    assert sum(iv["counters"]["api_failures"] for iv in res.intervals) == total.failures
    # Constant throughput per user caps the total; no lower bound, because a machine busy with
    # other work may start Locust's users late (a speed, which tests do not assert).
    assert 0 < total.requests <= 1.1 * rate * seconds + res.plan.users
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
    # The graceful stop ends the load; Locust's --run-time is only a backstop well after it.
    assert argv[argv.index("--tb-stop-after") + 1] == "10"
    assert argv[argv.index("--run-time") + 1] == "70s"
    assert argv[argv.index("-u") + 1] == "50"
    assert worker_command("127.0.0.1", 5557)[-4:] == ["--master-port", "5557", "--loglevel", "WARNING"]


def test_the_master_binds_elsewhere_only_when_allowed_and_workers_get_the_path() -> None:
    assert parse_bind("0.0.0.0:6000") == ("0.0.0.0", 6000)
    assert parse_bind("[::1]:7000") == ("::1", 7000)
    assert parse_bind("10.0.0.5") == ("10.0.0.5", 5557)
    p = plan("http://10.0.0.9:8080", 100, 5, workers=1, remote_workers=2, master_bind="0.0.0.0:6000",
             allow_remote=True, allow_remote_bind=True, path="/health?x=1")
    assert (p.master_host, p.master_port, p.connect_host, p.users) == ("0.0.0.0", 6000, "127.0.0.1", 10)
    argv = master_command(p, Path("/x/locust"), Path("/x/final.json"))
    assert argv[argv.index("--master-bind-host") + 1] == "0.0.0.0"
    assert argv[argv.index("--expect-workers") + 1] == "3"
    assert argv[argv.index("--tb-path") + 1] == "/health?x=1" and argv[-1] == "PathUser"
    assert float(argv[argv.index("--expect-workers-max-wait") + 1]) >= 300  # time to start the other machines
    # Remote workers without a bind: loopback on Locust's port, stated up front (workers on this machine only).
    q = plan("http://127.0.0.1:8080", 100, 5, remote_workers=1)
    assert (q.master_host, q.master_port) == ("127.0.0.1", 5557)
    assert master_command(q, Path("/x/l"), Path("/x/f.json"))[-1] == "ControlApiUser"
    # Every worker gets a user at least.
    assert plan("http://127.0.0.1:8080", 5, 5, workers=3).users == 3


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"master_bind": "0.0.0.0:5557"}, "--allow-remote"),
    ({"master_bind": "10.0.0.5:5557", "allow_remote_bind": True, "remote_workers": 2}, "each would load itself"),
    ({"master_bind": "host:port"}, "must be a number"),
    ({"master_bind": "host:70000"}, "1..65535"),
    ({"master_bind": ":5557"}, "HOST:PORT"),
    ({"path": "health"}, "must start with '/'"),
    ({"remote_workers": -1}, "workers"),
])
def test_bad_locust_topologies_name_the_fix(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        plan("http://127.0.0.1:8080", 100, 5, **kwargs)


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
