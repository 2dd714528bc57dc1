from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.engine.mailbox import Priority
from bot.engine.scheduler import FairScheduler


def test_empty_scheduler_returns_none() -> None:
    assert FairScheduler().next() is None


def test_priority_first() -> None:
    s = FairScheduler()
    s.request("a", Priority.MARKET_DATA)
    s.request("b", Priority.ENTRY)
    s.request("c", Priority.RISK_EXIT)
    assert [s.next(), s.next(), s.next(), s.next()] == ["c", "b", "a", None]


def test_fifo_within_priority() -> None:
    s = FairScheduler()
    for p in "abc":
        s.request(p, Priority.ENTRY)
    assert [s.next() for _ in range(3)] == ["a", "b", "c"]


def test_hot_pair_cannot_starve_others() -> None:
    """A pair that re-requests after every grant gets one turn per round, like everyone else."""
    s = FairScheduler()
    pairs = [f"p{i}" for i in range(5)]
    for p in pairs:
        s.request(p, Priority.MARKET_DATA)
    served: Counter[str] = Counter()
    for _ in range(50):
        got = s.next()
        assert got is not None
        served[got] += 1
        s.request(got, Priority.MARKET_DATA)  # every pair always has more work, "hot" or not
    assert set(served.values()) == {10}


def test_raise_priority_moves_request_up_and_never_down() -> None:
    s = FairScheduler()
    s.request("a", Priority.MARKET_DATA)
    s.request("b", Priority.ENTRY)
    s.request("a", Priority.RISK_EXIT)
    s.request("b", Priority.MARKET_DATA)  # lower: ignored
    assert len(s) == 2
    assert [s.next(), s.next()] == ["a", "b"]
    assert s.statistics().waiting == 0


def test_cancel_withdraws_request() -> None:
    s = FairScheduler()
    s.request("a", Priority.ENTRY)
    s.request("b", Priority.ENTRY)
    assert s.cancel("a") is True
    assert s.cancel("a") is False
    assert s.next() == "b"
    assert s.next() is None


def test_starving_low_priority_is_promoted() -> None:
    s = FairScheduler(starvation_limit=3)
    s.request("slow", Priority.MARKET_DATA)
    order = []
    for _ in range(6):
        s.request("hot", Priority.RISK_EXIT)
        order.append(s.next())
    assert "slow" in order
    assert order.index("slow") == 4  # after 4 grants to others it has waited more than 3
    assert s.statistics().starvation_promotions == 1


def test_bad_limit_rejected() -> None:
    with pytest.raises(ValueError):
        FairScheduler(starvation_limit=0)


@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.sampled_from(list(Priority)), st.booleans()),
                max_size=300))
def test_every_request_is_served_exactly_once(ops: list[tuple[str, Priority, bool]]) -> None:
    s = FairScheduler(starvation_limit=10)
    waiting: set[str] = set()
    for pair, prio, serve in ops:
        s.request(pair, prio)
        waiting.add(pair)
        if serve:
            got = s.next()
            assert got in waiting
            waiting.discard(got)
        assert len(s) == len(waiting)
        assert sum(s.statistics().waiting_by_priority) == len(waiting)
    while (got := s.next()) is not None:
        waiting.remove(got)
    assert not waiting
