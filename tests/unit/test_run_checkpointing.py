"""Append-only checkpoints: each holds only what is new, every closed second is written exactly once, and
the work per checkpoint does not grow with the scenario's age."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

import harness.run.checkpointing as cp
from harness.load.feed import FeedStatistics
from harness.probes.health import HealthStatistics
from harness.probes.resources import ResourceSample
from harness.results.journal import CheckpointJournal, fold, load_journal
from harness.run.collect import merge_intervals, tag_filter, totals
from harness.run.scenarios import Scenario, Step
from harness.run.stack import Stack

SCN = Scenario("soak", "trades", (Step(10.0, 3600.0),))


class FakeStack:
    def __init__(self, t0_wall: float, t0_mono: float) -> None:
        self.t0_wall = t0_wall
        self.puller = SimpleNamespace(intervals=[], gauges={}, pulled_at=0.0)
        self.sampler = SimpleNamespace(series=SimpleNamespace(origin=t0_mono - 3.0, samples=[]))
        self.health = HealthStatistics(0, 0, None)
        self.prober = SimpleNamespace(statistics=lambda: self.health)
        self.sent = 0
        self.feed = SimpleNamespace(statistics=lambda: FeedStatistics(True, True, 1, 0, 0, self.sent, 0, 0, 0, 0, 1))
        self.bot_settings: dict[str, Any] = {}  # a bot that does not trace its heap (no growth polling)

    def bot_seconds(self, first: int, last: int) -> None:
        """Closed bot intervals for scenario seconds [first, last): wall-aligned, a trade each."""
        for k in range(first, last):
            start = self.t0_wall + k
            self.puller.intervals.append({"seq": k, "start": start, "end": start + 1.0, "histograms": {},
                                          "counters": {"trades_ok": 1}, "tags": {}})

    def resource_seconds(self, first: int, last: int) -> None:
        origin = self.sampler.series.origin
        t0_mono = origin + 3.0
        for k in range(first, last):
            t = t0_mono + k + 0.5 - origin
            self.sampler.series.samples.append(ResourceSample(t, 80_000_000 + k, 10.0, 0.0, 0.0))


@pytest.fixture
def setup(tmp_path: Path) -> tuple[FakeStack, CheckpointJournal, dict[str, Any]]:
    t0_wall = time.time() - 1000.0
    st = FakeStack(t0_wall, time.monotonic() - 1000.0)
    return st, CheckpointJournal(tmp_path / "checkpoint.jsonl", "r"), {"id": "soak", "kind": "trades",
                                                                       "schedule": {"kind": "constant", "rate": 10.0},
                                                                       "annotations": [], "intervals": []}


def _checkpoints(tmp_path: Path) -> list[dict[str, Any]]:
    read = load_journal(tmp_path)
    assert read is not None and read.skipped == 0
    return [r for r in read.records if r["kind"] == "checkpoint"]


def test_each_closed_second_is_written_once_and_the_newest_waits_until_closed(
        setup: tuple[FakeStack, CheckpointJournal, dict[str, Any]], tmp_path: Path) -> None:
    st, journal, doc = setup
    stack = cast(Stack, st)
    st.bot_seconds(0, 10)
    cp.append_checkpoint(stack, journal, SCN, doc, st.t0_wall)
    st.bot_seconds(10, 25)
    cp.append_checkpoint(stack, journal, SCN, doc, st.t0_wall)
    cp.append_checkpoint(stack, journal, SCN, doc, st.t0_wall)  # nothing new: an empty record
    recs = _checkpoints(tmp_path)
    starts = [iv["start"] for r in recs for iv in r["intervals"]]
    assert [len(r["intervals"]) for r in recs] == [9, 15, 0]
    assert starts == [float(k) for k in range(24)]  # second 24 is held back until a later one closes it
    everything = merge_intervals(st.t0_wall, st.puller.intervals, own=tag_filter("soak"))
    assert [iv for r in recs for iv in r["intervals"]] == everything[:-1]


def test_resources_health_feed_and_backlog_are_what_is_new(
        setup: tuple[FakeStack, CheckpointJournal, dict[str, Any]], tmp_path: Path) -> None:
    st, journal, doc = setup
    stack = cast(Stack, st)
    st.resource_seconds(-3, 5)  # three before the scenario: not its own
    st.health, st.sent = HealthStatistics(40, 40, None), 50
    doc[cp.BACKLOG_KEY] = [[1.0, 2.0, 0.0], [2.0, 1.0, 0.0]]
    cp.append_checkpoint(stack, journal, SCN, doc, st.t0_wall)
    st.resource_seconds(5, 8)
    st.health, st.sent = HealthStatistics(70, 69, None), 80
    doc[cp.BACKLOG_KEY].append([3.0, 0.0, 1.0])
    cp.append_checkpoint(stack, journal, SCN, doc, st.t0_wall)
    st.sent = 20  # the feed started a new schedule (a stress step): its counts restarted
    cp.append_checkpoint(stack, journal, SCN, doc, st.t0_wall)
    recs = _checkpoints(tmp_path)
    assert [len(r["resources"]) for r in recs] == [5, 3, 0]
    assert [r["t"] for rec in recs for r in rec["resources"]] == pytest.approx([k + 0.5 for k in range(8)], abs=0.01)
    assert [r["health"] for r in recs] == [{"probes": 40, "ok": 40}, {"probes": 30, "ok": 29}, {"probes": 0, "ok": 0}]
    assert [r["feed"]["sent"] for r in recs] == [50, 30, 20]
    assert [len(r["backlog"]) for r in recs] == [2, 1, 0]
    p = fold(load_journal(tmp_path).records).scenarios["soak"]  # type: ignore[union-attr]
    assert (p.probes, p.ok, p.sent, len(p.resources), p.planned_s) == (70, 69, 100, 8, 3600.0)


def test_the_work_per_checkpoint_does_not_grow_with_the_scenarios_age(
        setup: tuple[FakeStack, CheckpointJournal, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    st, journal, doc = setup
    stack = cast(Stack, st)
    merged: list[int] = []
    real = merge_intervals

    def spy(t0: float, ivs: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        merged.append(len(ivs))
        return real(t0, ivs, *args, **kwargs)

    monkeypatch.setattr(cp, "merge_intervals", spy)
    # An hour of seconds already written, then checkpoints every 5 s: each merges 5 intervals, not 3,600.
    st.bot_seconds(0, 3600)
    st.resource_seconds(0, 7200)
    cp.append_checkpoint(stack, journal, SCN, doc, st.t0_wall)
    merged.clear()
    for k in range(3600, 3650, 5):
        st.bot_seconds(k, k + 5)
        cp.append_checkpoint(stack, journal, SCN, doc, st.t0_wall)
    assert merged and max(merged) <= 6
    assert totals([iv for r in _checkpoints(journal.path.parent) for iv in r["intervals"]])["ok"] == 3649
