"""Asking the bot which allocation sites grew while a scenario ran (its ``/debug/heap`` API, bot.heapwatch).

Growth, not what is left at exit: once the scenario's warm-up is over (the leak statistic's own rule,
``harness.stats.leak``: 20% of the planned length, at most 30 min) the poller has the bot take a baseline
snapshot, then asks for the sites whose live bytes grew since at twice, four times, eight times... the
warm-up (a 24-hour soak: at 1, 2, 4, 8 and 16 h; none in a scenario under ``PERIODIC_FROM_S``), and once
more at the end, after the resource samples the leak statistic judges were collected and the schedule
ended. A snapshot stalls the bot's loop while tracemalloc copies its traces (``HEAP_TRACE_COST``), so
each one is recorded as a scenario annotation, and a short soak, whose latency rows a few stalls would
move, takes none beyond the baseline. Snapshots are few because each one costs RSS for good: its
transient objects (~100 bytes per live block) take fresh pymalloc arenas, and objects the bot allocates
beside them pin one: +1.05 MB at each of 8 snapshots of a steady synthetic workload, none without them,
and +1.3-1.7 MB at each in 45-s soaks here. On a 24-hour soak the five steps bias the RSS slope by about
0.17 MB/h (OLS weight of a step at each time); the heap series is not touched (the bot holds its levels
during a snapshot). Halfway through the warm-up the poller has the bot take one snapshot it throws away,
so the first and largest step (3.5 MB) falls in the warm-up. Each answer goes into the checkpoint journal
when it is new, so a killed soak keeps the latest table (at most half its age old). Nothing here blocks
the loop that paces the feed: ``poll`` only starts a request (one at a time), and a snapshot's cost is the
bot's (in its worker thread; ``snapshot_ms`` says how much).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from harness.stats.leak import DEFAULT_WARMUP_FRACTION, DEFAULT_WARMUP_MAX_S

TOP = 15
MIN_GAP_S = 10.0  # between two growth requests, however short the warm-up
PERIODIC_FROM_S = 600.0  # shorter scenarios: baseline and final table only (a killed one keeps none)


@dataclass(frozen=True)
class HeapTraceCost:
    """What tracing the heap costs the bot, measured (for the page; the soak rate chooser scales by it)."""

    cpu_per_trade_factor: float
    snapshot_stall_ms: tuple[float, float]
    conditions: str

    def text(self) -> str:
        lo, hi = self.snapshot_stall_ms
        return (f"tracemalloc roughly doubles the bot's CPU per trade ({self.cpu_per_trade_factor:g}x), and each "
                f"snapshot stalls its loop {lo:.0f}-{hi:.0f} ms ({self.conditions})")


HEAP_TRACE_COST = HeapTraceCost(
    cpu_per_trade_factor=1.9, snapshot_stall_ms=(500.0, 800.0),
    conditions="measured 2026-12-07 on the 2-core VM, harness soak --minutes 0.67 --pairs 10 --rate 15 under "
               "memray, 2 runs each interleaved: CPU per trade 42.9 and 42.9 ms traced against 22.0 and 24.4 ms "
               "untraced; snapshots took 514-536 ms and the seconds holding them had trade maxima of 566-852 ms")
REQUEST_TIMEOUT_S = 60.0  # a snapshot of a large heap takes seconds on a slow machine


def tracing_frames(bot_settings: Mapping[str, Any] | None) -> int:
    """``debug.heap_trace_frames`` of the bot's settings (0: the bot traces nothing)."""
    debug = bot_settings.get("debug") if isinstance(bot_settings, Mapping) else None
    frames = debug.get("heap_trace_frames") if isinstance(debug, Mapping) else None
    return frames if isinstance(frames, int) and not isinstance(frames, bool) and frames > 0 else 0


def warmup_of(planned_s: float) -> float:
    """The warm-up the leak statistic leaves out of a scenario planned to last ``planned_s``."""
    return min(DEFAULT_WARMUP_FRACTION * planned_s, DEFAULT_WARMUP_MAX_S)


def growth_times(warmup_s: float, planned_s: float) -> list[float]:
    """When (seconds from the start) the periodic growth requests fall within ``planned_s``."""
    out: list[float] = []
    if planned_s < PERIODIC_FROM_S:
        return out
    at = max(2.0 * warmup_s, warmup_s + MIN_GAP_S)
    while at < planned_s:
        out.append(at)
        at = max(2.0 * at, at + MIN_GAP_S)
    return out


