"""The gateway in front of two children that are real control APIs (``bot.api``) over stub bots, on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from bot.api import ApiHooks, ApiServer, OrderRequest, create_app, serve
from bot.shard.gateway import Gateway
from bot.shard.links import ShardLink
from bot.shard.merge import IntervalAligner
from bot.shard.plan import make_plan
from bot.shard.recent import Recent
from bot.telemetry.prometheus import make_registry, render
from bot.telemetry.recorder import Telemetry
from tests.waiting import until

TOKEN = "gw-s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Proc:
    pid: int | None = 4242
    exit_code: int | None = None


@dataclass
class StubBot:
    index: int
    pairs: tuple[str, ...]
    telemetry: Telemetry = field(default_factory=Telemetry)
    orders: list[OrderRequest] = field(default_factory=list)
    paused: set[str] = field(default_factory=set)
    kills: int = 0

    async def submit(self, order: OrderRequest) -> Mapping[str, Any]:
        if order.pair not in self.pairs:
            raise LookupError(order.pair)
        self.orders.append(order)
        self.telemetry.count("trades_ok")
        return {"pair": order.pair, "queued": True, "shard_saw": self.index}

    def pause(self, pair: str) -> None:
        if pair not in self.pairs:
            raise LookupError(pair)
        self.paused.add(pair)

    def ledger(self, records: bool) -> Mapping[str, Any]:
        addr = f"0x{self.index:040x}"
        doc: dict[str, Any] = {"version": 1, "keep_recent": 10, "opened": 1, "in_flight": 0, "evicted": 0,
                               "accounts": {addr: {"start_nonce": 0, "mined": 1}}}
        if records:
            doc["records"] = [{"id": 1, "sender": addr, "nonce": 0, "hash": f"0x{self.index}", "state": "mined_ok"}]
        return doc

    async def drain(self, within: float) -> Mapping[str, Any]:
        return {"drained": True, "in_flight": 0, "waited_s": 0.01 * (self.index + 1)}

    def kill(self, name: str) -> bool:
        if name != "receipts":
            raise LookupError("supervised tasks: receipts")
        self.kills += 1
        return True

    def hooks(self) -> ApiHooks:
        registry = make_registry(self.telemetry, process=False)
        return ApiHooks(health=lambda: (True, {"pairs": len(self.pairs)}),
                        status=lambda: {"pairs": {p: {"state": "running"} for p in self.pairs}},
                        stats=self.telemetry.payload, metrics=lambda: render(registry), pause=self.pause,
                        resume=self.pause, submit_order=self.submit, ledger=self.ledger, drain=self.drain,
                        kill_task=self.kill)


@dataclass
class Rig:
    gateway: Gateway
    url: str
    bots: list[StubBot]
    servers: list[ApiServer]
    procs: list[Proc]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    plan = make_plan(["A/USD", "B/USD", "C/USD"], ["0xa", "0xb"], 2)
    bots = [StubBot(i, plan.pairs[i]) for i in range(2)]
    servers = [await serve(create_app(b.hooks(), token=TOKEN), "127.0.0.1", 0) for b in bots]
    procs = [Proc(), Proc()]
    links = [ShardLink(i, s.url, procs[i], TOKEN) for i, s in enumerate(servers)]
    gateway = Gateway(plan, links, IntervalAligner(2, origin=0.0, width=1.0), token=TOKEN)
    front = await serve(gateway.app(), "127.0.0.1", 0)
    for link in links:
        link.start()
    try:
        yield Rig(gateway, front.url, bots, servers, procs)
    finally:
        await gateway.aclose()
        for link in links:
            await link.aclose()
        await front.aclose()
        for s in servers:
            await s.aclose()


async def _health(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url + "/health") as r:
        return r.status, await r.json()


async def test_health_waits_for_the_start_and_names_a_failing_shard(rig: Rig) -> None:
    async with aiohttp.ClientSession() as http:
        status, body = await _health(http, rig.url)
        assert status == 503 and "starting" in body["reasons"]
        rig.gateway.start(IntervalAligner(2, origin=0.0, width=1.0))
        last: list[Any] = []

        async def healthy() -> bool:
            last[:] = [await _health(http, rig.url)]
            return bool(last[0][0] == 200)

        deadline = asyncio.get_running_loop().time() + 30
        while not await healthy():
            assert asyncio.get_running_loop().time() < deadline, last
            await asyncio.sleep(0.02)
        assert last[0][1]["shards"] == 2
        rig.procs[1].exit_code = 3
        status, body = await _health(http, rig.url)
        assert status == 503 and body["reasons"] == ["shard 1: exited with code 3"]


async def test_orders_and_pair_actions_go_to_the_owning_shard_behind_the_token(rig: Rig) -> None:
    async with aiohttp.ClientSession() as http:
        order = {"pair": "B/USD", "side": "buy", "amount": "1000"}
        async with http.post(rig.url + "/orders", json=order) as r:
            assert r.status == 401
        async with http.post(rig.url + "/orders", json=order, headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 403
        async with http.post(rig.url + "/orders", json=order, headers=AUTH) as r:
            assert r.status == 202 and (await r.json())["shard_saw"] == 1
        async with http.post(rig.url + "/orders", json={**order, "side": "up"}, headers=AUTH) as r:
            assert r.status == 400 and "side" in (await r.json())["error"]
        async with http.post(rig.url + "/orders", json={**order, "pair": "Z/USD"}, headers=AUTH) as r:
            assert r.status == 404
        async with http.post(rig.url + "/pairs/C/USD/pause", headers=AUTH) as r:
            assert r.status == 200
        async with http.post(rig.url + "/pairs/Q/USD/pause", headers=AUTH) as r:
            assert r.status == 404
    assert [o.pair for o in rig.bots[1].orders] == ["B/USD"] and not rig.bots[0].orders
    assert rig.bots[0].paused == {"C/USD"}  # A, C on shard 0; B on shard 1


async def test_ledger_drain_and_kill_go_to_every_shard_and_a_missing_one_is_a_502(rig: Rig) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(rig.url + "/ledger", headers=AUTH) as r:
            ledger = await r.json()
        assert set(ledger["accounts"]) == {f"0x{i:040x}" for i in range(2)} and len(ledger["records"]) == 2
        async with http.post(rig.url + "/ledger/drain?within=5", headers=AUTH) as r:
            assert (await r.json())["waited_s"] == 0.02
        async with http.post(rig.url + "/ledger/drain?within=500", headers=AUTH) as r:
            assert r.status == 400
        async with http.post(rig.url + "/tasks/receipts/kill", headers=AUTH) as r:
            assert r.status == 200
        async with http.post(rig.url + "/tasks/nope/kill", headers=AUTH) as r:
            assert r.status == 404 and "receipts" in (await r.json())["error"]
        assert [b.kills for b in rig.bots] == [1, 1]
        await rig.servers[1].aclose()  # shard 1 gone: a merged ledger without it would look complete
        async with http.get(rig.url + "/ledger", headers=AUTH) as r:
            assert r.status == 502 and "shard 1" in (await r.json())["error"]


async def test_stats_metrics_and_status_merge_both_shards(rig: Rig) -> None:
    for b, n in zip(rig.bots, (2, 5), strict=True):
        b.telemetry.count("trades_ok", n)
        b.telemetry.rotate()
    # An origin long ago: the empty bins before the children's intervals close as one interval.
    rig.gateway.start(IntervalAligner(2, origin=0.0, width=1.0, max_lag_s=1e9))
    async with aiohttp.ClientSession() as http:
        payload: dict[str, Any] = {}

        async def merged() -> int:
            async with http.get(rig.url + "/stats", params={"since": "-1"}) as r:
                payload.update(await r.json())
            return sum(iv["counters"].get("trades_ok", 0) for iv in payload["intervals"])

        # A bin closes once both children reported past its middle: they rotate on, as real bots do.
        deadline = asyncio.get_running_loop().time() + 30
        while await merged() != 7:
            assert asyncio.get_running_loop().time() < deadline, payload
            for b in rig.bots:
                b.telemetry.rotate()
            await asyncio.sleep(0.05)
        async with http.get(rig.url + "/metrics") as r:
            text = await r.text()
        assert 'bot_trades_ok_total{shard="0"} 2.0' in text and 'bot_trades_ok_total{shard="1"} 5.0' in text
        async with http.get(rig.url + "/status") as r:
            status = await r.json()
        assert set(status["pairs"]) == {"A/USD", "B/USD", "C/USD"} and status["totals"]["shards"] == 2
        assert [s["accounts"] for s in status["shards"]] == [["0xa"], ["0xb"]]


async def test_recent_shares_one_fetch_and_refetches_after_its_time() -> None:
    calls = 0
    release = asyncio.Event()

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return calls

    recent = Recent(fetch, ttl_s=60.0)
    waiters = [asyncio.ensure_future(recent.get()) for _ in range(5)]
    await until(lambda: calls == 1, 10, "the first fetch")
    release.set()
    assert await asyncio.gather(*waiters) == [1] * 5
    assert await recent.get() == 1 and calls == 1  # within its time: no new fetch
    recent.ttl_s = 0.0  # its time is up
    assert await recent.get() == 2
