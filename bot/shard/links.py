"""One child bot's control API as the parent sees it: its health (polled), its telemetry cursor, and calls.

The public ``/health`` is probed often (the harness asks 40 times a second); asking every child each
time would multiply that load, so each link polls its child's ``/health`` every ``HEALTH_EVERY_S`` and the
gateway answers from the newest poll. A poll older than ``STALE_S`` counts as no answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson

HEALTH_EVERY_S = 0.2
STALE_S = 2.0
CALL_TIMEOUT_S = 10.0


class ShardFailure(RuntimeError):
    """A child did not answer a call the parent had to make (its message names the shard)."""


class ChildProcess(Protocol):
    """What a link needs to know about the child's process (``bot.shard.parent.Child``)."""

    @property
    def pid(self) -> int | None: ...

    @property
    def exit_code(self) -> int | None: ...  # None while it runs


@dataclass(frozen=True, slots=True)
class HealthReading:
    ok: bool
    reasons: tuple[str, ...]
    at: float  # monotonic


class ShardLink:
    def __init__(self, index: int, api_url: str, process: ChildProcess, token: str | None) -> None:
        self.index = index
        self.api_url = api_url.rstrip("/")
        self.process = process
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.health: HealthReading | None = None
        self.stats_seq = -1  # the last child interval taken in
        self.gauges: dict[str, float] = {}
        self._session: aiohttp.ClientSession | None = None
        self._poller: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<ShardLink {self.index} {self.api_url} pid={self.process.pid} exit={self.process.exit_code}>"

    @property
    def running(self) -> bool:
        return self.process.exit_code is None

    def start(self) -> None:
        self._session = aiohttp.ClientSession(json_serialize=lambda o: orjson.dumps(o).decode())
        self._poller = asyncio.create_task(self._poll_health(), name=f"shard-{self.index}-health")

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.wait([self._poller])
        if self._session is not None:
            await self._session.close()

    def problems(self, now: float) -> list[str]:
        """Why this shard is not healthy now (empty: it is)."""
        code = self.process.exit_code
        if code is not None:
            return [f"shard {self.index}: exited with code {code}"]
        h = self.health
        if h is None:
            return [f"shard {self.index}: starting (no /health answer yet)"]
        if now - h.at > STALE_S:
            return [f"shard {self.index}: no /health answer for {now - h.at:.1f} s"]
        return [f"shard {self.index}: {r}" for r in h.reasons] if not h.ok else []

    async def _poll_health(self) -> None:
        while True:
            with contextlib.suppress(ShardFailure):
                status, body = await self.call("GET", "/health", limit_s=1.0)
                reasons = body.get("reasons", []) if isinstance(body, Mapping) else []
                self.health = HealthReading(status == 200, tuple(str(r) for r in reasons), time.monotonic())
            await asyncio.sleep(HEALTH_EVERY_S)

    async def call(self, method: str, path: str, *, body: bytes | None = None, auth: bool = False,
                   params: Mapping[str, str] | None = None,
                   limit_s: float = CALL_TIMEOUT_S) -> tuple[int, Any]:
        """``(status, decoded JSON body)`` of one call to the child; ``ShardFailure`` when it does not answer."""
        raw_status, raw = await self.call_raw(method, path, body=body, auth=auth, params=params,
                                              limit_s=limit_s)
        try:
            return raw_status, orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            raise ShardFailure(f"shard {self.index}: {method} {path} answered {raw_status} with no JSON") from None

    async def call_raw(self, method: str, path: str, *, body: bytes | None = None, auth: bool = False,
                       params: Mapping[str, str] | None = None,
                       limit_s: float = CALL_TIMEOUT_S) -> tuple[int, bytes]:
        if self._session is None:
            raise ShardFailure(f"shard {self.index}: not started")
        headers = dict(self._headers) if auth else {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(method, self.api_url + path, data=body, headers=headers, params=params,
                                             timeout=aiohttp.ClientTimeout(total=limit_s)) as r:
                return r.status, await r.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            why = "not running" if not self.running else f"{type(exc).__name__}: {exc}"
            raise ShardFailure(f"shard {self.index}: {method} {path} failed ({why})") from exc

    async def pull_stats(self) -> list[Mapping[str, Any]]:
        """The child's intervals closed since the last pull (and its gauges, kept in ``gauges``)."""
        status, payload = await self.call("GET", "/stats", params={"since": str(self.stats_seq)},
                                          limit_s=2.0)
        if status != 200 or not isinstance(payload, Mapping):
            raise ShardFailure(f"shard {self.index}: GET /stats answered {status}")
        fresh = [iv for iv in payload.get("intervals", []) if int(iv["seq"]) > self.stats_seq]
        if fresh:
            self.stats_seq = max(int(iv["seq"]) for iv in fresh)
        self.gauges = {str(k): float(v) for k, v in (payload.get("gauges") or {}).items()}
        return fresh
