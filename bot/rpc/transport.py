"""``HttpTransport``: the ``RpcClient`` for one HTTP JSON-RPC endpoint.

One aiohttp ``ClientSession`` per transport, over one keep-alive ``TCPConnector`` whose size
(``PoolLimits.max_connections``) bounds the sockets to the node: a new TCP connection per call
costs more than the call itself on loopback, so connections are reused and calls beyond the
pool's size queue for a free one. Bodies are encoded and decoded with orjson (``codec``).

Every failure leaves as a typed ``RpcError``:
connection refused/reset, HTTP 5xx -> ``TransportError``; a phase timeout -> ``RpcTimeout``;
HTTP 429 -> ``RateLimited`` with ``Retry-After`` parsed; a JSON-RPC error -> ``NodeError``
(node rate-limit codes such as -32005 -> ``RateLimited``); garbage -> ``InvalidResponse``.
This transport does not retry; ``EndpointPool`` does.

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

import itertools
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.rpc import codec
from bot.rpc.backoff import parse_retry_after
from bot.rpc.config import PoolLimits, Timeouts
from bot.rpc.errors import InvalidResponse, NodeError, RateLimited, RpcError, RpcTimeout, TransportError


@dataclass(frozen=True, slots=True)
class TransportStatistics:
    """``requests``: HTTP requests; ``calls``: JSON-RPC calls (a batch of n is n calls);
    ``in_flight``/``max_in_flight``: requests started and not finished, including those waiting
    for one of the ``max_connections`` pooled connections; ``already_known``: resends the node
    already had; ``errors``: count by ``RpcError.kind`` (per-call errors in batches included)."""

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


_RESERVED_HEADERS = frozenset({"accept-encoding", "content-length", "host", "transfer-encoding"})


def _header_bytes(pairs: Iterable[tuple[str | bytes, str | bytes]]) -> int:
    # "Name: value\r\n" per header, then the blank line.
    return sum(len(k) + len(v) + 4 for k, v in pairs) + 2


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
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"HttpTransport url: expected http(s)://host[:port][/path], got {url!r}")
        self.url = url
        self.name = name or url
        self.timeouts = timeouts or Timeouts()
        self.limits = limits or PoolLimits()
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

    def __repr__(self) -> str:
        return (
            f"HttpTransport({self.url!r}, in_flight={self._in_flight}, "
            f"max_connections={self.limits.max_connections}, requests={self._requests}, "
            f"closed={self._closed})"
        )

    async def __aenter__(self) -> HttpTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def statistics(self) -> TransportStatistics:
        return TransportStatistics(
            url=self.url,
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
        )

    async def aclose(self) -> None:
        self._closed = True
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
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    async def _post(self, body: bytes, timeout: float | None) -> tuple[int, bytes]:
        session = self._get_session()
        total = self.timeouts.total if timeout is None else timeout
        if total <= 0:
            raise ValueError(f"timeout: must be > 0 seconds, got {timeout!r}")
        client_timeout = aiohttp.ClientTimeout(
            total=total, sock_connect=min(self.timeouts.connect, total), sock_read=min(self.timeouts.read, total)
        )
        self._requests += 1
        self._in_flight += 1
        self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            self._bytes_sent += self._request_overhead + len(str(len(body))) + len(body)
            async with session.post(self.url, data=body, headers=self._headers, timeout=client_timeout) as resp:
                payload = await resp.read()
                # "HTTP/1.1 200 OK\r\n": 15 bytes besides the reason phrase.
                self._bytes_received += 15 + len(resp.reason or "") + _header_bytes(resp.raw_headers)
                self._bytes_received += len(payload)
                status = resp.status
                retry_after_header = resp.headers.get("Retry-After")
        except TimeoutError as exc:
            raise RpcTimeout(f"{self.name}: {type(exc).__name__} (total {total:g}s): {exc}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        finally:
            self._in_flight -= 1
        if status == 429:
            raise RateLimited(
                f"{self.name}: HTTP 429", retry_after=parse_retry_after(retry_after_header, time.time())
            )
        if status >= 500:
            raise TransportError(f"{self.name}: HTTP {status}: {payload[:120]!r}", status=status)
        return status, payload

    @staticmethod
    def _not_ok(name: str, status: int, payload: bytes, exc: InvalidResponse) -> TransportError:
        return TransportError(f"{name}: HTTP {status}: {payload[:120]!r} ({exc})", status=status)

    async def _call(self, method: str, params: Sequence[Any], timeout: float | None) -> Any:
        rid = next(self._ids)
        body = codec.encode_request(method, params, rid)
        self._calls += 1
        status, payload = await self._post(body, timeout)
        try:
            return codec.decode_response(payload, rid)
        except InvalidResponse as exc:
            # Providers answer 4xx with a JSON-RPC body (which the codec reads); otherwise it is the status.
            if status != 200:
                raise self._not_ok(self.name, status, payload, exc) from exc
            raise

    async def call(self, method: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> Any:
        try:
            return await self._call(method, params, timeout)
        except RpcError as exc:
            self._errors[exc.kind] += 1
            raise

    async def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout: float | None = None
    ) -> list[Any | RpcError]:
        """One HTTP request for all ``calls``; per-call errors come back in their slots."""
        if not calls:
            return []
        first = next(self._ids)
        body, ids = codec.encode_batch(calls, first)
        # Reserve the rest of the ids so concurrent requests never reuse one.
        for _ in range(len(calls) - 1):
            next(self._ids)
        self._batches += 1
        self._calls += len(calls)
        try:
            status, payload = await self._post(body, timeout)
            try:
                results = codec.decode_batch(payload, ids)
            except InvalidResponse as exc:
                if status != 200:
                    raise self._not_ok(self.name, status, payload, exc) from exc
                raise
        except RpcError as exc:
            self._errors[exc.kind] += 1
            raise
        for item in results:
            if isinstance(item, RpcError):
                self._errors[item.kind] += 1
        return results

    async def send_raw_transaction(self, raw: bytes, *, timeout: float | None = None) -> str:
        """Send signed bytes; the hash is computed locally and "already known" counts as success."""
        expected = codec.tx_hash(raw)
        try:
            try:
                result = await self._call("eth_sendRawTransaction", ["0x" + raw.hex()], timeout)
            except NodeError as exc:
                if codec.is_already_known(exc):
                    self._already_known += 1
                    return expected
                raise
            if not isinstance(result, str) or result.lower() != expected:
                raise InvalidResponse(f"{self.name}: node returned hash {result!r}, local keccak is {expected}")
        except RpcError as exc:
            self._errors[exc.kind] += 1
            raise
        return expected
