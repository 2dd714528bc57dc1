"""After the scenarios: judge every SLO row, write the reports, choose the exit code."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from harness.results.writer import ResultsWriter

if TYPE_CHECKING:
    from harness.run.options import RunOptions

EXIT_PASS, EXIT_FAIL, EXIT_INCONCLUSIVE = 0, 1, 2


def find_baseline(out: Path, run_dir: Path, profile: str, explicit: Path | None) -> dict[str, Any] | None:
    """The explicit baseline, else the newest complete earlier run of the same profile."""
    if explicit is not None:
        path = explicit / "results.json" if explicit.is_dir() else explicit
        return dict(orjson.loads(path.read_bytes()))
    candidates = sorted((p for p in out.glob("*/results.json") if p.parent != run_dir), reverse=True)
    for path in candidates:
        try:
            doc = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        has_sustained = any(s.get("id") == "sustained" for s in doc.get("scenarios", []))
        if doc.get("status") == "complete" and doc.get("profile") == profile and has_sustained:
            return dict(doc)
    return None


def exit_code(verdicts: list[dict[str, Any]]) -> int:
    kinds = {v["verdict"] for v in verdicts}
    if "fail" in kinds:
        return EXIT_FAIL
    if "inconclusive" in kinds:
        return EXIT_INCONCLUSIVE
    return EXIT_PASS


def finalize(writer: ResultsWriter, opts: RunOptions, status: str) -> None:
    """Judge and report whatever was measured, even for an interrupted run."""
    from harness.run.faultsrun import record_faults
    from harness.run.ledgercheck import record_ledger
    from harness.slo.judge import judge_run
    from harness.slo.spec import load_spec

    record_faults(writer)  # what the fault proxy injected, if the run used it
    record_ledger(writer)  # the bot's ledger reconciled against the chain, per bot session
    windows = recover_partial(writer) if status != "complete" else []
    baseline = find_baseline(opts.out, writer.run_dir, writer.run.profile, opts.baseline)
    if baseline is not None:
        writer.set_condition("baseline_run", baseline.get("run_id"))
    verdicts = judge_run(writer.doc, load_spec(opts.slo), baseline=baseline)
    if windows:
        from harness.run.rejudge import annotate

        verdicts = annotate(verdicts, windows, "interrupted")
    writer.set_verdicts(verdicts)
    writer.finish(status)
    render(writer.run_dir, opts.out)


def recover_partial(writer: ResultsWriter) -> list[Any]:
    """The scenario that was running when the run stopped, rebuilt from its checkpoints (harness.run.rejudge)."""
    from harness.results.journal import JOURNAL_NAME
    from harness.run.rejudge import rebuild, summary_note

    scenarios, windows, skipped = rebuild(writer.doc, writer.run_dir, "interrupted")
    for scn in scenarios:
        writer.upsert_scenario(scn)
    if windows:
        writer.set_extension("x_rejudged", {"cause": "interrupted", "source": JOURNAL_NAME,
                                            "windows": [w.to_json() for w in windows], "skipped_lines": skipped,
                                            "note": summary_note(windows, "interrupted")})
    return list(windows)


def render(run_dir: Path, out: Path) -> Path:
    from harness.report import render_from_results, write_history

    page = Path(render_from_results(run_dir))
    write_history(out)
    return page
