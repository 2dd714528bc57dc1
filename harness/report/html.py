"""The run page: ``reports/<run-id>/index.html`` with its plots and ``junit.xml``.

Renders a parsed ``Run`` with Jinja2 templates shipped as package data. The page is self-contained
(CSS inlined, images are PNG files in ``plots/`` beside it, no CDN or script), so it works opened
from disk, attached to a CI job, or copied elsewhere. Section order follows what a reader needs
first: the verdicts, then the conditions they hold under, then the evidence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

import harness
from bot.redact import redact_text, redact_tree
from bot.telemetry.gcclock import is_auxiliary_op
from bot.telemetry.gcwatch import GC_PAUSE_OP
from harness.probes.calibration import CPU_REF_REPS, Calibration
from harness.report import format as F
from harness.report import plots
from harness.report.gcview import gc_section
from harness.report.junit import write_junit
from harness.report.memview import memory_section
from harness.report.travel import travel_rows
from harness.report.views import ceiling_context, describe_schedule, op_view, resource_panels, throughput_view
from harness.results import TABLE_ORDER, CarryOver, Run, Scenario, Verdict, sorted_verdicts

LATENCY_STATS: tuple[str, ...] = ("mean", "p50", "p95", "p99", "p99.9", "max")


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["value"] = F.fmt_value
    env.filters["num"] = F.fmt_number
    env.filters["ci"] = F.fmt_ci
    env.filters["margin"] = F.fmt_margin
    env.filters["duration"] = F.fmt_duration
    env.filters["more_time"] = F.fmt_more_time
    env.filters["ratio"] = F.fmt_ratio
    env.filters["rate"] = F.fmt_rate
    env.filters["schedule"] = describe_schedule
    env.filters["sig"] = F.sig
    env.globals["css"] = resources.files("harness.report").joinpath("templates/style.css").read_text("utf-8")
    env.globals["version"] = harness.__version__
    return env


def slug(text: str) -> str:
    """A file-name-safe form of a scenario or operation name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def generated_at() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class VerdictRow:
    table: str
    row: str
    stat: str
    scenario: str
    verdict: str  # pass | fail | inconclusive | missing
    v: Verdict | None
    context: str | None = None  # a throughput rate beside this machine's calibration


def verdict_rows(run: Run) -> list[VerdictRow]:
    """Every verdict in SLO order, plus a ``missing`` row for each SLO row that was not judged."""
    cal = run.calibration
    rows = [VerdictRow(v.table, v.row, v.stat, v.scenario or "", v.verdict, v, ceiling_context(v, cal))
            for v in sorted_verdicts(run.verdicts)]
    for table, row in run.missing_rows():
        rows.append(VerdictRow(table, row, "", "", "missing", None))
    rank = {t: i for i, t in enumerate(TABLE_ORDER)}
    return sorted(rows, key=lambda r: rank.get(r.table, len(rank)))


@dataclass(frozen=True)
class LatencyBlock:
    scenario: str
    count: int
    corrected: dict[str, float]
    service: dict[str, float]
    image: str
    corrected_label: str = "from intended start (corrected)"
    service_label: str = "from actual start (service)"
    corrected_key: str | None = None
    service_key: str | None = None
    judges_service: bool = False  # the operation's SLO row judges the service row, not the corrected one
    service_count: int = 0


@dataclass(frozen=True)
class ScenarioBlock:
    s: Scenario
    throughput_image: str | None
    resources_image: str | None
    health_ratio: float | None
    carry_over: str = "not recorded"


def carry_over_text(c: CarryOver | None, limit: int = 4) -> str:
    """``none``, or the largest carried-over operations and counters, e.g.
    ``trade_execution 120, tx_submission 118 samples; trades_ok 110``."""
    if c is None:
        return "not recorded"
    if c.empty:
        return "none"

    def top(items: dict[str, int], suffix: str) -> str:
        ranked = sorted(((k, n) for k, n in items.items() if n), key=lambda kv: (-kv[1], kv[0]))
        text = ", ".join(f"{k} {n:,}" for k, n in ranked[:limit])
        more = f" and {len(ranked) - limit} more" if len(ranked) > limit else ""
        return f"{text}{more}{suffix}" if ranked else ""

    ops = {k: n for k, n in c.histograms.items() if not is_auxiliary_op(k)}
    parts = [top(ops, " samples"), top(dict(c.counters), "")]
    text = "; ".join(p for p in parts if p)
    return text + (f" (from {', '.join(c.tags)})" if c.tags else "")


@dataclass(frozen=True)
class CalibrationRow:
    figure: str
    value: str
    spread: str
    how: str


def calibration_rows(cal: Calibration, mining: str) -> list[CalibrationRow]:
    def pm(x: float) -> str:
        return f"±{F.sig(x * 100, 2)}%" if math.isfinite(x) else "unknown"

    return [
        CalibrationRow("CPU reference", f"{F.sig(cal.cpu_ref_per_s / 1e6)}M it/s", pm(cal.cpu_ref_spread),
                       f"a fixed pure-Python loop, median of {CPU_REF_REPS} reps"),
        CalibrationRow("Signing", F.fmt_value(cal.sign_per_s, "tx/s"), pm(cal.sign_spread),
                       "the bot's default signer (inline, direct codec): build + sign"),
        CalibrationRow("Node ceiling", F.fmt_value(cal.node_accept_per_s, "tx/s"), pm(cal.node_accept_spread),
                       f"pre-signed transfers accepted, 64 in flight, the bot's HTTP client, mining {mining}"),
    ]


