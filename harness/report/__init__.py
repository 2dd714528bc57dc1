"""Reports: results model and JSON Schema, JUnit, the run page, run history and run comparison.

Public API (all paths are folders under ``reports/``):

- ``write_run_report(results, run_dir)``: render ``index.html``, ``junit.xml`` and ``plots/`` for a
  results document (the harness writes ``results.json`` itself);
- ``render_from_results(run_dir)``: re-render a run, partial or not, from its ``results.json``;
- ``write_history(reports_dir)``: ``reports/index.html``, every run newest first plus trends;
- ``write_comparison(base_dir, head_dir, out_dir)``: a base-vs-head comparison page.

Invalid input raises ``harness.results.ResultsError`` (a ``HarnessError``) naming each problem's
place in the document.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.results import ResultsError, Run, load_results, parse_results, validate_results

__all__ = [
    "ResultsError",
    "Run",
    "load_results",
    "parse_results",
    "render_from_results",
    "validate_results",
    "write_comparison",
    "write_history",
    "write_run_report",
]


def write_run_report(results: Mapping[str, Any], run_dir: Path) -> Path:
    """Validate ``results`` and write the run page into ``run_dir``; returns the ``index.html`` path."""
    from harness.report.html import render_run

    return render_run(parse_results(results, str(run_dir / "results.json")), run_dir)


def render_from_results(run_dir: Path) -> Path:
    """Re-render ``run_dir/index.html`` (and junit.xml, plots) from ``run_dir/results.json``."""
    from harness.report.html import render_run

    return render_run(load_results(run_dir / "results.json"), run_dir)


def write_history(reports_dir: Path) -> Path:
    """Write ``reports_dir/index.html`` listing every run found under ``reports_dir/*/results.json``."""
    from harness.report.history import render_history

    return render_history(reports_dir)


def write_comparison(base_dir: Path, head_dir: Path, out_dir: Path | None = None, *,
                     noise: float | None = None) -> Path:
    """Compare two run folders; writes ``out_dir`` (default ``reports/compare-<base>-<head>``).

    ``noise``: smallest relative change to call, never below the run-to-run spread (harness.stats.noise)."""
    from harness.report.compare import render_comparison

    return render_comparison(base_dir, head_dir, out_dir, noise=noise)
