"""``HttpTransport``: the ``RpcClient`` for one HTTP JSON-RPC endpoint.

One aiohttp ``ClientSession`` per transport, over one keep-alive ``TCPConnector`` whose size
(``PoolLimits.max_connections``) bounds the sockets to the node: a new TCP connection per call
costs more than the call itself on loopback, so connections are reused and calls beyond the
pool's size queue for a free one. Bodies are encoded and decoded with orjson (``codec``).

Every failure leaves as a typed ``RpcError``:
connection refused/reset, HTTP 5xx -> ``TransportError``; a phase timeout -> ``RpcTimeout``;
HTTP 429 -> ``RateLimited`` with ``Retry-After`` parsed; a JSON-RPC error -> ``NodeError``
(node rate-limit codes such as -32005 -> ``RateLimited``); garbage -> ``InvalidResponse``;
HTTP 3xx -> ``RedirectRefused`` (redirects are never followed). This transport does not retry;
``EndpointPool`` does. Its ``name``, its ``repr``, its statistics and every error message carry the
URL redacted (``bot.redact``): a provider key in the URL stays in ``url`` and on the wire only.

Auto-batching (``BatchPolicy``, on by default): the first call of an iteration leads a group; it yields
to the loop once (or for ``window``), and every call made meanwhile joins it, so calls made in the same
iteration leave as one JSON-RPC batch, as viem's ``batch: {wait: 0}`` does. A leader with no followers
sends a plain request itself: a lone call pays one yield, no task and no extra future. Each call keeps its own result,
error and timeout (calls with different timeouts never share a request); a request that fails as a
whole fails each of its calls with a copy of the error. ``send_raw_transaction`` never joins a batch:
a failed batch would make every send in it ambiguous, and the sender must know which endpoint got
which bytes (DESIGN.md, "batching rule"). A group of one leaves as a plain request.

The call path is kept lean: the session carries the headers, one ``ClientTimeout`` per distinct timeout
is built once and reused, and the URL is parsed once.

Bytes are counted at the HTTP level (request/status line, headers and body each way):
psutil has no per-process network counters, so this is how the bot's bandwidth is measured.
TCP/IP framing is not included. Responses are requested uncompressed (``Accept-Encoding:
identity``) so the counted body is the body on the wire. Sent headers are computed from the
headers we set (we set them all, so aiohttp adds only Host and Content-Length) rather than
observed through an aiohttp ``TraceConfig``: tracing every request cost about 17% of
throughput at 64 in flight on this machine.
"""

# The per-call ``timeout`` is part of the RpcClient contract (DESIGN.md); it bounds the request
# at the transport (aiohttp ClientTimeout), which is what ASYNC109 asks for.
# ruff: noqa: ASYNC109
from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from bot.redact import host_of, redact_text, redact_url
from bot.rpc import codec
from bot.rpc.backoff import parse_retry_after
from bot.rpc.batching import BatchQueue, SizeHistogram, chunks
from bot.rpc.config import BatchPolicy, PoolLimits, Timeouts
from bot.rpc.errors import (
    InvalidResponse,
    RateLimited,
    RedirectRefused,
    RpcError,
    RpcTimeout,
    TransportError,
    clone,
)
from bot.rpc.sending import send_raw


@dataclass(frozen=True, slots=True)
class TransportStatistics:
    """``requests``: HTTP requests; ``calls``: JSON-RPC calls (a batch of n is n calls);
    ``in_flight``/``max_in_flight``: requests started and not finished, including those waiting
    for one of the ``max_connections`` pooled connections; ``already_known``: resends the node
    already had; ``errors``: count by ``RpcError.kind`` (per-call errors in batches included);
    ``batch_sizes``: cumulative ``(le, requests)`` by calls per request (``SIZE_BUCKETS``), every
    request counted; ``auto_batched``: calls that left through the auto-batching queue;
    ``url``: the endpoint redacted (``bot.redact``), since statistics are served and logged."""

    url: str
    requests: int
    calls: int
    batches: int
    bytes_sent: int
    bytes_received: int
    in_flight: int
    max_in_flight: int
    max_connections: int
    already_known: int
    errors: Mapping[str, int]
    batch_sizes: tuple[tuple[float, int], ...] = ()
    auto_batched: int = 0


