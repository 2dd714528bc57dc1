"""Open-loop HTTP GET of one URL: ``harness load --get --url URL``.

The JSON-RPC driver's twin for plain HTTP targets (the bot's control API, any health endpoint), so the
open-loop generator and Locust can be compared against the same endpoint. A 2xx answer is a success;
429 is counted as ``rate_limited``, any other status or a connection error as ``transport``. The body
is read (the server's work includes writing it) and not parsed.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from bot.redact import host_of, redact_text, redact_url
from harness.errors import ConfigError
from harness.load.generator import OpenLoopGenerator
from harness.load.jsonrpc import DriverStatistics, RequestFailed, check_target
from harness.load.recorder import LagPolicy, LoadResult
from harness.load.schedules import Schedule


class HttpGetDriver:
    """A keep-alive session sending one fixed GET; ``call`` is the generator's op."""

    def __init__(self, url: str, *, connections: int = 64, timeout_s: float = 10.0) -> None:
        if connections < 1:
            raise ConfigError(f"connections must be >= 1, got {connections}")
        self.url = url
        self.connection_limit = connections
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._connector: aiohttp.TCPConnector | None = None
        self._session: aiohttp.ClientSession | None = None
        self._requests = 0
        self._failures = 0
        self._bytes_received = 0

    def __repr__(self) -> str:
        s = self.statistics()
        return (f"<HttpGetDriver GET {redact_url(self.url)} requests={s.requests} failures={s.failures} "
                f"connections={s.connections_open}/{s.connection_limit}>")

    def statistics(self) -> DriverStatistics:
        open_conns = 0
        if self._connector is not None and not self._connector.closed:
            acquired = getattr(self._connector, "_acquired", ())
            idle = getattr(self._connector, "_conns", {})
            open_conns = len(acquired) + sum(len(v) for v in idle.values())
        return DriverStatistics(self._requests, self._failures, 0, self._bytes_received,
                                self.connection_limit, open_conns)

    async def __aenter__(self) -> HttpGetDriver:
        self._connector = aiohttp.TCPConnector(limit=self.connection_limit, limit_per_host=0)
        self._session = aiohttp.ClientSession(connector=self._connector, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None

    async def call(self) -> None:
        if self._session is None:
            raise RuntimeError("HttpGetDriver used outside 'async with'")
        self._requests += 1
        try:
            await self._get(self._session)
        except BaseException:
            self._failures += 1
            raise

    async def _get(self, session: aiohttp.ClientSession) -> None:
        try:
            async with session.get(self.url, allow_redirects=False) as resp:
                body = await resp.read()
                status = resp.status
        except aiohttp.ClientError as exc:
            raise RequestFailed("transport", f"{type(exc).__name__}: {redact_text(str(exc))}") from None
        self._bytes_received += len(body)
        if 300 <= status < 400:
            target = host_of(resp.headers.get("Location"))
            raise RequestFailed("transport", f"HTTP {status} redirect to {target} refused (redirects are not followed)")
        if status == 429:
            raise RequestFailed("rate_limited", "HTTP 429")
        if not 200 <= status < 300:
            raise RequestFailed("transport", f"HTTP {status}")


async def run_http_get_load(
    url: str,
    schedule: Schedule,
    *,
    allow_remote: bool = False,
    max_in_flight: int = 1000,
    connections: int = 64,
    timeout_s: float = 10.0,
    drain_timeout_s: float = 15.0,
    lag_policy: LagPolicy | None = None,
    name: str = "http_get",
    on_start: Callable[[OpenLoopGenerator], None] | None = None,
) -> LoadResult:
    """GET ``url`` on ``schedule``; latencies are recorded under ``name``."""
    check_target(url, allow_remote)
    async with HttpGetDriver(url, connections=connections, timeout_s=timeout_s) as drv:
        gen = OpenLoopGenerator(drv.call, schedule, name=name, max_in_flight=max_in_flight,
                                op_timeout_s=timeout_s, drain_timeout_s=drain_timeout_s, lag_policy=lag_policy)
        if on_start is not None:
            on_start(gen)
        return await gen.run()
