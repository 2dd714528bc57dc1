"""The sharded bot's public control API: the single bot's endpoints, answered for all shards at once.

- ``GET /health``: 200 only while every shard is healthy (from each link's newest poll); 503 names each
  failing shard and its reasons.
- ``GET /stats?since=SEQ``: the children's intervals merged (``merge.IntervalAligner``), with the single
  bot's document shape and ``since`` rule, and their gauges merged (``merge.merge_gauges``). Each request
  first pulls what the children closed since (one pull at a time); a background pull keeps the merge going
  between requests.
- ``GET /metrics``: ``metrics.merge_expositions`` of every child's and the parent's own process figures.
- ``GET /status``: totals, the merged ``pairs`` map and ``gauges``, and per shard its process, pairs,
  accounts, health and its own ``/status``. These two are reused for ``STATUS_TTL_S`` / ``METRICS_TTL_S``
  (``bot.shard.recent``): each costs a call to every child.
- Behind the bearer token (the single bot's rule, ``bot.api._authorize``): ``POST /orders`` and
  ``POST /pairs/{id}/pause|resume`` go to the shard trading the pair; ``GET /ledger`` is merged
  (``merge.merge_ledgers``); ``POST /ledger/drain`` and ``POST /tasks/{name}/kill`` go to every shard.
  A shard that cannot answer makes the call fail with 502 naming it: a merged ledger or drain missing a
  shard would look complete and be wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

from bot.api import (
    MAX_BODY_BYTES,
    MAX_DRAIN_S,
    METRICS_CONTENT_TYPE,
    TOKEN_KEY,
    OrderError,
    parse_order,
    parse_since,
)
from bot.api import _authorize as authorize  # the single bot's rule itself, so the two cannot drift apart
from bot.redact import redact_text
from bot.shard.links import ShardFailure, ShardLink
from bot.shard.merge import IntervalAligner, merge_drains, merge_gauges, merge_ledgers
from bot.shard.metrics import merge_expositions
from bot.shard.plan import ShardPlan
from bot.shard.recent import Recent
from bot.shard.relay import FeedRelay

log = logging.getLogger(__name__)

# How old a /status or /metrics answer may be (bot.shard.recent): a Prometheus scrape every few seconds
# never sees a cached page; a burst of API requests shares one.
STATUS_TTL_S = 0.25
METRICS_TTL_S = 0.5

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _body(data: Any) -> bytes:
    body = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS, default=str)
    if b"://" in body:  # children's statistics may quote an endpoint URL, as a single bot's may
        body = redact_text(body.decode()).encode()
    return body


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_body(data), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _guarded(handler: Handler) -> Handler:
    """Token first, then the handler; a shard that fails a call the answer needs is a 502 naming it."""
    async def wrapped(request: web.Request) -> web.StreamResponse:
        denied = authorize(request)
        if denied is not None:
            return denied
        try:
            return await handler(request)
        except ShardFailure as exc:
            return _error(502, str(exc))
    return wrapped


class Gateway:
    def __init__(self, plan: ShardPlan, links: Sequence[ShardLink], aligner: IntervalAligner, *,
                 token: str | None, relay: FeedRelay | None = None) -> None:
        self.plan = plan
        self.links = list(links)
        self.aligner = aligner
        self.relay = relay
        self.stopping = False
        self.started = False  # the parent's start-up is over: merging runs and /health may say ok
        self._token = token
        self._lock = asyncio.Lock()
        self._pull_failures = 0
        self._task: asyncio.Task[None] | None = None
        self._status_page = Recent(self._merged_status, STATUS_TTL_S)
        self._metrics_page = Recent(self._merged_metrics, METRICS_TTL_S)

    def __repr__(self) -> str:
        return f"<Gateway shards={len(self.links)} {self.aligner!r}>"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app[TOKEN_KEY] = (self._token or "").encode()
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        app.router.add_get("/stats", self._stats)
        app.router.add_post("/pairs/{id:.+}/pause", _guarded(self._pause))
        app.router.add_post("/pairs/{id:.+}/resume", _guarded(self._resume))
        app.router.add_post("/orders", _guarded(self._orders))
        app.router.add_get("/ledger", _guarded(self._ledger))
        app.router.add_post("/ledger/drain", _guarded(self._drain))
        app.router.add_post("/tasks/{name}/kill", _guarded(self._kill))
        return app

    def start(self, aligner: IntervalAligner) -> None:
        """Begin merging into ``aligner`` (whose origin is now: the shards' start-up goes into its first bin)."""
        self.aligner = aligner
        self.started = True
        self._task = asyncio.create_task(self._pull_forever(), name="shard-stats")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])

    def problems(self) -> list[str]:
        now = time.monotonic()
        out = ["stopping"] if self.stopping else [] if self.started else ["starting"]
        for link in self.links:
            out.extend(link.problems(now))
        return out

    # -- telemetry --------------------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Take in what every running child closed since the last pull, and close the bins now complete."""
        async with self._lock:
            running = [link for link in self.links if link.running]
            pulled = await asyncio.gather(*(link.pull_stats() for link in running), return_exceptions=True)
            for link, got in zip(running, pulled, strict=True):
                if isinstance(got, BaseException):
                    self._pull_failures += 1
                    continue
                self.aligner.add(link.index, got)
            self.aligner.close_ready(time.time(), [link.index for link in self.links if link.running])

    async def _pull_forever(self) -> None:
        while True:
            await asyncio.sleep(self.aligner.width / 2)
            with contextlib.suppress(Exception):  # counted in refresh; the next pull tries again
                await self.refresh()

    def gauges(self) -> dict[str, float]:
        return merge_gauges(link.gauges for link in self.links if link.running)

    # -- read-only endpoints ----------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        reasons = self.problems()
        if reasons:
            return _json({"status": "unhealthy", "reasons": reasons}, 503)
        return _json({"status": "ok", "pairs": sum(len(p) for p in self.plan.pairs), "shards": len(self.links)})

    async def _stats(self, request: web.Request) -> web.Response:
        since = parse_since(request)
        if isinstance(since, web.Response):
            return since
        if self.started:  # before, a pull would feed intervals to the start-up aligner, which is then replaced
            await self.refresh()
        return _json(self.aligner.payload(since, time.time(), self.gauges()))

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=await self._metrics_page.get(), headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def _merged_metrics(self) -> bytes:
        async def one(link: ShardLink) -> str | None:
            if not link.running:
                return None
            try:
                status, body = await link.call_raw("GET", "/metrics", limit_s=5.0)
            except ShardFailure:
                return None
            return body.decode() if status == 200 else None

        texts = await asyncio.gather(*(one(link) for link in self.links))
        own = CollectorRegistry(auto_describe=False)
        ProcessCollector(namespace="bot", registry=own)
        return merge_expositions(texts, own=generate_latest(own).decode())

    async def _status(self, request: web.Request) -> web.Response:
        return web.Response(body=await self._status_page.get(), content_type="application/json")

    async def _merged_status(self) -> bytes:
        async def one(link: ShardLink) -> Any:
            try:
                return (await link.call("GET", "/status", limit_s=5.0))[1]
            except ShardFailure as exc:
                return {"error": str(exc)}

        bodies = await asyncio.gather(*(one(link) for link in self.links))
        pairs: dict[str, Any] = {}
        shards = []
        now = time.monotonic()
        for link, body in zip(self.links, bodies, strict=True):
            if isinstance(body, Mapping) and isinstance(body.get("pairs"), Mapping):
                pairs.update(body["pairs"])
            shards.append({"index": link.index, "pid": link.process.pid, "api": link.api_url,
                           "exit_code": link.process.exit_code, "problems": link.problems(now),
                           "pairs": list(self.plan.pairs[link.index]),
                           "accounts": list(self.plan.accounts[link.index]), "status": body})
        gateway: dict[str, Any] = {"telemetry": asdict(self.aligner.statistics()), "pull_failures": self._pull_failures}
        if self.relay is not None:
            gateway["feed_relay"] = asdict(self.relay.statistics())
        return _body({"totals": {"shards": len(self.links), "running": sum(1 for x in self.links if x.running),
                                 "pairs": sum(len(p) for p in self.plan.pairs),
                                 "accounts": sum(len(a) for a in self.plan.accounts)},
                      "pairs": pairs, "gauges": self.gauges(), "gateway": gateway, "shards": shards})

    # -- routed to the owning shard ---------------------------------------------------------------------

    async def _forward(self, link: ShardLink, method: str, path: str, body: bytes | None = None,
                       limit_s: float = 10.0) -> web.Response:
        status, raw = await link.call_raw(method, path, body=body, auth=True, limit_s=limit_s)
        return web.Response(body=raw, status=status, content_type="application/json")

    async def _pair_action(self, request: web.Request, which: str) -> web.Response:
        pair = request.match_info["id"]
        owner = self.plan.owner(pair)
        if owner is None:
            return _error(404, f"unknown pair {pair!r}; GET /status lists the pairs")
        return await self._forward(self.links[owner], "POST", f"/pairs/{quote(pair, safe='/')}/{which}")

    async def _pause(self, request: web.Request) -> web.Response:
        return await self._pair_action(request, "pause")

    async def _resume(self, request: web.Request) -> web.Response:
        return await self._pair_action(request, "resume")

    async def _orders(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            order = parse_order(orjson.loads(raw))
        except orjson.JSONDecodeError:
            return _error(400, "body: not valid JSON; send a JSON object with Content-Type application/json")
        except OrderError as exc:
            return _error(400, str(exc))
        owner = self.plan.owner(order.pair)
        if owner is None:
            return _error(404, f"pair: unknown pair {order.pair!r}; GET /status lists the pairs")
        return await self._forward(self.links[owner], "POST", "/orders", raw)

    # -- every shard --------------------------------------------------------------------------------------

    async def _each(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                    limit_s: float = 10.0) -> list[tuple[int, Any]]:
        return list(await asyncio.gather(*(link.call(method, path, auth=True, params=params, limit_s=limit_s)
                                           for link in self.links)))

    async def _ledger(self, request: web.Request) -> web.Response:
        raw = request.query.get("records", "1")
        if raw not in ("0", "1"):
            return _error(400, f"records: expected 0 or 1, got {raw[:40]!r}")
        answers = await self._each("GET", "/ledger", params={"records": raw}, limit_s=30.0)
        for link, (status, body) in zip(self.links, answers, strict=True):
            if status != 200:
                return _error(502, f"shard {link.index}: GET /ledger answered {status}: {body}")
        try:
            return _json(merge_ledgers([body for _, body in answers]))
        except (ValueError, KeyError, TypeError) as exc:
            return _error(502, f"the shards' ledgers cannot be merged: {exc}")

    async def _drain(self, request: web.Request) -> web.Response:
        raw = request.query.get("within", "")
        try:
            within = float(raw)
        except ValueError:
            within = -1.0
        if not 0 < within <= MAX_DRAIN_S:
            return _error(400, f"within: expected seconds > 0 and <= {MAX_DRAIN_S:g}, got {raw[:40]!r}")
        answers = await self._each("POST", "/ledger/drain", params={"within": f"{within:g}"},
                                   limit_s=within + 10)
        for link, (status, body) in zip(self.links, answers, strict=True):
            if status != 200:
                return _error(502, f"shard {link.index}: POST /ledger/drain answered {status}: {body}")
        return _json(merge_drains([body for _, body in answers]))

    async def _kill(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        answers = await self._each("POST", f"/tasks/{quote(name, safe='')}/kill")
        shards = {link.index: {"status": status, **(body if isinstance(body, Mapping) else {})}
                  for link, (status, body) in zip(self.links, answers, strict=True)}
        statuses = [status for status, _ in answers]
        if 200 in statuses:
            return _json({"task": name, "killed": True, "shards": shards})
        if all(s == 404 for s in statuses):
            first = answers[0][1] if isinstance(answers[0][1], Mapping) else {}
            return _json({"error": first.get("error", f"unknown task {name!r}"), "shards": shards}, 404)
        return _json({"error": f"task {name!r} is not running now in any shard", "shards": shards}, 409)
