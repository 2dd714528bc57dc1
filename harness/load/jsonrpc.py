"""Drive any JSON-RPC endpoint with an open-loop schedule (``harness load --url ...``).

One keep-alive aiohttp session with an explicit connection limit, orjson bodies, the same
generator and statistics as every other load. A request fails (and is counted by kind) when:
the connection fails or HTTP says 5xx/other (``transport``), HTTP 429 (``rate_limited``), the
body is not a JSON-RPC response (``invalid_response``), the node answers an error object
(``node``), or it takes longer than the timeout (``timeout``). The kinds match
``bot.rpc.errors`` so bot and harness error counters read the same way.

Where load may go is decided by ``check_target`` (pure): loopback only, unless the caller
explicitly allows a remote endpoint (the CLI's ``--allow-remote``). Hostnames are not
resolved: ``localhost`` is accepted by name, anything else must be a loopback address. Redirects
are not followed (a 3xx fails the request, naming only the target's host): a loopback server
could otherwise send the load elsewhere. Messages show the URL redacted (``bot.redact``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
import orjson

from bot.redact import host_of, redact_text, redact_url
from harness.errors import ConfigError
from harness.load.generator import OpenLoopGenerator, run_open_loop
from harness.load.recorder import LagPolicy, LoadResult
from harness.load.schedules import Schedule


class RequestFailed(Exception):
    """One JSON-RPC request failed; ``kind`` labels the error counter."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def check_target(url: str, allow_remote: bool, *, flag: str = "--url") -> str:
    """Validate a target URL given as ``flag``; return it unchanged. Raises ``ConfigError`` naming the fix."""
    parts = urlsplit(url)
    shown = redact_url(url)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{flag} must start with http:// or https://, got {shown!r}")
    host = parts.hostname
    if not host:
        raise ConfigError(f"{flag} has no host: {shown!r}; e.g. http://127.0.0.1:8545")
    try:
        parts.port  # noqa: B018 - property access validates the port
    except ValueError:
        raise ConfigError(f"{flag} has an invalid port: {shown!r} (give a number 1-65535)") from None
    if allow_remote or is_loopback_host(host):
        return url
    raise ConfigError(
        f"{flag} host {host!r} is not a loopback address; load goes only to 127.0.0.1, ::1 or "
        "localhost unless you pass --allow-remote (only for an endpoint you are allowed to load)"
    )


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_params(text: str) -> list[Any] | dict[str, Any]:
    """``--params`` as JSON: an array (positional) or an object (by name)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"--params is not valid JSON ({exc}); e.g. --params '[\"0xabc...\", \"latest\"]'") from None
    if not isinstance(value, list | dict):
        raise ConfigError(f"--params must be a JSON array or object, got {type(value).__name__}: {text!r}")
    return value


def check_response(body: bytes) -> Any:
    """The ``result`` of a JSON-RPC response body, or ``RequestFailed`` saying what was wrong."""
    try:
        msg = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RequestFailed("invalid_response", f"not JSON: {body[:80]!r}") from None
    if not isinstance(msg, dict):
        raise RequestFailed("invalid_response", f"not a JSON-RPC object: {body[:80]!r}")
    err = msg.get("error")
    if err is not None:
        raise RequestFailed("node", f"node error: {str(err)[:200]}")
    if "result" not in msg:
        raise RequestFailed("invalid_response", f"no result or error: {body[:80]!r}")
    return msg["result"]


@dataclass(frozen=True)
class DriverStatistics:
    requests: int
    failures: int
    bytes_sent: int
    bytes_received: int
    connection_limit: int
    connections_open: int


class KeepAliveDriver:
    """A keep-alive aiohttp session with an explicit connection limit; ``call`` is the generator's op.

    Subclasses send one fixed request in ``_send``; counting, the session and ``statistics()`` are here."""

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
        self._bytes_sent = 0
        self._bytes_received = 0

    def _what(self) -> str:
        return "request"

    def __repr__(self) -> str:
        s = self.statistics()
        return (f"<{type(self).__name__} {redact_url(self.url)} {self._what()} requests={s.requests} "
                f"failures={s.failures} connections={s.connections_open}/{s.connection_limit}>")

    def statistics(self) -> DriverStatistics:
        open_conns = 0
        if self._connector is not None and not self._connector.closed:
            # aiohttp exposes no public count; the idle pool plus acquired ones is the truth.
            acquired = getattr(self._connector, "_acquired", ())
            idle = getattr(self._connector, "_conns", {})
            open_conns = len(acquired) + sum(len(v) for v in idle.values())
        return DriverStatistics(self._requests, self._failures, self._bytes_sent,
                                self._bytes_received, self.connection_limit, open_conns)

    async def __aenter__(self) -> Self:
        self._connector = aiohttp.TCPConnector(limit=self.connection_limit, limit_per_host=0)
        self._session = aiohttp.ClientSession(connector=self._connector, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None

    async def call(self) -> None:
        if self._session is None:
            raise RuntimeError(f"{type(self).__name__} used outside 'async with'")
        self._requests += 1
        try:
            await self._send(self._session)
        except BaseException:
            self._failures += 1
            raise

    async def _send(self, session: aiohttp.ClientSession) -> None:
        raise NotImplementedError

    async def _request(self, session: aiohttp.ClientSession, method: str, **kwargs: Any) -> tuple[int, bytes]:
        """One request: (status, body). Connection errors, a redirect (not followed, naming only the
        target's host) and HTTP 429 raise here; every other status is the caller's to judge."""
        try:
            async with session.request(method, self.url, allow_redirects=False, **kwargs) as resp:
                body = await resp.read()
                status = resp.status
                if 300 <= status < 400:
                    target = host_of(resp.headers.get("Location"))
                    raise RequestFailed("transport", f"HTTP {status} redirect to {target} refused "
                                                     "(redirects are not followed)")
        except aiohttp.ClientError as exc:
            raise RequestFailed("transport", f"{type(exc).__name__}: {redact_text(str(exc))}") from None
        self._bytes_received += len(body)
        if status == 429:
            raise RequestFailed("rate_limited", "HTTP 429")
        return status, body


class JsonRpcDriver(KeepAliveDriver):
    """Posts one fixed JSON-RPC request."""

    def __init__(self, url: str, method: str, params: Sequence[Any] | dict[str, Any], *,
                 connections: int = 64, timeout_s: float = 10.0) -> None:
        super().__init__(url, connections=connections, timeout_s=timeout_s)
        self.method = method
        # The same id on every request is allowed by JSON-RPC and saves an encode per call.
        self._body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})

    def _what(self) -> str:
        return self.method

    async def _send(self, session: aiohttp.ClientSession) -> None:
        self._bytes_sent += len(self._body)
        status, body = await self._request(session, "POST", data=self._body,
                                           headers={"Content-Type": "application/json"})
        if status != 200:
            raise RequestFailed("transport", f"HTTP {status}")
        check_response(body)


async def run_driver(
    driver: KeepAliveDriver,
    schedule: Schedule,
    name: str,
    *,
    max_in_flight: int = 1000,
    timeout_s: float = 10.0,
    drain_timeout_s: float = 15.0,
    lag_policy: LagPolicy | None = None,
    spin_s: float = 0.0,
    on_start: Callable[[OpenLoopGenerator], None] | None = None,
) -> LoadResult:
    """``driver.call`` on ``schedule`` through the open-loop generator (the driver is opened here)."""
    async with driver:
        return await run_open_loop(driver.call, schedule, name=name, max_in_flight=max_in_flight,
                                   op_timeout_s=timeout_s, drain_timeout_s=drain_timeout_s, lag_policy=lag_policy,
                                   spin_s=spin_s, on_start=on_start)


async def run_jsonrpc_load(
    url: str,
    method: str,
    params: Sequence[Any] | dict[str, Any],
    schedule: Schedule,
    *,
    allow_remote: bool = False,
    max_in_flight: int = 1000,
    connections: int = 64,
    timeout_s: float = 10.0,
    drain_timeout_s: float = 15.0,
    lag_policy: LagPolicy | None = None,
    name: str | None = None,
    spin_s: float = 0.0,
    on_start: Callable[[OpenLoopGenerator], None] | None = None,
) -> LoadResult:
    """Send ``method(params)`` to ``url`` on ``schedule``.

    Latencies are recorded under ``name`` (default: the method). results.json wants
    lower_snake_case operation names: pass e.g. ``name="eth_block_number"`` when the result goes
    there. ``on_start`` gets the generator before it runs (a live view reads its statistics and series).
    """
    check_target(url, allow_remote)
    return await run_driver(JsonRpcDriver(url, method, params, connections=connections, timeout_s=timeout_s),
                            schedule, name or method, max_in_flight=max_in_flight, timeout_s=timeout_s,
                            drain_timeout_s=drain_timeout_s, lag_policy=lag_policy, spin_s=spin_s,
                            on_start=on_start)