class GrowthPoller:
    """Baseline after ``warmup_s``, then growth at doubling times (seconds since the scenario started)."""

    def __init__(self, api_url: str, token: str, t0_wall: float, *, warmup_s: float, planned_s: float,
                 top: int = TOP) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.t0_wall = t0_wall
        self.warmup_s = warmup_s
        self.top = top
        self.baseline: dict[str, Any] | None = None
        self.latest: dict[str, Any] | None = None
        self.error: str | None = None
        times = growth_times(warmup_s, planned_s)
        self._next_at = times[0] if times else math.inf
        self.events: list[tuple[float, str]] = []  # (t, what): each snapshot the bot took, for the annotations
        self._primed = False
        self._task: asyncio.Task[None] | None = None
        self._handed_seq: int | None = None
        self._session: aiohttp.ClientSession | None = None  # one for the scenario: fewer objects, less GC

    def __repr__(self) -> str:
        seq = self.latest.get("seq") if self.latest else None
        return f"<GrowthPoller {self.api_url} baseline={self.baseline is not None} seq={seq}>"

    def poll(self, elapsed_s: float) -> None:
        """Start the request that is due (at most one at a time); never waits."""
        if self._task is not None and not self._task.done():
            return
        if self.baseline is None:
            if not self._primed and elapsed_s >= self.warmup_s / 2:
                self._primed = True
                self._task = asyncio.get_running_loop().create_task(self._prime())
            elif elapsed_s >= self.warmup_s:
                self._task = asyncio.get_running_loop().create_task(self._baseline())
        elif elapsed_s >= self._next_at:
            self._next_at = max(2.0 * self._next_at, self._next_at + MIN_GAP_S)  # growth_times' rule
            self._task = asyncio.get_running_loop().create_task(self._growth())

    def take_new(self) -> dict[str, Any] | None:
        """The latest growth table if it was not handed out before (for the journal), else None."""
        if self.latest is None or self.latest.get("seq") == self._handed_seq:
            return None
        self._handed_seq = self.latest.get("seq")
        return self.latest

    async def final(self, elapsed_s: float) -> dict[str, Any] | None:
        """At the scenario's end: one more growth table if a baseline was taken (None otherwise)."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._task), REQUEST_TIMEOUT_S)
        if self.baseline is not None and elapsed_s > float(self.baseline.get("t", 0.0)):
            await self._growth()
        return self.latest

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(self, method: str, path: str) -> dict[str, Any] | None:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.request(method, self.api_url + path, headers=headers,
                                             timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as r:
                body = await r.json(content_type=None)
                if r.status != 200 or not isinstance(body, dict):
                    self.error = f"{method} {path}: HTTP {r.status} {str(body)[:200]}"
                    return None
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.error = f"{method} {path}: {type(exc).__name__}: {exc}"
            return None

    def _event(self, body: dict[str, Any], at_key: str, what: str) -> None:
        ms = float(body.get("snapshot_ms") or 0.0)
        at = body.get(at_key)
        if isinstance(at, int | float):
            self.events.append((round(float(at) - ms / 1000 - self.t0_wall, 2),
                                f"heap snapshot ({what}): the bot's loop shared the GIL with it for {ms:.0f} ms"))

    async def _prime(self) -> None:
        body = await self._request("POST", "/debug/heap/baseline")  # replaced by the real one after the warm-up
        if body is not None:
            self._event(body, "baseline_at", "throw-away, so its RSS step falls in the warm-up")

    async def _baseline(self) -> None:
        body = await self._request("POST", "/debug/heap/baseline")
        if body is not None:
            self._event(body, "baseline_at", "baseline for the growth table")
            self.baseline = {**body, "t": round(float(body.get("baseline_at", time.time())) - self.t0_wall, 3)}

    async def _growth(self) -> None:
        body = await self._request("GET", f"/debug/heap/growth?top={self.top}")
        if body is not None and body.get("seq") != (self.latest or {}).get("seq"):
            self._event(body, "at", "growth since the baseline")
        if body is not None:
            self.latest = {**body, "baseline_t": round(float(body.get("baseline_at", 0.0)) - self.t0_wall, 3),
                           "t": round(float(body.get("at", 0.0)) - self.t0_wall, 3)}
