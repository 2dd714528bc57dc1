"""Collector pauses per generation and their overlap with the latency tail.

The bot half: ``GcWatch``'s hook stores the end of every long pause in the telemetry's ``GcClock``
(``bot.telemetry.gcclock``), the recorder marks the samples of the judged operations that overlapped one
(``<op>.gc_overlap``) and ``drain`` splits the pauses by generation (``gc_pause.gen0`` ..). The harness half:
those histograms are auxiliary, never operations, and ``harness.report.gcview`` counts the slowest 1% that
overlapped.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.app import summarize
from bot.telemetry.gcclock import GC_PAUSE_GEN_OPS, LONG_PAUSE_NS, GcClock, is_auxiliary_op, overlap_op
from bot.telemetry.gcwatch import COLLECTIONS, GC_PAUSE_OP, GcWatch
from bot.telemetry.recorder import GC_OVERLAP_OPERATIONS, TAG, Telemetry
from harness.report.gcview import GcFigures, gc_figures, overlap_figures, tail_index
from harness.report.html import carry_over_text
from harness.results import Scenario
from harness.results.model import CarryOver
from harness.run.collect import carry_over
from harness.stats.histograms import counts_array

TE = "trade_execution"
TE_OVERLAP = overlap_op(TE)


def _count(enc: str) -> int:
    return int(HdrHistogram.decode(enc).get_total_count())


def _enc(values: list[int]) -> str:
    h = HdrHistogram(1, 60_000_000, 3)
    for v in values:
        h.record_value(v)
    return h.encode().decode("ascii")


# -- names ------------------------------------------------------------------------------------------------


def test_the_auxiliary_histograms_are_told_from_operations() -> None:
    assert GC_PAUSE_GEN_OPS == ("gc_pause.gen0", "gc_pause.gen1", "gc_pause.gen2")
    assert TE_OVERLAP == "trade_execution.gc_overlap"
    assert all(is_auxiliary_op(k) for k in (*GC_PAUSE_GEN_OPS, TE_OVERLAP, "price_fetch.gc_overlap"))
    for op in (TE, "trade_execution.service", "price_fetch.from_tick", "event_loop_lag", GC_PAUSE_OP, "tick_delivery"):
        assert not is_auxiliary_op(op)
    assert LONG_PAUSE_NS == 1_000_000
    assert repr(GcClock()) == "<GcClock long_end_ns=0>"


# -- the recorder ---------------------------------------------------------------------------------------


def test_a_sample_that_began_before_the_last_long_pause_ended_is_marked() -> None:
    t = Telemetry()
    t.gc_clock.long_end_ns = time.perf_counter_ns()
    t.record(TE, 10_000_000)  # began 10 s ago: the pause ended inside it
    t.record("price_fetch", 10_000_000)
    t.record("price_fetch.from_tick", 10_000_000)  # a companion key, not judged: not checked
    t.record("event_loop_lag", 10_000_000)
    t.record(GC_PAUSE_OP, 10_000_000)
    iv = t.rotate().to_json()["histograms"]
    assert _count(iv[TE_OVERLAP]) == 1 and _count(iv["price_fetch.gc_overlap"]) == 1
    assert _count(iv[TE]) == 1  # the sample itself is recorded once, as before
    assert {k for k in iv if k.endswith(".gc_overlap")} == {TE_OVERLAP, "price_fetch.gc_overlap"}


def test_a_sample_that_began_after_the_last_long_pause_is_not_marked() -> None:
    t = Telemetry()
    t.record(TE, 60_000_000)  # no long pause yet: never marked, however long the sample
    t.gc_clock.long_end_ns = time.perf_counter_ns() - 10_000_000_000  # ended 10 s ago
    t.record(TE, 1_000)  # began 1 ms ago
    t.record(TE, 0)
    iv = t.rotate().to_json()["histograms"]
    assert _count(iv[TE]) == 3 and TE_OVERLAP not in iv


def test_the_overlap_keeps_the_samples_tag_and_value() -> None:
    t = Telemetry()
    t.gc_clock.long_end_ns = time.perf_counter_ns()
    token = TAG.set("sustained")
    try:
        t.record(TE, 25_000_000)
    finally:
        TAG.reset(token)
    closed = t.rotate()
    tagged = closed.tags["sustained"].histograms
    assert _count(tagged[TE_OVERLAP]) == 1
    assert HdrHistogram.decode(tagged[TE_OVERLAP]).get_max_value() == HdrHistogram.decode(tagged[TE]).get_max_value()
    assert closed.histograms[TE_OVERLAP] == tagged[TE_OVERLAP]


def test_the_checked_operations_are_the_judged_ones_and_configurable() -> None:
    assert set(GC_OVERLAP_OPERATIONS) == {"tx_submission", "price_fetch", "balance_check", TE}
    t = Telemetry(operations=(), gc_overlap=("tick_delivery",))
    t.gc_clock.long_end_ns = time.perf_counter_ns()
    t.record("tick_delivery", 5_000_000)
    t.record(TE, 5_000_000)
    iv = t.rotate().histograms
    assert "tick_delivery.gc_overlap" in iv and TE_OVERLAP not in iv
    for bad in (GC_PAUSE_OP, "gc_pause.gen1", TE_OVERLAP):
        with pytest.raises(ValueError, match="collector's own histograms"):
            Telemetry(gc_overlap=(bad,))


# -- the hook ---------------------------------------------------------------------------------------------


def _stepping(step_ns: int) -> tuple[Callable[[], int], list[int]]:
    """A clock the hook reads once at a collection's start and once at its stop: each pause lasts ``step_ns``."""
    reads: list[int] = []

    def clock() -> int:
        reads.append(1_000_000_000 + len(reads) * step_ns)
        return reads[-1]

    return clock, reads


