"""NodeRpc against a local aiohttp server: batching, error objects as values, garbage as a clear error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from harness.errors import HarnessError
from harness.node.jsonrpc import NodeRpc, NodeRpcError

Server = tuple[str, list[Any]]


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    bodies: list[Any] = []

    def answer(req: dict[str, Any]) -> dict[str, Any]:
        if req["method"] == "fail":
            return {"jsonrpc": "2.0", "id": req["id"], "error": {"code": -32000, "message": "nope", "data": "0x"}}
        return {"jsonrpc": "2.0", "id": req["id"], "result": req["params"]}

    async def handler(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        bodies.append(body)
        if isinstance(body, dict) and body["method"] == "garbage":
            return web.Response(body=b"<html>", content_type="text/html")
        if isinstance(body, dict) and body["method"] == "slow":
            await asyncio.sleep(1)
        if isinstance(body, dict) and body["method"] == "http500":
            return web.Response(status=500, text="boom")
        if isinstance(body, list):
            # Replies out of order and without the "skip" call: ids must be matched, not positions.
            replies = [answer(r) for r in reversed(body) if r["method"] != "skip"]
            return web.json_response(replies)
        return web.json_response(answer(body))

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", bodies
    await runner.cleanup()


async def test_call_returns_result_and_raises_node_errors(server: Server) -> None:
    url, _ = server
    async with NodeRpc(url) as rpc:
        assert await rpc.call("echo", [1, "a"]) == [1, "a"]
        with pytest.raises(NodeRpcError, match="nope") as info:
            await rpc.call("fail")
        assert (info.value.code, info.value.method) == (-32000, "fail")
        assert rpc.statistics().errors == 1


async def test_batch_splits_matches_ids_and_keeps_errors_as_values(server: Server) -> None:
    url, bodies = server
    async with NodeRpc(url, max_batch=3) as rpc:
        calls: list[tuple[str, list[Any]]] = [("echo", [i]) for i in range(7)]
        calls[2] = ("fail", [])
        calls[5] = ("skip", [])
        results = await rpc.batch(calls)
        assert [r for i, r in enumerate(results) if i not in (2, 5)] == [[0], [1], [3], [4], [6]]
        assert isinstance(results[2], NodeRpcError) and results[2].code == -32000
        assert isinstance(results[5], NodeRpcError) and "no reply" in results[5].message
        assert [len(b) for b in bodies] == [3, 3, 1]
        with pytest.raises(HarnessError, match="2 of 7 calls failed"):
            await rpc.batch_ok(calls)
        stats = rpc.statistics()
        assert (stats.requests, stats.http_posts, stats.max_batch) == (14, 6, 3)


async def test_garbage_and_http_errors_are_clear(server: Server) -> None:
    url, _ = server
    async with NodeRpc(url) as rpc:
        with pytest.raises(HarnessError, match="invalid JSON"):
            await rpc.call("garbage")
        with pytest.raises(HarnessError, match="HTTP 500"):
            await rpc.call("http500")


async def test_unreachable_node_names_the_url() -> None:
    async with NodeRpc("http://127.0.0.1:9", timeout=2) as rpc:
        with pytest.raises(HarnessError, match=r"127\.0\.0\.1:9: cannot reach"):
            await rpc.call("eth_chainId")
    assert "closed" in repr(rpc)


async def test_a_node_that_does_not_answer_times_out_clearly(server: Server) -> None:
    url, _ = server
    async with NodeRpc(url, timeout=0.2) as rpc:
        with pytest.raises(HarnessError, match=r"no answer within 0\.2 s"):
            await rpc.call("slow")
