from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bot.engine.actors import ActorState, Engine, EngineSettings, UnknownPair
from bot.engine.limits import RANK_IN_FLIGHT, RANK_RPC, RANK_SIGNING, CapacityLimiter
from bot.engine.mailbox import Message, Priority, PutResult
from bot.engine.supervision import FatalActorError, RestartPolicy
from bot.rpc.errors import RpcTimeout
from bot.telemetry.observer import TelemetryObserver
from bot.telemetry.recorder import Telemetry


async def until(cond: Callable[[], bool], limit_s: float = 5.0) -> None:
    async with asyncio.timeout(limit_s):
        while not cond():
            await asyncio.sleep(0.005)


def tick(n: object = None, p: Priority = Priority.MARKET_DATA, kind: str = "tick") -> Message:
    return Message(p, kind, n)


async def test_messages_reach_handler_in_priority_order() -> None:
    seen: list[tuple[str, object]] = []
    release = asyncio.Event()

    async def handler(pair: str, m: Message) -> None:
        if m.payload == "first":
            await release.wait()
        seen.append((pair, m.payload))

    eng = Engine(handler, EngineSettings(dispatch_slots=1))
    eng.add_pair("A")
    await eng.start()
    eng.post("A", tick("first"))
    await until(lambda: eng.actor("A").current is not None)
    eng.post("A", tick("md"))
    eng.post("A", tick("entry", Priority.ENTRY))
    eng.post("A", tick("exit", Priority.RISK_EXIT))
    release.set()
    await until(lambda: len(seen) == 4)
    assert [p for _, p in seen] == ["first", "exit", "entry", "md"]
    await eng.stop(1.0)


async def test_errors_counted_by_kind_and_actor_survives() -> None:
    async def handler(pair: str, m: Message) -> None:
        if m.payload == "boom":
            raise ValueError("bad")
        if m.payload == "rpc":
            raise RpcTimeout("slow node")

    tele = Telemetry()
    eng = Engine(handler, observer=TelemetryObserver(tele, tick_kind="tick"))
    eng.add_pair("A")
    await eng.start()
    for p in ("boom", "rpc", "ok", "boom"):
        eng.post("A", tick(p))
    await until(lambda: eng.actor("A").handled_total == 4)
    assert eng.actor("A").errors == {"ValueError": 2, "timeout": 1}
    assert eng.actor("A").state is ActorState.RUNNING
    totals = tele.counter_totals()
    assert totals["errors{kind=ValueError}"] == 2 and totals["errors{kind=timeout}"] == 1
    assert totals["ticks_handled"] == 4 and totals["messages_handled"] == 4
    await eng.stop(1.0)


async def test_handler_timeout_is_counted_and_next_message_runs() -> None:
    done: list[object] = []

    async def handler(pair: str, m: Message) -> None:
        if m.payload == "hang":
            await asyncio.sleep(60)
        done.append(m.payload)

    eng = Engine(handler, EngineSettings(handler_timeout_s=0.05))
    eng.add_pair("A")
    await eng.start()
    eng.post("A", tick("hang"))
    eng.post("A", tick("after"))
    await until(lambda: done == ["after"])
    assert eng.actor("A").errors == {"handler_timeout": 1}
    await eng.stop(1.0)


async def test_fatal_error_restarts_actor_and_keeps_mailbox() -> None:
    handled: list[object] = []

    async def handler(pair: str, m: Message) -> None:
        if m.payload == "fatal":
            raise FatalActorError("state corrupted")
        handled.append(m.payload)

    tele = Telemetry()
    eng = Engine(handler, EngineSettings(restart=RestartPolicy(backoff_s=0.01)), observer=TelemetryObserver(tele))
    eng.add_pair("A")
    await eng.start()
    eng.actor("A").pause()
    eng.post("A", tick("fatal", Priority.ENTRY))
    eng.post("A", tick("queued"))
    eng.actor("A").resume()
    await until(lambda: handled == ["queued"])
    a = eng.actor("A")
    assert a.restarts == 1 and a.state is ActorState.RUNNING
    assert a.errors == {"fatal": 1}
    assert tele.counter_totals()["actor_restarts"] == 1
    assert eng.health()[0]
    await eng.stop(1.0)


async def test_crash_loop_gives_up_and_engine_is_unhealthy() -> None:
    async def handler(pair: str, m: Message) -> None:
        raise FatalActorError("always")

    settings = EngineSettings(restart=RestartPolicy(max_restarts=2, backoff_s=0.001, window_s=60))
    eng = Engine(handler, settings)
    eng.add_pair("A")
    eng.add_pair("B")
    await eng.start()
    for _ in range(5):
        eng.post("A", tick(p=Priority.ENTRY))
    await until(lambda: eng.actor("A").state is ActorState.FAILED)
    assert eng.actor("A").restarts == 2
    healthy, reasons = eng.health()
    assert not healthy and any("A" in r for r in reasons)
    assert eng.actor("B").state is ActorState.RUNNING
    await eng.stop(1.0)


