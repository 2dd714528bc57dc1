"""The market-data feed client: a WebSocket that reconnects, decodes ticks and routes them.

A frame is one tick object or a JSON array of ticks (``harness.load.feed`` batches). Market
data (``trade: false``) reaches the pair's actor by conflation (``bot.market.conflation``): the
newest tick per pair is kept and the actor woken once, and its strategy takes the newest price as
its reference. At 10k ticks/s a hop through an actor's mailbox per tick would cost more than the
work. Trade signals go to the pair's actor as ``ENTRY`` messages carrying the tick's scheduled time.

Counters: ``ticks_handled`` (a trade signal queued to its actor; a market tick the actor looked
at), ``ticks_conflated{kind=market}`` (a market tick superseded by a newer one of its pair that the actor
looked at; both counted at the look), ``ticks_rejected`` (a full mailbox refused a trade signal:
backpressure, counted not hidden), ``ticks_missed`` (gaps in the feed's sequence numbers, e.g.
while reconnecting), ``ticks_invalid`` (undecodable), ``feed_reconnects``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import orjson

from bot.engine.mailbox import Message, Priority, PutResult
from bot.market.conflation import DEFAULT_WINDOW_S, ConflationStatistics, Conflator
from bot.telemetry.recorder import Telemetry

log = logging.getLogger(__name__)

Post = Callable[[str, Message], PutResult]


def _sent_at(tick: Mapping[str, Any]) -> float | None:
    """A market tick's intended send time, if it carries a usable one (it only times the delivery)."""
    s = tick.get("scheduled")
    # orjson decodes a Unix time (a JSON number with a fraction) as float; this runs per tick, so the
    # exact type test rather than isinstance against a union.
    return s if type(s) is float and math.isfinite(s) else None


class FeedClient:
    """``reference`` is the strategy's price per pair: written by each pair's actor at its look, never here."""

    def __init__(self, url: str, telemetry: Telemetry, post: Post, reference: dict[str, float],
                 known_pairs: Mapping[str, object], *, max_backoff: float = 5.0,
                 conflate_s: float = DEFAULT_WINDOW_S) -> None:
        self.url = url
        self._t = telemetry
        self._post = post
        self._pairs = known_pairs
        self._market = Conflator(known_pairs, post, telemetry, reference, window_s=conflate_s)
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
            # A trade signal is timed from when it was meant to be sent: one without that is invalid.
            scheduled = float(tick["scheduled"]) if trade else None
            tag = tick.get("tag")
        except (KeyError, TypeError, ValueError, OverflowError):
            self._t.count("ticks_invalid")
            return
        if not isinstance(tag, str):
            tag = None
        if not isinstance(pair, str) or pair not in self._pairs or (
                scheduled is not None and not math.isfinite(scheduled)):
            self._t.count("ticks_invalid", tag=tag)
            return
        if self._last_seq is not None and seq > self._last_seq + 1:
            self._t.count("ticks_missed", seq - self._last_seq - 1)
        self._last_seq = seq if self._last_seq is None else max(seq, self._last_seq)
        if not trade:
            self._market.offer(pair, price, _sent_at(tick), tag)  # counted when the actor looks
            return
        result = self._post(pair, Message(Priority.ENTRY, "trade", tick, scheduled=scheduled))
        if result is PutResult.REJECTED:
            self._t.count("ticks_rejected", tag=tag)
            return
        self._t.count("ticks_handled", tag=tag)

    async def run(self) -> None:
        """Connect, read and reconnect until cancelled (``start`` runs it in a task; a supervisor may own it)."""
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
        self._task = asyncio.create_task(self.run(), name="feed-client")

    def conflation(self) -> ConflationStatistics:
        return self._market.statistics()

    async def stop(self) -> None:
        self._market.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
