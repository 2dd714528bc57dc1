"""A reverse proxy between the bot and its node that injects faults: the thin async shell.

HTTP JSON-RPC: each request gets one ``FaultDecider`` decision (added latency, then pass or one
fault; ``harness.node.faultplan`` lists them). Faults before forwarding are answered by the proxy
itself and the upstream never sees the request:
- ``rpc_error``: HTTP 200 with a JSON-RPC error object per call (ids kept, batches too);
- ``http_5xx``: 503; ``rate_limited``: 429 with ``Retry-After``;
- ``drop``: the connection is closed with no response;
- ``garbage``: HTTP 200 with a body that is not JSON.
Faults after forwarding reach the node first, so the node did the work (a send is in its pool)
and the client cannot tell: ``loss`` (the reply is dropped, connection closed), ``slow`` (the body
trickles out), ``truncate`` (cut mid-body), ``oversize`` (padded past a size), ``shape`` (valid
JSON of the wrong shape, ``harness.node.faultshapes``). During an ``outage`` every request and
WebSocket handshake is closed unanswered and open WebSockets are dropped.
WebSocket (same port, ``GET`` with an upgrade, like anvil; ``harness.node.faultws``): frames pass
both ways, each delayed by half a latency draw and kept in order; ``wsgarbage`` injects a non-JSON
text or binary frame before a frame to the client; a connection is closed after ``ws_drop_after``
messages, or at once on ``drop_websockets()``.

At run time the plan changes by ``set_plan`` (a fresh RNG), by a ``FaultSchedule`` of ``(t, plan)``
changes, and through the control API (``harness.node.faultcontrol``, its own port: ``control_url``).
Every injection goes to ``log`` (``harness.node.faultlog``: bounded, counted, optionally a
``faults.jsonl``); ``statistics()`` has the counts. A ``watch`` callback (the chaos scenarios') sees
every HTTP request: ``(arrived, answered, status)`` in ``time.monotonic()`` seconds, status 0 when
the connection was closed unanswered. Binds 127.0.0.1 only. It never follows an
upstream redirect (HTTP or WebSocket handshake): that is a 502 naming only the target's host.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bot.redact import host_of, redact_text, redact_url
from harness.errors import HarnessError
from harness.node import faultbody as body_
from harness.node.faultbody import GARBAGE_BODY, INJECTED_ERROR, error_reply
from harness.node.faultlog import InjectionLog, RequestInfo, describe
from harness.node.faultplan import AFTER_FORWARD, FaultDecider, FaultKind, FaultPlan, FrameDecision
from harness.node.faultschedule import FaultSchedule
from harness.node.faultshapes import wrong_shape
from harness.node.faultws import WsRelay

MAX_BODY = 64 * 1024 * 1024
Watch = Callable[[float, float, int], None]  # (arrived, answered, HTTP status or 0), monotonic seconds

__all__ = ["GARBAGE_BODY", "INJECTED_ERROR", "FaultProxy", "FaultProxyStatistics", "UpstreamRedirect"]


@dataclass(frozen=True)
class FaultProxyStatistics:
    http_requests: int
    forwarded: int  # requests the upstream answered (a reply spoiled afterwards included)
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
    loss: int = 0
    outages: int = 0  # requests and handshakes refused while down
    slow: int = 0
    truncated: int = 0
    oversized: int = 0
    wrong_shape: int = 0
    ws_garbage: int = 0
    injected: Mapping[str, int] = field(default_factory=dict)  # every log entry by kind (plan changes too)


def _watching(watch: Watch) -> Middleware:
    @web.middleware
    async def watched(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        arrived, status = time.monotonic(), 0
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:  # a reply closed unanswered (loss, drop, outage) leaves by CancelledError: status 0
            watch(arrived, time.monotonic(), status)

    return watched


class UpstreamRedirect(aiohttp.ClientError):
    """The upstream answered 3xx; raised inside aiohttp before it would follow the redirect."""


async def _refuse_redirects(request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
                            ) -> aiohttp.ClientResponse:
    # A session middleware because ws_connect has no allow_redirects of its own.
    response = await handler(request)
    if 300 <= response.status < 400:
        target = host_of(response.headers.get("Location"))
        response.close()
        raise UpstreamRedirect(f"upstream answered HTTP {response.status}, a redirect to {target}; not followed")
    return response


class FaultProxy:
    """``async with FaultProxy(upstream_url, plan) as proxy:`` then point the bot at ``proxy.url``."""

    def __init__(self, upstream: str, plan: FaultPlan | None = None, *, schedule: FaultSchedule | None = None,
                 max_connections: int = 256, log_size: int = 10_000, log_path: Path | None = None,
                 control: bool = True, watch: Watch | None = None) -> None:
        if not upstream.startswith(("http://", "https://")):
            raise HarnessError(f"fault proxy upstream {redact_url(upstream)!r} must be an http(s) URL")
        self.upstream = upstream.rstrip("/")
        self.schedule = schedule or FaultSchedule()
        self.log = InjectionLog(log_size, log_path)
        self._decider = FaultDecider(plan or FaultPlan())
        self._max_connections = max_connections
        self._control = control
        self._watch = watch
        self._runners: list[web.AppRunner] = []
        self._session: aiohttp.ClientSession | None = None
        self._port: int | None = None
        self._control_port: int | None = None
        self._t0: float | None = None
        self._driver: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._next_change = 0
        self._manual_until: float | None = None  # an outage started through the API, until this proxy time
        self._down = False
        self._sockets: set[web.WebSocketResponse] = set()
        self._tasks: set[asyncio.Task[int]] = set()
        self._counts = dict.fromkeys(("http_requests", "forwarded", "upstream_errors", "ws_connections",
                                      "ws_messages_to_node", "ws_messages_to_client"), 0)

    # -- surface ---------------------------------------------------------------------------------
    @property
    def plan(self) -> FaultPlan:
        return self._decider.plan

    def set_plan(self, plan: FaultPlan, *, source: str = "set") -> None:
        self._decider = FaultDecider(plan)
        self.log.add(self.elapsed(), "plan", detail=f"{source}: {plan}")
        self._wake.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._require(self._port)}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self._require(self._port)}"

    @property
    def control_url(self) -> str:
        """The control API (``harness.node.faultcontrol``), on its own port so it cannot meet JSON-RPC."""
        return f"http://127.0.0.1:{self._require(self._control_port)}/_proxy"

    def elapsed(self) -> float:
        """Seconds since the proxy started: the clock of outage windows and schedules."""
        return 0.0 if self._t0 is None else time.monotonic() - self._t0

    def in_outage(self, t: float | None = None) -> bool:
        t = self.elapsed() if t is None else t
        return self.plan.in_outage(t) or (self._manual_until is not None and t < self._manual_until)

    def start_outage(self, seconds: float | None = None) -> None:
        """Down now, for ``seconds`` (None: until ``stop_outage``)."""
        if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
            raise HarnessError(f"outage seconds must be a finite number > 0, got {seconds!r}")
        self._manual_until = math.inf if seconds is None else self.elapsed() + seconds
        self._wake.set()

    def stop_outage(self) -> None:
        """Ends an outage started by ``start_outage`` (a window of the plan still holds)."""
        self._manual_until = None
        self._wake.set()

    def statistics(self) -> FaultProxyStatistics:
        n = self.log.counts()
        return FaultProxyStatistics(
            **self._counts, rpc_errors=n.get("rpc_error", 0), http_5xx=n.get("http_5xx", 0),
            rate_limited=n.get("rate_limited", 0), drops=n.get("drop", 0), garbage=n.get("garbage", 0),
            ws_active=len(self._sockets), ws_drops=n.get("ws_drop", 0), max_connections=self._max_connections,
            loss=n.get("loss", 0), outages=n.get("outage", 0), slow=n.get("slow", 0), truncated=n.get("truncate", 0),
            oversized=n.get("oversize", 0), wrong_shape=n.get("shape", 0), ws_garbage=n.get("ws_garbage", 0),
            injected=n,
        )  # fmt: skip

    def __repr__(self) -> str:
        where = f"127.0.0.1:{self._port}" if self._port else "not started"
        down = " DOWN" if self._t0 is not None and self._down else ""
        return (f"<FaultProxy {where}{down} -> {redact_url(self.upstream)} plan='{self.plan}' "
                f"schedule={len(self.schedule)} changes ws_active={len(self._sockets)} injected={self.log.total}>")

    @staticmethod
    def _require(port: int | None) -> int:
        if port is None:
            raise HarnessError("fault proxy is not started; use `async with FaultProxy(...)`")
        return port

    async def drop_websockets(self, reason: str = "command") -> int:
        """Close every open WebSocket now (as a node restart would); returns how many."""
        sockets = list(self._sockets)
        for ws in sockets:
            self.log.add(self.elapsed(), "ws_drop", RequestInfo("websocket"), detail=reason)
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
        self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60),
                                              middlewares=(_refuse_redirects,))
        # Only a watched proxy pays for the middleware.
        app = web.Application(client_max_size=MAX_BODY, middlewares=(_watching(self._watch),) if self._watch else ())
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._port = await self._serve(app)
        if self._control:
            from harness.node.faultcontrol import control_app

            self._control_port = await self._serve(control_app(self))
        self._t0 = time.monotonic()  # not the loop's clock: set_plan may be called with no loop running
        self._driver = asyncio.create_task(self._drive(), name="fault-proxy-clock")

    async def _serve(self, app: web.Application) -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
            self._driver = None
        for task in list(self._tasks):
            task.cancel()
        for ws in list(self._sockets):
            await ws.close()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.log.close()

    async def _drive(self) -> None:
        """The proxy's clock: applies scheduled plans, and notes (and acts on) each outage edge when it comes."""
        while True:
            self._wake.clear()
            t = self.elapsed()
            changes = self.schedule.changes
            while self._next_change < len(changes) and changes[self._next_change][0] <= t:
                self.set_plan(changes[self._next_change][1], source=f"schedule at {changes[self._next_change][0]:g}s")
                self._next_change += 1
            down = self.in_outage(t)
            if down != self._down:
                self._down = down
                self.log.add(t, "outage_start" if down else "outage_end")
                if down:  # in a task: a client slow to answer the close must not hold up the clock
                    task = asyncio.create_task(self.drop_websockets("outage"))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            manual = self._manual_until if self._manual_until is not None and self._manual_until > t else None
            edges = [e for e in (self.schedule.next_change(t), self.plan.next_outage_edge(t), manual)
                     if e is not None and math.isfinite(e)]
            timeout = max(0.0, min(edges) - self.elapsed()) if edges else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    # -- HTTP ------------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        self._counts["http_requests"] += 1
        body = await request.read()
        t = self.elapsed()
        if self.in_outage(t):
            self.log.add(t, "outage", describe(body))
            body_.close_without_reply(request)
        decider = self._decider  # a plan change mid-request does not re-decide this one
        decision = decider.decide()  # drawn for every request, so ``only`` leaves the other draws as they were
        if decision.delay_s > 0:
            await asyncio.sleep(decision.delay_s)
        kind = decision.kind if decider.plan.applies_to(body) else "pass"
        if kind != "pass" and kind not in AFTER_FORWARD:
            return self._answer_instead(kind, request, body)
        reply = await self._forward(request, body)
        if isinstance(reply, web.Response):  # the upstream failed: a 502, nothing of the node's to spoil
            return reply
        if kind == "pass":
            return web.Response(status=reply[0], body=reply[1], content_type=reply[2])
        return await self._spoil(kind, request, body, reply, decider)

    def _answer_instead(self, kind: FaultKind, request: web.Request, body: bytes) -> web.Response:
        self.log.add(self.elapsed(), kind, describe(body))
        if kind == "drop":
            body_.close_without_reply(request)
        if kind == "http_5xx":
            return web.Response(status=503, text="injected 503 (fault proxy)")
        if kind == "rate_limited":
            retry = f"{self.plan.retry_after_s:g}"
            return web.Response(status=429, text="injected 429 (fault proxy)", headers={"Retry-After": retry})
        if kind == "garbage":
            return web.Response(status=200, body=GARBAGE_BODY, content_type="application/json")
        return web.Response(status=200, body=error_reply(body), content_type="application/json")

    async def _spoil(self, kind: FaultKind, request: web.Request, body: bytes, reply: tuple[int, bytes, str],
                     decider: FaultDecider) -> web.StreamResponse:
        status, payload, ctype = reply
        info = describe(body)
        plan = decider.plan
        if kind == "shape":
            shaped = wrong_shape(info.methods or {}, payload, decider.shape_rng)
            if shaped is None:  # nothing to reshape (an error reply): it passes as it came
                return web.Response(status=status, body=payload, content_type=ctype)
            self.log.add(self.elapsed(), kind, info, detail=shaped[1])
            return web.Response(status=status, body=shaped[0], content_type=ctype)
        self.log.add(self.elapsed(), kind, info, detail=f"upstream answered HTTP {status}, {len(payload)} bytes")
        if kind == "loss":
            body_.close_without_reply(request)
        if kind == "slow":
            return await body_.send_slowly(request, status, payload, ctype, plan.slow_ms / 1e3)
        if kind == "truncate":
            await body_.send_truncated(request, status, payload, ctype)
        return await body_.send_padded(request, status, payload, ctype, plan.oversize_bytes)

    async def _forward(self, request: web.Request, body: bytes) -> tuple[int, bytes, str] | web.Response:
        assert self._session is not None
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        try:
            async with self._session.request(
                request.method, self.upstream + request.rel_url.path_qs, data=body, headers=headers,
                allow_redirects=False,
            ) as resp:
                payload = await resp.read()
                self._counts["forwarded"] += 1
                return resp.status, payload, resp.content_type
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._counts["upstream_errors"] += 1
            return web.Response(status=502, text=f"fault proxy: upstream failed: {redact_text(str(exc))}")

    # -- WebSocket -------------------------------------------------------------------------------
    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        assert self._session is not None
        t = self.elapsed()
        if self.in_outage(t):
            self.log.add(t, "outage", RequestInfo("websocket"))
            body_.close_without_reply(request)
        client = web.WebSocketResponse(max_msg_size=MAX_BODY)
        await client.prepare(request)
        self._counts["ws_connections"] += 1
        ws_upstream = "ws" + self.upstream.removeprefix("http") + request.rel_url.path_qs
        try:
            node = await self._session.ws_connect(ws_upstream, max_msg_size=MAX_BODY)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._counts["upstream_errors"] += 1
            await client.close(code=aiohttp.WSCloseCode.TRY_AGAIN_LATER, message=redact_text(str(exc))[:100].encode())
            return client
        self._sockets.add(client)
        relay = WsRelay(client, node, self._frame, self.log, self.elapsed, self._counts, self.plan.ws_drop_after)
        try:
            await relay.run()
        finally:
            self._sockets.discard(client)
            await node.close()
            await client.close()
        return client

    def _frame(self, to_client: bool) -> FrameDecision:
        return self._decider.frame(to_client)  # the plan of the moment, not of the connection's start
