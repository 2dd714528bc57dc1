"""harness.stats.saturation: a bot that keeps up holds a steady backlog; one that cannot piles it up."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.stats.saturation import MIN_SAMPLES, in_flight_cap, judge_saturation


def _series(backlog: list[float], every: float = 1.0) -> list[tuple[float, float, float]]:
    return [(5.0 + i * every, b / 2, b / 2) for i, b in enumerate(backlog)]


@settings(max_examples=50, deadline=None)
@given(rate=st.floats(1, 500), level=st.floats(0, 0.1), jitter=st.lists(st.floats(0, 5), min_size=30, max_size=30))
def test_a_steady_backlog_is_not_saturation(rate: float, level: float, jitter: list[float]) -> None:
    # About rate x 50-100 ms in flight, moving by a few trades with each block.
    sat = judge_saturation(_series([rate * level + j for j in jitter]), rate=rate, duration_s=60.0, in_flight_cap=1024)
    assert not sat.saturated, sat.reason


def test_a_growing_backlog_is_saturation() -> None:
    sat = judge_saturation(_series([2.0 + 3.0 * i for i in range(40)]), rate=20.0, duration_s=60.0)
    assert sat.saturated and "grew" in sat.reason
    assert sat.backlog_early is not None and sat.backlog_late is not None and sat.backlog_late > sat.backlog_early


def test_a_full_queue_that_holds_its_level_is_saturation() -> None:
    # 400/s offered to 5 pairs: the mailboxes (5 x 256) fill in the first seconds, then drop at a flat level.
    sat = judge_saturation(_series([1250.0] * 25), rate=400.0, duration_s=30.0, in_flight_cap=1024)
    assert sat.saturated and "held 1,250" in sat.reason


def test_in_flight_at_its_cap_is_saturation() -> None:
    samples = [(5.0 + i, 1000.0, 0.0) for i in range(10)]
    sat = judge_saturation(samples, rate=2000.0, duration_s=60.0, in_flight_cap=1024)
    assert sat.saturated and "cap of 1,024" in sat.reason


def test_warm_up_drain_and_too_few_samples() -> None:
    # the drain after the schedule (backlog falling) and the first seconds are outside the window
    samples = [(1.0, 500.0, 0.0)] + [(5.0 + i, 1.0, 0.0) for i in range(20)] + [(70.0, 900.0, 0.0)]
    assert not judge_saturation(samples, rate=20.0, duration_s=60.0).saturated
    few = judge_saturation(samples[: MIN_SAMPLES - 1], rate=20.0, duration_s=60.0)
    assert not few.saturated and "too few" in few.reason
    assert in_flight_cap({"engine": {"max_in_flight": 1024}}) == 1024
    assert in_flight_cap({}) is None and in_flight_cap(None) is None
