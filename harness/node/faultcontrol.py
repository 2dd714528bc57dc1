"""The fault proxy's control API: change the faults of a running proxy, read what it injected.

Served on its own port (``FaultProxy.control_url``, 127.0.0.1 only), so no JSON-RPC path can reach
it and it stays up while the proxied endpoint is in an outage. No authentication: it is a test
tool on loopback, like anvil's own ``anvil_*`` methods.

- ``GET  /_proxy/plan``: ``{"plan", "t", "outage", "schedule"}``
- ``POST /_proxy/plan``: the body is a plan's text form; 400 ``{"error"}`` names the key and the fix
- ``POST /_proxy/outage/start[?seconds=S]``: down now (for S seconds, else until stopped)
- ``POST /_proxy/outage/stop``: ends an outage started here (a window of the plan still holds)
- ``POST /_proxy/websockets/drop``: closes every open WebSocket, ``{"dropped": n}``
- ``GET  /_proxy/log?since=SEQ&limit=N``: ``{"entries": [...], "next": seq, "evicted": n, "counts": {...}}``
- ``GET  /_proxy/stats``: ``FaultProxy.statistics()`` as JSON
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from harness.errors import ConfigError, HarnessError
from harness.node.faultplan import FaultPlan

if TYPE_CHECKING:
    from harness.node.faultproxy import FaultProxy

MAX_LOG_PAGE = 5000


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc, default=repr), content_type="application/json")


def _bad(message: str) -> web.Response:
    return _json({"error": message}, status=400)


def control_app(proxy: FaultProxy) -> web.Application:
    async def plan_get(_: web.Request) -> web.Response:
        return _json({"plan": str(proxy.plan), "t": proxy.elapsed(), "outage": proxy.in_outage(),
                      "schedule": str(proxy.schedule)})

    async def plan_post(request: web.Request) -> web.Response:
        text = (await request.text()).strip()
        try:
            plan = FaultPlan.parse(text)
        except ConfigError as exc:
            return _bad(str(exc))
        proxy.set_plan(plan, source="control API")
        return _json({"plan": str(plan), "t": proxy.elapsed()})

    async def outage_start(request: web.Request) -> web.Response:
        raw = request.query.get("seconds")
        try:
            seconds = None if raw is None else float(raw)
            proxy.start_outage(seconds)
        except (ValueError, HarnessError):
            return _bad(f"seconds={raw!r}: give a number of seconds > 0, or leave it out for an outage until "
                        "POST /_proxy/outage/stop")
        return _json({"outage": True, "t": proxy.elapsed(), "seconds": seconds})

    async def outage_stop(_: web.Request) -> web.Response:
        proxy.stop_outage()
        return _json({"outage": proxy.in_outage(), "t": proxy.elapsed()})

    async def websockets_drop(_: web.Request) -> web.Response:
        return _json({"dropped": await proxy.drop_websockets("control API")})

    async def log_get(request: web.Request) -> web.Response:
        try:
            since = int(request.query.get("since", "0"))
            limit = int(request.query.get("limit", "1000"))
        except ValueError:
            return _bad("since and limit are integers: GET /_proxy/log?since=SEQ&limit=N")
        if not 1 <= limit <= MAX_LOG_PAGE:
            return _bad(f"limit={limit}: give 1..{MAX_LOG_PAGE}")
        entries = proxy.log.since(since, limit)
        nxt = entries[-1].seq + 1 if entries else max(since, proxy.log.total)
        return _json({"entries": [e.to_json() for e in entries], "next": nxt, "evicted": proxy.log.evicted,
                      "counts": proxy.log.counts(), "t": proxy.elapsed()})

    async def stats_get(_: web.Request) -> web.Response:
        return _json(dataclasses.asdict(proxy.statistics()))

    app = web.Application(client_max_size=64 * 1024)
    app.router.add_get("/_proxy/plan", plan_get)
    app.router.add_post("/_proxy/plan", plan_post)
    app.router.add_post("/_proxy/outage/start", outage_start)
    app.router.add_post("/_proxy/outage/stop", outage_stop)
    app.router.add_post("/_proxy/websockets/drop", websockets_drop)
    app.router.add_get("/_proxy/log", log_get)
    app.router.add_get("/_proxy/stats", stats_get)
    return app