@pytest.mark.parametrize(("step_ns", "long"), [(LONG_PAUSE_NS, True), (LONG_PAUSE_NS - 1, False), (20_000, False)])
def test_the_hook_stores_the_end_of_a_long_pause_only(step_ns: int, long: bool) -> None:
    t = Telemetry(operations=())
    clock, reads = _stepping(step_ns)
    w = GcWatch(t, clock=clock)
    w.install()
    try:
        gc.collect(0)
    finally:
        w.uninstall()
    assert len(reads) >= 2 and len(reads) % 2 == 0  # start and stop of each collection
    assert t.gc_clock.long_end_ns == (reads[-1] if long else 0)


@pytest.fixture
def two_ms_pauses() -> Iterator[Telemetry]:
    """A watch on the real clock whose every collection seems to have started 2 ms earlier than it did."""
    t = Telemetry(operations=())
    calls = [0]

    def clock() -> int:
        calls[0] += 1
        return time.perf_counter_ns() - (2_000_000 if calls[0] % 2 else 0)  # odd reads: a start

    w = GcWatch(t, clock=clock)
    w.install()
    try:
        yield t
    finally:
        w.uninstall()


def test_a_trade_spanning_a_real_collection_is_marked_and_one_after_it_is_not(two_ms_pauses: Telemetry) -> None:
    t = two_ms_pauses
    gc.disable()  # only the collection this test makes
    try:
        t.rotate()
        started = time.perf_counter_ns()
        gc.collect(1)
        t.record_since_ns(TE, started)  # spans the collection
        t.record(TE, 0)  # begins now, after it
        t.record("event_loop_lag", 60_000_000)
        closed = t.rotate()
    finally:
        gc.enable()
    assert _count(closed.histograms[TE]) == 2 and _count(closed.histograms[TE_OVERLAP]) == 1
    assert "event_loop_lag.gc_overlap" not in closed.histograms
    assert _count(closed.histograms[GC_PAUSE_GEN_OPS[1]]) == 1 == closed.counters[COLLECTIONS[1]]


