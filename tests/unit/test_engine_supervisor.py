"""The background-task supervisor: the pure record (states, budget, down reasons) and the asyncio shell
(restart after a crash, a kill or an early return; counters; health; fatal over budget; stop)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.engine.supervision import RestartPolicy
from bot.engine.supervisor import Supervisor, TaskRecord, TaskState
from bot.telemetry.recorder import Telemetry
from tests.waiting import until

POLICY = RestartPolicy(max_restarts=3, window_s=10.0, backoff_s=0.5, backoff_max_s=2.0)
FAST = RestartPolicy(max_restarts=3, window_s=60.0, backoff_s=0.01, backoff_max_s=0.02)


def test_record_backs_off_then_recovers_then_gives_up() -> None:
    r = TaskRecord("heads", POLICY, flapping=3, recovering_s=1.0)
    assert r.down(0.0) is None and r.state is TaskState.RUNNING
    assert r.crashed(100.0, "KeyError: 'number'") == 0.5
    assert r.state is TaskState.BACKOFF and r.down_since == 100.0
    why = r.down(100.1)
    assert why is not None and "task heads" in why and "KeyError" in why
    r.restarted(100.5)
    assert "recovering" in (r.down(101.0) or "")  # restarted, not proven yet
    assert r.down(101.6) is None and r.down_since is None  # up again: the down period ended
    assert r.crashed(102.0, "boom") == 1.0  # the second crash in the window backs off longer
    r.restarted(103.0)
    assert r.crashed(104.0, "boom") == 2.0
    r.restarted(106.0)
    assert "restarting repeatedly" in (r.down(107.5) or "")  # three crashes in the window: flapping
    assert r.crashed(108.0, "boom") is None  # the fourth in 10 s is over the budget
    assert r.state is TaskState.FAILED and "gave up" in (r.down(1000.0) or "")
    assert (r.restarts, r.crashes) == (3, 4)
    with pytest.raises(ValueError, match="restarted while failed"):
        r.restarted(109.0)


def test_old_crashes_leave_the_window() -> None:
    r = TaskRecord("feed", POLICY, flapping=2, recovering_s=0.0)
    for t in (0.0, 20.0, 40.0, 60.0, 80.0):  # one crash every 20 s never exceeds 3 in 10 s
        assert r.crashed(t, "x") == 0.5
        r.restarted(t + 0.5)
        assert r.down(t + 0.6) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["crash", "restart", "look"]), st.floats(0, 5)), max_size=40))
def test_record_invariants(events: list[tuple[str, float]]) -> None:
    r = TaskRecord("t", POLICY)
    now = 0.0
    for kind, dt in events:
        now += dt
        if kind == "crash" and r.state is TaskState.RUNNING:
            delay = r.crashed(now, "e")
            assert (delay is None) == (r.state is TaskState.FAILED)
            assert delay is None or 0 < delay <= POLICY.backoff_max_s
        elif kind == "restart" and r.state is TaskState.BACKOFF:
            r.restarted(now)
        why = r.down(now)
        # Waiting for a restart or given up is always down; down is always explained and dated.
        assert (r.state in (TaskState.BACKOFF, TaskState.FAILED)) <= (why is not None)
        assert (why is None) == (r.down_since is None)
        assert r.restarts <= r.crashes
    assert "TaskRecord t" in repr(r)


async def test_a_crash_is_logged_counted_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    telemetry = Telemetry()
    sup = Supervisor(FAST, telemetry=telemetry, recovering_s=0.0)
    runs: list[int] = []

    async def task() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise KeyError("number")
        await asyncio.Event().wait()

    sup.spawn("heads", task)
    try:
        await until(lambda: len(runs) == 2, what="restart")
        await until(lambda: sup.health()[0], what="healthy again")
        st_ = sup.statistics()
        (t,) = st_.tasks
        assert (t.name, t.state, t.restarts, t.crashes) == ("heads", "running", 1, 1)
        assert t.last_error == "KeyError: 'number'" and t.down_since is None and st_.fatal is None
        totals = telemetry.counter_totals()
        assert totals["task_restarts{task=heads}"] == 1 and totals["task_crashes{task=heads}"] == 1
        assert "task heads crashed" in caplog.text and "Traceback" in caplog.text  # logged with its traceback
    finally:
        await sup.aclose()
    assert sup.statistics().tasks[0].state == "stopped" and sup.health() == (True, [])


async def test_while_down_health_names_the_task_and_down_since_is_wall_clock() -> None:
    slow = RestartPolicy(max_restarts=3, window_s=60.0, backoff_s=30.0, backoff_max_s=30.0)
    sup = Supervisor(slow, wall=lambda: 1_700_000_000.0)
    gate = asyncio.Event()

    async def task() -> None:
        await gate.wait()
        raise RuntimeError("lost it")

    sup.spawn("receipts", task)
    sup.spawn("helper", task, critical=False)
    try:
        assert sup.health() == (True, [])
        gate.set()
        await until(lambda: not sup.health()[0], what="down")
        _, reasons = sup.health()
        assert reasons == ["task receipts crashed, restarting; last error: RuntimeError: lost it"]  # not helper
        st_ = sup.statistics()
        assert st_.down == ("receipts",)
        down_since = st_.tasks[0].down_since
        assert down_since is not None and 1_699_999_990 < down_since <= 1_700_000_000
        assert "receipts=backoff" in repr(sup)
    finally:
        await sup.aclose()


async def test_kill_and_early_return_count_as_crashes() -> None:
    sup = Supervisor(FAST, recovering_s=0.0)
    runs = {"kill": 0, "ret": 0}

    async def forever() -> None:
        runs["kill"] += 1
        await asyncio.Event().wait()

    async def returns() -> None:
        runs["ret"] += 1
        if runs["ret"] == 1:
            return
        await asyncio.Event().wait()

    sup.spawn("kill", forever)
    sup.spawn("ret", returns)
    try:
        await until(lambda: runs["kill"] == 1 and runs["ret"] == 2, what="both running")
        assert sup.kill("kill")
        await until(lambda: runs["kill"] == 2, what="killed task restarted")
        by_name = {t.name: t for t in sup.statistics().tasks}
        assert by_name["kill"].last_error == "killed (cancelled)" and by_name["kill"].restarts == 1
        assert by_name["ret"].last_error == "returned while supervised"
        assert not sup.kill("nope")
        with pytest.raises(ValueError, match="already supervised"):
            sup.spawn("kill", forever)
    finally:
        await sup.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        sup.spawn("late", forever)


async def test_over_budget_is_fatal_for_a_critical_task_only() -> None:
    sup = Supervisor(RestartPolicy(max_restarts=1, window_s=60.0, backoff_s=0.01, backoff_max_s=0.01))

    async def crashes() -> None:
        raise ValueError("bad shape")

    sup.spawn("optional", crashes, critical=False)
    await until(lambda: sup.statistics().tasks[0].state == "failed", what="optional task given up")
    assert sup.fatal is None and sup.health()[0]
    sup.spawn("ws", crashes)
    try:
        reason = await asyncio.wait_for(sup.wait_fatal(), 10.0)
        assert "task ws crashed more than 1 times" in reason and "bad shape" in reason
        ok, reasons = sup.health()
        assert not ok and "task ws gave up" in reasons[0]
    finally:
        await sup.aclose()


async def test_stop_ends_one_task_for_good() -> None:
    sup = Supervisor(FAST)
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def task() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    sup.spawn("feed", task)
    await asyncio.wait_for(started.wait(), 10.0)
    await sup.stop("feed")
    assert cancelled.is_set() and sup.statistics().tasks[0].state == "stopped"
    assert sup.statistics().tasks[0].crashes == 0  # a stop is not a crash
    await sup.stop("never-spawned")
    await sup.aclose()
