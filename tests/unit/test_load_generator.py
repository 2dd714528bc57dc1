"""The open-loop generator against in-process operations (no network)."""

from __future__ import annotations

import asyncio
import time

import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.load.generator import OpenLoopGenerator, error_kind, run_open_loop
from harness.load.recorder import LAG_KEY, IntervalRecorder, LagPolicy
from harness.load.schedules import Burst, ConstantRate


async def _sleep_op() -> None:
    await asyncio.sleep(0.002)


async def test_every_scheduled_operation_is_started_and_counted_per_interval() -> None:
    res = await run_open_loop(_sleep_op, ConstantRate(100, 2.0), name="op")
    s = res.summary
    assert (s.scheduled, s.sent, s.ok, s.errors, s.dropped) == (200, 200, 200, 0, 0)
    assert s.target_rate == 100.0
    assert 90.0 <= s.achieved_rate <= 100.0
    assert res.counter_total("sent") == 200
    assert [iv.start for iv in res.intervals][:2] == [0.0, 1.0]
    # Starts land in the second they happened: 100 per second of the schedule (give or take
    # an arrival that a busy machine started just after the boundary).
    assert all(abs(iv.counters["sent"] - 100) <= 3 for iv in res.intervals[:2])
    assert res.merged("op").get_total_count() == 200
    assert res.merged("op.service").get_total_count() == 200
    assert res.merged(LAG_KEY).get_total_count() == 200
    # Latency from the intended start is never shorter than from the actual start.
    assert res.merged("op").get_max_value() >= res.merged("op.service").get_max_value()
    assert res.merged("op.service").get_min_value() >= 2000
    scenario = res.to_scenario_json()
    assert scenario["schedule"] == {"kind": "constant", "rate": 100, "duration": 2.0}
    assert scenario["summary"]["generator_lag_p99_ms"] == s.generator_lag_p99_ms
    for iv in scenario["intervals"]:
        for enc in iv["histograms"].values():
            HdrHistogram.decode(enc)


async def test_in_flight_cap_drops_iterations_instead_of_queueing() -> None:
    async def slow() -> None:
        await asyncio.sleep(0.4)

    gen = OpenLoopGenerator(slow, ConstantRate(100, 1.0), name="slow", max_in_flight=10)
    res = await gen.run()
    st = gen.statistics()
    s = res.summary
    assert s.sent + s.dropped == s.scheduled == 100
    assert st.peak_in_flight == 10
    # Each slot is busy 0.4 s, so at most 10 starts per 0.4 s window over ~1 s.
    assert s.sent <= 30
    assert s.dropped >= 70
    assert s.ok == s.sent
    assert res.counter_total("dropped") == s.dropped
    assert "dropped=" in repr(gen)


async def test_errors_are_counted_by_kind_and_not_timed() -> None:
    calls = 0

    class Boom(Exception):
        kind = "node"

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls % 3 == 0:
            raise Boom("no")
        if calls % 3 == 1:
            raise ValueError("bad")
        await asyncio.sleep(0.001)

    res = await run_open_loop(flaky, Burst(30, 0.3), name="flaky")
    s = res.summary
    assert (s.ok, s.errors) == (10, 20)
    assert s.errors_by_kind == {"node": 10, "ValueError": 10}
    assert res.counter_total("errors{kind=node}") == 10
    assert res.merged("flaky").get_total_count() == 10


async def test_op_timeout_and_hard_deadline_count_unfinished_work() -> None:
    async def hang() -> None:
        await asyncio.sleep(3600)

    gen = OpenLoopGenerator(hang, Burst(5, 0.1), name="hang", op_timeout_s=0.2, drain_timeout_s=5)
    res = await gen.run()
    assert res.summary.errors_by_kind == {"timeout": 5}

    gen2 = OpenLoopGenerator(hang, Burst(5, 0.1), name="hang", op_timeout_s=30, drain_timeout_s=0.2)
    t0 = time.monotonic()
    res2 = await gen2.run()
    assert time.monotonic() - t0 < 5
    assert res2.summary.errors_by_kind == {"unfinished": 5}
    assert res2.summary.sent == res2.summary.ok + res2.summary.errors
    assert gen2.statistics().in_flight == 0


