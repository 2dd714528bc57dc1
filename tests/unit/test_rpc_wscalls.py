"""``WsCallTransport``: the RpcClient protocol over one WebSocket, against a small local server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from bot.rpc import codec
from bot.rpc.config import Timeouts
from bot.rpc.errors import InvalidResponse, NodeError, RpcTimeout, TransportError
from bot.rpc.wscalls import WsCallTransport, ws_url_for


class Node:
    """JSON-RPC over WebSocket: a few methods, a send mode, and a way to cut every socket."""

    def __init__(self) -> None:
        self.send_mode = "ok"  # ok | known | wrong
        self.sockets: set[web.WebSocketResponse] = set()
        self.frames = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/", self._handler)
        self._runner = web.AppRunner(app, shutdown_timeout=0.0, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = int(self._runner.addresses[0][1])
        return f"http://127.0.0.1:{self.port}"

    async def cut(self) -> None:
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.close()

    async def stop(self) -> None:
        await self.cut()
        if self._runner is not None:
            await self._runner.cleanup()

    def _answer(self, req: dict[str, Any]) -> dict[str, Any] | None:
        m, p = req["method"], req["params"]
        if m == "eth_blockNumber":
            return {"result": "0x10"}
        if m == "echo":
            return {"result": p[0]}
        if m == "bad":
            return {"error": {"code": -32000, "message": "execution reverted"}}
        if m == "silent":
            return None
        if m == "eth_sendRawTransaction":
            raw = bytes.fromhex(p[0][2:])
            if self.send_mode == "known":
                return {"error": {"code": -32000, "message": "already known"}}
            return {"result": "0x" + "ab" * 32 if self.send_mode == "wrong" else codec.tx_hash(raw)}
        return {"error": {"code": -32601, "message": f"method {m} not found"}}

    async def _handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.add(ws)
        async for msg in ws:
            self.frames += 1
            req = orjson.loads(msg.data)
            ans = self._answer(req)
            if ans is not None:
                await ws.send_str(orjson.dumps({"jsonrpc": "2.0", "id": req["id"], **ans}).decode())
        self.sockets.discard(ws)
        return ws


@pytest.fixture
async def node() -> AsyncIterator[tuple[Node, str]]:
    n = Node()
    url = await n.start()
    yield n, url
    await n.stop()


@pytest.mark.parametrize(("http", "ws"), [
    ("http://127.0.0.1:8545", "ws://127.0.0.1:8545"),
    ("https://node.example/v3/key?x=1", "wss://node.example/v3/key?x=1"),
    ("ws://h:1/p", "ws://h:1/p"),
])
def test_ws_url_keeps_host_port_path_and_query(http: str, ws: str) -> None:
    assert ws_url_for(http) == ws


def test_ws_url_names_a_bad_scheme() -> None:
    with pytest.raises(ValueError, match="expected an http"):
        ws_url_for("ftp://h/")


async def test_calls_and_a_batch_keep_results_and_node_errors_per_call(node: tuple[Node, str]) -> None:
    n, url = node
    t = WsCallTransport(url)
    try:
        assert await t.call("eth_blockNumber") == "0x10"
        frames = n.frames
        out = await t.batch([("echo", [1]), ("bad", []), ("echo", ["x"])])
        assert n.frames - frames == 3  # one frame per call
        assert out[0] == 1 and out[2] == "x"
        assert isinstance(out[1], NodeError) and out[1].code == -32000
        with pytest.raises(NodeError):
            await t.call("bad")
        assert "calls=5" in repr(t)
    finally:
        await t.aclose()
    with pytest.raises(TransportError, match="closed"):
        await t.call("eth_blockNumber")


async def test_a_silent_node_times_the_call_out_and_a_batch_fails_whole(node: tuple[Node, str]) -> None:
    _, url = node
    t = WsCallTransport(url)
    try:
        with pytest.raises(RpcTimeout):
            await t.call("silent", timeout=0.2)
        # A transport-level failure is not a per-call answer: the pool must see it to fail over.
        with pytest.raises(RpcTimeout):
            await t.batch([("echo", [1]), ("silent", [])], timeout=0.2)
    finally:
        await t.aclose()


async def test_sends_hash_locally_accept_already_known_and_reject_a_wrong_hash(node: tuple[Node, str]) -> None:
    n, url = node
    raw = bytes.fromhex("02f86b827a6980843b9aca00850ba43b740082520894") + b"\x01" * 20
    t = WsCallTransport(url)
    try:
        assert await t.send_raw_transaction(raw) == codec.tx_hash(raw)
        n.send_mode = "known"
        assert await t.send_raw_transaction(raw) == codec.tx_hash(raw) and t.already_known == 1
        n.send_mode = "wrong"
        with pytest.raises(InvalidResponse, match="local keccak"):
            await t.send_raw_transaction(raw)
    finally:
        await t.aclose()


async def test_a_cut_socket_fails_calls_fast_then_reconnects(node: tuple[Node, str]) -> None:
    n, url = node
    t = WsCallTransport(url, Timeouts(connect=2.0, read=2.0, total=2.0))
    try:
        assert await t.call("echo", [1]) == 1
        await n.cut()
        # While it reconnects a call fails with TransportError (the pool's cue to fail over),
        # never hangs; once reconnected calls go through again.
        ok = False
        async with asyncio.timeout(20):
            while not ok:
                try:
                    ok = await t.call("echo", [2], timeout=1.0) == 2
                except TransportError:
                    await asyncio.sleep(0.02)
        assert t.statistics().reconnects >= 1
    finally:
        await t.aclose()


async def test_a_node_that_is_not_there_fails_with_transport_error() -> None:
    from harness.run.options import free_port

    t = WsCallTransport(f"http://127.0.0.1:{free_port()}", Timeouts(connect=1.0, read=1.0, total=1.0))
    try:
        with pytest.raises(TransportError):
            await t.call("eth_blockNumber")
        with pytest.raises(TransportError):  # and again: a failed first connect is retried, not cached
            await t.call("eth_blockNumber")
    finally:
        await t.aclose()
