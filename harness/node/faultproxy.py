"""A reverse proxy between the bot and its node that injects faults: the thin async shell.

HTTP JSON-RPC: each request gets one ``FaultDecider`` decision (added latency, then pass or
one fault). Faults are answered by the proxy itself; the upstream never sees the request:
- ``rpc_error``: HTTP 200 with a JSON-RPC error object per call (ids kept, batches too);
- ``http_5xx``: 503; ``rate_limited``: 429 with ``Retry-After``;
- ``drop``: the connection is closed with no response;
- ``garbage``: HTTP 200 with a body that is not JSON.
WebSocket (same port, ``GET`` with an upgrade, like anvil): frames pass both ways, each
delayed by a latency draw; a connection is closed after ``ws_drop_after`` messages, or at
once on ``drop_websockets()``. ``set_plan`` changes the plan at run time (a fresh RNG).
Binds 127.0.0.1 only. ``statistics()`` counts everything it injected, so a run can report
what the bot was exposed to next to what the bot reported.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import WSMsgType, web

from harness.errors import HarnessError
from harness.node.faultplan import FaultDecider, FaultPlan

GARBAGE_BODY = b"\x00<html>proxy garbage{"
INJECTED_ERROR = {"code": -32603, "message": "injected fault (fault proxy)"}


@dataclass(frozen=True)
class FaultProxyStatistics:
    http_requests: int
    forwarded: int
    rpc_errors: int
    http_5xx: int
    rate_limited: int
    drops: int
    garbage: int
    upstream_errors: int
    ws_connections: int
    ws_active: int
    ws_messages_to_node: int
    ws_messages_to_client: int
    ws_drops: int
    max_connections: int


class FaultProxy:
    """``async with FaultProxy(upstream_url, plan) as proxy:`` then point the bot at ``proxy.url``."""

    def __init__(self, upstream: str, plan: FaultPlan | None = None, *, max_connections: int = 256) -> None:
        if not upstream.startswith(("http://", "https://")):
            raise HarnessError(f"fault proxy upstream {upstream!r} must be an http(s) URL")
        self.upstream = upstream.rstrip("/")
        self._decider = FaultDecider(plan or FaultPlan())
        self._max_connections = max_connections
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._port: int | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._counts = dict.fromkeys(
            ("http_requests", "forwarded", "rpc_errors", "http_5xx", "rate_limited", "drops", "garbage",
             "upstream_errors", "ws_connections", "ws_messages_to_node", "ws_messages_to_client", "ws_drops"),
            0,
        )  # fmt: skip

    # -- surface ---------------------------------------------------------------------------------
    @property
    def plan(self) -> FaultPlan:
        return self._decider.plan

    def set_plan(self, plan: FaultPlan) -> None:
        self._decider = FaultDecider(plan)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._require_port()}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self._require_port()}"

    def statistics(self) -> FaultProxyStatistics:
        return FaultProxyStatistics(**self._counts, ws_active=len(self._sockets), max_connections=self._max_connections)

    def __repr__(self) -> str:
        where = f"127.0.0.1:{self._port}" if self._port else "not started"
        return f"<FaultProxy {where} -> {self.upstream} plan='{self.plan}' ws_active={len(self._sockets)}>"

    def _require_port(self) -> int:
        if self._port is None:
            raise HarnessError("fault proxy is not started; use `async with FaultProxy(...)`")
        return self._port

    async def drop_websockets(self) -> int:
        """Close every open WebSocket now (as a node restart would); returns how many."""
        sockets = list(self._sockets)
        for ws in sockets:
            self._counts["ws_drops"] += 1
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"dropped by fault proxy")
        return len(sockets)

    # -- lifecycle -------------------------------------------------------------------------------
    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._max_connections)
        self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- HTTP ------------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        self._counts["http_requests"] += 1
        body = await request.read()
        decision = self._decider.decide()
        if decision.delay_s > 0:
            await asyncio.sleep(decision.delay_s)
        kind = decision.kind
        if kind == "drop":
            self._counts["drops"] += 1
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError  # aiohttp ends the handler quietly; the client sees a disconnect
        if kind == "http_5xx":
            self._counts["http_5xx"] += 1
            return web.Response(status=503, text="injected 503 (fault proxy)")
        if kind == "rate_limited":
            self._counts["rate_limited"] += 1
            retry = f"{self.plan.retry_after_s:g}"
            return web.Response(status=429, text="injected 429 (fault proxy)", headers={"Retry-After": retry})
        if kind == "garbage":
            self._counts["garbage"] += 1
            return web.Response(status=200, body=GARBAGE_BODY, content_type="application/json")
        if kind == "rpc_error":
            self._counts["rpc_errors"] += 1
            return web.Response(status=200, body=_error_reply(body), content_type="application/json")
        return await self._forward(request, body)

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        assert self._session is not None
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        try:
            async with self._session.request(
                request.method, self.upstream + request.rel_url.path_qs, data=body, headers=headers
            ) as resp:
                payload = await resp.read()
                self._counts["forwarded"] += 1
                return web.Response(status=resp.status, body=payload, content_type=resp.content_type)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._counts["upstream_errors"] += 1
            return web.Response(status=502, text=f"fault proxy: upstream failed: {exc}")

    # -- WebSocket -------------------------------------------------------------------------------
    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        assert self._session is not None
        client = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024)
        await client.prepare(request)
        self._counts["ws_connections"] += 1
        ws_upstream = "ws" + self.upstream.removeprefix("http") + request.rel_url.path_qs
        try:
            node = await self._session.ws_connect(ws_upstream, max_msg_size=64 * 1024 * 1024)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._counts["upstream_errors"] += 1
            await client.close(code=aiohttp.WSCloseCode.TRY_AGAIN_LATER, message=str(exc)[:100].encode())
            return client
        self._sockets.add(client)
        budget = [self.plan.ws_drop_after]  # shared by both directions: "after N messages"
        try:
            pumps = [
                asyncio.create_task(self._pump(client, node, "ws_messages_to_node", budget, client)),
                asyncio.create_task(self._pump(node, client, "ws_messages_to_client", budget, client)),
            ]
            _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            self._sockets.discard(client)
            await node.close()
            await client.close()
        return client

    async def _pump(
        self,
        source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        counter: str,
        budget: list[int | None],
        client: web.WebSocketResponse,
    ) -> None:
        async for msg in source:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            delay = self._decider.delay()
            if delay > 0:
                await asyncio.sleep(delay)
            if msg.type == WSMsgType.TEXT:
                await sink.send_str(msg.data)
            else:
                await sink.send_bytes(msg.data)
            self._counts[counter] += 1
            if budget[0] is not None:
                budget[0] -= 1
                if budget[0] <= 0:
                    self._counts["ws_drops"] += 1
                    await client.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"dropped by fault proxy")
                    return


def _error_reply(body: bytes) -> bytes:
    """A JSON-RPC error for each call in the request, ids kept (null when unreadable)."""
    try:
        req: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        req = None
    if isinstance(req, list):
        return orjson.dumps(
            [
                {"jsonrpc": "2.0", "id": r.get("id") if isinstance(r, dict) else None, "error": INJECTED_ERROR}
                for r in req
            ]
        )
    rid = req.get("id") if isinstance(req, dict) else None
    return orjson.dumps({"jsonrpc": "2.0", "id": rid, "error": INJECTED_ERROR})
