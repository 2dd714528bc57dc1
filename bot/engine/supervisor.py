"""Supervision of the bot's long-running background tasks (heads pump, receipts, feed, WebSocket).

A background task that dies takes a whole function of the bot with it while the actors, and so
``/health``, look fine. Here each one runs under a supervisor: a crash is logged with its
traceback, counted (``task_crashes{task=...}``, ``task_restarts{task=...}``, also in
``/metrics``) and the task restarted after a capped exponential backoff (the engine's
``RestartPolicy``, the same rule that restarts a crashed pair actor). More than
``max_restarts`` crashes within ``window_s`` and the task is given up on (FAILED): that is
fatal, and ``bot run`` exits 3.

A supervised task is meant to run until the supervisor stops it: returning early counts as a
crash too (a ``while True`` loop that ended is a bug). ``kill(name)`` cancels the running
incarnation, which also counts as a crash (chaos tests).

A critical task is *down*, and ``health()`` names it, while it waits for its restart, once it
is given up on, for ``recovering_s`` after a restart (a restarted task has not proved itself
yet, and a half-second health prober must not miss the crash), and while it is flapping:
``flapping`` or more crashes within the window, whatever its state at the moment.

``TaskRecord`` is the decision logic, pure (the caller passes ``now``); ``Supervisor`` is the
asyncio shell that runs the tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from bot.engine.supervision import RestartPolicy

log = logging.getLogger(__name__)

# Background tasks: a first restart after 0.1 s, then doubling up to 5 s; the 11th crash in a
# minute is fatal (about 25 s spent in backoff by then).
TASK_RESTARTS = RestartPolicy(max_restarts=10, window_s=60.0, backoff_s=0.1, backoff_max_s=5.0)


class TaskState(StrEnum):
    RUNNING = "running"
    BACKOFF = "backoff"  # crashed, waiting to be restarted
    FAILED = "failed"  # over its restart budget: not restarted again
    STOPPED = "stopped"  # stopped by its owner


@dataclass(frozen=True, slots=True)
class TaskStatistics:
    """``down_since``: Unix seconds when the current down period began (None while up)."""

    name: str
    critical: bool
    state: str
    restarts: int
    crashes: int
    last_error: str | None
    down_since: float | None


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    tasks: tuple[TaskStatistics, ...]
    down: tuple[str, ...]  # critical tasks down now
    fatal: str | None


class TaskRecord:
    """One task's supervision state (pure: every method takes the caller's ``now``)."""

    def __init__(self, name: str, policy: RestartPolicy = TASK_RESTARTS, *, critical: bool = True,
                 flapping: int = 3, recovering_s: float = 1.0) -> None:
        if flapping < 2:
            raise ValueError(f"flapping must be >= 2 crashes, got {flapping}")
        if recovering_s < 0:
            raise ValueError(f"recovering_s must be >= 0, got {recovering_s}")
        self.name = name
        self.policy = policy
        self.critical = critical
        self.flapping = flapping
        self.recovering_s = recovering_s
        self.state = TaskState.RUNNING
        self.restarts = 0
        self.crashes = 0
        self.last_error: str | None = None
        self.down_since: float | None = None
        self._crash_times: list[float] = []
        self._restarted_at: float | None = None
        self._gave_up_after = 0

    def __repr__(self) -> str:
        return (f"<TaskRecord {self.name} {self.state.value} restarts={self.restarts} crashes={self.crashes} "
                f"last_error={self.last_error!r}>")

    def crashed(self, now: float, error: str) -> float | None:
        """The delay before the restart, or None: over budget, the task is FAILED."""
        self.crashes += 1
        self.last_error = error
        self._crash_times = [*self.policy.prune(self._crash_times, now), now]
        if self.down_since is None:
            self.down_since = now
        delay = self.policy.decide(self._crash_times, now)
        self.state = TaskState.BACKOFF if delay is not None else TaskState.FAILED
        if delay is None:
            self._gave_up_after = len(self._crash_times)
        return delay

    def restarted(self, now: float) -> None:
        if self.state is not TaskState.BACKOFF:
            raise ValueError(f"task {self.name}: restarted while {self.state.value}")
        self.state = TaskState.RUNNING
        self.restarts += 1
        self._restarted_at = now

    def stopped(self) -> None:
        self.state = TaskState.STOPPED

    def down(self, now: float) -> str | None:
        """Why the task counts as down now, or None (which also ends the current down period)."""
        recent = len(self.policy.prune(self._crash_times, now))
        why: str | None = None
        if self.state is TaskState.FAILED:
            why = f"gave up after {self._gave_up_after} crashes within {self.policy.window_s:g} s"
        elif self.state is TaskState.BACKOFF:
            why = "crashed, restarting"
        elif self.state is TaskState.RUNNING and recent >= self.flapping:
            why = f"restarting repeatedly ({recent} crashes within {self.policy.window_s:g} s)"
        elif (self.state is TaskState.RUNNING and self._restarted_at is not None
              and now - self._restarted_at < self.recovering_s):
            why = "restarted, recovering"
        if why is None:
            self.down_since = None
            return None
        return f"task {self.name} {why}; last error: {self.last_error}"

    def snapshot(self, now: float, to_wall: Callable[[float], float]) -> TaskStatistics:
        self.down(now)  # ends a down period that is over
        return TaskStatistics(
            name=self.name, critical=self.critical, state=self.state.value, restarts=self.restarts,
            crashes=self.crashes, last_error=self.last_error,
            down_since=None if self.down_since is None else to_wall(self.down_since),
        )


class Counts(Protocol):
    """What the supervisor needs of telemetry."""

    def count_untagged(self, key: str, n: int = 1) -> None: ...


TaskFactory = Callable[[], Coroutine[Any, Any, None]]


class Supervisor:
    """Runs named background tasks, restarting each after a crash (see the module docstring)."""

    def __init__(self, policy: RestartPolicy = TASK_RESTARTS, *, telemetry: Counts | None = None,
                 flapping: int = 3, recovering_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self._telemetry = telemetry
        self._flapping = flapping
        self._recovering_s = recovering_s
        self._clock = clock
        self._wall = wall
        self._records: dict[str, TaskRecord] = {}
        self._keepers: dict[str, asyncio.Task[None]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._fatal: str | None = None
        self._fatal_event = asyncio.Event()
        self._closing = False

    def __repr__(self) -> str:
        states = ", ".join(f"{r.name}={r.state.value}" for r in self._records.values())
        return f"<Supervisor {states or 'no tasks'} fatal={self._fatal!r}>"

    @property
    def fatal(self) -> str | None:
        """Why the bot cannot go on (a critical task over its restart budget), else None."""
        return self._fatal

    async def wait_fatal(self) -> str:
        await self._fatal_event.wait()
        assert self._fatal is not None
        return self._fatal

    def spawn(self, name: str, factory: TaskFactory, *, critical: bool = True) -> None:
        """Run ``factory()`` as task ``name`` now, and again after every crash."""
        if self._closing:
            raise RuntimeError(f"supervisor is closed; cannot start task {name}")
        if name in self._records:
            raise ValueError(f"task {name} is already supervised")
        record = TaskRecord(name, self.policy, critical=critical, flapping=self._flapping,
                            recovering_s=self._recovering_s)
        self._records[name] = record
        self._keepers[name] = asyncio.create_task(self._keep(record, factory), name=f"supervise {name}")

    def kill(self, name: str) -> bool:
        """Cancel the running incarnation of ``name`` (counted as a crash and restarted). False if none runs."""
        task = self._running.get(name)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    async def stop(self, name: str) -> None:
        """Stop one task for good (shutdown order: e.g. the feed before the receipts)."""
        keeper = self._keepers.pop(name, None)
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        if name in self._records:
            self._records[name].stopped()

    async def aclose(self) -> None:
        self._closing = True
        for name in list(self._keepers):
            await self.stop(name)

    def health(self) -> tuple[bool, list[str]]:
        now = self._clock()
        reasons: list[str] = []
        for record in self._records.values():
            why = record.down(now) if record.critical else None
            if why is not None:
                reasons.append(why)
        return not reasons, reasons

    def statistics(self) -> SupervisorStatistics:
        now, wall = self._clock(), self._wall()
        tasks = tuple(r.snapshot(now, lambda t: wall - (now - t)) for r in self._records.values())
        down = tuple(r.name for r in self._records.values() if r.critical and r.down(now))
        return SupervisorStatistics(tasks=tasks, down=down, fatal=self._fatal)

    def _count(self, name: str, task: str) -> None:
        if self._telemetry is not None:
            self._telemetry.count_untagged(f"{name}{{task={task}}}")

    async def _keep(self, record: TaskRecord, factory: TaskFactory) -> None:
        name = record.name
        while True:
            run = asyncio.create_task(factory(), name=name)
            self._running[name] = run
            exc: BaseException | None = None
            try:
                await run
                error = "returned while supervised"
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if self._closing or (current is not None and current.cancelling()):
                    raise  # we are being stopped, not the task killed
                error = "killed (cancelled)"
            except Exception as e:
                exc = e
                error = f"{type(e).__name__}: {e}"[:300]
            finally:
                self._running.pop(name, None)
            delay = record.crashed(self._clock(), error)
            self._count("task_crashes", name)
            if delay is None:
                log.error("task %s crashed (%s): over its restart budget (%d in %g s), not restarted",
                          name, error, self.policy.max_restarts, self.policy.window_s, exc_info=exc)
                if record.critical and self._fatal is None:
                    self._fatal = (f"task {name} crashed more than {self.policy.max_restarts} times "
                                   f"within {self.policy.window_s:g} s; last error: {error}")
                    self._fatal_event.set()
                return
            log.error("task %s crashed (%s); restarting in %.2f s", name, error, delay, exc_info=exc)
            await asyncio.sleep(delay)
            record.restarted(self._clock())
            self._count("task_restarts", name)
            log.info("task %s restarted (restart %d)", name, record.restarts)
