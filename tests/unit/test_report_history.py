"""Run history: newest first, counts per run, unreadable folders listed, one trend plot per SLO row."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from harness.report import write_history
from harness.results import SLO_ROWS
from tests.unit.report_data import results


def _write(reports: Path, seed: int, status: str = "complete") -> str:
    doc = results(seed)
    doc["status"] = status
    doc["scenarios"] = []  # history reads verdicts only
    d = reports / doc["run_id"]
    d.mkdir(parents=True)
    (d / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    return str(doc["run_id"])


def test_history_lists_runs_newest_first_with_counts_and_broken_folders(tmp_path: Path) -> None:
    ids = [_write(tmp_path, s) for s in (1, 3, 2)]
    _write(tmp_path, 4, status="partial")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "results.json").write_text('{"schema_version": 1}', encoding="utf-8")
    html = write_history(tmp_path).read_text(encoding="utf-8")
    positions = [html.index(f'data-run="{i}"') for i in sorted(ids, reverse=True)]
    assert positions == sorted(positions)  # seeds map to start hours: a larger id is newer
    assert "status-partial" in html
    assert "garbage" in html and "required property" in html
    assert html.count('class="run-row"') == 4
    plots = sorted(p.name for p in (tmp_path / "history-plots").iterdir())
    assert len(plots) == len(SLO_ROWS)
    assert all(f"history-plots/{p}" in html for p in plots)


def test_empty_reports_folder_still_renders(tmp_path: Path) -> None:
    html = write_history(tmp_path / "reports").read_text(encoding="utf-8")
    assert "No run folders with a results.json were found." in html
    assert datetime.now(UTC).strftime("%Y-%m-%d") in html


def test_cpu_per_trade_is_trended_across_runs_with_its_ci(tmp_path: Path) -> None:
    for seed in (1, 2):
        doc = results(seed)
        # Keep one trading scenario (its summary carries cpu_per_trade), drop the heavy rest.
        doc["scenarios"] = [{**s, "intervals": s["intervals"][:2]} for s in doc["scenarios"] if s["id"] == "sustained"]
        d = tmp_path / doc["run_id"]
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    html = write_history(tmp_path).read_text(encoding="utf-8")
    png = tmp_path / "history-plots" / "trend-figures-bot-cpu-per-trade.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "history-plots/trend-figures-bot-cpu-per-trade.png" in html and "bot_cpu_per_trade" in html
