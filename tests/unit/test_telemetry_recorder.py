from __future__ import annotations

import itertools

import orjson
import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.telemetry.recorder import (
    HIGHEST_US,
    MAX_OPERATIONS,
    SLO_OPERATIONS,
    Telemetry,
    counter_key,
    parse_counter_key,
)


def fake_clock(start: float = 1_764_068_400.0, step: float = 1.0):  # type: ignore[no-untyped-def]
    counter = itertools.count()
    return lambda: start + step * next(counter)


def test_record_rotate_and_decode_round_trip() -> None:
    t = Telemetry()
    for v in (1000, 2000, 3000):
        t.record("tx_submission", v)
    t.count("trades_confirmed", 2)
    t.error("timeout")
    iv = t.rotate()
    assert iv.seq == 0 and set(iv.histograms) == {"tx_submission"}
    h = HdrHistogram.decode(iv.histograms["tx_submission"])
    assert h.get_total_count() == 3
    assert h.get_min_value() == 1000 and h.get_max_value() == pytest.approx(3000, rel=1e-3)
    assert iv.counters == {"trades_confirmed": 2, "errors{kind=timeout}": 1}
    # The next interval starts empty.
    iv2 = t.rotate()
    assert iv2.seq == 1 and iv2.histograms == {} and iv2.counters == {}
    assert iv2.start == iv.end


def test_payload_matches_design_contract() -> None:
    t = Telemetry(wall_clock=fake_clock())
    t.record("trade_execution", 42_000)
    t.count("ticks_handled")
    t.set_gauge("loop_lag_ms", 0.4)
    t.gauge_provider("in_flight", lambda: 7)
    t.rotate()
    p = t.payload()
    assert set(p) == {"seq", "now", "intervals", "gauges"}
    assert p["seq"] == 1
    assert p["gauges"] == {"loop_lag_ms": 0.4, "in_flight": 7}
    (iv,) = p["intervals"]
    assert set(iv) == {"seq", "start", "end", "histograms", "counters"}
    assert iv["seq"] == 0 and iv["end"] > iv["start"] > 1e9
    assert iv["counters"] == {"ticks_handled": 1}
    assert isinstance(iv["histograms"]["trade_execution"], str)
    orjson.dumps(p)  # must be JSON as is


def test_since_returns_only_newer_intervals() -> None:
    t = Telemetry()
    for _ in range(5):
        t.rotate()
    assert [iv["seq"] for iv in t.payload(since=2)["intervals"]] == [3, 4]
    assert t.payload(since=4)["intervals"] == []
    assert len(t.payload(since=-1)["intervals"]) == 5


def test_ring_keeps_last_n_and_counts_evictions() -> None:
    t = Telemetry(keep=3)
    for _ in range(5):
        t.rotate()
    assert [iv.seq for iv in t.intervals_since()] == [2, 3, 4]
    s = t.statistics()
    assert s.kept == 3 and s.evicted_total == 2 and s.seq == 5


def test_out_of_range_clamped_and_counted() -> None:
    t = Telemetry()
    t.record("price_fetch", 0)  # a real value, not out of range
    t.record("price_fetch", -5)
    t.record("price_fetch", HIGHEST_US * 10)
    assert t.statistics().out_of_range_total == 2
    h = HdrHistogram.decode(t.rotate().histograms["price_fetch"])
    assert h.get_total_count() == 3
    assert h.get_min_value() == 0
    assert h.get_max_value() >= HIGHEST_US * 0.999


def test_new_operation_created_on_first_use_up_to_a_limit() -> None:
    t = Telemetry(operations=[])
    t.record("custom_op", 5)
    assert "custom_op" in t.rotate().histograms
    for i in range(MAX_OPERATIONS - 1):
        t.record(f"op{i}", 1)
    with pytest.raises(ValueError, match="too many operations"):
        t.record("one_too_many", 1)


def test_counter_keys() -> None:
    assert counter_key("errors", kind="timeout") == "errors{kind=timeout}"
    assert parse_counter_key("drops{reason=a.b,x=y}") == ("drops", {"reason": "a.b", "x": "y"})
    assert parse_counter_key("ticks_handled") == ("ticks_handled", {})
    with pytest.raises(ValueError):
        counter_key("Bad Name")
    with pytest.raises(ValueError):
        counter_key("errors", kind="a,b")


def test_error_kind_with_odd_characters_is_sanitised() -> None:
    t = Telemetry()
    t.error("weird kind{x}")
    (key,) = t.counter_totals()
    name, labels = parse_counter_key(key)
    assert name == "errors" and labels == {"kind": "weird_kind_x_"}


def test_cumulative_counts_include_open_interval() -> None:
    t = Telemetry()
    t.record("balance_check", 100)
    t.rotate()
    t.record("balance_check", 200)
    counts, n, s = t.cumulative_counts("balance_check")
    assert int(counts.sum()) == 2 and n == 2 and s == 300
    assert t.counter_totals() == {}


async def test_rotation_task_and_stop_closes_open_interval() -> None:
    t = Telemetry(interval_s=0.01)
    await t.run(max_intervals=3)
    assert t.seq == 3
    t.start()
    t.record("tx_submission", 10)
    await t.stop()
    assert "tx_submission" in t.intervals_since()[-1].histograms
    assert "Telemetry" in repr(t)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SLO_OPERATIONS), st.integers(1, 10_000_000), st.booleans()),
                max_size=300))
def test_nothing_is_lost_across_rotations(samples: list[tuple[str, int, bool]]) -> None:
    t = Telemetry(keep=1000)
    expected: dict[str, list[int]] = {}
    for op, v, rotate in samples:
        t.record(op, v)
        expected.setdefault(op, []).append(v)
        if rotate:
            t.rotate()
    t.rotate()
    merged: dict[str, HdrHistogram] = {}
    for iv in t.intervals_since():
        for op, enc in iv.histograms.items():
            h = HdrHistogram.decode(enc)
            if op in merged:
                merged[op].add(h)
            else:
                merged[op] = h
    assert set(merged) == set(expected)
    for op, values in expected.items():
        h = merged[op]
        assert h.get_total_count() == len(values)
        assert h.values_are_equivalent(h.get_max_value(), max(values))
        _, n, total = t.cumulative_counts(op)
        assert n == len(values) and total == sum(values)
