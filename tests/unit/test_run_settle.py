from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.run.settle import CPU_FLOOR_PERCENT, Observation, Settled, cpu_limit, why_busy

QUIET = Observation(in_flight=0, queue_depth=0, txpool_pending=0, txpool_queued=0, bot_cpu_percent=3.0,
                    idle_cpu_percent=2.0)


def test_a_quiet_stack_is_quiet() -> None:
    assert why_busy(QUIET) == []


def test_each_kind_of_leftover_work_is_named() -> None:
    assert why_busy(Observation(5, 0, 0, 0, 3.0, 2.0)) == ["5 trades in flight"]
    assert why_busy(Observation(0, 7, 0, 0, 3.0, 2.0)) == ["7 messages queued"]
    assert why_busy(Observation(0, 0, 12, 3, 3.0, 2.0)) == ["node pool 12 pending / 3 queued"]
    assert why_busy(Observation(None, None, 0, 0, 3.0, 2.0)) == ["no fresh telemetry"]
    assert why_busy(Observation(0, 0, 0, 0, 90.0, 2.0))[0].startswith("bot CPU 90%")


def test_a_node_without_txpool_status_does_not_block_quiescence() -> None:
    assert why_busy(Observation(0, 0, None, None, 3.0, 2.0)) == []


@given(st.floats(0, 400), st.floats(0, 400))
def test_cpu_is_quiet_near_the_bots_own_idle_and_never_demands_less_than_the_floor(idle: float, cpu: float) -> None:
    limit = cpu_limit(idle)
    assert limit >= CPU_FLOOR_PERCENT and limit >= idle
    busy = why_busy(Observation(0, 0, 0, 0, cpu, idle))
    assert (busy == []) == (cpu <= limit)


def test_the_summary_records_the_wait_and_what_was_left() -> None:
    s = Settled(12.3456, True, Observation(2, 0, 4, 0, 50.0, 5.0), ("2 trades in flight",)).summary()
    assert s["settle_s"] == 12.35
    assert s["quiescence"]["timed_out"] is True and s["quiescence"]["busy"] == ["2 trades in flight"]
    assert s["quiescence"]["in_flight"] == 2 and s["quiescence"]["txpool_pending"] == 4
