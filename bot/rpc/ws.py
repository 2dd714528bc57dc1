"""``WsSubscriber``: newHeads and logs subscriptions that survive dropped connections.

The async shell around ``ws_sync``. One task owns the connection:

    connect -> eth_subscribe each subscription -> backfill the gap -> read until the socket drops
      ^                                                                           |
      +------------- full-jitter backoff (capped at reconnect_max_delay) ---------+

It never gives up once it has connected: after ``degraded_after`` failed attempts in a row it
is *degraded* (counted in ``degradations``) and tells its link listeners (``on_link``), so a
consumer can fall back, e.g. receipts to polling; the first connection that synchronises again
tells them it is live. ``start()`` alone gives up, after ``max_reconnects`` failed attempts
without a first connection: a URL that never worked is a configuration error. ``start(spawn)``
hands the connection loop to a supervisor (``bot.engine.supervisor``), which restarts it if it
crashes; otherwise the subscriber runs it in a task of its own.

While (re)subscribing and backfilling, live pushes are held back and released afterwards, so
a consumer sees backfilled blocks before the newer live ones; every item passes a dedupe
(``SeenSet``) first, so nothing is delivered twice. Backfill uses ``eth_blockNumber`` and
``eth_getBlockByNumber(n, false)`` (newHeads: the delivered item is the block object, a
superset of the header fields) or ``eth_getLogs`` (logs, with the subscription's filter),
over this WebSocket or, when given, an HTTP ``RpcClient``. At most ``max_backfill_blocks``
blocks are fetched per gap; older missed blocks are counted in ``backfill_skipped``.

Delivery queue policy: one bounded queue (``WsOptions.queue_size``). The reader never waits
for a consumer (a blocked reader would stop answering pings and the node would drop us), so
when the queue is full the *oldest* queued event is discarded and counted in ``dropped``:
the newest chain state is worth more to a trading bot than a stale one.

``request()`` also offers plain request/response calls over the same socket.

A redirect answer to the handshake is never followed (``RedirectRefused``, and the subscriber
stops: the same URL would redirect again). Errors, ``repr`` and statistics show the URL redacted
(``bot.redact``).
"""

# The per-call ``timeout`` bounds the wait for the matching WebSocket answer (asyncio.wait_for).
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from bot.redact import host_of, redact_text, redact_url
from bot.rpc import codec
from bot.rpc.backoff import Random, full_jitter
from bot.rpc.config import WsOptions
from bot.rpc.errors import InvalidResponse, RedirectRefused, RpcError, RpcTimeout, TransportError
from bot.rpc.protocol import RpcClient
from bot.rpc.ws_sync import HeadCursor, LogCursor, SeenSet, head_key, log_key, seen_head, seen_log

_log = logging.getLogger(__name__)
_MAX_MESSAGE = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Event:
    """One delivered item: a block header (``newHeads``) or a log (``logs``)."""

    subscription: str
    kind: Literal["newHeads", "logs"]
    data: Any
    backfilled: bool


@dataclass(frozen=True, slots=True)
class WsStatistics:
    """``connects``: connections that subscribed and caught up; ``reconnects``: reconnect attempts;
    ``messages``: subscription pushes received; ``delivered`` = live + ``backfilled`` items queued;
    ``duplicates``: items suppressed by the dedupe; ``dropped``: events discarded by the full
    queue; ``backfill_skipped``: missed blocks beyond ``max_backfill_blocks``."""

    url: str
    connected: bool
    connects: int
    reconnects: int
    messages: int
    delivered: int
    duplicates: int
    backfilled: int
    backfill_skipped: int
    dropped: int
    queue_size: int
    queue_depth: int
    requests: int
    bytes_sent: int
    bytes_received: int
    errors: Mapping[str, int]
    degraded: bool = False  # degraded_after or more failed attempts in a row, not yet connected again
    degradations: int = 0


class _Sub:
    def __init__(self, key: str, kind: Literal["newHeads", "logs"], log_filter: dict[str, Any] | None) -> None:
        self.key = key
        self.kind = kind
        self.filter = log_filter
        self.heads = HeadCursor()
        self.logs = LogCursor()

    def params(self) -> list[Any]:
        return ["newHeads"] if self.kind == "newHeads" else ["logs", self.filter or {}]


class _Closed:
    """Queue sentinel: the subscriber stopped (``error`` None: closed by its owner)."""

    def __init__(self, error: RpcError | None) -> None:
        self.error = error


