"""Scriptable JSON-RPC servers on 127.0.0.1 for the rpc tests (HTTP; WebSocket in ``FakeWsNode``).

``FakeNode`` answers a few methods like a node would; a test queues one-shot misbehaviours
(``node.script.append(status(503))``) that are consumed one per HTTP request, in order.
``FakeWsNode`` is an in-memory chain behind a WebSocket: ``mine()`` makes a block and pushes
newHeads/logs to the subscribers; ``drop_all()`` cuts every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from eth_hash.auto import keccak

Behaviour = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


def status(code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Behaviour:
    async def behave(_request: web.Request, _body: bytes) -> web.StreamResponse:
        return web.Response(status=code, body=body, headers=headers)

    return behave


def garbage(body: bytes) -> Behaviour:
    return status(200, body, {"Content-Type": "application/json"})


def slow(seconds: float) -> Behaviour:
    async def behave(request: web.Request, body: bytes) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.Response(status=200, body=b"{}")

    return behave


def drop() -> Behaviour:
    async def behave(request: web.Request, _body: bytes) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=200)

    return behave


def node_error(code: int, message: str) -> Behaviour:
    async def behave(_request: web.Request, body: bytes) -> web.StreamResponse:
        rid = orjson.loads(body)["id"]
        payload = {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    return behave


class FakeNode:
    """A tiny JSON-RPC HTTP server. Not a chain: just enough answers to test a client."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.script: deque[Behaviour] = deque()
        self.requests = 0
        self.methods: list[str] = []
        self.delay = 0.0
        self.known_txs: set[str] = set()
        self.peers: set[tuple[str, int]] = set()  # client sockets seen: tells keep-alive reuse
        self.bytes_in = 0  # request line + headers + body, as the server parsed them
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/", self._handle)
        # shutdown_timeout 0: stop() behaves like a crash, cutting in-flight requests.
        self._runner = web.AppRunner(app, shutdown_timeout=0.0, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if request.transport is not None:
            self.peers.add(request.transport.get_extra_info("peername"))
        body = await request.read()
        self.bytes_in += len(f"{request.method} {request.raw_path} HTTP/1.1\r\n") + len(body) + 2
        self.bytes_in += sum(len(k) + len(v) + 4 for k, v in request.raw_headers)
        if self.script:
            return await self.script.popleft()(request, body)
        if self.delay:
            await asyncio.sleep(self.delay)
        payload = orjson.loads(body)
        if isinstance(payload, list):
            answer: Any = [self._answer(p) for p in payload]
        else:
            answer = self._answer(payload)
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    def _answer(self, req: dict[str, Any]) -> dict[str, Any]:
        method, params, rid = req["method"], req["params"], req["id"]
        self.methods.append(method)
        if method == "eth_blockNumber":
            return {"jsonrpc": "2.0", "id": rid, "result": "0x10"}
        if method == "echo":
            return {"jsonrpc": "2.0", "id": rid, "result": params}
        if method == "eth_sendRawTransaction":
            tx_hash = "0x" + keccak(bytes.fromhex(params[0][2:])).hex()
            if tx_hash in self.known_txs:
                return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32000, "message": "already known"}}
            self.known_txs.add(tx_hash)
            return {"jsonrpc": "2.0", "id": rid, "result": tx_hash}
        if method == "eth_getTransactionByHash":
            found = {"hash": params[0]} if params[0] in self.known_txs else None
            return {"jsonrpc": "2.0", "id": rid, "result": found}
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"method {method} not found"}}


class FakeWsNode:
    """An in-memory chain behind a JSON-RPC WebSocket (and HTTP POST) on 127.0.0.1."""

    def __init__(self) -> None:
        self.blocks: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.port = 0
        self.connections = 0
        self.subscribe_calls = 0
        self.requests: list[str] = []
        self.log_queries: list[dict[str, Any]] = []
        # Some nodes push the current head right after eth_subscribe: a natural duplicate source.
        self.push_head_on_subscribe = False
        self._sockets: set[web.WebSocketResponse] = set()
        self._subs: dict[web.WebSocketResponse, dict[str, str]] = {}
        self._sub_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._make_block()  # genesis

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def head(self) -> int:
        return len(self.blocks) - 1

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/", self._ws_handler)
        self._runner = web.AppRunner(app, shutdown_timeout=0.0, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.url

    async def stop(self) -> None:
        await self.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def drop_all(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        self._sockets.clear()
        self._subs.clear()

    def _make_block(self, n_logs: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        number = len(self.blocks)
        block_hash = "0x" + keccak(number.to_bytes(8, "big")).hex()
        block = {"number": hex(number), "hash": block_hash, "parentHash": "0x00", "transactions": []}
        self.blocks.append(block)
        new_logs = [
            {"blockNumber": hex(number), "blockHash": block_hash, "logIndex": hex(i), "address": "0xpool", "data": "0x"}
            for i in range(n_logs)
        ]
        self.logs.extend(new_logs)
        return block, new_logs

    async def mine(self, n_logs: int = 0) -> dict[str, Any]:
        """A new block (with ``n_logs`` logs), pushed to every live subscription."""
        block, new_logs = self._make_block(n_logs)
        for ws, subs in list(self._subs.items()):
            for sid, kind in list(subs.items()):
                items = [block] if kind == "newHeads" else new_logs
                for item in items:
                    params = {"subscription": sid, "result": item}
                    msg = {"jsonrpc": "2.0", "method": "eth_subscription", "params": params}
                    if not ws.closed:
                        with contextlib.suppress(ConnectionError):
                            await ws.send_str(orjson.dumps(msg).decode())
        return block

    async def push_raw(self, data: str) -> None:
        for ws in list(self._sockets):
            await ws.send_str(data)

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        self._sockets.add(ws)
        self._subs[ws] = {}
        async for msg in ws:
            req = orjson.loads(msg.data)
            result = self.answer(req["method"], req["params"], ws)
            await ws.send_str(orjson.dumps({"jsonrpc": "2.0", "id": req["id"], "result": result}).decode())
            if req["method"] == "eth_subscribe" and req["params"][0] == "newHeads" and self.push_head_on_subscribe:
                params = {"subscription": result, "result": self.blocks[-1]}
                push = {"jsonrpc": "2.0", "method": "eth_subscription", "params": params}
                await ws.send_str(orjson.dumps(push).decode())
        self._sockets.discard(ws)
        self._subs.pop(ws, None)
        return ws

    def answer(self, method: str, params: list[Any], ws: web.WebSocketResponse | None = None) -> Any:
        self.requests.append(method)
        if method == "eth_subscribe":
            assert ws is not None
            self.subscribe_calls += 1
            sid = hex(next(self._sub_ids))
            self._subs.setdefault(ws, {})[sid] = params[0]
            return sid
        if method == "eth_blockNumber":
            return hex(self.head)
        if method == "eth_getBlockByNumber":
            n = int(params[0], 16)
            return self.blocks[n] if n <= self.head else None
        if method == "eth_getLogs":
            self.log_queries.append(params[0])
            lo, hi = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
            return [log for log in self.logs if lo <= int(log["blockNumber"], 16) <= hi]
        raise AssertionError(f"FakeWsNode: unexpected method {method}")
