"""The market-data feed client: a WebSocket that reconnects, decodes ticks and routes them.

A frame is one tick object or a JSON array of ticks (``harness.load.feed`` batches). Market
data (``trade: false``) only updates the pair's reference price, inline: at 10k ticks/s a hop
through an actor's mailbox per tick would cost more than the work. Trade signals go to the
pair's actor as ``ENTRY`` messages carrying the tick's scheduled time.

Counters: ``ticks_handled`` (decoded and acted on), ``ticks_rejected`` (a full mailbox refused
a trade signal: backpressure, counted not hidden), ``ticks_missed`` (gaps in the feed's sequence
numbers, e.g. while reconnecting), ``ticks_invalid`` (undecodable), ``feed_reconnects``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import orjson

from bot.engine.mailbox import Message, Priority, PutResult
from bot.telemetry.recorder import Telemetry

log = logging.getLogger(__name__)

Post = Callable[[str, Message], PutResult]


class FeedClient:
    def __init__(self, url: str, telemetry: Telemetry, post: Post, reference: dict[str, float],
                 known_pairs: Mapping[str, object], *, max_backoff: float = 5.0) -> None:
        self.url = url
        self._t = telemetry
        self._post = post
        self._ref = reference
        self._pairs = known_pairs
        self.max_backoff = max_backoff
        self._last_seq: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.connects = 0
        self.bytes_received = 0  # WebSocket payload bytes (frame headers excluded: a few bytes each)

    def __repr__(self) -> str:
        return f"<FeedClient {self.url} connected={self.connected} connects={self.connects}>"

    def handle_frame(self, data: bytes | str) -> None:
        self.bytes_received += len(data)
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._t.count("ticks_invalid")
            return
        if isinstance(obj, list):
            for tick in obj:
                self._handle_tick(tick)
        else:
            self._handle_tick(obj)

    def _handle_tick(self, tick: Any) -> None:
        try:
            pair = tick["pair"]
            seq = int(tick["seq"])
            price = float(tick["price"])
            trade = bool(tick.get("trade", False))
            tag = tick.get("tag")
        except (KeyError, TypeError, ValueError):
            self._t.count("ticks_invalid")
            return
        if not isinstance(tag, str):
            tag = None
        if pair not in self._pairs:
            self._t.count("ticks_invalid", tag=tag)
            return
        if self._last_seq is not None and seq > self._last_seq + 1:
            self._t.count("ticks_missed", seq - self._last_seq - 1)
        self._last_seq = seq if self._last_seq is None else max(seq, self._last_seq)
        self._ref[pair] = price
        if trade:
            result = self._post(pair, Message(Priority.ENTRY, "trade", tick, scheduled=float(tick["scheduled"])))
            if result is PutResult.REJECTED:
                self._t.count("ticks_rejected", tag=tag)
                return
        self._t.count("ticks_handled", tag=tag)

    async def _run(self) -> None:
        backoff = 0.1
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.ws_connect(self.url, heartbeat=10, max_msg_size=16 * 2**20) as ws:
                        self.connected = True
                        self.connects += 1
                        if self.connects > 1:
                            self._t.count("feed_reconnects")
                        backoff = 0.1
                        async for msg in ws:
                            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                                self.handle_frame(msg.data)
                            elif msg.type == aiohttp.WSMsgType.ERROR:
                                break
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    log.debug("feed %s: %s", self.url, exc)
                self.connected = False
                # Full jitter: many bots reconnecting to one feed must not arrive in lockstep.
                await asyncio.sleep(random.uniform(0, backoff))
                backoff = min(self.max_backoff, backoff * 2)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="feed-client")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
