"""A pair's actor never sleeps on a backoff: a rate-limited read ends the trade attempt at once.

The real ``Trader`` on an ``EndpointPool`` over a scripted node, inside the real ``Engine``. The pool
is given a ``sleep`` that never returns: if any part of a trade waited out a Retry-After or a
backoff, the actor would hang and the deadline would fail the test (no timing thresholds)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from typing import cast

import orjson
import pytest
from aiohttp import web

from bot.chain.sender import TxSender
from bot.engine.actors import Engine, EngineSettings
from bot.engine.mailbox import Message, Priority
from bot.market.prices import Pair
from bot.rpc import EndpointPool, HttpTransport, Timeouts
from bot.strategy import StrategyParams
from bot.telemetry.observer import TelemetryObserver
from bot.telemetry.recorder import Telemetry
from bot.trader import PairInfo, Trader
from tests.unit.rpc_fakes import Behaviour, FakeNode, status
from tests.waiting import until as _wait

until = partial(_wait, every=0.001)  # these conditions can be brief: look often

TOKEN0, TOKEN1 = "0x" + "22" * 20, "0x" + "33" * 20
PAIR = PairInfo(Pair("T000/USD", "0x" + "11" * 20, TOKEN0, TOKEN1, TOKEN0, TOKEN1), "0x" + "44" * 20)


def word(n: int) -> str:
    return f"{n:064x}"


def pool_answers() -> Behaviour:
    """The trade's one batch answered: reserves 1000:1000 (price 1.0) and two balances."""

    async def behave(_request: web.Request, body: bytes) -> web.StreamResponse:
        calls = orjson.loads(body)
        results = ["0x" + word(10**21) + word(10**21) + word(1), "0x" + word(10**20), "0x" + word(10**20)]
        return web.json_response([{"jsonrpc": "2.0", "id": c["id"], "result": r}
                                  for c, r in zip(calls, results, strict=True)])

    return behave


@pytest.fixture(name="node")
async def fake_node() -> AsyncIterator[FakeNode]:
    fake = FakeNode("a")
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


async def test_a_rate_limited_read_skips_the_trade_and_the_actor_takes_its_next_tick(node: FakeNode) -> None:
    slept: list[float] = []

    async def never(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.Event().wait()

    fast = Timeouts(connect=0.5, read=1.0, total=2.0)
    pool = EndpointPool([HttpTransport(node.url, fast, name="a")], sleep=never)
    tele = Telemetry()
    # No swap is reached (the first read is refused, the second finds the pool at its reference
    # price), so the sender is never used.
    trader = Trader(pool.reads(), cast(TxSender, object()), tele, {PAIR.id: PAIR}, StrategyParams())
    engine = Engine(trader.handle, EngineSettings(conflate=frozenset({"trade"})), observer=TelemetryObserver(tele))
    engine.add_pair(PAIR.id)
    await engine.start()
    try:
        node.script.extend([status(429, b"", {"Retry-After": "30"}), pool_answers()])
        tick = {"price": 1.0, "tag": "s"}
        engine.post(PAIR.id, Message(Priority.ENTRY, "trade", tick, scheduled=0.0))
        await until(lambda: engine.actor(PAIR.id).handled_total == 1)
        counters = tele.counter_totals()
        assert counters["trades_skipped"] == 1 and counters["errors{kind=rate_limited}"] == 1
        # Within the 30 s Retry-After, the next tick is taken and its reads go out at once.
        engine.post(PAIR.id, Message(Priority.ENTRY, "trade", tick, scheduled=0.0))
        await until(lambda: engine.actor(PAIR.id).handled_total == 2)
        counters = tele.counter_totals()
        assert counters["trades_skipped"] == 2  # inside the deadband: the read succeeded
        assert "trades_failed" not in counters and counters.get("errors{kind=rate_limited}") == 1
        assert slept == [] and node.requests == 2  # nothing waited, nothing re-sent to the refusing node
        endpoint = pool.statistics().endpoints[0]
        assert endpoint.rate_limited == 1 and endpoint.limit is not None and endpoint.limit.decreases == 1
        assert "price_fetch" in tele.rotate().histograms  # the second trade's read was recorded
    finally:
        await engine.stop(1.0)
        await pool.aclose()