def _stats(view_stat: Any) -> dict[str, float]:
    return {s: view_stat(s) for s in LATENCY_STATS}


def spectrum_targets(run: Run, scenario: str, op: str) -> list[tuple[float, float, str]]:
    """Percentile thresholds judged for ``op`` in ``scenario`` as spectrum points (1/(1-p), ms, label)."""
    out = []
    for v in run.verdicts:
        if v.table != "latency" or v.row != op or v.scenario != scenario or not v.stat.startswith("p"):
            continue
        try:
            p = float(v.stat[1:])
        except ValueError:
            continue
        if 0 < p < 100:
            out.append((1.0 / (1.0 - p / 100.0), v.threshold.value, f"{v.stat} target"))
    return out


def _latency(run: Run, plot_dir: Path) -> dict[str, list[LatencyBlock]]:
    ops: dict[str, list[LatencyBlock]] = {}
    for scn in run.scenarios:
        for op in scn.operations():
            if op == GC_PAUSE_OP:
                continue  # its own section (gcprofile.html.j2): not a latency of the bot's work
            view = op_view(scn, op)
            name = f"latency-{slug(scn.id)}-{slug(op)}.png"
            plots.latency_figure(view, scn.annotations, plot_dir / name, spectrum_targets(run, scn.id, op))
            k = view.keys
            ops.setdefault(op, []).append(LatencyBlock(
                scn.id, view.count, _stats(view.stat), _stats(view.service_stat), f"plots/{name}",
                corrected_label=k.corrected_label, service_label=k.service_label, corrected_key=k.corrected,
                service_key=k.service, judges_service=k.judges_service, service_count=view.service_count,
            ))
    return ops


def _scenario_blocks(run: Run, plot_dir: Path) -> list[ScenarioBlock]:
    out = []
    for scn in run.scenarios:
        tp_img = res_img = None
        if scn.intervals:
            name = f"throughput-{slug(scn.id)}.png"
            plots.throughput_figure(throughput_view(scn), scn.annotations, plot_dir / name)
            tp_img = f"plots/{name}"
        if scn.resources:
            name = f"resources-{slug(scn.id)}.png"
            plots.resources_figure(resource_panels(scn, run.verdicts), scn.annotations, plot_dir / name)
            res_img = f"plots/{name}"
        health = scn.health_ok / scn.health_probes if scn.health_probes else None
        out.append(ScenarioBlock(scn, tp_img, res_img, health, carry_over_text(scn.carry_over)))
    return out


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested settings as ``a.b = value`` pairs for the conditions table."""
    if isinstance(obj, Mapping):
        out: list[tuple[str, str]] = []
        for k, v in obj.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(obj, float) and math.isfinite(obj):
        return [(prefix, F.sig(obj, 4))]
    if isinstance(obj, int) and not isinstance(obj, bool) and prefix.endswith("_bytes"):
        return [(prefix, F.fmt_number(float(obj), "bytes"))]
    return [(prefix, "n/a" if obj is None else str(obj))]


def render_run(run: Run, run_dir: Path) -> Path:
    """Write ``index.html``, ``junit.xml`` and ``plots/*.png`` for ``run`` into ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    plot_dir = run_dir / "plots"
    plot_dir.mkdir(exist_ok=True)
    for old in plot_dir.glob("*.png"):
        old.unlink()  # a re-render must not leave plots of scenarios that are no longer there
    cond = run.conditions
    cal = run.calibration
    mining = str(cond.get("node", {}).get("mining", "as recorded"))
    html = environment().get_template("run.html.j2").render(
        calibration=cal,
        calibration_rows=[] if cal is None else calibration_rows(cal, mining),
        behind=[s.id for s in run.scenarios if s.generator_behind],
        travel=travel_rows(run),
        run=run,
        counts=run.counts(),
        rows=verdict_rows(run),
        missing=run.missing_rows(),
        machine=flatten(cond.get("machine", {})),
        # Redacted again here: a page re-rendered from an older results.json may hold a key in a URL.
        node=flatten(redact_tree(cond.get("node", {}))),
        bot=flatten(redact_tree(cond.get("bot", {}))),
        other=[(k, redact_text(str(v))) for k, v in cond.items()
               if k not in ("machine", "node", "bot", "calibration")],
        latency=_latency(run, plot_dir),
        gcprofile=gc_section(run),
        memory=memory_section(run, plot_dir, str(Path(harness.__file__).resolve().parents[1])),
        stats=LATENCY_STATS,
        scenarios=_scenario_blocks(run, plot_dir),
        artifacts=list(run.artifacts.all()),
        generated=generated_at(),
    )
    out = run_dir / "index.html"
    out.write_text(html, encoding="utf-8")
    write_junit(run, run_dir / "junit.xml")
    return out
