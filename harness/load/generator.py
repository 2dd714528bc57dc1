"""The open-loop load generator: start each operation at its intended time, whatever came before.

For every intended start ``t_i`` of a schedule (``harness.load.schedules``) the generator
launches ``op()`` as its own task at ``t_i`` and never waits for earlier operations to finish,
like k6's constant-arrival-rate executor and wrk2. Differences that matter:

- In-flight operations are capped (``max_in_flight``). An arrival that finds the cap full is
  *dropped* and counted (k6's ``dropped_iterations``), never queued: a queue in the generator
  would turn it back into a closed loop.
- Latency is recorded twice (see ``harness.load.recorder``): from the intended start (the
  honest figure, coordinated-omission corrected) and from the actual start (service time).
- The generator measures its own lag (actual start minus intended start). If the lag's p99
  or max passes ``LagPolicy``, the summary says ``generator_behind``: the report must then say
  the generator, not the system under test, was the bottleneck.
- Bounded: the schedule is finite, ``max_count`` refuses oversized schedules up front, each
  operation has a timeout, and a hard deadline (schedule duration + drain) cancels whatever
  is still in flight; those are counted as errors of kind ``unfinished``, not lost.

Timing: every timestamp is ``time.perf_counter_ns()`` relative to the run start. asyncio
timers wake up to 1 ms late on an idle loop (the selector's timeout is rounded up to whole
milliseconds), which alone would put the lag p99 near 1 ms; so ``wait_until`` aims its timer
1 ms (+ ``spin_s``) before the due time and then yields to the loop (``sleep(0)``) until due.
Other tasks run during that spin; it costs up to ~1 ms of CPU per arrival gap. When a yield
comes back slowly the loop is busy with other work (and then timers are not rounded), so the
spin backs off to a timer: several generators in one loop, or a loop shared with a server,
do not starve each other.

An operation is an async callable ``op() -> None`` that raises on error. The error's ``kind``
attribute (``bot.rpc.errors`` style) labels the error counter, else the exception class name.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass

from harness.errors import ConfigError
from harness.load.recorder import NS_PER_S, IntervalRecorder, IntervalSeries, LagPolicy, LoadResult
from harness.load.schedules import Schedule

Op = Callable[[], Awaitable[None]]

# Launch at most this many due operations before yielding to the loop, so a generator that is
# catching up still lets the operations it started make progress.
_LAUNCH_BATCH = 16


# asyncio's selector rounds its timeout *up* to whole milliseconds, so a timer wakes up to 1 ms
# after the time asked for. The timer is aimed this much (plus any extra spin) before the due
# time, and the rest is covered by yielding to the loop until due.
_TIMER_SLACK_NS = 1_000_000
# A yield to the loop that takes longer than this means other work is running: the loop is
# awake anyway (and then timers are not rounded), so spinning only steals CPU from that work.
_BUSY_YIELD_NS = 100_000


async def wait_until(due_ns: int, spin_ns: int = 0) -> None:
    """Sleep until ``perf_counter_ns() >= due_ns``: a timer for most of it, then a short spin.

    Never sleeping through the due time matters more than the spin's CPU: on a busy machine a
    process that sleeps may wait milliseconds for the kernel to run it again.
    """
    now = time.perf_counter_ns()
    margin = _TIMER_SLACK_NS + spin_ns
    if due_ns - now > margin:
        await asyncio.sleep((due_ns - now - margin) / NS_PER_S)
    now = time.perf_counter_ns()
    while now < due_ns:
        await asyncio.sleep(0)
        after = time.perf_counter_ns()
        if after - now > _BUSY_YIELD_NS and due_ns - after > _TIMER_SLACK_NS:
            await asyncio.sleep((due_ns - after - _TIMER_SLACK_NS) / NS_PER_S)
            after = time.perf_counter_ns()
        now = after


def error_kind(exc: BaseException) -> str:
    """The label an operation's failure is counted under."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str) and kind:
        return kind
    return type(exc).__name__


@dataclass(frozen=True)
class GeneratorStatistics:
    scheduled: int
    sent: int
    ok: int
    errors: int
    dropped: int
    in_flight: int
    max_in_flight: int
    peak_in_flight: int
    running: bool