_RESERVED_HEADERS = frozenset({"accept-encoding", "content-length", "host", "transfer-encoding"})


def _header_bytes(pairs: Iterable[tuple[str | bytes, str | bytes]]) -> int:
    # "Name: value\r\n" per header, then the blank line.
    return sum(len(k) + len(v) + 4 for k, v in pairs) + 2


_Waiting = tuple[str, Sequence[Any], "asyncio.Future[Any]"]  # a call waiting in a group: method, params, answer


class HttpTransport:
    """JSON-RPC over HTTP keep-alive to one endpoint. Create and use inside one event loop."""

    def __init__(
        self,
        url: str,
        timeouts: Timeouts | None = None,
        limits: PoolLimits | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        batching: BatchPolicy | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"HttpTransport url: expected http(s)://host[:port][/path], got {redact_url(url)!r}")
        self.url = url
        self.safe_url = redact_url(url)  # what statistics, errors and logs may show
        self._url = URL(url)
        self.name = name or self.safe_url
        self.timeouts = timeouts or Timeouts()
        self.limits = limits or PoolLimits()
        self.batching = batching or BatchPolicy()
        extra = dict(headers or {})
        for name_ in extra:
            if name_.lower() in _RESERVED_HEADERS:
                raise ValueError(
                    f"HttpTransport headers: {name_!r} is set by the transport (byte counting relies on it); remove it"
                )
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            # Bodies are read undecompressed (auto_decompress=False) so the byte count is the wire's.
            "Accept-Encoding": "identity",
            "User-Agent": f"tradebench-bot aiohttp/{aiohttp.__version__}",
        }
        self._headers.update(extra)
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        # "POST <path> HTTP/1.1\r\n", our headers, "Host: ...\r\n", "Content-Length: " + "\r\n", blank line.
        self._request_overhead = (
            len(f"POST {path} HTTP/1.1\r\n")
            + _header_bytes((k, v) for k, v in self._headers.items())
            + len(f"Host: {host}\r\n")
            + len("Content-Length: \r\n")
        )
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._ids = itertools.count(1)
        self._requests = 0
        self._calls = 0
        self._batches = 0
        self._bytes_sent = 0
        self._bytes_received = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._already_known = 0
        self._errors: Counter[str] = Counter()
        self._client_timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._sizes = SizeHistogram()
        self._queue: BatchQueue[_Waiting] = BatchQueue(self.batching.max_size)
        self._auto_batched = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return (
            f"HttpTransport({self.name!r}, in_flight={self._in_flight}, "
            f"max_connections={self.limits.max_connections}, requests={self._requests}, "
            f"closed={self._closed})"
        )

    async def __aenter__(self) -> HttpTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def statistics(self) -> TransportStatistics:
        return TransportStatistics(
            url=self.safe_url,
            requests=self._requests,
            calls=self._calls,
            batches=self._batches,
            bytes_sent=self._bytes_sent,
            bytes_received=self._bytes_received,
            in_flight=self._in_flight,
            max_in_flight=self._max_in_flight,
            max_connections=self.limits.max_connections,
            already_known=self._already_known,
            errors=MappingProxyType(dict(self._errors)),
            batch_sizes=self._sizes.buckets(),
            auto_batched=self._auto_batched,
        )

    async def aclose(self) -> None:
        self._closed = True
        for group in self._queue.drain():
            for _m, _p, fut in group:
                if not fut.done():
                    fut.set_exception(TransportError(f"{self.name}: transport closed before the call was sent"))
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise TransportError(f"{self.name}: transport is closed")
        if self._session is None:
            # Created lazily: aiohttp binds a session to the running loop.
            connector = aiohttp.TCPConnector(
                limit=self.limits.max_connections,
                limit_per_host=self.limits.per_host,
                keepalive_timeout=self.limits.keepalive_timeout,
                ttl_dns_cache=self.limits.dns_cache_ttl,
            )
            # The session carries the headers, so no request builds a header dict of its own.
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False, headers=self._headers)
        return self._session

    def _total(self, timeout: float | None) -> float:
        total = self.timeouts.total if timeout is None else timeout
        if not total > 0:
            raise ValueError(f"timeout: must be > 0 seconds, got {timeout!r}")
        return total

    def _client_timeout(self, total: float) -> aiohttp.ClientTimeout:
        # Built once per distinct timeout: a trade's calls use two or three values, never a new one each.
        ct = self._client_timeouts.get(total)
        if ct is None:
            ct = aiohttp.ClientTimeout(total=total, sock_connect=min(self.timeouts.connect, total),
                                       sock_read=min(self.timeouts.read, total))
            if len(self._client_timeouts) < 64:
                self._client_timeouts[total] = ct
        return ct

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        """The body, at most ``limits.max_response_bytes`` of it: past the cap it is ``InvalidResponse``
        and the rest is never read (the connection is then closed, not reused)."""
        cap = self.limits.max_response_bytes
        length = resp.content_length
        if length is not None and length <= cap:
            return await resp.read()  # the common case, unchanged
        if length is not None:
            raise InvalidResponse(f"{self.name}: response body of {length} bytes exceeds max_response_bytes {cap}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_any():  # chunked: no length to check up front
            size += len(chunk)
            if size > cap:
                self._bytes_received += size
                raise InvalidResponse(f"{self.name}: response body exceeds max_response_bytes {cap}")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _post(self, body: bytes, total: float, calls: int = 1) -> tuple[int, bytes]:
        session = self._get_session()
        client_timeout = self._client_timeout(total)
        self._sizes.record(calls)
        self._requests += 1
        self._in_flight += 1
        self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            self._bytes_sent += self._request_overhead + len(str(len(body))) + len(body)
            async with session.post(self._url, data=body, timeout=client_timeout, allow_redirects=False) as resp:
                payload = await self._read_body(resp)
                # "HTTP/1.1 200 OK\r\n": 15 bytes besides the reason phrase.
                self._bytes_received += 15 + len(resp.reason or "") + _header_bytes(resp.raw_headers)
                self._bytes_received += len(payload)
                status = resp.status
                retry_after_header = resp.headers.get("Retry-After")
                if 300 <= status < 400:
                    raise RedirectRefused(self.name, status, host_of(resp.headers.get("Location")))
        except TimeoutError as exc:
            raise RpcTimeout(f"{self.name}: {type(exc).__name__} (total {total:g}s): {redact_text(str(exc))}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            # aiohttp's messages may quote the request URL, credentials and all.
            raise TransportError(f"{self.name}: {type(exc).__name__}: {redact_text(str(exc))}") from exc
        finally:
            self._in_flight -= 1
        if status == 429:
            raise RateLimited(
                f"{self.name}: HTTP 429", retry_after=parse_retry_after(retry_after_header, time.time())
            )
        if status >= 500:
            raise TransportError(redact_text(f"{self.name}: HTTP {status}: {payload[:120]!r}"), status=status)
        return status, payload

    @staticmethod
    def _not_ok(name: str, status: int, payload: bytes, exc: InvalidResponse) -> TransportError:
        return TransportError(redact_text(f"{name}: HTTP {status}: {payload[:120]!r} ({exc})"), status=status)

    async def _call(self, method: str, params: Sequence[Any], total: float) -> Any:
        rid = next(self._ids)
        body = codec.encode_request(method, params, rid)
        self._calls += 1
        status, payload = await self._post(body, total)
        try:
            return codec.decode_response(payload, rid)
        except InvalidResponse as exc:
            # Providers answer 4xx with a JSON-RPC body (which the codec reads); otherwise it is the status.
            if status != 200:
                raise self._not_ok(self.name, status, payload, exc) from exc
            raise

    async def _batch_request(self, calls: Sequence[tuple[str, Sequence[Any]]], total: float) -> list[Any | RpcError]:
        first = next(self._ids)
        body, ids = codec.encode_batch(calls, first)
        # Reserve the rest of the ids so concurrent requests never reuse one.
        for _ in range(len(calls) - 1):
            next(self._ids)
        self._batches += 1
        self._calls += len(calls)
        status, payload = await self._post(body, total, len(calls))
        try:
            return codec.decode_batch(payload, ids)
        except InvalidResponse as exc:
            if status != 200:
                raise self._not_ok(self.name, status, payload, exc) from exc
            raise

    async def call(self, method: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> Any:
        total = self._total(timeout)
        try:
            if not self.batching.enabled:
                return await self._call(method, params, total)
            if self._closed:
                raise TransportError(f"{self.name}: transport is closed")
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            followers = self._queue.join(total, (method, params, fut))
            if followers is None:  # a follower: the group's leader sends this call with its own
                return await fut
            return await self._lead(total, method, params, followers)
        except RpcError as exc:
            self._errors[exc.kind] += 1
            raise

    async def _lead(self, total: float, method: str, params: Sequence[Any], followers: list[_Waiting]) -> Any:
        try:
            await asyncio.sleep(self.batching.window)  # 0: one yield, so calls of this iteration can join
        except BaseException:
            # The leader was cancelled before it sent anything: its followers must still leave.
            self._queue.close(total, followers)
            if followers:
                self._spawn(total, followers)
            raise
        self._queue.close(total, followers)
        if not followers:
            return await self._call(method, params, total)
        mine: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # A shared request runs in its own task: cancelling one caller must not cut the others' answers.
        self._spawn(total, [(method, params, mine), *followers])
        return await mine

    def _spawn(self, total: float, group: list[_Waiting]) -> None:
        self._auto_batched += len(group)
        task = asyncio.get_running_loop().create_task(self._send_group(total, group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_group(self, total: float, group: list[_Waiting]) -> None:
        try:
            if len(group) == 1:
                method, params, fut = group[0]
                result = await self._call(method, params, total)
                if not fut.done():  # the caller may have been cancelled meanwhile
                    fut.set_result(result)
                return
            results = await self._batch_request([(m, p) for m, p, _ in group], total)
        except RpcError as exc:
            # The request failed as a whole: every call in it fails, each with its own copy.
            for i, (_, _, fut) in enumerate(group):
                if not fut.done():
                    fut.set_exception(exc if i == 0 else clone(exc))
            return
        except BaseException as exc:  # a bug or cancellation must not leave a caller waiting forever
            for _, _, fut in group:
                if not fut.done():
                    fut.set_exception(TransportError(f"{self.name}: {type(exc).__name__}: {redact_text(str(exc))}"))
            raise
        for (_, _, fut), res in zip(group, results, strict=True):
            if fut.done():
                continue
            if isinstance(res, RpcError):
                fut.set_exception(res)
            else:
                fut.set_result(res)

    async def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout: float | None = None
    ) -> list[Any | RpcError]:
        """``calls`` in one request (several when above ``BatchPolicy.max_size``, sent concurrently);
        per-call errors come back in their slots, a request that fails as a whole raises."""
        if not calls:
            return []
        total = self._total(timeout)
        try:
            pieces = chunks(list(calls), self.batching.max_size)
            if len(pieces) == 1:
                results = await self._batch_request(pieces[0], total)
            else:
                parts = await asyncio.gather(*(self._batch_request(p, total) for p in pieces))
                results = [r for part in parts for r in part]
        except RpcError as exc:
            self._errors[exc.kind] += 1
            raise
        for item in results:
            if isinstance(item, RpcError):
                self._errors[item.kind] += 1
        return results

    async def send_raw_transaction(self, raw: bytes, *, timeout: float | None = None) -> str:
        """Send signed bytes; the hash is computed locally and "already known" counts as success."""
        total = self._total(timeout)
        try:
            tx_hash, known = await send_raw(self.name, raw, lambda m, p: self._call(m, p, total))
        except RpcError as exc:
            self._errors[exc.kind] += 1
            raise
        self._already_known += known
        return tx_hash
