"""Run history: ``reports/index.html``, every run found under ``reports/*/results.json``.

A table of runs, newest first, with status and verdict counts, and one trend plot per SLO row:
each stat/scenario of the row as a series across runs with its confidence interval as error bars and
its threshold dashed. Folders whose results.json is unreadable or invalid are listed with the reason
instead of being skipped silently. Comparison folders (``compare-*``) have no results.json and are
listed as comparisons.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from harness.report import plots
from harness.report.html import environment, generated_at, slug
from harness.results import SLO_ROWS, ResultsError, Run, load_results, sorted_verdicts

MAX_TREND_RUNS = 30


@dataclass(frozen=True)
class RunEntry:
    run: Run
    folder: str
    has_page: bool
    started: datetime


@dataclass(frozen=True)
class TrendBlock:
    table: str
    row: str
    image: str


def _started(run: Run) -> datetime:
    return datetime.fromisoformat(run.started_at.replace("Z", "+00:00"))


def scan(reports_dir: Path) -> tuple[list[RunEntry], list[tuple[str, str]]]:
    """Runs under ``reports_dir`` newest first, and (folder, problem) for folders that could not be read."""
    runs: list[RunEntry] = []
    broken: list[tuple[str, str]] = []
    for path in sorted(reports_dir.glob("*/results.json")):
        folder = path.parent.name
        try:
            run = load_results(path)
        except ResultsError as exc:
            broken.append((folder, "; ".join(exc.problems[:3]) + (" ..." if len(exc.problems) > 3 else "")))
            continue
        runs.append(RunEntry(run, folder, (path.parent / "index.html").exists(), _started(run)))
    runs.sort(key=lambda e: e.started, reverse=True)
    return runs, broken


def _trends(entries: list[RunEntry], plot_dir: Path) -> list[TrendBlock]:
    chrono = list(reversed(entries[:MAX_TREND_RUNS]))
    labels = [e.run.run_id for e in chrono]
    by_row: dict[tuple[str, str], dict[str, plots.TrendSeries]] = defaultdict(dict)
    units: dict[tuple[str, str], str] = {}
    raw: dict[tuple[str, str], dict[str, list[tuple[int, float, float, float, float | None]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for x, e in enumerate(chrono):
        for v in sorted_verdicts(e.run.verdicts):
            if v.value is None:
                continue
            lo, hi = v.ci if v.ci is not None else (v.value, v.value)
            name = f"{v.stat} [{v.scenario}]" if v.scenario else v.stat
            raw[(v.table, v.row)][name].append((x, v.value, lo, hi, v.threshold.value))
            units[(v.table, v.row)] = v.unit
    for key, series in raw.items():
        for name, pts in series.items():
            by_row[key][name] = plots.TrendSeries(
                label=name,
                x=[p[0] for p in pts],
                values=[p[1] for p in pts],
                lo=[p[2] for p in pts],
                hi=[p[3] for p in pts],
                threshold=pts[-1][4],
            )
    rank = {r: i for i, r in enumerate(SLO_ROWS)}
    out = _cpu_trend(chrono, labels, plot_dir)
    for key in sorted(by_row, key=lambda k: (rank.get(k, len(rank)), k)):
        table, row = key
        name = f"trend-{slug(table)}-{slug(row)}.png"
        plots.trend_figure(f"{row} ({table})", units[key], labels, list(by_row[key].values()), plot_dir / name)
        out.append(TrendBlock(table, row, f"history-plots/{name}"))
    return out


def _cpu_trend(chrono: list[RunEntry], labels: list[str], plot_dir: Path) -> list[TrendBlock]:
    """The bot's CPU per trade across runs, one series per trading scenario (no target: a figure)."""
    pts: dict[str, list[tuple[int, float, float, float]]] = defaultdict(list)
    for x, e in enumerate(chrono):
        for scn in e.run.scenarios:
            fig = scn.cpu_per_trade
            if fig is None:
                continue
            lo, hi = fig.ci_us if fig.ci_us is not None else (fig.value_us, fig.value_us)
            pts[scn.id].append((x, fig.value_us, lo, hi))
    if not pts:
        return []
    series = [plots.TrendSeries(label=f"CPU per trade [{sid}]", x=[p[0] for p in ps], values=[p[1] for p in ps],
                                lo=[p[2] for p in ps], hi=[p[3] for p in ps], threshold=None)
              for sid, ps in sorted(pts.items())]
    name = "trend-figures-bot-cpu-per-trade.png"
    plots.trend_figure("bot_cpu_per_trade (figures)", "µs", labels, series, plot_dir / name)
    return [TrendBlock("figures", "bot_cpu_per_trade", f"history-plots/{name}")]


def render_history(reports_dir: Path) -> Path:
    """Write ``reports_dir/index.html`` (and ``history-plots/``); returns the page's path."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    entries, broken = scan(reports_dir)
    plot_dir = reports_dir / "history-plots"
    plot_dir.mkdir(exist_ok=True)
    for old in plot_dir.glob("*.png"):
        old.unlink()
    comparisons = sorted(p.parent.name for p in reports_dir.glob("compare-*/index.html"))
    html = environment().get_template("history.html.j2").render(
        entries=entries,
        broken=broken,
        trends=_trends(entries, plot_dir),
        comparisons=comparisons,
        max_trend_runs=MAX_TREND_RUNS,
        generated=generated_at(),
    )
    out = reports_dir / "index.html"
    out.write_text(html, encoding="utf-8")
    return out
