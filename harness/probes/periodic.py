"""A bounded periodic task: what every probe of the harness is (sample, probe, pull; sleep; again)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``step`` every ``interval`` seconds, at most ``max_runs`` times, until ``stop()``."""

    def __init__(self, step: Callable[[], Awaitable[object] | object], interval: float, *, name: str,
                 max_runs: int = 10_000_000) -> None:
        if interval <= 0:
            raise ValueError(f"{name}: interval must be > 0 seconds, got {interval}")
        self._step = step
        self.interval = interval
        self.name = name
        self.max_runs = max_runs
        self.errors = 0  # steps that raised: counted and logged, never the end of the probe
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Periodic {self.name} every {self.interval}s running={self.running}>"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        for _ in range(self.max_runs):
            try:
                result = self._step()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                # One bad step (an answer of an unexpected shape, an error type the step did not
                # foresee) must not end the probe for the rest of the run: a dead stats puller
                # once left whole scenarios with no bot intervals and no word of why.
                self.errors += 1
                if self.errors <= 3 or self.errors % 100 == 0:
                    log.warning("%s: step failed (%d so far)", self.name, self.errors, exc_info=True)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
