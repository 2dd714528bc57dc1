"""A closed-loop driver: what most load tools do, kept to show what it hides.

``concurrency`` workers each run ``op()`` back to back until the duration (or ``max_count``)
is reached. There is no schedule, so there is no intended start: each operation's latency runs
from the moment it actually started. When the system stalls, a closed loop simply stops
sending, and the operations that *would* have arrived during the stall are never measured:
coordinated omission. Reports put this figure beside the open-loop one so the difference is
visible; it is never used for a verdict.

The result has the same shape as the open-loop one; ``<op>`` and ``<op>.service`` are equal.
"""

from __future__ import annotations

import asyncio
import time

from harness.errors import ConfigError
from harness.load.generator import Op, error_kind
from harness.load.recorder import NS_PER_S, IntervalRecorder, LoadResult


async def run_closed_loop(
    op: Op,
    *,
    name: str,
    concurrency: int,
    duration_s: float,
    max_count: int = 1_000_000,
    op_timeout_s: float = 30.0,
) -> LoadResult:
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    if not 0 < duration_s <= 3600:
        raise ConfigError(f"duration_s must be in (0, 3600], got {duration_s}")
    if max_count < 1:
        raise ConfigError(f"max_count must be >= 1, got {max_count}")
    rec = IntervalRecorder(name)
    start = time.perf_counter_ns()
    end_at = start + int(duration_s * NS_PER_S)
    budget = max_count

    async def worker() -> None:
        nonlocal budget
        while budget > 0 and time.perf_counter_ns() < end_at:
            budget -= 1
            t0 = time.perf_counter_ns() - start
            rec.started(t0, t0)
            kind: str | None = None
            try:
                async with asyncio.timeout(op_timeout_s):
                    await op()
            except Exception as exc:
                kind = error_kind(exc)
            rec.finished(t0, t0, time.perf_counter_ns() - start, kind)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return rec.result(
        schedule={"kind": "closed", "concurrency": concurrency, "duration": duration_s},
        annotations=[],
        scheduled=rec.sent,
        schedule_duration_s=duration_s,
    )