async def test_pause_holds_messages_until_resume() -> None:
    handled: list[object] = []

    async def handler(pair: str, m: Message) -> None:
        handled.append(m.payload)

    eng = Engine(handler)
    eng.add_pair("A")
    await eng.start()
    eng.pause("A")
    eng.post("A", tick(1))
    await asyncio.sleep(0.05)
    assert handled == [] and eng.actor("A").state is ActorState.PAUSED
    eng.resume("A")
    await until(lambda: handled == [1])
    await eng.stop(1.0)


async def test_full_mailbox_drops_by_policy_and_counts() -> None:
    async def handler(pair: str, m: Message) -> None:
        pass

    tele = Telemetry()
    eng = Engine(handler, EngineSettings(mailbox_size=2), observer=TelemetryObserver(tele))
    eng.add_pair("A")
    await eng.start()
    eng.pause("A")
    results = [eng.post("A", tick(i)) for i in range(5)]
    assert results[:2] == [PutResult.ACCEPTED] * 2
    assert results[2:] == [PutResult.REPLACED_OLDEST] * 3
    assert eng.post("A", tick("e", Priority.ENTRY)) is PutResult.REJECTED
    totals = tele.counter_totals()
    assert totals["drops{reason=market_data.dropped_oldest}"] == 3
    assert totals["drops{reason=entry.rejected}"] == 1
    assert eng.statistics().drops == {"market_data.dropped_oldest": 3, "entry.rejected": 1}
    await eng.stop(1.0)


async def test_unknown_pair_and_duplicate_pair() -> None:
    async def handler(pair: str, m: Message) -> None:
        pass

    eng = Engine(handler)
    eng.add_pair("A")
    with pytest.raises(UnknownPair, match="ZZZ"):
        eng.post("ZZZ", tick())
    with pytest.raises(ValueError, match="already"):
        eng.add_pair("A")


async def test_stop_waits_for_running_handler_then_reports_undelivered() -> None:
    finished: list[bool] = []

    async def handler(pair: str, m: Message) -> None:
        await asyncio.sleep(0.05)
        finished.append(True)

    eng = Engine(handler, EngineSettings(dispatch_slots=1))
    eng.add_pair("A")
    await eng.start()
    for i in range(3):
        eng.post("A", tick(i))
    await until(lambda: eng.actor("A").current is not None)
    report = await eng.stop(2.0)
    assert finished == [True]  # the running handler completed; the queue was not drained
    assert report.finished == 1 and report.cancelled == 0 and report.undelivered == 2
    assert eng.actor("A").state is ActorState.STOPPED


async def test_stop_with_drain_handles_the_queue() -> None:
    handled: list[object] = []

    async def handler(pair: str, m: Message) -> None:
        await asyncio.sleep(0)
        handled.append(m.payload)

    eng = Engine(handler)
    eng.add_pair("A")
    await eng.start()
    eng.pause("A")
    for i in range(5):
        eng.post("A", tick(i))
    eng.resume("A")
    report = await eng.stop(2.0, drain=True)
    assert handled == [0, 1, 2, 3, 4] and report.undelivered == 0


async def test_stop_deadline_cancels_stuck_handler() -> None:
    async def handler(pair: str, m: Message) -> None:
        await asyncio.sleep(60)

    eng = Engine(handler, EngineSettings(handler_timeout_s=60))
    eng.add_pair("A")
    await eng.start()
    eng.post("A", tick())
    await until(lambda: eng.actor("A").current is not None)
    report = await asyncio.wait_for(eng.stop(0.05), 5.0)
    assert report.cancelled == 1
    assert eng.gate.statistics().busy == 0


async def test_hot_pair_does_not_starve_quiet_pair() -> None:
    order: list[str] = []

    async def handler(pair: str, m: Message) -> None:
        order.append(pair)
        await asyncio.sleep(0)

    eng = Engine(handler, EngineSettings(dispatch_slots=1, mailbox_size=100))
    eng.add_pair("hot")
    eng.add_pair("quiet")
    eng.pause("hot")
    eng.pause("quiet")
    for i in range(50):
        eng.post("hot", tick(i))
    eng.post("quiet", tick("q"))
    await eng.start()
    eng.resume("hot")
    eng.resume("quiet")
    await until(lambda: len(order) == 51)
    assert order.index("quiet") <= 2  # round-robin: one turn for hot, then quiet
    await eng.stop(1.0)