def test_pauses_are_split_by_generation_and_kept_out_of_tags() -> None:
    t = Telemetry(operations=())
    w = GcWatch(t)
    w.install()
    gc.disable()
    token = TAG.set("sustained")  # a rotation inside a tagged context
    try:
        t.rotate()
        for _ in range(3):
            gc.collect(0)
        gc.collect(1)
        closed = t.rotate()
    finally:
        TAG.reset(token)
        gc.enable()
        w.uninstall()
    assert _count(closed.histograms[GC_PAUSE_GEN_OPS[0]]) == 3 and _count(closed.histograms[GC_PAUSE_GEN_OPS[1]]) == 1
    assert GC_PAUSE_GEN_OPS[2] not in closed.histograms
    assert _count(closed.histograms[GC_PAUSE_OP]) == 4
    merged = HdrHistogram.decode(closed.histograms[GC_PAUSE_GEN_OPS[0]])
    merged.add(HdrHistogram.decode(closed.histograms[GC_PAUSE_GEN_OPS[1]]))
    assert merged.get_max_value() == HdrHistogram.decode(closed.histograms[GC_PAUSE_OP]).get_max_value()
    assert all(not is_auxiliary_op(op) for sl in closed.tags.values() for op in sl.histograms)


# -- not operations -----------------------------------------------------------------------------------


def _scenario(intervals: list[dict[str, Any]], sid: str = "sustained") -> Scenario:
    return Scenario.from_json({
        "id": sid, "started_at": 0.0, "duration_s": float(len(intervals)), "schedule": {}, "annotations": [],
        "intervals": intervals, "resources": [], "health": {"probes": 0, "ok": 0}, "summary": {}})


def test_the_auxiliary_histograms_are_not_listed_as_operations() -> None:
    iv = {"start": 0.0, "end": 1.0, "counters": {}, "histograms": {
        TE: _enc([30_000]), "trade_execution.service": _enc([20_000]), TE_OVERLAP: _enc([30_000]),
        GC_PAUSE_OP: _enc([50]), GC_PAUSE_GEN_OPS[0]: _enc([50]), "price_fetch.gc_overlap": _enc([9])}}
    assert _scenario([iv]).operations() == (TE, GC_PAUSE_OP)  # gc_pause as before: the page skips it itself
    own = {"start": 0.0, "end": 1.0, "histograms": {}, "counters": {},
           "tags": {"burst": {"histograms": {TE: _enc([1, 2]), TE_OVERLAP: _enc([2])}, "counters": {}}}}
    carried = carry_over(0.0, 1.0, [own], lambda tag: tag == "sustained")
    assert carried["histograms"] == {TE: 2}
    text = carry_over_text(CarryOver({TE: 2, TE_OVERLAP: 1}, {}, ("burst",)))
    assert text == "trade_execution 2 samples (from burst)"


def test_the_bots_exit_summary_lists_operations_only() -> None:
    t = Telemetry(operations=())
    t.gc_clock.long_end_ns = time.perf_counter_ns()
    t.record(TE, 10_000_000)
    t.record_untagged(GC_PAUSE_GEN_OPS[2], 3_000)
    t.rotate()
    assert set(summarize(t)) == {TE}


# -- the figures ----------------------------------------------------------------------------------------


def _interval(hists: dict[str, list[int]], **counters: int) -> dict[str, Any]:
    return {"start": 0.0, "end": 1.0, "counters": dict(counters),
            "histograms": {k: _enc(v) for k, v in hists.items() if v}}


def _figures(ivs: list[dict[str, Any]]) -> GcFigures:
    f = gc_figures(_scenario(ivs))
    assert f is not None
    return f


