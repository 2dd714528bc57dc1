"""The heads pump and the feed client fed garbage (fuzzed): each keeps going and handles the next
valid item. Also the feed's task over a real socket, which used to die on a trade tick without
``scheduled``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.chain.heads import head_numbers, pump_heads
from bot.engine.mailbox import Message, PutResult
from bot.feed import FeedClient
from bot.rpc import shapes
from bot.telemetry.recorder import Telemetry
from tests.unit.test_rpc_shapes import garbage, head_fields, json_values, shaped
from tests.waiting import until

H = "0x" + "ab" * 32
VALID_HEADER = {"number": "0x2a", "hash": H, "timestamp": "0x6553f100", "baseFeePerGas": "0x7"}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Ev:
    kind: str
    data: Any


events = st.builds(Ev, st.sampled_from(["newHeads", "newHeads", "logs", "other"]),
                   st.one_of(garbage, shaped(head_fields)))


async def _source(items: list[Ev]) -> AsyncIterator[Ev]:
    for item in items:
        yield item


@FUZZ
@given(st.lists(events, max_size=8))
def test_heads_pump_survives_garbage_and_handles_the_next_valid_head(garbage_events: list[Ev]) -> None:
    got: list[shapes.Head] = []
    invalid: list[str] = []
    asyncio.run(pump_heads(_source([*garbage_events, Ev("newHeads", VALID_HEADER)]), got.append,
                           on_invalid=invalid.append))
    assert got[-1] == shapes.Head(42, H, 0x6553F100, 7)
    heads_sent = sum(1 for e in garbage_events if e.kind == "newHeads")
    assert len(got) - 1 + len(invalid) == heads_sent  # every header either handled or counted, none lost
    assert set(invalid) <= {"head"}

    async def numbers() -> list[int]:
        return [n async for n in head_numbers(_source([*garbage_events, Ev("newHeads", VALID_HEADER)]))]

    assert asyncio.run(numbers())[-1] == 42


ticks = shaped({
    "pair": st.sampled_from(["T000/USD", "NOPE/USD"]), "seq": st.integers(0, 10**6), "price": st.floats(0, 10),
    "trade": st.booleans(), "scheduled": st.floats(1e9, 2e9), "tag": st.text(max_size=5),
})
# stdlib json: it writes what orjson will not (huge ints, NaN), so the decoder sees those too.
frames = st.one_of(st.binary(max_size=60), st.one_of(json_values, ticks, st.lists(ticks, max_size=3)).map(json.dumps))


class Posted:
    def __init__(self) -> None:
        self.messages: list[tuple[str, Message]] = []

    def __call__(self, pair: str, message: Message) -> PutResult:
        self.messages.append((pair, message))
        return PutResult.ACCEPTED


def _feed(post: Posted, url: str = "ws://127.0.0.1:9/none") -> FeedClient:
    return FeedClient(url, Telemetry(), post, {}, {"T000/USD": object()})


VALID_TICK = {"pair": "T000/USD", "seq": 10**7, "price": 1.5, "trade": True, "scheduled": 1.7e9, "tag": "t"}


async def _feed_frames(frames_in: list[str | bytes]) -> Posted:
    post = Posted()
    feed = _feed(post)  # market ticks are conflated on the loop's timer: a loop must be running
    try:
        for frame in frames_in:
            feed.handle_frame(frame)
        for pair, message in post.messages:  # whatever got through is for a known pair, a trade timed
            assert pair == "T000/USD"
            assert message.kind != "trade" or isinstance(message.scheduled, float)
        feed.handle_frame(orjson.dumps(VALID_TICK))
        return post
    finally:
        await feed.stop()


@FUZZ
@given(st.lists(frames, max_size=6))
def test_feed_survives_garbage_frames_and_handles_the_next_valid_tick(garbage_frames: list[str | bytes]) -> None:
    post = asyncio.run(_feed_frames(garbage_frames))
    pair, message = post.messages[-1]
    assert (pair, message.kind, message.scheduled) == ("T000/USD", "trade", 1.7e9)


async def test_feed_counts_trade_ticks_without_a_usable_scheduled_as_invalid() -> None:
    post = Posted()
    feed = _feed(post)
    t = feed._t
    base = {"pair": "T000/USD", "seq": 1, "price": 1.0, "trade": True}
    try:
        for tick in (base, {**base, "scheduled": "soon"}, {**base, "scheduled": None},
                     {**base, "scheduled": 1.0, "pair": ["T000/USD"]}, {**base, "scheduled": 1.0, "price": 10**400}):
            feed.handle_frame(json.dumps(tick))
        # Non-finite: refused by the decoder or by the client, counted either way.
        feed.handle_frame(b'[{"pair": "T000/USD", "seq": 2, "price": 1.0, "trade": true, "scheduled": 1e400}]')
        assert post.messages == [] and t.counter_totals()["ticks_invalid"] == 6
        feed.handle_frame(json.dumps({**base, "trade": False}))  # market data needs no scheduled
        assert t.counter_totals()["ticks_invalid"] == 6
    finally:
        await feed.stop()


async def test_feed_task_keeps_running_after_a_trade_tick_without_scheduled() -> None:
    async def ticks_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"pair": "T000/USD", "seq": 1, "price": 1.0, "trade": True}))
        await ws.send_str("not json")
        await ws.send_str(json.dumps(VALID_TICK))
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/ticks", ticks_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    post = Posted()
    feed = _feed(post, f"ws://127.0.0.1:{port}/ticks")
    feed.start()
    try:
        await until(lambda: len(post.messages) == 1, what="the valid tick handled")
        assert feed._task is not None and not feed._task.done()
        assert feed._t.counter_totals()["ticks_invalid"] == 2 and feed.connects == 1
    finally:
        await feed.stop()
        await runner.cleanup()