async def test_a_blocked_loop_shows_as_generator_lag_and_in_corrected_latency_only() -> None:
    async def block_loop_later() -> None:
        await asyncio.sleep(0.3)
        time.sleep(0.1)  # noqa: ASYNC251 - the point: a synchronous stall, like a CPU-bound handler

    blocker = asyncio.create_task(block_loop_later())
    res = await run_open_loop(_sleep_op, ConstantRate(200, 1.0), name="op")
    await blocker
    s = res.summary
    assert s.generator_lag_max_ms >= 80
    assert s.generator_behind
    corrected = res.merged("op")
    service = res.merged("op.service")
    # ~20 operations were due during the stall: they carry up to 100 ms from their intended
    # start; their service time (from the late actual start) does not.
    assert corrected.get_value_at_percentile(95) > 25_000
    assert service.get_value_at_percentile(95) < 25_000


async def test_bad_configuration_is_refused_up_front() -> None:
    with pytest.raises(ConfigError, match="max_in_flight"):
        OpenLoopGenerator(_sleep_op, Burst(1, 1), name="x", max_in_flight=0)
    with pytest.raises(ConfigError, match="max_count"):
        OpenLoopGenerator(_sleep_op, ConstantRate(100, 10), name="x", max_count=999)
    with pytest.raises(ConfigError, match="op_timeout_s"):
        OpenLoopGenerator(_sleep_op, Burst(1, 1), name="x", op_timeout_s=120)
    gen = OpenLoopGenerator(_sleep_op, Burst(1, 0.01), name="x")
    await gen.run()
    with pytest.raises(RuntimeError, match="runs once"):
        await gen.run()


def test_recorder_files_events_into_their_seconds() -> None:
    rec = IntervalRecorder("op")
    s = 1_000_000_000
    rec.started(0, 500_000)  # 0.5 ms late
    rec.finished(0, 500_000, 2 * s + 10, None)  # completes in the third second
    rec.dropped_at(s + 1)
    rec.started(s, s)
    rec.finished(s, s, s + 5, "timeout")
    res = rec.result(schedule={"kind": "burst"}, annotations=[], scheduled=3, schedule_duration_s=2.0,
                     lag_policy=LagPolicy(p99_ms=1.0))
    assert [iv.counters for iv in res.intervals] == [
        {"sent": 1, "ok": 0, "errors": 0, "dropped": 0},
        {"sent": 1, "ok": 0, "errors": 1, "dropped": 1, "errors{kind=timeout}": 1},
        {"sent": 0, "ok": 1, "errors": 0, "dropped": 0},
    ]
    assert set(res.intervals[2].histograms) == {"op", "op.service"}
    assert HdrHistogram.decode(res.intervals[2].histograms["op"]).get_max_value() >= 2_000_000
    assert res.summary.generator_lag_max_ms == pytest.approx(0.5, rel=0.01)
    assert not res.summary.generator_behind
    assert res.summary.completed_rate == pytest.approx(1 / 2.0)


def test_error_kind_labels() -> None:
    class E(Exception):
        kind = "rate_limited"

    assert error_kind(TimeoutError()) == "timeout"
    assert error_kind(E()) == "rate_limited"
    assert error_kind(KeyError("x")) == "KeyError"


events = st.lists(
    st.tuples(st.integers(0, 5_000_000_000), st.integers(0, 50_000_000), st.integers(0, 3_000_000_000),
              st.sampled_from([None, None, "timeout", "node"]), st.booleans()),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(events)
def test_recorder_intervals_add_up_to_the_totals(evs: list[tuple[int, int, int, str | None, bool]]) -> None:
    rec = IntervalRecorder("op")
    for intended, lag, took, kind, dropped in evs:
        if dropped:
            rec.dropped_at(intended)
            continue
        rec.started(intended, intended + lag)
        rec.finished(intended, intended + lag, intended + lag + took, kind)
    res = rec.result(schedule={}, annotations=[], scheduled=len(evs), schedule_duration_s=5.0)
    s = res.summary
    assert s.sent + s.dropped == len(evs)
    assert s.sent == s.ok + s.errors
    for name, total in (("sent", s.sent), ("ok", s.ok), ("errors", s.errors), ("dropped", s.dropped)):
        assert res.counter_total(name) == total
    assert sum(res.counter_total(f"errors{{kind={k}}}") for k in s.errors_by_kind) == s.errors
    assert res.merged("op").get_total_count() == s.ok == res.merged("op.service").get_total_count()
    assert res.merged(LAG_KEY).get_total_count() == s.sent
    # Intervals are contiguous from 0, one per second, none missing.
    assert [iv.start for iv in res.intervals] == [float(i) for i in range(len(res.intervals))]
    if s.ok:
        # From the intended start is never shorter than from the actual start.
        assert res.merged("op").get_max_value() >= res.merged("op.service").get_max_value()