def test_figures_of_a_scenario_with_known_histograms() -> None:
    # trade_execution over two intervals: 196 samples of 30 ms and 4 of 400 ms, so the p99 (rank 198 of 200)
    # is 400 ms and the slowest 1% are those 4. Overlapped: one of them and three 30-ms ones.
    slow = [30_000] * 98 + [400_000] * 2
    ivs = [
        _interval({TE: slow, TE_OVERLAP: [400_000, 30_000],
                   GC_PAUSE_OP: [50] * 10 + [3_000], GC_PAUSE_GEN_OPS[0]: [50] * 10, GC_PAUSE_GEN_OPS[2]: [3_000],
                   "price_fetch": [2_000] * 100},
                  **{COLLECTIONS[0]: 10, COLLECTIONS[2]: 1}),
        _interval({TE: slow, TE_OVERLAP: [30_000, 30_000],
                   GC_PAUSE_OP: [60] * 10, GC_PAUSE_GEN_OPS[0]: [60] * 10}, **{COLLECTIONS[0]: 10}),
    ]
    f = _figures(ivs)
    assert f.gen_p99_ms[0] == pytest.approx(0.06, rel=1e-3) and f.gen_p99_ms[1] is None
    assert f.gen_p99_ms[2] == pytest.approx(3.0, rel=1e-3)
    pf, te = f.overlap  # in the SLO table's order
    assert te.op == TE and te.samples == 200 and te.overlapped == 4 and te.share == pytest.approx(0.02)
    assert te.p99_ms == pytest.approx(400.0, rel=1e-3) and te.tail == 4 and te.tail_overlapped == 1
    assert te.tail_share == pytest.approx(0.25)
    assert pf.op == "price_fetch" and pf.samples == 100 and pf.overlapped == 0 and pf.tail == 100
    assert pf.tail_share == 0.0 and pf.share == 0.0
    doc = f.to_json()
    assert doc["p99_ms_by_generation"][1] is None and doc["long_pause_ms"] == 1.0
    assert doc["overlap"][1] == {"op": TE, "samples": 200, "overlapped": 4, "share": 0.02, "p99_ms": te.p99_ms,
                                 "tail": 4, "tail_overlapped": 1, "tail_share": 0.25}
    assert "tail 1/4" in repr(te)


def test_the_slowest_one_percent_is_counted_from_the_p99_bucket_up() -> None:
    fast = [30_000] * 990
    slow = [200_000 + i * 1_000 for i in range(10)]  # distinct buckets (128 µs wide here)
    marked = [30_000] * 5 + slow[::2]
    pauses = {GC_PAUSE_OP: [40], GC_PAUSE_GEN_OPS[0]: [40]}
    # 1000 samples: the p99 (rank 990) is the last 30-ms one, so every sample is at or above it.
    (te,) = _figures([_interval({TE: fast + slow, TE_OVERLAP: marked, **pauses})]).overlap
    assert te.p99_ms == pytest.approx(30.0, rel=1e-3) and te.tail == 1000 and te.tail_overlapped == 10
    # 500 samples: the p99 (rank 495) is the fifth slow one (204 ms); at or above it are 204..209 ms.
    (te,) = _figures([_interval({TE: fast[:490] + slow, TE_OVERLAP: marked, **pauses})]).overlap
    assert te.p99_ms == pytest.approx(204.0, rel=1e-3)
    assert te.tail == 6 and te.tail_overlapped == 3  # 204, 206 and 208 ms were marked
    assert te.samples == 500 and te.overlapped == 10


def test_an_older_bot_has_no_overlap_rows_and_a_new_one_without_overlaps_has_zeros() -> None:
    older = _figures([_interval({TE: [30_000], GC_PAUSE_OP: [50]}, **{COLLECTIONS[0]: 1})])
    assert older.overlap == () and older.gen_p99_ms == (None, None, None)
    newer = _figures([_interval({TE: [30_000], GC_PAUSE_OP: [50], GC_PAUSE_GEN_OPS[0]: [50]}, **{COLLECTIONS[0]: 1})])
    assert [(o.op, o.overlapped, o.tail_overlapped) for o in newer.overlap] == [(TE, 0, 0)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5_000_000), st.booleans()), min_size=1, max_size=300))
def test_the_tail_counts_match_a_count_of_the_values(samples: list[tuple[int, bool]]) -> None:
    h, ov = HdrHistogram(1, 60_000_000, 3), HdrHistogram(1, 60_000_000, 3)
    for v, marked in samples:
        h.record_value(v)
        if marked:
            ov.record_value(v)
    counts = counts_array(h)
    p99 = h.get_value_at_percentile(99)
    i = tail_index(counts)
    assert counts[i] > 0  # the p99's bucket holds samples
    row = overlap_figures(TE, counts, counts_array(ov) if ov.get_total_count() else None)
    assert row is not None and row.p99_ms == p99 / 1000
    floor = h.get_lowest_equivalent_value(p99)  # the p99's bucket starts here
    assert row.tail == sum(1 for v, _ in samples if v >= floor)
    assert row.tail_overlapped == sum(1 for v, m in samples if m and v >= floor)
    assert row.overlapped == sum(1 for _, m in samples if m) and row.samples == len(samples)
    assert row.tail >= len(samples) / 100  # at least the slowest 1%
