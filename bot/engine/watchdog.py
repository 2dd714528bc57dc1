"""Event-loop lag and stuck-handler detection.

Loop lag is measured as sleep drift: ask to sleep ``interval_s``, measure how long it really took
(monotonic clock); the excess is how long ready callbacks waited for the loop. A loop blocked by
CPU-bound work (e.g. inline signing) shows up here long before it shows up as timeouts.

A handler is *stuck* when it has run longer than ``stuck_after_s`` (set below the engine's
handler timeout, so the operator hears about it before the timeout fires). Each stuck handler is
reported once. The decisions (``lag_from_drift``, ``StuckDetector``) are pure; ``Watchdog`` is the
bounded async loop around them and reports into ``Telemetry``: gauge ``loop_lag_ms``, histogram
``event_loop_lag`` (microseconds), counter ``stuck_handlers``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.engine.actors import RunningHandler
from bot.telemetry.recorder import Telemetry

log = logging.getLogger(__name__)


def lag_from_drift(requested_s: float, elapsed_s: float) -> float:
    """Seconds the loop was late waking a sleeper (never negative: early wake-ups are clock noise)."""
    return max(0.0, elapsed_s - requested_s)


class StuckDetector:
    """Reports each handler that has run longer than the threshold, once per handler call."""

    def __init__(self, stuck_after_ns: int) -> None:
        if stuck_after_ns <= 0:
            raise ValueError(f"stuck_after must be > 0, got {stuck_after_ns} ns")
        self.stuck_after_ns = stuck_after_ns
        self._reported: set[tuple[str, int]] = set()
        self.stuck_total = 0

    def check(self, running: Iterable[RunningHandler], now_ns: int) -> list[RunningHandler]:
        """Newly stuck handlers. Forgets handlers that finished, so memory stays bounded."""
        live: set[tuple[str, int]] = set()
        fresh: list[RunningHandler] = []
        for h in running:
            key = (h.pair_id, h.started_ns)
            if now_ns - h.started_ns < self.stuck_after_ns:
                continue
            live.add(key)
            if key not in self._reported:
                fresh.append(h)
        self._reported = live
        self.stuck_total += len(fresh)
        return fresh

    @property
    def stuck_now(self) -> int:
        return len(self._reported)


@dataclass(frozen=True, slots=True)
class WatchdogStatistics:
    ticks: int
    interval_s: float
    lag_last_ms: float
    lag_max_ms: float
    stuck_total: int
    stuck_now: int


class Watchdog:
    """Bounded background loop: one lag sample and one stuck check every ``interval_s``."""

    def __init__(
        self,
        running: Callable[[], Iterable[RunningHandler]],
        *,
        telemetry: Telemetry | None = None,
        interval_s: float = 0.1,
        stuck_after_s: float = 5.0,
        on_stuck: Callable[[RunningHandler, float], None] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"watchdog interval_s must be > 0, got {interval_s}")
        self._running = running
        self._telemetry = telemetry
        self.interval_s = interval_s
        self._stuck = StuckDetector(int(stuck_after_s * 1e9))
        self._on_stuck = on_stuck
        self._ticks = 0
        self._lag_last = 0.0
        self._lag_max = 0.0
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return (
            f"<Watchdog every {self.interval_s}s ticks={self._ticks} lag_last={self._lag_last * 1e3:.2f}ms"
            f" stuck_now={self._stuck.stuck_now}>"
        )

    def observe(self, lag_s: float, now_ns: int) -> list[RunningHandler]:
        """One step: record ``lag_s`` and check for stuck handlers. Public for tests and manual use."""
        self._ticks += 1
        self._lag_last = lag_s
        self._lag_max = max(self._lag_max, lag_s)
        fresh = self._stuck.check(self._running(), now_ns)
        t = self._telemetry
        if t is not None:
            t.set_gauge("loop_lag_ms", lag_s * 1e3)
            t.record("event_loop_lag", int(lag_s * 1e6))
            if fresh:
                t.count("stuck_handlers", len(fresh))
        for h in fresh:
            running_s = (now_ns - h.started_ns) / 1e9
            log.warning("handler stuck: pair %s message %s running for %.1f s", h.pair_id, h.kind, running_s)
            if self._on_stuck is not None:
                self._on_stuck(h, running_s)
        return fresh

    async def run(self, *, max_ticks: int | None = None) -> None:
        done = 0
        while max_ticks is None or done < max_ticks:
            t0 = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            lag = lag_from_drift(self.interval_s, time.perf_counter() - t0)
            self.observe(lag, time.perf_counter_ns())
            done += 1

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="watchdog")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
            self._task = None

    def statistics(self) -> WatchdogStatistics:
        return WatchdogStatistics(
            ticks=self._ticks,
            interval_s=self.interval_s,
            lag_last_ms=self._lag_last * 1e3,
            lag_max_ms=self._lag_max * 1e3,
            stuck_total=self._stuck.stuck_total,
            stuck_now=self._stuck.stuck_now,
        )
