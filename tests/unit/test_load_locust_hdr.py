"""The HdrHistograms recorded inside Locust: reports, the master's exact merge, and the file it writes (pure)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import HarnessError
from harness.load.locust_hdr import FAILURES, OP, REQUESTS, SecondRecorder, WorkerReport, to_us
from harness.load.locust_merge import HdrRun, decode, latency_ms, merge_reports, read_run, relative_intervals, write_run

T0 = 1_700_000_000
NAMES = ("GET /health", "GET /status", "GET /metrics")
# (endpoint, response time in ms, failed, completion offset in s): up to 30 s, across three decades of latency.
sample = st.tuples(st.sampled_from(NAMES), st.floats(0.0, 5_000.0, allow_nan=False), st.booleans(),
                   st.floats(0.0, 5.0, allow_nan=False, exclude_max=True))


def _same(a: HdrHistogram, b: HdrHistogram) -> bool:
    return bool(a.equals(b))


def _wire(rep: WorkerReport) -> WorkerReport:
    """Through msgpack, the way Locust carries a worker's report to the master."""
    return WorkerReport.from_wire(msgpack.unpackb(msgpack.packb(rep.to_wire()), raw=False))


def _one_process(samples: list[tuple[str, float, bool, float]]) -> HdrRun:
    rec = SecondRecorder()
    for name, ms, failed, dt in samples:
        rec.record(name, ms, failed, T0 + dt)
    return merge_reports([("local", rec.drain(final=True))])


@settings(max_examples=60, deadline=None)
@given(st.lists(sample, max_size=120), st.integers(1, 4), st.randoms(use_true_random=False))
def test_merging_workers_reports_equals_one_process_recording_everything(
        samples: list[tuple[str, float, bool, float]], n_workers: int, rnd: random.Random) -> None:
    samples = sorted(samples, key=lambda s: s[3])  # completion order, as a process records them
    recorders = [SecondRecorder() for _ in range(n_workers)]
    reports: list[tuple[str, WorkerReport]] = []
    for name, ms, failed, dt in samples:
        k = rnd.randrange(n_workers)
        recorders[k].record(name, ms, failed, T0 + dt)
        if rnd.random() < 0.2:  # a periodic report in the middle of the run
            reports.append((f"w{k}", _wire(recorders[k].drain(final=False))))
    reports += [(f"w{k}", _wire(r.drain(final=True))) for k, r in enumerate(recorders)]
    rnd.shuffle(reports)  # the master may receive them in any order across workers
    merged, alone = merge_reports(reports), _one_process(samples)

    assert [iv["counters"] for iv in merged.intervals] == [iv["counters"] for iv in alone.intervals]
    assert [iv["start"] for iv in merged.intervals] == [iv["start"] for iv in alone.intervals]
    for a, b in zip(merged.intervals, alone.intervals, strict=True):
        assert _same(decode(a["histograms"].get(OP)), decode(b["histograms"].get(OP)))
    assert _same(merged.histogram(), alone.histogram())
    assert set(merged.by_name) == set(alone.by_name)
    for name in merged.by_name:
        assert _same(decode(merged.by_name[name]), decode(alone.by_name[name]))
    # Counts: every sample once; failures counted, not timed.
    assert merged.requests == len(samples) == sum(w.requests for w in merged.workers.values())
    assert merged.failures == sum(1 for s in samples if s[2]) == sum(w.failures for w in merged.workers.values())
    assert merged.histogram().get_total_count() == merged.requests - merged.failures
    assert merged.complete and len(merged.workers) == n_workers
    assert (merged.first_start, merged.last_end) == (alone.first_start, alone.last_end)
    if samples:
        assert merged.first_start == min(T0 + dt - ms / 1000 for _, ms, _, dt in samples)


