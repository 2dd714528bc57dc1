from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from bot.api import METRICS_CONTENT_TYPE, ApiHooks, OrderError, OrderRequest, create_app, parse_order, serve
from bot.telemetry.prometheus import make_registry, render
from bot.telemetry.recorder import Telemetry

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class FakeBot:
    def __init__(self) -> None:
        self.healthy = True
        self.paused: set[str] = set()
        self.orders: list[OrderRequest] = []
        self.pairs = {"T000/USD", "T001/USD"}
        self.telemetry = Telemetry()
        self.registry = make_registry(self.telemetry, process=False)

    def health(self) -> tuple[bool, Mapping[str, Any]]:
        return self.healthy, ({"pairs": len(self.pairs)} if self.healthy else {"reasons": ["pair T000/USD failed"]})

    def status(self) -> Mapping[str, Any]:
        return {"pairs": sorted(self.pairs), "paused": sorted(self.paused), "nonces": {0: 5}}

    def pause(self, pair: str) -> None:
        if pair not in self.pairs:
            raise LookupError(pair)
        self.paused.add(pair)

    async def resume(self, pair: str) -> None:
        if pair not in self.pairs:
            raise LookupError(pair)
        self.paused.discard(pair)

    async def submit(self, order: OrderRequest) -> Mapping[str, Any]:
        if order.pair not in self.pairs:
            raise LookupError(order.pair)
        self.orders.append(order)
        return {"accepted": True, "id": len(self.orders)}

    def hooks(self) -> ApiHooks:
        return ApiHooks(
            health=self.health,
            status=self.status,
            stats=self.telemetry.payload,
            metrics=lambda: render(self.registry),
            pause=self.pause,
            resume=self.resume,
            submit_order=self.submit,
        )


@pytest.fixture
def bot() -> FakeBot:
    return FakeBot()


@pytest.fixture
async def client(bot: FakeBot) -> AsyncIterator[TestClient[aiohttp.web.Request, aiohttp.web.Application]]:
    async with TestClient(TestServer(create_app(bot.hooks(), token=TOKEN), host="127.0.0.1")) as c:
        yield c


Client = TestClient[aiohttp.web.Request, aiohttp.web.Application]


async def test_health_ok_and_unhealthy(client: Client, bot: FakeBot) -> None:
    r = await client.get("/health")
    assert r.status == 200 and await r.json() == {"status": "ok", "pairs": 2}
    bot.healthy = False
    r = await client.get("/health")
    assert r.status == 503
    assert await r.json() == {"status": "unhealthy", "reasons": ["pair T000/USD failed"]}


async def test_health_provider_crash_is_503_not_500(bot: FakeBot) -> None:
    def broken() -> tuple[bool, Mapping[str, Any]]:
        raise RuntimeError("boom")

    hooks = ApiHooks(health=broken, status=bot.status, stats=bot.telemetry.payload, metrics=lambda: b"")
    async with TestClient(TestServer(create_app(hooks, token=None), host="127.0.0.1")) as c:
        r = await c.get("/health")
        assert r.status == 503 and "RuntimeError" in (await r.json())["reasons"][0]


async def test_metrics_is_prometheus_text(client: Client, bot: FakeBot) -> None:
    bot.telemetry.record("tx_submission", 1500)
    r = await client.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"] == METRICS_CONTENT_TYPE
    text = await r.text()
    assert 'bot_operation_latency_seconds_count{op="tx_submission"} 1.0' in text


async def test_status_comes_from_provider(client: Client) -> None:
    r = await client.get("/status")
    assert await r.json() == {"pairs": ["T000/USD", "T001/USD"], "paused": [], "nonces": {"0": 5}}


async def test_stats_since(client: Client, bot: FakeBot) -> None:
    for _ in range(3):
        bot.telemetry.rotate()
    r = await client.get("/stats", params={"since": "0"})
    body = await r.json()
    assert r.status == 200 and body["seq"] == 3 and [iv["seq"] for iv in body["intervals"]] == [1, 2]
    assert len((await (await client.get("/stats")).json())["intervals"]) == 3
    r = await client.get("/stats", params={"since": "abc"})
    assert r.status == 400 and "since" in (await r.json())["error"]


@pytest.mark.parametrize("path", ["/pairs/T000/USD/pause", "/pairs/T000%2FUSD/pause"])
async def test_pause_resume_with_token(client: Client, bot: FakeBot, path: str) -> None:
    r = await client.post(path, headers=AUTH)
    assert r.status == 200, await r.text()
    assert await r.json() == {"pair": "T000/USD", "state": "paused"}
    assert bot.paused == {"T000/USD"}
    r = await client.post(path.replace("pause", "resume"), headers=AUTH)
    assert r.status == 200 and bot.paused == set()


