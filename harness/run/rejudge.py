"""A run that stopped mid-scenario, re-judged from its checkpoints (``checkpoint.jsonl``).

A SIGKILLed harness leaves results.json ``partial``: the scenarios that ended are in it, the one that
was running only in the journal (``harness.results.journal``). ``harness report RUN`` then rebuilds that
scenario from its checkpoints (intervals, RSS/CPU samples, health probes, backlog, heap levels and the
latest heap growth table), judges every row it can (``memory_leak`` included, from the RSS and heap samples
written so far), says which window the verdicts
cover ("partial: first 12.5 min of 60 min") and that the run was killed, and writes it back as
``interrupted``. An interrupted run (Ctrl-C, SIGTERM) takes the same rebuild in ``finalize``.

Nothing is rewritten while the harness that wrote the journal still runs (its pid and start time are the
journal's first record): a live run is rendered as it stands.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from harness.results.journal import JOURNAL_NAME, PartialScenario, fold, load_journal
from harness.run.collect import totals
from harness.run.heapseries import attach_heap
from harness.stats.saturation import in_flight_cap, judge_saturation

CAUSES = ("killed", "interrupted")


def span_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def window_text(covered_s: float, planned_s: float) -> str:
    """``partial: first 12.5 min of 60 min``: the window a partial scenario's verdicts cover."""
    if planned_s >= 120 and covered_s >= 120 and planned_s < 7200:
        return f"partial: first {covered_s / 60:.3g} min of {planned_s / 60:.3g} min"
    return f"partial: first {span_text(covered_s)} of {span_text(planned_s)}"


def scenario_doc(p: PartialScenario, cause: str, bot_settings: Any = None) -> dict[str, Any] | None:
    """The scenario document as far as its checkpoints got (None: it recorded nothing to judge)."""
    if not p.checkpoints or p.covered_s <= 0:
        return None
    covered = min(p.covered_s, p.planned_s) if p.planned_s > 0 else p.covered_s
    intervals = sorted(p.intervals, key=lambda iv: float(iv.get("start", 0.0)))
    raw = p.header.get("schedule")
    schedule: dict[str, Any] = dict(raw) if isinstance(raw, Mapping) else {"kind": "constant"}
    rate = schedule.get("rate")
    planned_rate = float(rate) if isinstance(rate, int | float) and not isinstance(rate, bool) else None
    tot = totals(intervals)
    summary: dict[str, Any] = {
        "partial": {"covered_s": round(covered, 3), "planned_s": p.planned_s,
                    "window": window_text(covered, p.planned_s), "cause": cause, "source": JOURNAL_NAME,
                    "checkpoints": p.checkpoints,
                    # evidence that a checkpoint's cost did not grow with the scenario's age
                    "checkpoint_cost_ms": _costs(p.cost_ms)},
        "target_rate": planned_rate,
        "achieved_rate": p.sent / covered if covered > 0 and p.sent else None,
        "dropped": p.dropped,
        "totals": tot,
        "tag": p.id,
    }
    if p.heap_growth is not None:
        summary["heap_growth"] = p.heap_growth
    if p.header.get("kind") == "trades" and schedule.get("kind") == "constant" and planned_rate:
        summary["saturation"] = judge_saturation(p.backlog, rate=planned_rate, duration_s=covered,
                                                 in_flight_cap=in_flight_cap(bot_settings)).to_json()
    resources = sorted(p.resources, key=lambda r: float(r.get("t", 0.0)))
    attach_heap(resources, p.heap)
    doc = {**p.header, "id": p.id, "started_at": p.started_at, "duration_s": round(covered, 3),
           "schedule": schedule, "annotations": list(p.header.get("annotations") or []),
           "intervals": intervals, "resources": resources,
           "health": {"probes": p.probes, "ok": p.ok}, "summary": summary}
    return doc


def _costs(costs: Sequence[float]) -> dict[str, float] | None:
    if not costs:
        return None
    return {"first": costs[0], "last": costs[-1], "max": max(costs), "n": float(len(costs))}


@dataclass(frozen=True)
class Window:
    scenario: str
    covered_s: float
    planned_s: float
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "covered_s": self.covered_s, "planned_s": self.planned_s,
                "window": self.text}


