"""One actor per trading pair, supervised by an ``Engine``.

A ``PairActor`` is one asyncio task that owns its pair's ``Mailbox`` and handles one message at a
time through an injected async handler ``handler(pair_id, message)``. Every handler call runs
under a timeout; handler errors are counted by kind (``exc.kind`` if the exception has one, as the
bot's ``RpcError`` and ``TxError`` do, else the class name; ``handler_timeout`` for timeouts) and
never stop the actor. Only ``FatalActorError`` crashes it; the ``Engine`` then restarts it (same
mailbox, nothing queued is lost) under ``RestartPolicy``.

At most ``dispatch_slots`` handlers run at once across all pairs; the ``FairGate`` decides which
waiting pair runs next (priority first, round-robin across pairs).

Lock ordering (deadlock freedom). The engine's resources, outermost first:

1. the pair's dispatch slot (``FairGate``), taken by the actor before it calls the handler;
2. inside a handler, ``CapacityLimiter`` s in increasing ``rank``: in-flight transaction
   (``RANK_IN_FLIGHT``), then signing (``RANK_SIGNING``), then RPC (``RANK_RPC``).

Never await a resource while holding one that comes later in this list (e.g. never wait for an
in-flight slot while holding an RPC slot). ``CapacityLimiter`` enforces rule 2 at run time.
Every wait is bounded by the handler timeout, so even a bug cannot block the engine forever.
A handler must not ``post`` to its own pair and then wait for that message to be handled.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bot.engine.dispatch import FairGate, GateStatistics
from bot.engine.mailbox import Mailbox, MailboxStatistics, Message, Overflow, Priority, PutResult
from bot.engine.supervision import FatalActorError, RestartPolicy

log = logging.getLogger(__name__)

Handler = Callable[[str, Message], Awaitable[None]]


class UnknownPair(LookupError):
    def __init__(self, pair_id: str) -> None:
        super().__init__(f"unknown pair {pair_id!r}")
        self.pair_id = pair_id


class ActorState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    STOPPED = "stopped"
    FAILED = "failed"


class EngineObserver(Protocol):
    """What the engine reports as it goes; ``bot.telemetry`` provides one. Called on the loop thread."""

    def handled(self, pair_id: str, message: Message, duration_ns: int) -> None: ...
    def error(self, pair_id: str, kind: str, exc: BaseException | None) -> None: ...
    def dropped(self, pair_id: str, priority: Priority, reason: str, n: int) -> None: ...
    def conflated(self, pair_id: str, superseded: Message) -> None: ...
    def restarted(self, pair_id: str) -> None: ...


class NullObserver:
    def handled(self, pair_id: str, message: Message, duration_ns: int) -> None:
        pass

    def error(self, pair_id: str, kind: str, exc: BaseException | None) -> None:
        pass

    def dropped(self, pair_id: str, priority: Priority, reason: str, n: int) -> None:
        pass

    def conflated(self, pair_id: str, superseded: Message) -> None:
        pass

    def restarted(self, pair_id: str) -> None:
        pass


def error_kind(exc: BaseException) -> str:
    kind = getattr(exc, "kind", None)
    return kind if isinstance(kind, str) and kind else type(exc).__name__


@dataclass(frozen=True, slots=True)
class RunningHandler:
    pair_id: str
    kind: str
    started_ns: int  # time.perf_counter_ns() when the handler started


@dataclass(frozen=True, slots=True)
class ActorStatistics:
    pair_id: str
    state: str
    handled_total: int
    errors: Mapping[str, int]
    restarts: int
    current: RunningHandler | None
    mailbox: MailboxStatistics


@dataclass(frozen=True, slots=True)
class EngineSettings:
    mailbox_size: int = 256
    dispatch_slots: int = 64
    handler_timeout_s: float = 30.0
    starvation_limit: int = 1000
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    policy: Mapping[Priority, Overflow] | None = None
    # Message kinds of which each pair keeps only the newest queued (``Mailbox`` conflation).
    conflate: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.handler_timeout_s <= 0:
            raise ValueError(f"handler_timeout_s must be > 0, got {self.handler_timeout_s}")


@dataclass(frozen=True, slots=True)
class StopReport:
    finished: int  # actors that stopped on their own before the deadline
    cancelled: int  # actors cancelled at the deadline (their handler was interrupted)
    undelivered: int  # messages still queued when the mailboxes closed


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    pairs: int
    states: Mapping[str, int]
    handled_total: int
    errors: Mapping[str, int]
    restarts_total: int
    queued: int
    drops: Mapping[str, int]
    gate: GateStatistics


class PairActor:
    """The task that handles one pair's messages in order of priority. Created by ``Engine``."""

    def __init__(
        self,
        pair_id: str,
        handler: Handler,
        mailbox: Mailbox,
        gate: FairGate,
        *,
        handler_timeout_s: float,
        observer: EngineObserver,
    ) -> None:
        self.pair_id = pair_id
        self.mailbox = mailbox
        self._handler = handler
        self._gate = gate
        self._timeout = handler_timeout_s
        self._observer = observer
        self.state = ActorState.NEW
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._stop = False
        self._drain = False
        self._busy = False
        self._current: RunningHandler | None = None
        self._errors: dict[str, int] = {}
        self.handled_total = 0
        self.restarts = 0
        self.crash_times: list[float] = []
        self.task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return (
            f"<PairActor {self.pair_id!r} {self.state.value} queued={len(self.mailbox)}"
            f" handled={self.handled_total} errors={sum(self._errors.values())}>"
        )

    @property
    def current(self) -> RunningHandler | None:
        return self._current

    @property
    def errors(self) -> Mapping[str, int]:
        return dict(self._errors)

    def start(self) -> asyncio.Task[None]:
        self._stop = False
        self.state = ActorState.PAUSED if not self._resumed.is_set() else ActorState.RUNNING
        self.task = asyncio.create_task(self._run(), name=f"actor:{self.pair_id}")
        return self.task

    def pause(self) -> None:
        self._resumed.clear()
        if self.state is ActorState.RUNNING:
            self.state = ActorState.PAUSED

    def resume(self) -> None:
        self._resumed.set()
        if self.state is ActorState.PAUSED:
            self.state = ActorState.RUNNING

    def request_stop(self, *, drain: bool) -> None:
        """Finish the current handler (and, with ``drain``, the queue), then exit."""
        self._stop = True
        self._drain = drain
        idle = not self._busy and (not drain or not len(self.mailbox) or not self._resumed.is_set())
        if idle and self.task is not None and not self.task.done():
            self.task.cancel()

    def _count_error(self, kind: str, exc: BaseException | None) -> None:
        self._errors[kind] = self._errors.get(kind, 0) + 1
        self._observer.error(self.pair_id, kind, exc)

    def _should_exit(self) -> bool:
        return self._stop and (not self._drain or not len(self.mailbox) or not self._resumed.is_set())

    async def _run(self) -> None:
        while not self._should_exit():
            await self._resumed.wait()
            await self.mailbox.wait()
            priority = self.mailbox.peek_priority()
            if priority is None or not self._resumed.is_set():  # paused while we waited for mail
                continue
            await self._gate.acquire(self.pair_id, priority)
            self._busy = True
            try:
                # Take the most urgent message *now*: a risk exit may have arrived while we waited.
                message = self.mailbox.get_nowait()
                if message is not None:
                    await self._handle(message)
            finally:
                self._busy = False
                self._gate.release(self.pair_id)

    async def _handle(self, message: Message) -> None:
        started = time.perf_counter_ns()
        self._current = RunningHandler(self.pair_id, message.kind, started)
        deadline = asyncio.timeout(self._timeout)
        try:
            async with deadline:
                await self._handler(self.pair_id, message)
        except FatalActorError:
            self._count_error("fatal", None)
            raise
        except TimeoutError as exc:
            self._count_error("handler_timeout" if deadline.expired() else error_kind(exc), exc)
        except Exception as exc:
            self._count_error(error_kind(exc), exc)
        finally:
            self._current = None
            self.handled_total += 1
        self._observer.handled(self.pair_id, message, time.perf_counter_ns() - started)

    def statistics(self) -> ActorStatistics:
        return ActorStatistics(
            pair_id=self.pair_id,
            state=self.state.value,
            handled_total=self.handled_total,
            errors=dict(self._errors),
            restarts=self.restarts,
            current=self._current,
            mailbox=self.mailbox.statistics(),
        )


