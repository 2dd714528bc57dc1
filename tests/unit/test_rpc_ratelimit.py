"""The adaptive limit (pure AIMD window and lanes) and its async shell ``EndpointLimiter``."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.rpc.config import LimitPolicy, RpcSettingError
from bot.rpc.errors import RateLimited, Throttled
from bot.rpc.limiter import EndpointLimiter
from bot.rpc.ratelimit import AdaptiveLimit, Lane, Outcome, Ticket

POLICY = LimitPolicy(max_window=8, min_window=1, increase=1.0, decrease=0.5)


def fill(limit: AdaptiveLimit[str], lane: Lane = Lane.READ) -> list[Ticket]:
    out = []
    while (t := limit.try_acquire(lane)) is not None:
        out.append(t)
    return out


def test_window_starts_at_the_maximum_and_admits_that_many() -> None:
    limit: AdaptiveLimit[str] = AdaptiveLimit(POLICY)
    assert len(fill(limit)) == 8
    assert limit.try_acquire(Lane.SEND) is None


def test_a_rate_limit_halves_the_window_once_per_epoch() -> None:
    limit: AdaptiveLimit[str] = AdaptiveLimit(POLICY)
    tickets = fill(limit)
    # Four calls sent at the old rate all come back 429: one event, one decrease.
    for t in tickets[:4]:
        limit.release(t, Outcome.RATE_LIMITED, now=0.0)
    s = limit.statistics(0.0)
    assert (s.limit, s.decreases, s.rate_limited) == (4, 1, 4)
    # A call admitted after the decrease that is refused again is new evidence: halve again.
    for t in tickets[4:]:
        limit.release(t, Outcome.NEUTRAL, now=0.0)
    late = limit.try_acquire(Lane.READ)
    assert late is not None and late.epoch == 1
    limit.release(late, Outcome.RATE_LIMITED, now=0.0)
    assert limit.limit == 2 and limit.statistics(0.0).decreases == 2


def test_the_window_never_falls_below_the_minimum() -> None:
    limit: AdaptiveLimit[str] = AdaptiveLimit(LimitPolicy(max_window=4, min_window=2))
    for _ in range(10):
        t = limit.try_acquire(Lane.READ)
        assert t is not None
        limit.release(t, Outcome.RATE_LIMITED, now=0.0)
    assert limit.limit == 2 and limit.window == 2.0


def test_the_window_grows_back_additively_but_not_during_the_hold() -> None:
    limit: AdaptiveLimit[str] = AdaptiveLimit(POLICY)
    t = limit.try_acquire(Lane.READ)
    assert t is not None
    limit.release(t, Outcome.RATE_LIMITED, now=10.0, hold=1.0)
    assert limit.window == 4.0 and limit.statistics(10.0).hold_s == pytest.approx(1.0)
    for now in (10.0, 10.5):  # answers during the Retry-After do not grow it
        t = limit.try_acquire(Lane.READ)
        assert t is not None
        limit.release(t, Outcome.OK, now=now)
    assert limit.window == 4.0
    # After the hold: one window's worth of answers (4) adds about one slot.
    for _ in range(4):
        t = limit.try_acquire(Lane.READ)
        assert t is not None
        limit.release(t, Outcome.OK, now=11.0)
    assert 4.9 < limit.window < 5.0 and limit.limit == 4
    t = limit.try_acquire(Lane.READ)
    assert t is not None
    limit.release(t, Outcome.OK, now=11.0)
    assert limit.limit == 5


def test_freed_slots_go_to_sends_then_confirmations_then_reads_fifo_within_a_lane() -> None:
    limit: AdaptiveLimit[str] = AdaptiveLimit(LimitPolicy(max_window=1))
    held = limit.try_acquire(Lane.READ)
    assert held is not None
    for lane, name in [(Lane.READ, "r1"), (Lane.CONFIRM, "c1"), (Lane.READ, "r2"), (Lane.SEND, "s1"),
                       (Lane.CONFIRM, "c2")]:
        assert limit.try_acquire(lane) is None
        limit.enqueue(lane, name)
    order = []
    ticket = held
    while True:
        granted = limit.release(ticket, Outcome.OK, now=0.0)
        if not granted:
            break
        ((waiter, ticket),) = granted
        order.append(waiter)
    assert order == ["s1", "c1", "c2", "r1", "r2"]


def test_a_newcomer_does_not_overtake_queued_waiters() -> None:
    limit: AdaptiveLimit[str] = AdaptiveLimit(LimitPolicy(max_window=2))
    a, b = fill(limit)
    limit.enqueue(Lane.READ, "queued")
    limit.release(a, Outcome.RATE_LIMITED, now=0.0)  # window 1: still full, the waiter stays queued
    assert limit.try_acquire(Lane.SEND) is None  # even a send queues behind a queued waiter
    assert limit.cancel("queued") and not limit.cancel("queued")
    granted = limit.release(b, Outcome.OK, now=0.0)
    assert granted == []


def test_releasing_twice_is_an_error() -> None:
    limit: AdaptiveLimit[str] = AdaptiveLimit(POLICY)
    t = limit.try_acquire(Lane.SEND)
    assert t is not None
    limit.release(t, Outcome.OK, now=0.0)
    with pytest.raises(ValueError, match="released twice"):
        limit.release(t, Outcome.OK, now=0.0)


def test_statistics_and_repr() -> None:
    limit: AdaptiveLimit[str] = AdaptiveLimit(LimitPolicy(max_window=1))
    t = limit.try_acquire(Lane.SEND)
    limit.enqueue(Lane.READ, "r")
    s = limit.statistics(0.0)
    assert (s.in_flight, s.waiting, s.admitted, s.queued) == (1, (0, 0, 1), 1, 1)
    assert "in_flight=1/1" in repr(limit) and "read=1" in repr(limit)
    assert t is not None


@pytest.mark.parametrize("kwargs, field", [
    ({"max_window": 0}, "max_window"), ({"min_window": 0}, "min_window"), ({"decrease": 1.0}, "decrease"),
    ({"increase": 0}, "increase"), ({"max_window": 2, "min_window": 3}, "max_window"),
])
def test_policy_is_validated(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(RpcSettingError, match=field):
        LimitPolicy(**kwargs)  # type: ignore[arg-type]


# -- invariants under any sequence of events --------------------------------------------------------

events = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.sampled_from(list(Lane))),
        st.tuples(st.just("release"), st.sampled_from(list(Outcome)), st.integers(0, 50), st.floats(0, 3)),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("tick"), st.floats(0, 2)),
    ),
    max_size=150,
)


@settings(max_examples=300, deadline=None)
@given(events, st.integers(1, 6), st.integers(0, 3))
def test_invariants_hold_for_any_sequence(seq: list[tuple[object, ...]], max_window: int, extra_min: int) -> None:
    """The window stays in bounds and shrinks at most once per epoch; nobody waits while a slot is free;
    each grant goes to the most urgent lane, in arrival order; every acquisition is admitted, queued
    or withdrawn, and every admitted ticket is released at most once."""
    policy = LimitPolicy(max_window=max_window + extra_min, min_window=1 + min(extra_min, max_window - 1))
    limit: AdaptiveLimit[int] = AdaptiveLimit(policy)
    now = 0.0
    holding: list[Ticket] = []
    queued: dict[Lane, deque[int]] = {lane: deque() for lane in Lane}
    names = iter(range(10**9))
    admitted = 0
    for ev in seq:
        if ev[0] == "acquire":
            lane = ev[1]
            assert isinstance(lane, Lane)
            ticket = limit.try_acquire(lane)
            if ticket is None:
                assert any(queued.values()) or limit.in_flight >= limit.limit
                name = next(names)
                limit.enqueue(lane, name)
                queued[lane].append(name)
            else:
                assert limit.in_flight <= limit.limit
                holding.append(ticket)
                admitted += 1
        elif ev[0] == "release" and holding:
            outcome, i, hold = ev[1], ev[2], ev[3]
            assert isinstance(outcome, Outcome) and isinstance(i, int) and isinstance(hold, float)
            ticket = holding.pop(i % len(holding))
            window, epoch_before = limit.window, limit.statistics(now).decreases
            granted = limit.release(ticket, outcome, now=now, hold=hold)
            decreases = limit.statistics(now).decreases - epoch_before
            assert decreases <= 1
            if outcome is Outcome.RATE_LIMITED:
                assert limit.window <= window
                assert decreases == (1 if ticket.epoch == epoch_before else 0)
            else:
                assert limit.window >= window and decreases == 0
            for waiter, t in granted:
                # the most urgent lane waiting, first come first served
                first = next(lane for lane in Lane if queued[lane])
                assert t.lane is first and queued[first].popleft() == waiter
                holding.append(t)
                admitted += 1
        elif ev[0] == "cancel":
            i = ev[1]
            assert isinstance(i, int)
            pending = [(lane, n) for lane in Lane for n in queued[lane]]
            if pending:
                lane, name = pending[i % len(pending)]
                assert limit.cancel(name)
                queued[lane].remove(name)
        elif ev[0] == "tick":
            step = ev[1]
            assert isinstance(step, float)
            now += step
        s = limit.statistics(now)
        assert policy.min_window <= s.window <= policy.max_window
        assert s.in_flight == len(holding) and s.admitted == admitted
        assert s.waiting == tuple(len(queued[lane]) for lane in Lane)
        assert not any(s.waiting) or s.in_flight >= s.limit  # work-conserving
        assert s.max_in_flight <= policy.max_window
    while holding:  # every queued waiter is served in the end
        holding.extend(t for _, t in limit.release(holding.pop(), Outcome.NEUTRAL, now=now))
    assert limit.in_flight == 0 and limit.statistics(now).waiting == (0, 0, 0)


# -- the async shell --------------------------------------------------------------------------------


async def until(cond: Callable[[], bool], limit_s: float = 5.0) -> None:
    async with asyncio.timeout(limit_s):
        while not cond():
            await asyncio.sleep(0)


async def test_waiters_are_woken_in_lane_order() -> None:
    limiter = EndpointLimiter("ep", LimitPolicy(max_window=1))
    first = await limiter.acquire(Lane.READ)
    order: list[str] = []

    async def take(lane: Lane, name: str) -> None:
        ticket = await limiter.acquire(lane, timeout=5.0)
        order.append(name)
        limiter.release(ticket, Outcome.OK)

    tasks = [asyncio.create_task(take(lane, name))
             for lane, name in [(Lane.READ, "read"), (Lane.CONFIRM, "receipt"), (Lane.SEND, "send")]]
    await until(lambda: sum(limiter.statistics().waiting) == 3)
    limiter.release(first, Outcome.OK)
    await asyncio.gather(*tasks)
    assert order == ["send", "receipt", "read"]


async def test_a_wait_past_its_timeout_is_throttled_and_leaks_nothing() -> None:
    limiter = EndpointLimiter("ep", LimitPolicy(max_window=1))
    held = await limiter.acquire(Lane.SEND)
    with pytest.raises(Throttled, match="no slot for a read call") as info:
        await limiter.acquire(Lane.READ, timeout=0.01)
    assert isinstance(info.value, RateLimited) and info.value.kind == "rate_limited"
    assert limiter.statistics().waiting == (0, 0, 0)
    limiter.release(held, Outcome.OK)
    again = await limiter.acquire(Lane.READ, timeout=1.0)  # the slot is free again
    limiter.release(again, Outcome.OK)
    assert limiter.statistics().in_flight == 0


async def test_a_waiter_cancelled_as_it_is_granted_passes_the_slot_on() -> None:
    limiter = EndpointLimiter("ep", LimitPolicy(max_window=1))
    held = await limiter.acquire(Lane.SEND)
    doomed = asyncio.create_task(limiter.acquire(Lane.SEND))
    heir = asyncio.create_task(limiter.acquire(Lane.READ))
    await until(lambda: sum(limiter.statistics().waiting) == 2)
    limiter.release(held, Outcome.OK)  # granted to ``doomed`` ...
    doomed.cancel()  # ... which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await doomed
    ticket = await asyncio.wait_for(heir, 5.0)
    assert limiter.statistics().in_flight == 1
    limiter.release(ticket, Outcome.OK)
    assert "EndpointLimiter('ep'" in repr(limiter)