async def test_two_hundred_actors_with_contending_limiters_finish() -> None:
    """Deadlock-freedom: 200 pairs x 5 messages, 16 dispatch slots, three small ordered pools."""
    inflight = CapacityLimiter(8, name="in_flight", rank=RANK_IN_FLIGHT)
    signing = CapacityLimiter(2, name="signing", rank=RANK_SIGNING)
    rpc = CapacityLimiter(4, name="rpc", rank=RANK_RPC)

    async def handler(pair: str, m: Message) -> None:
        async with inflight.hold(timeout=5):
            async with signing.hold(timeout=5):
                await asyncio.sleep(0)
            async with rpc.hold(timeout=5):
                await asyncio.sleep(0)
        async with rpc.hold(timeout=5):  # a read outside any in-flight slot
            await asyncio.sleep(0)

    eng = Engine(handler, EngineSettings(dispatch_slots=16, mailbox_size=8, handler_timeout_s=10))
    for i in range(200):
        eng.add_pair(f"T{i:03d}/USD")
    await eng.start()
    for pair in eng.pairs:
        for j in range(5):
            assert eng.post(pair, tick(j, Priority.ENTRY)).accepted
    await until(lambda: eng.statistics().handled_total == 1000, limit_s=30)
    s = eng.statistics()
    assert s.errors == {} and s.queued == 0
    assert s.gate.busy <= 16
    for lim in (inflight, signing, rpc):
        assert lim.statistics().borrowed == 0
    report = await eng.stop(2.0)
    assert report.cancelled == 0


async def test_statistics_and_repr() -> None:
    async def handler(pair: str, m: Message) -> None:
        pass

    eng = Engine(handler)
    eng.add_pair("A")
    assert "pairs=1" in repr(eng) and "started=False" in repr(eng)
    assert not eng.health()[0]
    await eng.start()
    s = eng.statistics()
    assert s.pairs == 1 and s.states == {"running": 1}
    assert "A" in repr(eng.actor("A"))
    await eng.stop(1.0)


async def test_stray_cancellation_in_handler_restarts_actor() -> None:
    handled: list[object] = []

    async def handler(pair: str, m: Message) -> None:
        if m.payload == "stray":
            raise asyncio.CancelledError  # e.g. a library leaking its own cancellation
        handled.append(m.payload)

    eng = Engine(handler, EngineSettings(restart=RestartPolicy(backoff_s=0.001)))
    eng.add_pair("A")
    await eng.start()
    eng.post("A", tick("stray"))
    await until(lambda: eng.actor("A").restarts == 1)
    eng.post("A", tick("after"))
    await until(lambda: handled == ["after"])
    await eng.stop(1.0)


async def test_closed_mailbox_does_not_spin() -> None:
    from bot.engine.mailbox import Mailbox

    box = Mailbox(2)
    box.put(tick(1))
    box.close()
    waiter = asyncio.create_task(box.wait())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    waiter.cancel()


async def test_gate_counts_every_grant_and_rejects_misuse() -> None:
    from bot.engine.dispatch import FairGate, GateError

    gate = FairGate(1)
    await gate.acquire("A", Priority.ENTRY)
    with pytest.raises(GateError, match="already"):
        await gate.acquire("A", Priority.ENTRY)
    waiter = asyncio.create_task(gate.acquire("B", Priority.ENTRY))
    await asyncio.sleep(0)
    assert gate.statistics().waiting == 1
    gate.release("A")
    await asyncio.wait_for(waiter, 1.0)
    s = gate.statistics()
    assert (s.grants_total, s.contended_grants, s.busy, s.waiting) == (2, 1, 1, 0)
    with pytest.raises(GateError, match="does not hold"):
        gate.release("A")
    gate.release("B")


async def test_a_busy_pairs_trade_ticks_conflate_newest_wins_and_each_is_counted() -> None:
    release = asyncio.Event()
    handled: list[object] = []

    async def handler(pair: str, m: Message) -> None:
        if m.payload["n"] == 0:
            await release.wait()  # the actor is busy with the first signal
        handled.append(m.payload["n"])

    tele = Telemetry()
    eng = Engine(handler, EngineSettings(conflate=frozenset({"trade"})), observer=TelemetryObserver(tele))
    eng.add_pair("A")
    eng.add_pair("B")
    await eng.start()

    def signal(n: int, tag: str) -> Message:
        return Message(Priority.ENTRY, "trade", {"n": n, "tag": tag}, scheduled=float(n))

    assert eng.post("A", signal(0, "s")) is PutResult.ACCEPTED
    await until(lambda: eng.actor("A").current is not None)
    results = [eng.post("A", signal(n, "s" if n < 3 else "t")) for n in (1, 2, 3)]
    assert results == [PutResult.ACCEPTED, PutResult.CONFLATED, PutResult.CONFLATED]
    assert eng.post("B", signal(10, "s")) is PutResult.ACCEPTED  # another pair's signal is its own
    release.set()
    await until(lambda: len(handled) == 3)
    assert sorted(handled, key=str) == sorted([0, 3, 10], key=str)  # A: the first, then only the newest
    iv = tele.rotate()
    assert iv.counters["ticks_conflated{kind=trade}"] == 2 and iv.counters["drops{reason=entry.conflated}"] == 2
    # Each superseded signal counts under its own tag, so a scenario counts only its own ticks.
    assert iv.tags["s"].counters["ticks_conflated{kind=trade}"] == 2
    assert "t" not in iv.tags or "ticks_conflated{kind=trade}" not in iv.tags["t"].counters  # the newest ran
    assert eng.statistics().drops == {"entry.conflated": 2}
    await eng.stop(1.0)