async def test_unknown_pair_is_404(client: Client) -> None:
    r = await client.post("/pairs/NOPE/pause", headers=AUTH)
    assert r.status == 404 and "NOPE" in (await r.json())["error"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic abc"}, 401),
        ({"Authorization": "Bearer "}, 401),
        ({"Authorization": "Bearer wrong"}, 403),
        ({"Authorization": f"Bearer {TOKEN}x"}, 403),
    ],
)
async def test_mutating_endpoints_need_the_token(client: Client, bot: FakeBot, headers: dict[str, str],
                                                 status: int) -> None:
    r = await client.post("/pairs/T000/USD/pause", headers=headers)
    assert r.status == status
    if status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = await client.post("/orders", json={"pair": "T000/USD", "side": "buy", "amount": 1}, headers=headers)
    assert r.status == status
    assert bot.paused == set() and bot.orders == []


async def test_no_token_configured_disables_control(bot: FakeBot) -> None:
    async with TestClient(TestServer(create_app(bot.hooks(), token=None), host="127.0.0.1")) as c:
        r = await c.post("/pairs/T000/USD/pause", headers={"Authorization": "Bearer "})
        assert r.status in (401, 403)
        r = await c.post("/pairs/T000/USD/pause", headers={"Authorization": "Bearer anything"})
        assert r.status == 403 and "api.token_env" in (await r.json())["error"]


async def test_order_accepted(client: Client, bot: FakeBot) -> None:
    body = {"pair": "T001/USD", "side": "sell", "amount": "1000000000000000000", "max_slippage_bps": 50,
            "client_id": "abc"}
    r = await client.post("/orders", json=body, headers=AUTH)
    assert r.status == 202 and await r.json() == {"accepted": True, "id": 1}
    assert bot.orders == [OrderRequest("T001/USD", "sell", 10**18, 50.0, "abc")]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[1, 2]", "body"),
        (json.dumps({"side": "buy", "amount": 1}).encode(), "pair"),
        (json.dumps({"pair": "T000/USD", "side": "hold", "amount": 1}).encode(), "side"),
        (json.dumps({"pair": "T000/USD", "side": "buy", "amount": -1}).encode(), "amount"),
        (json.dumps({"pair": "T000/USD", "side": "buy", "amount": "1.5"}).encode(), "amount"),
        (json.dumps({"pair": "T000/USD", "side": "buy", "amount": 1, "max_slippage_bps": 10000}).encode(),
         "max_slippage_bps"),
        (json.dumps({"pair": "T000/USD", "side": "buy", "amount": 1, "price": 3}).encode(), "price"),
    ],
)
async def test_bad_orders_are_400_naming_the_field(client: Client, bot: FakeBot, body: bytes, field: str) -> None:
    r = await client.post("/orders", data=body, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status == 400
    assert (await r.json())["error"].startswith(field)
    assert bot.orders == []


async def test_order_for_unknown_pair_is_404(client: Client) -> None:
    r = await client.post("/orders", json={"pair": "X/Y", "side": "buy", "amount": 1}, headers=AUTH)
    assert r.status == 404


async def test_body_size_is_bounded(client: Client) -> None:
    r = await client.post("/orders", data=b"x" * (200 * 1024), headers=AUTH)
    assert r.status == 413


async def test_serve_binds_loopback_and_refuses_other_hosts(bot: FakeBot) -> None:
    with pytest.raises(ValueError, match="loopback only"):
        await serve(create_app(bot.hooks(), token=None), host="0.0.0.0", port=0)
    server = await serve(create_app(bot.hooks(), token=None), host="127.0.0.1", port=0)
    try:
        assert server.port > 0 and server.url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as s, s.get(server.url + "/health") as r:
            assert r.status == 200
    finally:
        await server.aclose()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
order_like = st.fixed_dictionaries(
    {"pair": json_values | st.just("T000/USD"), "side": json_values | st.sampled_from(["buy", "sell"]),
     "amount": json_values | st.integers(1, 2**256)},
    optional={"max_slippage_bps": json_values, "client_id": json_values},
)


@given(st.one_of(json_values, order_like))
def test_parse_order_accepts_or_names_a_field(body: Any) -> None:
    try:
        order = parse_order(body)
    except OrderError as exc:
        # the message starts with the field it names (a field's own name may contain ':')
        fields = {"body", "pair", "side", "amount", "max_slippage_bps", "client_id",
                  *(body if isinstance(body, dict) else {})}
        assert any(str(exc).startswith(f"{f}:") for f in fields), str(exc)
        return
    assert order.side in ("buy", "sell") and 0 < order.amount < 2**256 and order.pair