class Engine:
    """Supervises one ``PairActor`` per pair: routing, pause/resume, restarts, graceful stop.

    Typical use::

        engine = Engine(handle, EngineSettings(mailbox_size=256, dispatch_slots=64))
        for pair in pairs:
            engine.add_pair(pair)
        await engine.start()
        engine.post("T000/USD", Message(Priority.MARKET_DATA, "tick", payload, scheduled=t))
        ...
        report = await engine.stop(deadline_s=5.0)
    """

    def __init__(
        self,
        handler: Handler,
        settings: EngineSettings | None = None,
        *,
        observer: EngineObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._handler = handler
        self.settings = settings or EngineSettings()
        self._observer: EngineObserver = observer or NullObserver()
        self._clock = clock
        self.gate = FairGate(self.settings.dispatch_slots, starvation_limit=self.settings.starvation_limit)
        self._actors: dict[str, PairActor] = {}
        self._restart_handles: dict[str, asyncio.TimerHandle] = {}
        self._started = False
        self._stopping = False

    def __repr__(self) -> str:
        failed = sum(1 for a in self._actors.values() if a.state is ActorState.FAILED)
        return (
            f"<Engine pairs={len(self._actors)} started={self._started} stopping={self._stopping}"
            f" failed={failed} {self.gate!r}>"
        )

    @property
    def pairs(self) -> list[str]:
        return list(self._actors)

    def actor(self, pair_id: str) -> PairActor:
        try:
            return self._actors[pair_id]
        except KeyError:
            raise UnknownPair(pair_id) from None

    def add_pair(self, pair_id: str) -> PairActor:
        if pair_id in self._actors:
            raise ValueError(f"pair {pair_id!r} is already in the engine")
        s = self.settings
        actor = PairActor(
            pair_id,
            self._handler,
            Mailbox(
                s.mailbox_size,
                policy=s.policy,
                name=f"mailbox:{pair_id}",
                on_drop=lambda prio, reason, n: self._observer.dropped(pair_id, prio, reason, n),
                conflate=s.conflate,
                on_conflate=lambda old: self._observer.conflated(pair_id, old),
            ),
            self.gate,
            handler_timeout_s=s.handler_timeout_s,
            observer=self._observer,
        )
        self._actors[pair_id] = actor
        if self._started and not self._stopping:
            self._launch(actor)
        return actor

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("engine already started")
        self._started = True
        for actor in self._actors.values():
            self._launch(actor)

    def _launch(self, actor: PairActor) -> None:
        task = actor.start()
        task.add_done_callback(lambda t, a=actor: self._on_exit(a, t))  # type: ignore[misc]

    def _on_exit(self, actor: PairActor, task: asyncio.Task[None]) -> None:
        if self._stopping:
            if actor.state is not ActorState.FAILED:
                actor.state = ActorState.STOPPED
            return
        # The engine cancels actors only in stop(); any other cancellation (a handler letting a stray
        # CancelledError escape) would leave a silently dead pair, so it counts as a crash.
        exc: BaseException | None = asyncio.CancelledError() if task.cancelled() else task.exception()
        if exc is None:
            actor.state = ActorState.STOPPED
            return
        now = self._clock()
        actor.crash_times.append(now)
        actor.crash_times = self.settings.restart.prune(actor.crash_times, now)
        delay = self.settings.restart.decide(actor.crash_times, now)
        if delay is None:
            actor.state = ActorState.FAILED
            log.error("actor %s crashed %d times in %.0f s; giving up: %r", actor.pair_id,
                      len(actor.crash_times), self.settings.restart.window_s, exc)
            return
        log.warning("actor %s crashed (%r); restarting in %.3f s", actor.pair_id, exc, delay)
        actor.state = ActorState.RESTARTING
        loop = asyncio.get_running_loop()
        self._restart_handles[actor.pair_id] = loop.call_later(delay, self._restart, actor)

    def _restart(self, actor: PairActor) -> None:
        self._restart_handles.pop(actor.pair_id, None)
        if self._stopping:
            actor.state = ActorState.STOPPED
            return
        actor.restarts += 1
        self._launch(actor)
        self._observer.restarted(actor.pair_id)

    def post(self, pair_id: str, message: Message) -> PutResult:
        """Queue ``message`` for ``pair_id`` under its overflow policy. Raises ``UnknownPair``."""
        result = self.actor(pair_id).mailbox.put(message)
        if result.accepted:
            self.gate.raise_priority(pair_id, message.priority)
        return result

    def broadcast(self, message: Message) -> dict[str, PutResult]:
        return {pair: self.post(pair, message) for pair in self._actors}

    def pause(self, pair_id: str) -> None:
        self.actor(pair_id).pause()

    def resume(self, pair_id: str) -> None:
        self.actor(pair_id).resume()

    def running_handlers(self) -> list[RunningHandler]:
        return [a.current for a in self._actors.values() if a.current is not None]

    def health(self) -> tuple[bool, list[str]]:
        """``(healthy, reasons)``: unhealthy when not running or when any actor was given up on."""
        reasons: list[str] = []
        if not self._started:
            reasons.append("engine not started")
        if self._stopping:
            reasons.append("engine stopping")
        reasons.extend(f"pair {a.pair_id} failed (crash loop)" for a in self._actors.values()
                       if a.state is ActorState.FAILED)
        return (not reasons, reasons)

    async def stop(self, deadline_s: float = 5.0, *, drain: bool = False) -> StopReport:
        """Stop every actor: let running handlers (and with ``drain`` the queues) finish until the deadline,
        then cancel what is left. Idempotent."""
        self._stopping = True
        for handle in self._restart_handles.values():
            handle.cancel()
        self._restart_handles.clear()
        tasks: list[asyncio.Task[None]] = []
        for actor in self._actors.values():
            actor.request_stop(drain=drain)
            if actor.task is not None and not actor.task.done():
                tasks.append(actor.task)
        finished = cancelled = 0
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline_s))
            finished = len(done)
            for t in pending:
                t.cancel()
            cancelled = len(pending)
            if pending:
                # Cancelled handlers get a moment to run their finally blocks; the wait stays bounded.
                await asyncio.wait(pending, timeout=1.0)
        undelivered = sum(len(a.mailbox.close()) for a in self._actors.values())
        for actor in self._actors.values():
            if actor.state is not ActorState.FAILED:
                actor.state = ActorState.STOPPED
        return StopReport(finished=finished, cancelled=cancelled, undelivered=undelivered)

    def statistics(self) -> EngineStatistics:
        states: dict[str, int] = {}
        errors: dict[str, int] = {}
        drops: dict[str, int] = {}
        handled = restarts = queued = 0
        for a in self._actors.values():
            states[a.state.value] = states.get(a.state.value, 0) + 1
            handled += a.handled_total
            restarts += a.restarts
            queued += len(a.mailbox)
            _merge(errors, a.errors.items())
            _merge(drops, a.mailbox.statistics().drops.items())
        return EngineStatistics(
            pairs=len(self._actors),
            states=states,
            handled_total=handled,
            errors=errors,
            restarts_total=restarts,
            queued=queued,
            drops=drops,
            gate=self.gate.statistics(),
        )


def _merge(into: dict[str, int], items: Iterable[tuple[str, int]]) -> None:
    for k, v in items:
        into[k] = into.get(k, 0) + v