@given(samples=st.lists(sample, max_size=60))
def test_the_file_round_trips(samples: list[tuple[str, float, bool, float]], tmp_path_factory: Any) -> None:
    run = merge_reports([("w", SecondRecorder().drain(final=False))]) if not samples else _one_process(samples)
    run = HdrRun(run.intervals, run.total, run.by_name, run.workers, T0 + 0.25, T0 + 3.5, run.first_start,
                 run.last_end)
    path = tmp_path_factory.mktemp("hdr") / "locust_hdr.json"
    write_run(path, run)
    assert read_run(path) == run
    assert HdrRun.from_json(run.to_json()) == run
    assert not list(path.parent.glob(".*.tmp"))


def test_intervals_are_contiguous_seconds_and_relative_to_the_scenario_start() -> None:
    run = _one_process([("GET /health", 1.0, False, 0.5), ("GET /health", 2.0, True, 3.2)])
    assert [iv["start"] for iv in run.intervals] == [T0, T0 + 1, T0 + 2, T0 + 3]
    assert [iv["counters"] for iv in run.intervals] == [
        {REQUESTS: 1, FAILURES: 0}, {REQUESTS: 0, FAILURES: 0}, {REQUESTS: 0, FAILURES: 0},
        {REQUESTS: 1, FAILURES: 1}]
    assert [bool(iv["histograms"]) for iv in run.intervals] == [True, False, False, False]
    rel = relative_intervals(run, T0 + 1.7)  # seconds before the scenario's start are left out
    assert [(iv["start"], iv["end"]) for iv in rel] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    assert relative_intervals(run, None)[0]["start"] == 0.0


def test_a_worker_without_its_final_report_makes_the_run_incomplete() -> None:
    rec = SecondRecorder()
    rec.record("GET /health", 1.0, False, T0)
    run = merge_reports([("a", rec.drain(final=False)), ("b", SecondRecorder().drain(final=True))])
    assert not run.complete
    assert run.workers["a"].requests == 1 and not run.workers["a"].final


def test_microseconds_and_summary_figures() -> None:
    assert to_us(1.2344) == 1234 and to_us(0.0) == 1 and to_us(1e9) == 60_000_000
    rec = SecondRecorder()
    for ms in range(1, 101):  # 1..100 ms
        rec.record("GET /health", float(ms), False, T0)
    fig = latency_ms(merge_reports([("w", rec.drain(final=True))]).total)
    assert fig["count"] == 100
    assert fig["p50_ms"] == pytest.approx(50.0, rel=1e-3) and fig["p99_ms"] == pytest.approx(99.0, rel=1e-3)
    assert fig["max_ms"] == pytest.approx(100.0, rel=1e-3) and fig["mean_ms"] == pytest.approx(50.5, rel=1e-3)
    assert latency_ms(None)["count"] == 0


@pytest.mark.parametrize(("wire", "needle"), [
    ({"v": 0}, "version"),
    ({"v": 1, "final": True, "by_name": {}}, "malformed"),
    ({"v": 1, "final": True, "by_name": {}, "seconds": {"1": [1, 2, None]}}, "malformed"),
    ({"v": 1, "final": True, "by_name": {}, "seconds": {"x": [1, 0, None]}}, "malformed"),
    ({"v": 1, "final": True, "by_name": {}, "seconds": {"1": [1, 0, 5]}}, "malformed"),
])
def test_malformed_reports_are_harness_errors(wire: dict[str, Any], needle: str) -> None:
    with pytest.raises(HarnessError, match=needle):
        WorkerReport.from_wire(wire)


def test_malformed_files_are_harness_errors(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="no HdrHistogram file"):
        read_run(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(HarnessError, match="not JSON"):
        read_run(tmp_path / "bad.json")
    with pytest.raises(HarnessError, match="tb-locust-hdr"):
        HdrRun.from_json({"format": "other"})
    with pytest.raises(HarnessError, match="malformed"):
        HdrRun.from_json({"format": "tb-locust-hdr/1", "intervals": [{"start": 0}]})
