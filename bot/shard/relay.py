"""The market-data feed, split across the shards: one upstream connection, one local stream per shard.

A feed serves one connection (the harness's ``MarketFeed`` replaces the old connection with a new one),
so the children cannot each connect to it: the parent does, and relays each tick to the shard that
trades its pair, over a WebSocket on 127.0.0.1 (``/feed/<shard>``), as a JSON array per upstream frame.

``Splitter`` (pure) decides where each tick goes. Each shard's stream gets its own consecutive ``seq``,
so a child's gap count (``ticks_missed``) means ticks lost on the way to it; a gap in the upstream
numbering is passed on as the same gap in shard 0's stream, so the merged count still equals a single
bot's. A tick that is not an object with a known ``pair``, and a frame that is not JSON, go to shard 0
unchanged: the child counts them invalid exactly as a single bot would. The relay never waits for a
slow child: frames queue per shard (bounded, ``queue_frames``) and beyond that are dropped and counted,
and a shard not connected counts its ticks undelivered; the harness sees both as ticks the bot never
handled, as it would for a single bot that read too slowly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bot.api import serve

log = logging.getLogger(__name__)


class Splitter:
    """Upstream frames -> one encoded frame per shard that has ticks in it (pure)."""

    def __init__(self, owner: Mapping[str, int], shards: int) -> None:
        self._owner = owner
        self._next_seq = [0] * shards
        self._last_upstream: int | None = None
        self.gaps = 0  # upstream ticks missing from its numbering (passed on to shard 0)
        self.invalid_frames = 0

    def __repr__(self) -> str:
        return f"<Splitter shards={len(self._next_seq)} gaps={self.gaps} invalid_frames={self.invalid_frames}>"

    def split(self, data: bytes | str) -> dict[int, tuple[bytes, int]]:
        """``{shard: (frame, ticks in it)}`` for one upstream frame."""
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.invalid_frames += 1
            return {0: (data.encode() if isinstance(data, str) else data, 1)}
        hands: dict[int, list[Any]] = {}
        for tick in obj if isinstance(obj, list) else [obj]:
            shard = self._route(tick)
            hands.setdefault(shard, []).append(tick)
        return {shard: (orjson.dumps(ticks), len(ticks)) for shard, ticks in hands.items()}

    def _route(self, tick: Any) -> int:
        if not isinstance(tick, dict):
            return 0
        pair = tick.get("pair")
        shard = self._owner.get(pair, 0) if isinstance(pair, str) else 0
        seq = tick.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            last = self._last_upstream
            if last is not None and seq > last + 1:
                self.gaps += seq - last - 1
                self._next_seq[0] += seq - last - 1
            self._last_upstream = seq if last is None else max(last, seq)
            tick["seq"] = self._next_seq[shard]
            self._next_seq[shard] += 1
        return shard


@dataclass(frozen=True, slots=True)
class RelayStatistics:
    upstream_connected: bool
    upstream_connects: int
    bytes_received: int
    frames_in: int
    ticks_out: tuple[int, ...]  # per shard: written to its socket
    dropped: tuple[int, ...]  # per shard: its queue was full
    undelivered: tuple[int, ...]  # per shard: it was not connected
    connected: tuple[bool, ...]
    upstream_gaps: int
    invalid_frames: int


class _Stream:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue(maxsize=size)  # (frame, ticks in it)
        self.ws: web.WebSocketResponse | None = None
        self.ticks_out = 0
        self.dropped = 0
        self.undelivered = 0


class FeedRelay:
    """Serve ``/feed/<shard>`` on 127.0.0.1 and relay ``upstream`` into it; ``start`` then ``aclose``."""

    def __init__(self, upstream: str, owner: Mapping[str, int], shards: int, *, queue_frames: int = 1024,
                 max_backoff: float = 5.0) -> None:
        self.upstream = upstream
        self._splitter = Splitter(owner, shards)
        self._streams = [_Stream(queue_frames) for _ in range(shards)]
        self._max_backoff = max_backoff
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self._base = ""
        self._connected = False
        self._connects = 0
        self._bytes = 0
        self._frames = 0

    def __repr__(self) -> str:
        return f"<FeedRelay {self._base or 'not started'} shards={len(self._streams)} frames_in={self._frames}>"

    def url(self, shard: int) -> str:
        return f"{self._base}/feed/{shard}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/feed/{shard:[0-9]+}", self._serve_shard)
        self._server = await serve(app, "127.0.0.1", 0)
        self._base = self._server.url.replace("http://", "ws://", 1)
        self._task = asyncio.create_task(self._pump(), name="feed-relay")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        for stream in self._streams:
            if stream.ws is not None:
                await stream.ws.close()
        if self._server is not None:
            await self._server.aclose()

    def statistics(self) -> RelayStatistics:
        s = self._streams
        return RelayStatistics(self._connected, self._connects, self._bytes, self._frames,
                               tuple(x.ticks_out for x in s), tuple(x.dropped for x in s),
                               tuple(x.undelivered for x in s), tuple(x.ws is not None for x in s),
                               self._splitter.gaps, self._splitter.invalid_frames)

    def _deliver(self, data: bytes | str) -> None:
        self._bytes += len(data)
        self._frames += 1
        for shard, (frame, ticks) in self._splitter.split(data).items():
            stream = self._streams[shard]
            if stream.ws is None:
                stream.undelivered += ticks
                continue
            try:
                stream.queue.put_nowait((frame, ticks))
            except asyncio.QueueFull:
                stream.dropped += ticks

    async def _pump(self) -> None:
        backoff = 0.1
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.ws_connect(self.upstream, heartbeat=10, max_msg_size=16 * 2**20) as ws:
                        self._connected, backoff = True, 0.1
                        self._connects += 1
                        async for msg in ws:
                            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                                self._deliver(msg.data)
                            elif msg.type == aiohttp.WSMsgType.ERROR:
                                break
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    log.debug("feed relay %s: %s", self.upstream, exc)
                self._connected = False
                await asyncio.sleep(random.uniform(0, backoff))  # full jitter, as the bot's own feed client
                backoff = min(self._max_backoff, backoff * 2)

    async def _serve_shard(self, request: web.Request) -> web.StreamResponse:
        shard = int(request.match_info["shard"])
        if shard >= len(self._streams):
            raise web.HTTPNotFound(text=f"no shard {shard}")
        stream = self._streams[shard]
        ws = web.WebSocketResponse(max_msg_size=1024)
        await ws.prepare(request)
        if stream.ws is not None:  # a reconnecting child replaces its old connection
            await stream.ws.close()
        while not stream.queue.empty():  # frames meant for the old connection: undeliverable now
            stream.undelivered += stream.queue.get_nowait()[1]
        stream.ws = ws
        sender = asyncio.create_task(self._send(stream, ws), name=f"feed-relay-{shard}")
        try:
            async for _ in ws:  # the child sends nothing; this ends when it goes away
                pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            if stream.ws is ws:
                stream.ws = None
        return ws

    async def _send(self, stream: _Stream, ws: web.WebSocketResponse) -> None:
        while True:
            frame, ticks = await stream.queue.get()
            try:
                await ws.send_bytes(frame)
            except (ConnectionError, RuntimeError):
                stream.undelivered += ticks
                return
            stream.ticks_out += ticks
