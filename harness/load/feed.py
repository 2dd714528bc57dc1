"""The market-data feed: a WebSocket server on 127.0.0.1 that sends ticks open-loop to the bot.

The bot connects to ``feed.url`` (``ws://127.0.0.1:PORT/feed``). ``run(market=..., trades=...)``
sends ticks (``harness.load.ticks``) at the schedules' times and never waits for the bot:

- the scheduler hands each due frame to a bounded per-connection queue (``queue_frames``) and
  moves on; a separate sender task writes frames to the socket. If the bot reads too slowly
  for the queue to drain, the frame is dropped and its ticks counted ``ws_dropped``. Waiting
  instead would slow the schedule to the bot's pace: a closed loop.
- with no bot connected, due ticks are counted ``ws_undelivered``, as are ticks queued when
  a connection closes. A new connection replaces the old one (a reconnecting bot).
- ``ws_sent`` counts ticks written to the socket (not frames; ``ws_frames`` counts those).
  Bytes already in kernel buffers when the bot vanishes cannot be known lost without acks:
  compare ``ws_sent`` with what the bot reports it handled.
- ``feed.lag`` (histogram, µs) is the feed's own scheduling lag per tick: frame hand-off time
  minus intended time. ``FeedResult.behind`` says when the feed itself could not keep up.

Every ``scenario ticks = scheduled`` is accounted: ``ws_sent + ws_undelivered + ws_dropped``
equals the scheduled count once the run is over (ticks still queued at the end are flushed
within ``flush_timeout_s`` or counted undelivered).

Batching (``batch_max``): 1 sends one tick object per frame; > 1 sends a JSON array of all
ticks due at that moment (at most ``batch_max``). ``coalesce_s`` (batched only; default 0.5 ms) waits that long
after a tick is due so the ticks due meanwhile share its frame: fewer, larger frames for at most
``coalesce_s`` of added lag, which ``feed.lag`` includes. ``harness.load.capacity`` measures
both forms at 10k ticks/s. Intervals are seconds since the run started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from harness.errors import ConfigError
from harness.load.generator import wait_until
from harness.load.recorder import NS_PER_S, IntervalRecord, IntervalSeries, LagPolicy
from harness.load.schedules import Schedule
from harness.load.ticks import TickSource, encode_frame, merge_schedules
from harness.load.wallclock import WallAnchor

log = logging.getLogger("harness.feed")

LAG_KEY = "feed.lag"
# Measured at 10k ticks/s on the 2-core box: ~10 ticks per frame and half the lag p99 of
# unbatched frames (harness.load.capacity).
DEFAULT_COALESCE_S = 0.0005
COUNTERS = ("ws_sent", "ws_frames", "ws_undelivered", "ws_dropped")


@dataclass(frozen=True)
class FeedStatistics:
    running: bool
    connected: bool
    connects: int
    disconnects: int
    scheduled: int
    ws_sent: int
    ws_frames: int
    ws_undelivered: int
    ws_dropped: int
    queued_frames: int
    queue_frames: int


@dataclass(frozen=True)
class FeedResult:
    intervals: list[IntervalRecord]
    scheduled: int
    ws_sent: int
    ws_undelivered: int
    ws_dropped: int
    target_rate: float
    achieved_rate: float
    lag_p99_ms: float
    lag_max_ms: float
    behind: bool

    def summary_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "intervals"}


class _Conn:
    """One bot connection: its socket, its bounded frame queue and its sender task."""

    def __init__(self, ws: web.WebSocketResponse, size: int) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue(maxsize=size)
        self.sender: asyncio.Task[None] | None = None
        self.in_hand = 0  # ticks in the frame off the queue but not yet written
        self.written_off = 0  # of those, already counted undelivered by a timed-out flush

    @property
    def idle(self) -> bool:
        return self.queue.empty() and not self.in_hand


class MarketFeed:
    def __init__(self, pairs: list[str] | tuple[str, ...], *, seed: int = 0, batch_max: int = 64,
                 queue_frames: int = 4096, spin_s: float = 0.0, flush_timeout_s: float = 5.0,
                 send_buffer_bytes: int | None = None, coalesce_s: float | None = None,
                 lag_policy: LagPolicy | None = None) -> None:
        if batch_max < 1:
            raise ConfigError(f"feed batch_max must be >= 1, got {batch_max}")
        if coalesce_s is None:
            coalesce_s = DEFAULT_COALESCE_S if batch_max > 1 else 0.0
        if not 0 <= coalesce_s <= 0.01 or (coalesce_s and batch_max == 1):
            raise ConfigError(f"feed coalesce_s must be in [0, 0.01] s and needs batch_max > 1, got {coalesce_s}")
        if queue_frames < 1:
            raise ConfigError(f"feed queue_frames must be >= 1, got {queue_frames}")
        self.source = TickSource(pairs, seed=seed)
        self.batch_max = batch_max
        self.queue_frames = queue_frames
        self._spin_ns = int(spin_s * NS_PER_S)
        self._coalesce_ns = int(coalesce_s * NS_PER_S)
        self._flush_timeout_s = flush_timeout_s
        # Kernel buffers can hold megabytes a vanished bot never reads; a cap makes backpressure
        # (and so ws_dropped) show sooner and bounds what "sent" can overstate.
        self._send_buffer_bytes = send_buffer_bytes
        self._lag_policy = lag_policy or LagPolicy()
        self._runner: web.AppRunner | None = None
        self._conn: _Conn | None = None
        self._client_event = asyncio.Event()
        self._series = IntervalSeries(counters=COUNTERS)
        self._t0_ns = time.perf_counter_ns()
        self.wall_anchor: WallAnchor | None = None  # the last run's: its steps say if the wall clock moved
        self._running = False
        self._scheduled = 0
        self._totals = dict.fromkeys(COUNTERS, 0)
        self._last_sent_ns = 0
        self.connects = 0
        self.disconnects = 0
        self.url = ""

    @property
    def series(self) -> IntervalSeries:
        """The current (or last) run's per-second series, replaced when a run starts (read-only), for a live view."""
        return self._series

    def __repr__(self) -> str:
        s = self.statistics()
        return (f"<MarketFeed {self.url or 'not started'} connected={s.connected} sent={s.ws_sent} "
                f"undelivered={s.ws_undelivered} dropped={s.ws_dropped} queue={s.queued_frames}/{s.queue_frames}>")

    def statistics(self) -> FeedStatistics:
        t = self._totals
        return FeedStatistics(self._running, self._conn is not None, self.connects, self.disconnects,
                              self._scheduled, t["ws_sent"], t["ws_frames"], t["ws_undelivered"],
                              t["ws_dropped"], self._conn.queue.qsize() if self._conn else 0, self.queue_frames)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/feed", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)  # loopback only, a free port
        await site.start()
        self.url = f"ws://127.0.0.1:{self._runner.addresses[0][1]}/feed"
        return self.url

    async def stop(self) -> None:
        if self._conn is not None:
            await self._conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MarketFeed:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_for_client(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._client_event.wait(), timeout_s)
        except TimeoutError:
            raise ConfigError(f"no client connected to the feed {self.url} within {timeout_s:g} s; "
                              "is the bot configured with this feed URL?") from None

    def _count(self, name: str, n: int) -> None:
        t = time.perf_counter_ns() - self._t0_ns
        self._series.count(t, name, n)
        self._totals[name] += n
        if name == "ws_sent":
            self._last_sent_ns = t

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if self._send_buffer_bytes is not None and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer_bytes)
        old = self._conn
        conn = self._conn = _Conn(ws, self.queue_frames)
        if old is not None:
            await old.ws.close()  # the newest connection wins: the bot has reconnected
        self.connects += 1
        self._client_event.set()
        conn.sender = asyncio.create_task(self._send_loop(conn))
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self.disconnects += 1
            if self._conn is conn:
                self._conn = None
                self._client_event.clear()
            conn.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await conn.sender
            self._drain_undelivered(conn)
        return ws

    def _drain_undelivered(self, conn: _Conn) -> None:
        while not conn.queue.empty():
            _, n = conn.queue.get_nowait()
            self._count("ws_undelivered", n)

    async def _send_loop(self, conn: _Conn) -> None:
        while True:
            frame, n = await conn.queue.get()
            conn.in_hand = n
            try:
                await conn.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                self._count("ws_undelivered", n - conn.written_off)
                return
            except asyncio.CancelledError:
                self._count("ws_undelivered", n - conn.written_off)
                raise
            finally:
                conn.in_hand = 0
            if conn.written_off:
                # A flush gave up on this frame and counted it undelivered; it went out after all.
                self._count("ws_undelivered", -conn.written_off)
                conn.written_off = 0
            self._count("ws_sent", n)
            self._count("ws_frames", 1)

    def _dispatch(self, ticks: list[dict[str, object]]) -> None:
        n = len(ticks)
        conn = self._conn
        if conn is None or conn.ws.closed:
            self._count("ws_undelivered", n)
            return
        if conn.queue.full():
            self._count("ws_dropped", n)
            return
        conn.queue.put_nowait((encode_frame(ticks, batched=self.batch_max > 1), n))

    async def run(self, *, market: Schedule | None = None, trades: Schedule | None = None,
                  grace_s: float = 5.0, tag: str | None = None) -> FeedResult:
        """Send one scenario's ticks (each marked ``tag``); returns when all are sent or accounted for."""
        if market is None and trades is None:
            raise ConfigError("feed run needs a market schedule, a trades schedule, or both")
        if self._running:
            raise RuntimeError("the feed is already running a schedule")
        self._running = True
        self._series = IntervalSeries(counters=COUNTERS)
        self._totals = dict.fromkeys(COUNTERS, 0)
        self._last_sent_ns = 0
        scheduled = (market.count if market else 0) + (trades.count if trades else 0)
        duration = max(s.duration for s in (market, trades) if s is not None)
        self._scheduled = scheduled
        self._t0_ns = t0 = time.perf_counter_ns()
        anchor = self.wall_anchor = WallAnchor(time.time(), t0)  # harness.load.wallclock: why it is re-read
        deadline = t0 + int((duration + grace_s) * NS_PER_S)
        stream = merge_schedules(market, trades)
        nxt = next(stream, None)
        try:
            while nxt is not None:
                due = t0 + round(nxt.t * NS_PER_S)
                now = time.perf_counter_ns()
                if now >= deadline:
                    left = 1 + sum(1 for _ in stream)
                    self._count("ws_dropped", left)
                    break
                if due + self._coalesce_ns > now:
                    await wait_until(due + self._coalesce_ns, self._spin_ns)
                now = time.perf_counter_ns()
                if step := anchor.check(now, time.time()):
                    log.warning("feed: the wall clock stepped %+.3f s against the monotonic clock; ticks are "
                                "stamped in the new frame", step)
                batch: list[dict[str, object]] = []
                lags: list[int] = []
                # Per tick only what must be (at 50k ticks/s every µs here is 5% of a core): the lags
                # are recorded per batch, and the run's whole-lag figures merged from the intervals.
                while nxt is not None and len(batch) < self.batch_max:
                    due = t0 + round(nxt.t * NS_PER_S)
                    if due > now:
                        break
                    batch.append(self.source.tick(anchor.stamp(nxt.t), nxt.trade, tag))
                    lags.append(now - due)
                    nxt = next(stream, None)
                self._series.record_many_us(now - t0, LAG_KEY, lags)
                self._dispatch(batch)
                if len(batch) == self.batch_max:
                    await asyncio.sleep(0)  # catching up: let the sender write
            await self._flush()
        finally:
            self._running = False
        t = self._totals
        lag_total = self._series.merged(LAG_KEY)
        p99 = lag_total.get_value_at_percentile(99) / 1000.0 if lag_total.get_total_count() else 0.0
        lag_max = lag_total.get_max_value() / 1000.0 if lag_total.get_total_count() else 0.0
        # Over the schedule, or until the last tick went out if that was later (the flush's
        # polling after it is not the feed's sending time).
        span = max(duration, self._last_sent_ns / NS_PER_S)
        return FeedResult(self._series.intervals(), scheduled, t["ws_sent"], t["ws_undelivered"],
                          t["ws_dropped"], scheduled / duration, t["ws_sent"] / span, p99, lag_max,
                          self._lag_policy.behind(p99, lag_max))

    async def _flush(self) -> None:
        """Let queued frames go out (bounded); whatever is left is counted undelivered."""
        end = time.monotonic() + self._flush_timeout_s
        while self._conn is not None and not self._conn.idle and time.monotonic() < end:
            await asyncio.sleep(0.005)
        conn = self._conn
        if conn is not None and not conn.idle:
            self._drain_undelivered(conn)
            conn.written_off = conn.in_hand
            self._count("ws_undelivered", conn.in_hand)
