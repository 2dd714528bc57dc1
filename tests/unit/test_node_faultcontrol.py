"""Faults changed at run time (a schedule, the control API) and the injection log the proxy keeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from harness.node.faultplan import FaultPlan
from harness.node.faultproxy import FaultProxy
from harness.node.faultschedule import FaultSchedule
from tests.unit.fault_upstream import Upstream, call, upstream_fixture, wait_for


@pytest.fixture
async def node() -> AsyncIterator[Upstream]:
    async for n in upstream_fixture():
        yield n


async def _status(session: aiohttp.ClientSession, url: str) -> int | str:
    try:
        async with session.post(url, json=call("eth_blockNumber", [])) as resp:
            await resp.read()
            return resp.status
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
        return "disconnected"


async def _until(session: aiohttp.ClientSession, url: str, want: int | str, what: str) -> None:
    """Probes until a request gets ``want``; a deadline, never a fixed sleep."""
    try:
        async with asyncio.timeout(15):
            while await _status(session, url) != want:
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"never saw {want}: {what}") from None


async def test_a_schedule_changes_the_plan_at_its_times(node: Upstream) -> None:
    schedule = FaultSchedule.parse("0.2s: 5xx=1 | 0.6s:")
    async with FaultProxy(node.url, schedule=schedule) as proxy, aiohttp.ClientSession() as session:
        await _until(session, proxy.url, 503, "the scheduled 5xx plan")
        await _until(session, proxy.url, 200, "the scheduled clean plan")
        plans = [e for e in proxy.log if e.kind == "plan"]
        assert [p.detail for p in plans] == ["schedule at 0.2s: 5xx=1,seed=0", "schedule at 0.6s: seed=0"]
        assert plans[0].t >= 0.2 and plans[1].t >= 0.6
        assert all(e.t >= 0.2 for e in proxy.log if e.kind == "http_5xx")
        assert proxy.plan == FaultPlan()


async def test_control_api_sets_the_plan_and_names_a_bad_key(node: Upstream) -> None:
    async with FaultProxy(node.url) as proxy, aiohttp.ClientSession() as session:
        assert proxy.control_url.split(":")[2].split("/")[0] != proxy.url.split(":")[2]  # its own port
        async with session.get(f"{proxy.control_url}/plan") as resp:
            doc = await resp.json()
        assert doc["plan"] == "seed=0" and doc["outage"] is False and doc["t"] >= 0
        async with session.post(f"{proxy.control_url}/plan", data="5xx=1,seed=3") as resp:
            assert resp.status == 200
        assert proxy.plan == FaultPlan(http_5xx_rate=1.0, seed=3)
        assert await _status(session, proxy.url) == 503
        async with session.post(f"{proxy.control_url}/plan", data="slow=0.1:fast") as resp:
            assert resp.status == 400
            error = (await resp.json())["error"]
        assert "slow=" in error and "e.g. slow=0.01:200ms" in error
        assert proxy.plan.http_5xx_rate == 1.0  # a bad plan changes nothing
        # the JSON-RPC port does not serve the control paths: they go to the node like any other path
        async with session.get(f"{proxy.url}/_proxy/plan") as resp:
            assert resp.status in (404, 503)


async def test_control_api_outages_start_stop_and_expire(node: Upstream) -> None:
    async with FaultProxy(node.url) as proxy, aiohttp.ClientSession() as session:
        async with session.post(f"{proxy.control_url}/outage/start") as resp:
            assert (await resp.json())["outage"] is True
        assert await _status(session, proxy.url) == "disconnected"
        async with session.get(f"{proxy.control_url}/plan") as resp:
            assert (await resp.json())["outage"] is True  # the control API stays up while the endpoint is down
        async with session.post(f"{proxy.control_url}/outage/stop") as resp:
            assert (await resp.json())["outage"] is False
        assert await _status(session, proxy.url) == 200
        async with session.post(f"{proxy.control_url}/outage/start?seconds=0.3") as resp:
            assert resp.status == 200
        assert await _status(session, proxy.url) == "disconnected"
        await _until(session, proxy.url, 200, "the timed outage to end by itself")
        await wait_for(lambda: sum(e.kind == "outage_end" for e in proxy.log) == 2, "both outages ended")
        async with session.post(f"{proxy.control_url}/outage/start?seconds=-1") as resp:
            assert resp.status == 400 and "seconds" in (await resp.json())["error"]


async def test_control_api_drops_websockets_and_serves_the_log_and_stats(node: Upstream) -> None:
    async with FaultProxy(node.url, FaultPlan(rpc_error_rate=1.0)) as proxy, aiohttp.ClientSession() as session:
        async with session.ws_connect(proxy.ws_url) as ws:
            await ws.send_str("x")
            assert (await ws.receive(timeout=5)).data == "echo:x"
            async with session.post(f"{proxy.control_url}/websockets/drop") as resp:
                assert (await resp.json()) == {"dropped": 1}
        for _ in range(3):
            await _status(session, proxy.url)
        async with session.get(f"{proxy.control_url}/log", params={"since": "0", "limit": "2"}) as resp:
            page = await resp.json()
        assert [e["kind"] for e in page["entries"]] == ["ws_drop", "rpc_error"]
        assert page["next"] == 2 and page["counts"] == {"ws_drop": 1, "rpc_error": 3}
        assert page["entries"][1]["method"] == "eth_blockNumber"
        async with session.get(f"{proxy.control_url}/log", params={"since": str(page["next"])}) as resp:
            rest = await resp.json()
        assert [e["seq"] for e in rest["entries"]] == [2, 3] and rest["next"] == 4
        async with session.get(f"{proxy.control_url}/log", params={"limit": "0"}) as resp:
            assert resp.status == 400
        async with session.get(f"{proxy.control_url}/stats") as resp:
            stats = await resp.json()
        assert stats["rpc_errors"] == 3 and stats["injected"] == {"ws_drop": 1, "rpc_error": 3}


async def test_the_log_is_bounded_the_counts_and_the_file_are_not(node: Upstream, tmp_path: Path) -> None:
    sink = tmp_path / "faults.jsonl"
    plan = FaultPlan(http_5xx_rate=0.5, garbage_rate=0.5, seed=9)
    async with FaultProxy(node.url, plan, log_size=3, log_path=sink) as proxy, aiohttp.ClientSession() as session:
        for _ in range(10):
            await _status(session, proxy.url)
        assert len(proxy.log) == 3 and proxy.log.evicted == 7 and proxy.log.total == 10
        assert [e.seq for e in proxy.log] == [7, 8, 9]
        stats = proxy.statistics()
        assert stats.http_5xx + stats.garbage == 10 and dict(stats.injected) == proxy.log.counts()
    lines = [orjson.loads(line) for line in sink.read_bytes().splitlines()]
    assert [line["seq"] for line in lines] == list(range(10))
    assert {line["kind"] for line in lines} == {"http_5xx", "garbage"}
    assert all(line["method"] == "eth_blockNumber" and line["time"] > 1e9 for line in lines)
    assert "injected=10" in repr(proxy)
