"""``WsCallTransport``: the ``RpcClient`` protocol over one persistent JSON-RPC WebSocket.

An option beside ``HttpTransport`` (``[engine] rpc_transport = "ws"``), chosen from a measurement
(docs/PERFORMANCE.md): on anvil a call over a kept WebSocket cost about half the CPU of the same
call over kept-alive HTTP/1.1 and half its latency, because a frame skips the request and response
header machinery. It rides on ``WsSubscriber`` (reconnects with backoff; no subscriptions here), so
while the socket is down a call fails at once with ``TransportError`` and ``EndpointPool`` retries
or fails over, exactly as it does for a refused HTTP connection.

Sends keep HttpTransport's guarantees: the hash is computed locally, "already known" is success,
a node hash that differs from the local keccak is ``InvalidResponse``; a send is its own frame,
never part of a batch (DESIGN.md, batching rule). ``batch()`` sends one frame per call and keeps
results and errors per call. The connection starts on first use: the bot builds its clients
before its loop runs.
"""

# The per-call ``timeout`` is the RpcClient contract (DESIGN.md): it bounds the wait for the answer.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bot.redact import redact_url
from bot.rpc.config import Timeouts, WsOptions
from bot.rpc.errors import NodeError, RedirectRefused, RpcError, TransportError, clone
from bot.rpc.sending import send_raw
from bot.rpc.ws import WsStatistics, WsSubscriber

__all__ = ["WsCallTransport", "ws_url_for"]


def ws_url_for(http_url: str) -> str:
    """The WebSocket URL of an HTTP JSON-RPC endpoint on the same host and port (anvil, geth and
    reth serve both there): ``http`` -> ``ws``, ``https`` -> ``wss``; path and query kept."""
    parts = urlsplit(http_url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"ws_url_for: expected an http(s) or ws(s) URL, got {redact_url(http_url)!r}")
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


class WsCallTransport:
    """Calls over one WebSocket to one endpoint; see the module docstring."""

    def __init__(self, url: str, timeouts: Timeouts | None = None, *, name: str | None = None,
                 options: WsOptions | None = None) -> None:
        self.url = ws_url_for(url)
        self.name = name or redact_url(self.url)
        self.timeouts = timeouts or Timeouts()
        # It never gives up reconnecting: a pool member that is down is the pool's to route around.
        self._options = options or WsOptions(request_timeout=self.timeouts.total, connect_timeout=self.timeouts.connect,
                                             max_reconnects=1_000_000_000)
        self._sub = WsSubscriber(self.url, self._options)
        self._started: asyncio.Task[None] | None = None
        self._closed = False
        self._already_known = 0
        self._calls = 0

    def __repr__(self) -> str:
        s = self._sub.statistics()
        return f"<WsCallTransport {self.name} calls={self._calls} connects={s.connects} reconnects={s.reconnects}>"

    async def _ready(self) -> None:
        if self._closed:
            raise TransportError(f"{self.name}: transport is closed")
        if self._started is None:
            # Once: WsSubscriber reconnects by itself after a drop. A first connect that fails
            # leaves a done task, and the next call tries again.
            self._started = asyncio.create_task(self._sub.start(), name=f"ws-calls connect {self.name}")
        if not self._started.done():
            await asyncio.wait({self._started}, timeout=self.timeouts.connect)
        if not self._started.done():
            raise TransportError(f"{self.name}: not connected within {self.timeouts.connect:g}s")
        exc = self._started.exception()
        if exc is not None:
            self._sub = WsSubscriber(self.url, self._options)
            self._started = None
            if isinstance(exc, RedirectRefused):
                raise clone(exc)  # kept as is: not retryable, so the pool does not try it again
            raise TransportError(f"{self.name}: connect failed: {exc}") from exc

    async def call(self, method: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> Any:
        await self._ready()
        self._calls += 1
        return await self._sub.request(method, params, timeout=timeout)

    async def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout: float | None = None
    ) -> list[Any | RpcError]:
        await self._ready()
        self._calls += len(calls)
        results = await asyncio.gather(*(self._sub.request(m, p, timeout=timeout) for m, p in calls),
                                       return_exceptions=True)
        out: list[Any | RpcError] = []
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, RpcError):
                raise r
            # As over HTTP, only the node's own answers are per call: a lost socket or a timeout
            # fails the batch, so the pool retries it or fails over instead of handing the
            # caller a list of transport errors.
            if isinstance(r, RpcError) and not isinstance(r, NodeError):
                raise r
            out.append(r)
        return out

    async def send_raw_transaction(self, raw: bytes, *, timeout: float | None = None) -> str:
        tx_hash, known = await send_raw(self.name, raw, lambda m, p: self.call(m, p, timeout=timeout))
        self._already_known += known
        return tx_hash

    def statistics(self) -> WsStatistics:
        return self._sub.statistics()

    @property
    def already_known(self) -> int:
        return self._already_known

    async def aclose(self) -> None:
        self._closed = True
        if self._started is not None and not self._started.done():
            self._started.cancel()
            await asyncio.wait({self._started})
        await self._sub.aclose()
