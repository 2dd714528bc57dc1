"""Open-loop HTTP GET of one URL: ``harness load --get --url URL``.

The JSON-RPC driver's twin for plain HTTP targets (the bot's control API, any health endpoint), so the
open-loop generator and Locust can be compared against the same endpoint. A 2xx answer is a success;
429 is counted as ``rate_limited``, any other status or a connection error as ``transport``. The body
is read (the server's work includes writing it) and not parsed.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from harness.load.generator import OpenLoopGenerator
from harness.load.jsonrpc import KeepAliveDriver, RequestFailed, check_target, run_driver
from harness.load.recorder import LagPolicy, LoadResult
from harness.load.schedules import Schedule


class HttpGetDriver(KeepAliveDriver):
    """Sends one fixed GET."""

    def _what(self) -> str:
        return "GET"

    async def _send(self, session: aiohttp.ClientSession) -> None:
        status, _ = await self._request(session, "GET")
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
    return await run_driver(HttpGetDriver(url, connections=connections, timeout_s=timeout_s), schedule, name,
                            max_in_flight=max_in_flight, timeout_s=timeout_s, drain_timeout_s=drain_timeout_s,
                            lag_policy=lag_policy, on_start=on_start)
