"""A killed run re-judged from checkpoint.jsonl: the running scenario rebuilt, every row judged, the window said."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from harness.report import load_results, render_from_results
from harness.results.journal import JOURNAL_NAME
from harness.results.writer import ResultsWriter
from harness.run.rejudge import rejudge_killed, window_text
from harness.slo.synth import Synth, synth_results


def _killed_run(tmp_path: Path, *, alive: bool = False, covered: int = 40, planned: float = 60.0) -> Path:
    """A run folder as a SIGKILL mid-soak leaves it: results.json partial (no soak, no verdicts) and a journal."""
    run_dir = tmp_path / "run-1"
    synth = synth_results(Synth(seed=4, scenarios=("soak",), soak_s=covered, rss_noise_mb=0.2, leak_mb_per_h=4700.0))
    conditions = {**synth["conditions"], "bot": {"engine": {"max_in_flight": 1024}}}
    w = ResultsWriter(run_dir, "run-1", "soak", conditions)
    soak = synth["scenarios"][0]
    me = psutil.Process()
    lines: list[dict[str, Any]] = [
        {"kind": "run", "v": 1, "run_id": "run-1", "pid": os.getpid(),
         "pid_started": me.create_time() if alive else 0.0, "at": 0.0},
        {"kind": "scenario", "id": "soak", "started_at": 1_764_068_400.0, "planned_s": planned,
         "doc": {"id": "soak", "kind": "trades", "description": "a soak", "started_at": 1_764_068_400.0,
                 "duration_s": planned, "schedule": {"kind": "constant", "rate": 10.0, "seconds": planned},
                 "annotations": []}},
    ]
    res = soak["resources"]
    for k in range(0, covered, 5):
        lines.append({"kind": "checkpoint", "scenario": "soak", "t": float(k + 5),
                      "intervals": [{"start": float(s), "end": s + 1.0, "histograms": {}, "counters": {"ok": 10}}
                                    for s in range(k, k + 5)],
                      "resources": [r for r in res if k <= r["t"] < k + 5],
                      "health": {"probes": 200, "ok": 200}, "backlog": [[k + 1.0, 1.0, 0.0]],
                      "feed": {"sent": 50, "dropped": 0}, "cost_ms": 0.3})
    data = b"".join(orjson.dumps(x) + b"\n" for x in lines)
    (run_dir / JOURNAL_NAME).write_bytes(data + b'{"kind": "checkpoint", "scen')  # torn by the kill
    assert w.run.status == "partial"
    return run_dir


def test_a_killed_soak_is_rebuilt_and_every_row_judged_with_its_window(tmp_path: Path) -> None:
    run_dir = _killed_run(tmp_path)
    outcome = rejudge_killed(run_dir)
    assert outcome.status == "rejudged" and "first 40 s of 60 s" in outcome.message
    run = load_results(run_dir / "results.json")  # valid against the schema
    assert run.status == "interrupted" and not run.missing_rows()
    soak = run.scenario("soak")
    assert soak is not None and soak.duration_s == 40.0 and soak.health_probes == 1600
    assert soak.summary["partial"]["window"] == "partial: first 40 s of 60 s"
    assert soak.summary["partial"]["cause"] == "killed" and soak.summary["saturation"]["saturated"] is False
    leak = next(v for v in run.verdicts if v.row == "memory_leak")
    assert leak.verdict == "fail"  # 4.7 GB/h over 40 s: above the short-window floor
    assert leak.note.startswith("partial: first 40 s of 60 s (the run was killed)")
    assert run.extra["x_rejudged"]["cause"] == "killed" and run.extra["x_rejudged"]["skipped_lines"] == 1
    page = render_from_results(run_dir).read_text()
    assert 'id="rejudged-banner"' in page and "The run was killed" in page
    assert rejudge_killed(run_dir).status == "nothing"  # once re-judged, it stays as written


def test_a_run_still_going_is_left_alone(tmp_path: Path) -> None:
    run_dir = _killed_run(tmp_path, alive=True)
    before = (run_dir / "results.json").read_bytes()
    outcome = rejudge_killed(run_dir)
    assert outcome.status == "running" and "still going" in outcome.message
    assert (run_dir / "results.json").read_bytes() == before


@pytest.mark.parametrize(("covered", "planned", "text"), [
    (750.0, 3600.0, "partial: first 12.5 min of 60 min"),
    (40.0, 60.0, "partial: first 40 s of 60 s"),
    (30.0, 86_400.0, "partial: first 30 s of 24 h"),
])
def test_window_text(covered: float, planned: float, text: str) -> None:
    assert window_text(covered, planned) == text