class OpenLoopGenerator:
    """Runs one schedule of one operation; single use (``run()`` once)."""

    def __init__(
        self,
        op: Op,
        schedule: Schedule,
        *,
        name: str,
        max_in_flight: int = 1000,
        op_timeout_s: float = 30.0,
        drain_timeout_s: float = 30.0,
        max_count: int = 10_000_000,
        spin_s: float = 0.0,
        lag_policy: LagPolicy | None = None,
        interval_s: float = 1.0,
    ) -> None:
        if max_in_flight < 1:
            raise ConfigError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if not 0 < op_timeout_s <= 60:
            # 60 s is the histograms' ceiling; a longer timeout would record clamped values.
            raise ConfigError(f"op_timeout_s must be in (0, 60], got {op_timeout_s}")
        if drain_timeout_s < 0:
            raise ConfigError(f"drain_timeout_s must be >= 0, got {drain_timeout_s}")
        if not 0 <= spin_s <= 0.01:
            raise ConfigError(f"spin_s must be in [0, 0.01] seconds, got {spin_s}")
        if not 0.01 <= interval_s <= 60:
            raise ConfigError(f"interval_s must be in [0.01, 60] seconds, got {interval_s}")
        if schedule.count > max_count:
            raise ConfigError(
                f"schedule has {schedule.count} operations, above max_count={max_count}; "
                "shorten the schedule or raise max_count"
            )
        self._op = op
        self._schedule = schedule
        self.name = name
        self.max_in_flight = max_in_flight
        self._op_timeout_s = op_timeout_s
        self._drain_ns = int(drain_timeout_s * NS_PER_S)
        self._spin_ns = int(spin_s * NS_PER_S)
        self._lag_policy = lag_policy or LagPolicy()
        # 1 s intervals are the results.json convention; shorter ones give a short run enough
        # intervals for a block bootstrap.
        self._rec = IntervalRecorder(name, interval_ns=round(interval_s * NS_PER_S))
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._peak_in_flight = 0
        self._start_ns = 0
        self._running = False
        self._used = False

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<OpenLoopGenerator {self.name!r} {self._schedule.kind} running={s.running} "
            f"sent={s.sent}/{s.scheduled} in_flight={s.in_flight}/{s.max_in_flight} dropped={s.dropped}>"
        )

    @property
    def series(self) -> IntervalSeries:
        """The run's per-second series as it is recorded (read-only), for a live view."""
        return self._rec.series

    def statistics(self) -> GeneratorStatistics:
        r = self._rec
        return GeneratorStatistics(
            scheduled=self._schedule.count,
            sent=r.sent,
            ok=r.ok,
            errors=r.errors,
            dropped=r.dropped,
            in_flight=self._in_flight,
            max_in_flight=self.max_in_flight,
            peak_in_flight=self._peak_in_flight,
            running=self._running,
        )

    async def run(self) -> LoadResult:
        if self._used:
            raise RuntimeError("an OpenLoopGenerator runs once; make a new one")
        self._used = True
        self._running = True
        loop = asyncio.get_running_loop()
        self._start_ns = time.perf_counter_ns()
        deadline_ns = self._start_ns + int(self._schedule.duration * NS_PER_S) + self._drain_ns
        try:
            await self._launch_all(loop, deadline_ns)
            await self._drain(deadline_ns)
        finally:
            await self._cancel_rest()
            self._running = False
        return self._rec.result(
            schedule=self._schedule.spec(),
            annotations=[asdict(a) for a in self._schedule.annotations()],
            scheduled=self._schedule.count,
            schedule_duration_s=self._schedule.duration,
            lag_policy=self._lag_policy,
        )

    async def _launch_all(self, loop: asyncio.AbstractEventLoop, deadline_ns: int) -> None:
        start = self._start_ns
        times: Iterator[float] = self._schedule.times()
        unyielded = 0
        for t in times:
            intended = round(t * NS_PER_S)
            due = start + intended
            now = time.perf_counter_ns()
            if now >= deadline_ns:
                # So far behind that the hard deadline passed: the rest were never started.
                self._rec.dropped_at(intended)
                for rest in times:
                    self._rec.dropped_at(round(rest * NS_PER_S))
                return
            if due > now:
                unyielded = 0
                await wait_until(due, self._spin_ns)
            elif unyielded >= _LAUNCH_BATCH:
                unyielded = 0
                await asyncio.sleep(0)
            if self._in_flight >= self.max_in_flight:
                self._rec.dropped_at(intended)
                continue
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
            task = loop.create_task(self._one(intended))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            unyielded += 1

    async def _one(self, intended: int) -> None:
        start = self._start_ns
        actual = time.perf_counter_ns() - start
        self._rec.started(intended, actual)
        kind: str | None = None
        try:
            async with asyncio.timeout(self._op_timeout_s):
                await self._op()
        except asyncio.CancelledError:
            self._rec.finished(intended, actual, time.perf_counter_ns() - start, "unfinished")
            self._in_flight -= 1
            raise
        except Exception as exc:
            kind = error_kind(exc)
        self._rec.finished(intended, actual, time.perf_counter_ns() - start, kind)
        self._in_flight -= 1

    async def _drain(self, deadline_ns: int) -> None:
        remaining = (deadline_ns - time.perf_counter_ns()) / NS_PER_S
        if self._tasks and remaining > 0:
            await asyncio.wait(set(self._tasks), timeout=remaining)

    async def _cancel_rest(self) -> None:
        pending = [t for t in self._tasks if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        # A task cancelled before its first step never ran _one: count it as sent and unfinished
        # so sent == ok + errors still holds.
        while self._in_flight > self._rec.in_flight:
            now = time.perf_counter_ns() - self._start_ns
            self._rec.started(now, now)
            self._rec.finished(now, now, now, "unfinished")
            self._in_flight -= 1


async def run_open_loop(
    op: Op,
    schedule: Schedule,
    *,
    name: str,
    max_in_flight: int = 1000,
    op_timeout_s: float = 30.0,
    drain_timeout_s: float = 30.0,
    lag_policy: LagPolicy | None = None,
    interval_s: float = 1.0,
    spin_s: float = 0.0,
    on_start: Callable[[OpenLoopGenerator], None] | None = None,
) -> LoadResult:
    """Convenience: build an ``OpenLoopGenerator`` and run it once. ``on_start`` gets the generator
    before it runs (a live view reads its statistics and series)."""
    gen = OpenLoopGenerator(op, schedule, name=name, max_in_flight=max_in_flight, op_timeout_s=op_timeout_s,
                            drain_timeout_s=drain_timeout_s, lag_policy=lag_policy, interval_s=interval_s,
                            spin_s=spin_s)
    if on_start is not None:
        on_start(gen)
    return await gen.run()
