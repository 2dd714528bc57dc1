"""The fault proxy against a local aiohttp upstream: each fault at its rate, counted; WS both ways."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web

from harness.node.faultplan import FaultPlan
from harness.node.faultproxy import FaultProxy


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    """A JSON-RPC echo over HTTP, and a WebSocket that answers each text with 'echo:<text>'."""

    async def rpc(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    if msg.data == "burst":
                        for i in range(5):
                            await ws.send_str(f"push:{i}")
                    else:
                        await ws.send_str(f"echo:{msg.data}")
            return ws
        body = orjson.loads(await request.read())
        calls = body if isinstance(body, list) else [body]
        replies = [{"jsonrpc": "2.0", "id": c["id"], "result": c["params"]} for c in calls]
        return web.Response(
            body=orjson.dumps(replies if isinstance(body, list) else replies[0]), content_type="application/json"
        )

    app = web.Application()
    app.router.add_route("*", "/", rpc)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def _classify(session: aiohttp.ClientSession, url: str, i: int) -> str:
    try:
        async with session.post(url, json={"jsonrpc": "2.0", "id": i, "method": "echo", "params": [i]}) as resp:
            raw = await resp.read()
            if resp.status == 429:
                assert resp.headers["Retry-After"] == "2"
                return "rate_limited"
            if resp.status == 503:
                return "http_5xx"
            try:
                reply = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return "garbage"
            assert reply["id"] == i
            if "error" in reply:
                return "rpc_error"
            assert reply["result"] == [i]
            return "pass"
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
        return "drop"


async def test_every_http_fault_happens_at_its_rate_and_is_counted(upstream: str) -> None:
    plan = FaultPlan(
        rpc_error_rate=0.1, http_5xx_rate=0.05, rate_limit_rate=0.1, retry_after_s=2, drop_rate=0.05,
        garbage_rate=0.1, seed=11,
    )  # fmt: skip
    n = 1200
    async with FaultProxy(upstream, plan) as proxy:
        # one connection per request: a dropped connection must not poison the next request
        connector = aiohttp.TCPConnector(force_close=True, limit=32)
        async with aiohttp.ClientSession(connector=connector) as session:
            seen = Counter(await asyncio.gather(*(_classify(session, proxy.url, i) for i in range(n))))
        stats = proxy.statistics()
    counted = {
        "rpc_error": stats.rpc_errors, "http_5xx": stats.http_5xx, "rate_limited": stats.rate_limited,
        "drop": stats.drops, "garbage": stats.garbage, "pass": stats.forwarded,
    }  # fmt: skip
    assert counted == dict(seen) | {k: 0 for k in counted if k not in seen}
    assert stats.http_requests == n and stats.upstream_errors == 0
    for kind, count in seen.items():
        p = plan.rate(kind)  # type: ignore[arg-type]
        assert abs(count - n * p) <= 6 * math.sqrt(n * p * (1 - p)), (kind, count)


async def test_batch_errors_keep_every_id(upstream: str) -> None:
    async with FaultProxy(upstream, FaultPlan(rpc_error_rate=1.0)) as proxy, aiohttp.ClientSession() as session:
        batch: list[dict[str, object]] = [{"jsonrpc": "2.0", "id": i, "method": "echo", "params": []} for i in (4, 5)]
        async with session.post(proxy.url, json=batch) as resp:
            replies = orjson.loads(await resp.read())
    assert [r["id"] for r in replies] == [4, 5]
    assert all(r["error"]["code"] == -32603 for r in replies)


async def test_latency_is_added_and_plan_changes_at_run_time(upstream: str) -> None:
    async with FaultProxy(upstream) as proxy, aiohttp.ClientSession() as session:
        assert await _classify(session, proxy.url, 1) == "pass"
        proxy.set_plan(FaultPlan(latency_ms=200))
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await _classify(session, proxy.url, 2) == "pass"
        # a lower bound only: the proxy must wait at least the planned latency
        assert loop.time() - start >= 0.2
        proxy.set_plan(FaultPlan(http_5xx_rate=1.0))
        assert await _classify(session, proxy.url, 3) == "http_5xx"
        assert "5xx=1" in repr(proxy)


async def test_websocket_frames_pass_both_ways(upstream: str) -> None:
    async with FaultProxy(upstream) as proxy, aiohttp.ClientSession() as session:
        async with session.ws_connect(proxy.ws_url) as ws:
            await ws.send_str("hello")
            assert (await ws.receive(timeout=5)).data == "echo:hello"
            await ws.send_str("burst")
            assert [(await ws.receive(timeout=5)).data for _ in range(5)] == [f"push:{i}" for i in range(5)]
        stats = proxy.statistics()
    assert (stats.ws_connections, stats.ws_messages_to_node, stats.ws_messages_to_client) == (1, 2, 6)


async def test_websocket_is_dropped_after_n_messages(upstream: str) -> None:
    async with FaultProxy(upstream, FaultPlan(ws_drop_after=3)) as proxy, aiohttp.ClientSession() as session:
        async with session.ws_connect(proxy.ws_url) as ws:
            await ws.send_str("a")  # 1 up
            assert (await ws.receive(timeout=5)).data == "echo:a"  # 2 down
            await ws.send_str("b")  # 3 up: budget spent, the proxy closes
            msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        assert proxy.statistics().ws_drops == 1


async def test_websockets_are_dropped_on_command(upstream: str) -> None:
    async with FaultProxy(upstream) as proxy, aiohttp.ClientSession() as session:
        async with session.ws_connect(proxy.ws_url) as ws:
            await ws.send_str("x")
            assert (await ws.receive(timeout=5)).data == "echo:x"
            assert await proxy.drop_websockets() == 1
            msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        for _ in range(100):
            if proxy.statistics().ws_active == 0:
                break
            await asyncio.sleep(0.01)
        assert proxy.statistics().ws_active == 0


async def test_dead_upstream_is_a_502_not_a_hang() -> None:
    async with FaultProxy("http://127.0.0.1:9") as proxy, aiohttp.ClientSession() as session:
        async with session.post(proxy.url, json={"jsonrpc": "2.0", "id": 1, "method": "x", "params": []}) as resp:
            assert resp.status == 502
        assert proxy.statistics().upstream_errors == 1