def rebuild(doc: Mapping[str, Any], run_dir: Path, cause: str) -> tuple[list[dict[str, Any]], list[Window], int]:
    """Scenarios of the journal that ``doc`` lacks, rebuilt; their windows; lines the reader skipped."""
    read = load_journal(run_dir)
    if read is None:
        return [], [], 0
    folded = fold(read.records, read.skipped)
    have = {s.get("id") for s in doc.get("scenarios", []) if isinstance(s, Mapping)}
    bot = (doc.get("conditions") or {}).get("bot")
    out: list[dict[str, Any]] = []
    windows: list[Window] = []
    for sid, p in folded.scenarios.items():
        if sid in have:
            continue  # it ended: results.json holds it whole
        scn = scenario_doc(p, cause, bot)
        if scn is not None:
            out.append(scn)
            part = scn["summary"]["partial"]
            windows.append(Window(sid, part["covered_s"], part["planned_s"], part["window"]))
    return out, windows, read.skipped


def annotate(verdicts: Sequence[Mapping[str, Any]], windows: Sequence[Window], cause: str) -> list[dict[str, Any]]:
    """Each verdict of a rebuilt scenario says the window it covers, first thing in its note."""
    by_id = {w.scenario: w for w in windows}
    out = []
    for v in verdicts:
        hit = [by_id[s] for s in str(v.get("scenario") or "").split("+") if s in by_id]
        note = f"{hit[0].text} (the run was {cause}); {v.get('note', '')}".rstrip("; ") if hit else v.get("note", "")
        out.append({**v, "note": note})
    return out


def summary_note(windows: Sequence[Window], cause: str) -> str:
    what = "; ".join(f"the verdicts of {w.scenario} cover its {w.text}" for w in windows)
    how = ("the harness was killed before it wrote its results" if cause == "killed"
           else "the run was interrupted before the scenario ended")
    return f"{how}; re-judged from {JOURNAL_NAME}: {what or 'no scenario was running'}"


def writer_alive(run_rec: Mapping[str, Any] | None) -> bool:
    """Whether the process that wrote the journal still runs (same pid, same start time; not a zombie)."""
    import psutil

    if run_rec is None or not isinstance(run_rec.get("pid"), int):
        return False
    try:
        proc = psutil.Process(int(run_rec["pid"]))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        started = run_rec.get("pid_started")
        return not isinstance(started, int | float) or abs(proc.create_time() - float(started)) < 1.0
    except psutil.Error:
        return False


@dataclass(frozen=True)
class Rejudged:
    status: str  # "rejudged" | "running" | "nothing"
    windows: tuple[Window, ...] = ()
    message: str = ""


def rejudge_killed(run_dir: Path, reports: Path | None = None) -> Rejudged:
    """Re-judge ``run_dir`` if its harness was killed mid-run (results.json not complete and the run's
    journal has a scenario it lacks, or no verdicts at all); writes results.json back, validated."""
    from harness.results.validate import validate_results
    from harness.results.writer import iso_now
    from harness.run.finalize import find_baseline
    from harness.slo.judge import judge_run
    from harness.slo.spec import load_spec

    path = run_dir / "results.json"
    doc = orjson.loads(path.read_bytes())
    if doc.get("status") == "complete":
        return Rejudged("nothing")
    read = load_journal(run_dir)
    if read is None:
        return Rejudged("nothing", message=f"no {JOURNAL_NAME}: nothing to rebuild")
    folded = fold(read.records, read.skipped)
    if writer_alive(folded.run):
        pid = folded.run.get("pid") if folded.run else "?"
        return Rejudged("running", message=f"the run is still going (harness pid {pid}): rendered as written so far")
    scenarios, windows, skipped = rebuild(doc, run_dir, "killed")
    if not scenarios and doc.get("verdicts"):
        return Rejudged("nothing")
    doc = {**doc, "status": "interrupted", "scenarios": [*doc.get("scenarios", []), *scenarios]}
    baseline = find_baseline(reports or run_dir.parent, run_dir, str(doc.get("profile")), None)
    # The run's own --slo file is not recorded in the results; the shipped SLO tables judge it.
    verdicts = judge_run(doc, load_spec(None), baseline=baseline)
    doc["verdicts"] = annotate(verdicts, windows, "killed")
    doc["x_rejudged"] = {"cause": "killed", "at": iso_now(), "source": JOURNAL_NAME,
                         "windows": [w.to_json() for w in windows], "skipped_lines": skipped,
                         "note": summary_note(windows, "killed")}
    validate_results(doc, str(path))
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    os.replace(tmp, path)
    return Rejudged("rejudged", tuple(windows), summary_note(windows, "killed"))
