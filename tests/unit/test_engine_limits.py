from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.engine.limits import (
    RANK_IN_FLIGHT,
    RANK_RPC,
    RANK_SIGNING,
    CapacityLimiter,
    LimiterError,
    LimiterTimeout,
)


async def test_acquire_release_and_statistics() -> None:
    lim = CapacityLimiter(2, name="rpc")
    await lim.acquire("a")
    await lim.acquire("b")
    s = lim.statistics()
    assert (s.total, s.borrowed, s.waiting, s.holders) == (2, 2, 0, ("'a'", "'b'"))
    lim.release("a")
    assert lim.statistics().borrowed == 1
    assert lim.available == 1


async def test_double_acquire_raises_instead_of_deadlocking() -> None:
    lim = CapacityLimiter(1, name="signing")
    await lim.acquire()
    with pytest.raises(LimiterError, match="already holds"):
        await lim.acquire()  # same task: raises at once (wait_for would run it in another task)
    lim.release()


async def test_release_without_holding_raises() -> None:
    lim = CapacityLimiter(1)
    with pytest.raises(LimiterError, match="does not hold"):
        lim.release("nobody")
    await lim.acquire("x")
    with pytest.raises(LimiterError, match="does not hold"):
        lim.release("y")
    assert lim.statistics().borrowed == 1


async def test_timeout_raises_and_counts_and_leaves_no_waiter() -> None:
    lim = CapacityLimiter(1, name="in_flight")
    await lim.acquire("a")
    with pytest.raises(LimiterTimeout, match="in_flight"):
        await lim.acquire("b", timeout=0.01)
    s = lim.statistics()
    assert s.timeouts_total == 1 and s.waiting == 0 and s.borrowed == 1
    lim.release("a")
    await lim.acquire("b", timeout=0.01)  # the token is free again: no leak


async def test_waiters_served_fifo() -> None:
    lim = CapacityLimiter(1)
    await lim.acquire("first")
    order: list[str] = []

    async def take(name: str) -> None:
        await lim.acquire(name)
        order.append(name)
        lim.release(name)

    tasks = [asyncio.create_task(take(n)) for n in ("w1", "w2", "w3")]
    await asyncio.sleep(0)
    assert lim.statistics().waiting == 3
    lim.release("first")
    await asyncio.wait_for(asyncio.gather(*tasks), 2.0)
    assert order == ["w1", "w2", "w3"]


async def test_cancelled_waiter_does_not_leak_token() -> None:
    lim = CapacityLimiter(1)
    await lim.acquire("a")
    t = asyncio.create_task(lim.acquire("b"))
    await asyncio.sleep(0)
    lim.release("a")  # grants to b ...
    t.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await t
    assert lim.statistics().borrowed == 0
    await lim.acquire("c", timeout=0.1)


async def test_hold_context_releases_on_error() -> None:
    lim = CapacityLimiter(1)
    with pytest.raises(RuntimeError):
        async with lim.hold():
            assert lim.holds()
            raise RuntimeError("boom")
    assert lim.statistics().borrowed == 0


async def test_lock_order_enforced_for_tasks() -> None:
    inflight = CapacityLimiter(4, name="in_flight", rank=RANK_IN_FLIGHT)
    rpc = CapacityLimiter(4, name="rpc", rank=RANK_RPC)
    signing = CapacityLimiter(4, name="signing", rank=RANK_SIGNING)
    async with inflight.hold(), signing.hold(), rpc.hold():
        pass  # increasing rank: allowed
    async with rpc.hold():
        with pytest.raises(LimiterError, match="lock order"):
            await inflight.acquire()
    assert inflight.statistics().borrowed == 0


async def test_child_task_does_not_inherit_parent_holdings() -> None:
    rpc = CapacityLimiter(2, name="rpc", rank=RANK_RPC)
    inflight = CapacityLimiter(2, name="in_flight", rank=RANK_IN_FLIGHT)

    async def child() -> None:
        async with inflight.hold():
            pass

    async with rpc.hold():
        await asyncio.wait_for(asyncio.create_task(child()), 1.0)


async def test_set_total_grows_and_wakes_waiters() -> None:
    lim = CapacityLimiter(1)
    await lim.acquire("a")
    t = asyncio.create_task(lim.acquire("b"))
    await asyncio.sleep(0)
    lim.set_total(2)
    await asyncio.wait_for(t, 1.0)
    assert lim.statistics().borrowed == 2


def test_bad_total_and_repr() -> None:
    with pytest.raises(ValueError, match="total"):
        CapacityLimiter(0, name="x")
    lim = CapacityLimiter(3, name="rpc", rank=RANK_RPC)
    assert "rpc" in repr(lim) and "0/3" in repr(lim)


async def test_many_contending_tasks_finish_with_ordered_limiters() -> None:
    """200 tasks contend for three small pools in the documented order: all finish, nothing leaks."""
    inflight = CapacityLimiter(8, name="in_flight", rank=RANK_IN_FLIGHT)
    signing = CapacityLimiter(2, name="signing", rank=RANK_SIGNING)
    rpc = CapacityLimiter(4, name="rpc", rank=RANK_RPC)

    async def worker(i: int) -> None:
        async with inflight.hold():
            async with signing.hold():
                await asyncio.sleep(0)
            async with rpc.hold():
                await asyncio.sleep(0)

    await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(200))), 20.0)
    for lim in (inflight, signing, rpc):
        s = lim.statistics()
        assert s.borrowed == 0 and s.waiting == 0 and s.acquired_total == 200
        assert s.peak_borrowed <= s.total


worker_script = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from([None, 0.0, 0.001]), st.booleans()), min_size=1, max_size=6
)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.lists(worker_script, min_size=1, max_size=12))
def test_random_contention_never_oversubscribes_or_leaks(total: int, scripts: list[list[tuple[int, float | None,
                                                                                             bool]]]) -> None:
    """Workers acquire (some with tiny timeouts), hold for a few loop turns, and some get cancelled while
    waiting: the pool never exceeds its total and ends empty with no waiter left behind."""

    async def scenario() -> None:
        lim = CapacityLimiter(total, name="pool")
        violations: list[int] = []

        async def worker(script: list[tuple[int, float | None, bool]]) -> None:
            for hold_turns, timeout, _ in script:
                try:
                    async with lim.hold(timeout=timeout):
                        if lim.borrowed > total:
                            violations.append(lim.borrowed)
                        for _ in range(hold_turns):
                            await asyncio.sleep(0)
                except LimiterTimeout:
                    pass

        tasks = [asyncio.create_task(worker(s)) for s in scripts]
        await asyncio.sleep(0)
        for task, script in zip(tasks, scripts, strict=True):
            if script[0][2]:
                task.cancel()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
        s = lim.statistics()
        assert violations == []
        assert s.borrowed == 0 and s.waiting == 0 and s.peak_borrowed <= total
        await lim.acquire("after", timeout=0.1)  # still fully usable

    asyncio.run(scenario())
