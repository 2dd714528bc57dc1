"""The heap series beside RSS: levels from the bot's intervals onto resource samples, through the checkpoint
journal and back (a killed soak is re-judged on its heap too), and the latest growth table kept."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

import harness.run.checkpointing as cp
from harness.load.feed import FeedStatistics
from harness.probes.health import HealthStatistics
from harness.probes.resources import ResourceSample
from harness.results.journal import CheckpointJournal, fold, load_journal
from harness.run.heapseries import HEAP_BLOCKS, HEAP_BYTES, MAX_GAP_S, attach_heap, heap_samples
from harness.run.rejudge import scenario_doc
from harness.run.scenarios import Scenario, Step
from harness.run.stack import Stack
from harness.slo.judge import judge_run
from harness.slo.spec import load_default

SCN = Scenario("soak", "trades", (Step(10.0, 60.0),))


def test_levels_after_the_start_become_samples_and_a_stopped_trace_is_no_value() -> None:
    ivs: list[dict[str, Any]] = [{"end": 99.0, "levels": {"heap_bytes": 1.0, "heap_blocks": 2.0}},
           {"end": 101.0, "levels": {"heap_bytes": 5e6, "heap_blocks": 3e5}},
           {"end": 102.0, "levels": {"heap_bytes": -1.0, "heap_blocks": 3e5}},
           {"end": 103.0}, {"end": 104.0, "levels": {"other": 1.0}}]
    assert heap_samples(100.0, ivs) == [(1.0, 5e6, 3e5), (2.0, None, 3e5)]


times = st.lists(st.floats(0, 120, allow_nan=False), max_size=60).map(sorted)


@given(times, times)
def test_each_level_lands_once_on_its_nearest_free_sample_within_the_gap(res_t: list[float],
                                                                          heap_t: list[float]) -> None:
    resources: list[dict[str, Any]] = [{"t": t, "rss_bytes": 1} for t in res_t]
    samples = [(t, 1000.0 + i, 10.0 + i) for i, t in enumerate(heap_t)]
    placed = attach_heap(resources, samples)
    got = [r for r in resources if HEAP_BYTES in r]
    assert placed == len(got) <= min(len(res_t), len(heap_t))
    by_value = {1000.0 + i: t for i, t in enumerate(heap_t)}
    for r in got:
        assert abs(r["t"] - by_value[r[HEAP_BYTES]]) <= MAX_GAP_S and r[HEAP_BLOCKS] == r[HEAP_BYTES] - 990
    assert len({r[HEAP_BYTES] for r in got}) == len(got)  # no level twice


def test_resource_samples_every_half_second_take_every_level() -> None:
    resources: list[dict[str, Any]] = [{"t": 0.5 * k + 0.1, "rss_bytes": 1} for k in range(40)]
    assert attach_heap(resources, [(float(k), 1e6 * k, 1e5) for k in range(1, 20)]) == 19


class FakeStack:
    """What append_checkpoint reads: bot intervals carrying heap levels, resource samples, a tracing bot."""

    def __init__(self, t0_wall: float, t0_mono: float, frames: int = 0) -> None:
        self.t0_wall = t0_wall
        self.puller = SimpleNamespace(intervals=[], gauges={}, pulled_at=0.0)
        self.sampler = SimpleNamespace(series=SimpleNamespace(origin=t0_mono, samples=[]))
        self.prober = SimpleNamespace(statistics=lambda: HealthStatistics(0, 0, None))
        self.feed = SimpleNamespace(statistics=lambda: FeedStatistics(True, True, 1, 0, 0, 0, 0, 0, 0, 0, 1))
        self.bot_settings = {"debug": {"heap_trace_frames": frames}}
        self.api_url, self.token = "http://127.0.0.1:9", "t"

    def seconds(self, first: int, last: int, leak_per_s: float) -> None:
        for k in range(first, last):
            start = self.t0_wall + k
            self.puller.intervals.append({"seq": k, "start": start, "end": start + 1.0, "histograms": {},
                                          "counters": {"trades_ok": 10}, "tags": {},
                                          "levels": {"heap_bytes": 3e6 + leak_per_s * (k + 1),
                                                     "heap_blocks": 3e5 + k}})
            for half in (0.25, 0.75):
                self.sampler.series.samples.append(ResourceSample(k + half, int(80e6 + 1e3 * k), 10.0, 0.0, 0.0))


def test_a_killed_soaks_journal_keeps_the_heap_and_it_is_judged_on_it(tmp_path: Path) -> None:
    t0_wall, t0_mono = time.time() - 1000.0, time.monotonic() - 1000.0
    st = FakeStack(t0_wall, t0_mono)
    journal = CheckpointJournal(tmp_path / "checkpoint.jsonl", "r")
    doc = {"id": "soak", "kind": "trades", "schedule": {"kind": "constant", "rate": 10.0}, "annotations": []}
    leak = 1.3e6  # bytes per second: 4.7 GB/h
    for k in range(0, 60, 5):
        st.seconds(k, k + 5, leak)
        cp.append_checkpoint(cast(Stack, st), journal, SCN, doc, t0_wall)
    read = load_journal(tmp_path)
    assert read is not None
    recs = [r for r in read.records if r["kind"] == "checkpoint"]
    assert all("heap" in r for r in recs[1:]) and sum(len(r.get("heap", [])) for r in recs) >= 55
    assert all("heap_growth" not in r for r in recs)  # the bot does not trace: nothing to ask for
    p = fold(read.records).scenarios["soak"]
    scn = scenario_doc(p, "killed", {"engine": {"max_in_flight": 1024}})
    assert scn is not None
    with_heap = [r for r in scn["resources"] if HEAP_BYTES in r]
    assert len(with_heap) >= 55
    verdicts = judge_run({"schema_version": 1, "run_id": "r", "status": "interrupted", "profile": "soak",
                          "conditions": {}, "scenarios": [scn], "verdicts": [], "artifacts": {}}, load_default())
    heap = next(v for v in verdicts if v["row"] == "memory_leak" and v["stat"] == "heap_slope")
    rss = next(v for v in verdicts if v["row"] == "memory_leak" and v["stat"] == "rss_slope")
    assert heap["verdict"] == "fail" and heap["x_leak"]["series"] == "heap", heap
    assert heap["ci"][0] <= leak * 3600 <= heap["ci"][1]
    assert rss["verdict"] != "fail"  # RSS grew 3.6 MB/h here: the heap alone fails the row


def test_the_latest_growth_table_in_the_journal_wins(tmp_path: Path) -> None:
    journal = CheckpointJournal(tmp_path / "checkpoint.jsonl", "r")
    journal.append({"kind": "scenario", "id": "soak", "started_at": 1.0, "planned_s": 60.0, "doc": {"id": "soak"}})
    for seq in (1, 2):
        journal.append({"kind": "checkpoint", "scenario": "soak", "t": 10.0 * seq, "intervals": [], "resources": [],
                        "heap_growth": {"seq": seq, "sites": []}})
    read = load_journal(tmp_path)
    assert read is not None
    p = fold(read.records).scenarios["soak"]
    assert p.heap_growth == {"seq": 2, "sites": []}
    scn = scenario_doc(p, "killed")
    assert scn is not None and scn["summary"]["heap_growth"]["seq"] == 2