class WsSubscriber:
    """Subscriptions over one WebSocket, with reconnect, resubscribe and backfill."""

    def __init__(
        self,
        url: str,
        options: WsOptions | None = None,
        *,
        backfill_client: RpcClient | None = None,
        rng: Random | None = None,
    ) -> None:
        if urlsplit(url).scheme not in ("ws", "wss"):
            raise ValueError(f"WsSubscriber url: expected ws(s)://host:port[/path], got {redact_url(url)!r}")
        self.url = url
        self.name = redact_url(url)  # what errors, repr and statistics may show
        self.options = options or WsOptions()
        self._backfill_client = backfill_client
        self._rng: Random = rng or random.Random()
        self._subs: list[_Sub] = []
        self._by_server_id: dict[str, _Sub] = {}
        self._queue: asyncio.Queue[Event | _Closed] = asyncio.Queue(self.options.queue_size)
        self._seen = SeenSet(self.options.dedupe_window)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._held: list[codec.Notification] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._gave_up = asyncio.Event()  # start() must stop waiting: never connected, or refused for good
        self._started = False
        self._closed = False
        self._fatal: RpcError | None = None
        self._live = False
        self._degraded = False
        self._degradations = 0
        self._link_listeners: list[Callable[[bool], None]] = []
        self._connects = 0
        self._reconnects = 0
        self._messages = 0
        self._delivered = 0
        self._duplicates = 0
        self._backfilled = 0
        self._backfill_skipped = 0
        self._dropped = 0
        self._requests = 0
        self._bytes_sent = 0
        self._bytes_received = 0
        self._errors: Counter[str] = Counter()

    def __repr__(self) -> str:
        return (
            f"WsSubscriber({self.name!r}, subscriptions={len(self._subs)}, connected={self._ws is not None}, "
            f"queue={self._queue.qsize()}/{self.options.queue_size}, reconnects={self._reconnects})"
        )

    # -- configuration -------------------------------------------------------------------------

    def subscribe_new_heads(self) -> str:
        """Register a newHeads subscription (before ``start``); returns its key for ``Event.subscription``."""
        return self._register("newHeads", None)

    def subscribe_logs(self, address: str | Sequence[str] | None = None, topics: Sequence[Any] | None = None) -> str:
        """Register a logs subscription with an ``eth_subscribe``/``eth_getLogs`` filter (before ``start``)."""
        log_filter: dict[str, Any] = {}
        if address is not None:
            log_filter["address"] = address if isinstance(address, str) else list(address)
        if topics is not None:
            log_filter["topics"] = list(topics)
        return self._register("logs", log_filter)

    def _register(self, kind: Literal["newHeads", "logs"], log_filter: dict[str, Any] | None) -> str:
        if self._started:
            raise RuntimeError("WsSubscriber: register subscriptions before start()")
        key = f"{kind}#{len(self._subs)}"
        self._subs.append(_Sub(key, kind, log_filter))
        return key

    # -- lifecycle -----------------------------------------------------------------------------

    def on_link(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(True)`` when a connection is live (subscribed and caught up) after none
        was, ``listener(False)`` when the subscriber becomes degraded."""
        self._link_listeners.append(listener)

    async def start(self, spawn: Callable[[Callable[[], Coroutine[Any, Any, None]]], None] | None = None) -> None:
        """Connect and subscribe; returns once the first subscription is live (or raises).

        With ``spawn``, the connection loop is handed to it (a supervisor) instead of a task of our
        own; if start then fails, the loop keeps running until its owner stops it."""
        if self._started:
            raise RuntimeError("WsSubscriber: start() called twice")
        self._started = True
        # ws_connect has no allow_redirects: the middleware refuses a 3xx before aiohttp follows it.
        self._session = aiohttp.ClientSession(middlewares=(self._refuse_redirects,))
        waits = {asyncio.create_task(self._ready.wait()), asyncio.create_task(self._gave_up.wait())}
        if spawn is None:
            self._task = asyncio.create_task(self._run(), name=f"ws-subscriber {self.name}")
            await asyncio.wait({*waits, self._task}, return_when=asyncio.FIRST_COMPLETED)
        else:
            spawn(self._run)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waits:
            waiter.cancel()
        if not self._ready.is_set():
            if spawn is None:
                await self.aclose()
            raise self._fatal or TransportError(f"{self.name}: subscriber stopped before it connected")

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._put(_Closed(None))

    async def __aenter__(self) -> WsSubscriber:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- consuming -----------------------------------------------------------------------------

    async def get(self) -> Event:
        """The next event; raises the subscriber's error once it gave up, ``StopAsyncIteration`` once closed."""
        item = await self._queue.get()
        if isinstance(item, _Closed):
            self._put(item)  # later readers must see the end too
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    def __aiter__(self) -> WsSubscriber:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def statistics(self) -> WsStatistics:
        return WsStatistics(
            url=self.name,
            connected=self._ws is not None,
            degraded=self._degraded,
            degradations=self._degradations,
            connects=self._connects,
            reconnects=self._reconnects,
            messages=self._messages,
            delivered=self._delivered,
            duplicates=self._duplicates,
            backfilled=self._backfilled,
            backfill_skipped=self._backfill_skipped,
            dropped=self._dropped,
            queue_size=self.options.queue_size,
            queue_depth=self._queue.qsize(),
            requests=self._requests,
            bytes_sent=self._bytes_sent,
            bytes_received=self._bytes_received,
            errors=MappingProxyType(dict(self._errors)),
        )

    # -- requests ------------------------------------------------------------------------------

    async def request(self, method: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> Any:
        """A plain JSON-RPC call over the current connection."""
        ws = self._ws
        if ws is None:
            raise TransportError(f"{self.name}: not connected")
        return await self._request_on(ws, method, params, timeout)

    async def _request_on(
        self, ws: aiohttp.ClientWebSocketResponse, method: str, params: Sequence[Any], timeout: float | None
    ) -> Any:
        rid = next(self._ids)
        body = codec.encode_request(method, params, rid)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._requests += 1
        wait = self.options.request_timeout if timeout is None else timeout
        try:
            try:
                # Text frames: JSON-RPC over WebSocket is text, and some nodes ignore binary frames.
                await ws.send_str(body.decode())
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
                raise TransportError(f"{self.name}: send failed: {redact_text(str(exc))}") from exc
            self._bytes_sent += len(body)
            try:
                return await asyncio.wait_for(fut, wait)
            except TimeoutError as exc:
                raise RpcTimeout(f"{self.name}: no answer to {method} within {wait:g}s") from exc
        except RpcError as exc:
            self._errors[exc.kind] += 1
            raise
        finally:
            self._pending.pop(rid, None)

    async def _backfill_call(self, ws: aiohttp.ClientWebSocketResponse, method: str, params: Sequence[Any]) -> Any:
        if self._backfill_client is not None:
            return await self._backfill_client.call(method, params, timeout=self.options.request_timeout)
        return await self._request_on(ws, method, params, None)

    # -- the connection task -------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        assert self._session is not None
        while not self._closed:
            connects = self._connects
            try:
                await self._connection(self._session)
            except RedirectRefused as exc:
                self._fatal = exc  # the same URL would redirect again: reconnecting cannot help
                self._gave_up.set()
                self._put(_Closed(exc))
                return
            except RpcError:
                pass  # counted where it was raised
            except (aiohttp.ClientError, OSError, TimeoutError):
                self._errors["transport"] += 1
            if self._closed:
                return
            if self._connects > connects:
                failures = 0  # it synchronised and later dropped: a fresh run of reconnects
            failures += 1
            if failures >= self.options.degraded_after:
                self._set_live(False)
            if not self._ready.is_set() and failures > self.options.max_reconnects and not self._gave_up.is_set():
                self._fatal = TransportError(
                    f"{self.name}: no connection after {self.options.max_reconnects} attempts in a row"
                )
                self._gave_up.set()  # start() raises; the loop itself goes on until it is closed
            self._reconnects += 1
            await asyncio.sleep(
                full_jitter(
                    failures - 1, self.options.reconnect_base_delay, self.options.reconnect_max_delay, self._rng
                )
            )

    def _set_live(self, live: bool) -> None:
        """Tell the listeners when the link comes up, and when it degrades (once per degradation)."""
        if live:
            if self._live:
                return
            self._live, self._degraded = True, False
        else:
            if self._degraded:
                return
            self._live, self._degraded = False, True
            self._degradations += 1
        for listener in list(self._link_listeners):
            try:
                listener(live)
            except Exception:  # a broken listener must not take the connection loop down
                _log.exception("WsSubscriber %s: link listener failed", self.name)

    async def _refuse_redirects(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        response = await handler(request)
        if 300 <= response.status < 400:
            target = host_of(response.headers.get("Location"))
            response.close()
            self._errors["transport"] += 1
            raise RedirectRefused(self.name, response.status, target)
        return response

    async def _connection(self, session: aiohttp.ClientSession) -> None:
        timeout = aiohttp.ClientWSTimeout(ws_close=self.options.connect_timeout)
        async with asyncio.timeout(self.options.connect_timeout):
            ws = await session.ws_connect(
                self.url, heartbeat=self.options.heartbeat, timeout=timeout, max_msg_size=_MAX_MESSAGE
            )
        self._held = []
        reader = asyncio.create_task(self._read(ws))
        try:
            self._ws = ws
            await self._synchronise(ws)
            # Counted once subscribed and caught up: a connection that fails midway is not one.
            self._connects += 1
            self._ready.set()
            self._set_live(True)
            await reader
        finally:
            self._ws = None
            self._held = None
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await ws.close()

    async def _synchronise(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Subscribe everything, then fetch what the gap cost us, then release held pushes."""
        self._by_server_id.clear()
        for sub in self._subs:
            server_id = await self._request_on(ws, "eth_subscribe", sub.params(), None)
            if not isinstance(server_id, str):
                self._errors["invalid_response"] += 1
                raise InvalidResponse(f"eth_subscribe returned {server_id!r}, expected a subscription id")
            self._by_server_id[server_id] = sub
        head = codec.from_hex(await self._backfill_call(ws, "eth_blockNumber", []), "eth_blockNumber")
        for sub in self._subs:
            if sub.kind == "newHeads":
                await self._backfill_heads(ws, sub, head)
            else:
                await self._backfill_logs(ws, sub, head)
        held, self._held = self._held or [], None
        for note in held:
            self._on_notification(note)

    async def _backfill_heads(self, ws: aiohttp.ClientWebSocketResponse, sub: _Sub, head: int) -> None:
        gap = sub.heads.gap(head, self.options.max_backfill_blocks)
        sub.heads.start_at(head)
        self._backfill_skipped += gap.skipped
        for number in range(gap.start, gap.end + 1):
            block = await self._backfill_call(ws, "eth_getBlockByNumber", [codec.to_hex(number), False])
            if block is not None:
                self._deliver_head(sub, block, backfilled=True)

    async def _backfill_logs(self, ws: aiohttp.ClientWebSocketResponse, sub: _Sub, head: int) -> None:
        gap = sub.logs.gap(head, self.options.max_backfill_blocks)
        sub.logs.start_at(head)
        self._backfill_skipped += gap.skipped
        if len(gap) == 0:
            return
        query = {**(sub.filter or {}), "fromBlock": codec.to_hex(gap.start), "toBlock": codec.to_hex(gap.end)}
        logs = await self._backfill_call(ws, "eth_getLogs", [query])
        if not isinstance(logs, list):
            self._errors["invalid_response"] += 1
            raise InvalidResponse(f"eth_getLogs returned {str(logs)[:120]}, expected an array")
        for log in logs:
            self._deliver_log(sub, log, backfilled=True)
        sub.logs.caught_up(gap.end)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            await self._read_frames(ws)
        finally:
            # Fail waiting requests now: the synchronise step may be waiting on one.
            lost = TransportError(f"{self.name}: connection lost")
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(lost)

    async def _read_frames(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                break
            data = msg.data
            self._bytes_received += len(data)
            try:
                decoded = codec.decode_message(data)
            except RpcError as exc:
                # A garbage frame is counted and skipped; one bad push must not cost the socket.
                self._errors[exc.kind] += 1
                continue
            if isinstance(decoded, codec.Notification):
                self._messages += 1
                if self._held is not None:
                    # Held pushes obey the queue's bound and drop policy too.
                    if len(self._held) >= self.options.queue_size:
                        del self._held[0]
                        self._dropped += 1
                    self._held.append(decoded)
                else:
                    self._on_notification(decoded)
                continue
            fut = self._pending.get(decoded.id)
            if fut is None or fut.done():
                self._errors["invalid_response"] += 1
            elif decoded.error is not None:
                fut.set_exception(decoded.error)
            else:
                fut.set_result(decoded.result)

    # -- delivery ------------------------------------------------------------------------------

    def _on_notification(self, note: codec.Notification) -> None:
        sub = self._by_server_id.get(note.subscription)
        if sub is None:
            self._errors["unknown_subscription"] += 1
            return
        if sub.kind == "newHeads":
            self._deliver_head(sub, note.result, backfilled=False)
        else:
            self._deliver_log(sub, note.result, backfilled=False)

    def _deliver_head(self, sub: _Sub, header: Any, *, backfilled: bool) -> None:
        try:
            block_hash, number = head_key(header)
        except InvalidResponse:
            self._errors["invalid_response"] += 1
            return
        if not self._seen.add(seen_head(sub.key, block_hash)):
            self._duplicates += 1
            return
        sub.heads.delivered(number)
        self._emit(Event(sub.key, "newHeads", header, backfilled))

    def _deliver_log(self, sub: _Sub, log: Any, *, backfilled: bool) -> None:
        try:
            key, number = log_key(log)
        except InvalidResponse:
            self._errors["invalid_response"] += 1
            return
        if not self._seen.add(seen_log(sub.key, key)):
            self._duplicates += 1
            return
        sub.logs.delivered(number)
        self._emit(Event(sub.key, "logs", log, backfilled))

    def _emit(self, event: Event) -> None:
        self._delivered += 1
        if event.backfilled:
            self._backfilled += 1
        self._put(event)

    def _put(self, item: Event | _Closed) -> None:
        if self._queue.full():
            dropped = self._queue.get_nowait()
            if isinstance(dropped, Event):
                self._dropped += 1
        self._queue.put_nowait(item)
