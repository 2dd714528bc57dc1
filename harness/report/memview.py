"""The run page's memory section: both leak signals, the sites that grew, memray's capture (pure but the plot).

Reads what the run recorded: the ``memory_leak`` verdicts' ``x_leak`` (slope, CI and minimum detectable
leak of RSS and of the heap, ``harness.slo.judge``), the judged scenario's resource samples
(``rss_bytes``, ``x_heap_bytes``, ``x_heap_blocks``: ``harness.run.heapseries``), its
``summary.heap_growth`` (the bot's allocation sites grown since the warm-up: ``bot.heapwatch``) and the
top-level ``x_memray`` (capture size per hour, flame graphs, what was still allocated at exit, and
memray's measured overhead).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.results import Run, Scenario

MB = 1e6
_TRIM = (re.compile(r"^.*/site-packages/"), re.compile(r"^.*/lib/python3\.\d+/"))


@dataclass(frozen=True)
class LeakSignal:
    stat: str  # rss_slope | heap_slope
    series: str  # rss | heap
    verdict: str
    slope_bph: float | None
    ci_bph: tuple[float, float] | None
    mde_bph: float | None  # the smallest growth this window calls a leak
    resolution_bph: float | None
    warmup_s: float | None
    analysed_s: float
    points: int


@dataclass(frozen=True)
class GrowthSite:
    where: str  # file:line, shortened
    path: str  # as the bot reported it
    stack: tuple[str, ...]
    bytes_grown: int
    count_grown: int
    bytes_now: int
    bytes_per_hour: float | None


@dataclass(frozen=True)
class Growth:
    baseline_t: float | None  # seconds from the scenario's start
    t: float | None
    span_s: float
    frames: int
    sites: tuple[GrowthSite, ...]
    sites_grown: int
    snapshot_ms: float | None
    traced_growth_bytes: int | None
    error: str | None = None


@dataclass(frozen=True)
class MemorySection:
    scenario: str
    heap_source: str
    signals: tuple[LeakSignal, ...]
    growth: Growth | None
    plot: str | None
    memray: Mapping[str, Any] | None
    trace_cost: str | None = None  # what tracing the heap cost, measured (when the bot traced it)

    @staticmethod
    def rate(x: float | None) -> str:
        return fmt_rate(x)

    @staticmethod
    def size(x: float | None) -> str:
        return fmt_bytes(x)


def short_path(path: str, root: str | None = None) -> str:
    """A site's file as a reader knows it: relative to a package, the standard library or the project."""
    for pattern in _TRIM:
        trimmed = pattern.sub("", path)
        if trimmed != path:
            return trimmed
    if root and path.startswith(root.rstrip("/") + "/"):
        return path[len(root.rstrip("/")) + 1:]
    return path


def fmt_bytes(x: float | None, per: str = "") -> str:
    """``4.75 GB/h``, ``8.2 MB``, ``120 kB/h`` (10^3 steps, as the SLO tables' MB); n/a for None."""
    if x is None or not math.isfinite(x):
        return "n/a"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}{per}"
    return f"{x:.3g} B{per}"


def fmt_rate(x: float | None) -> str:
    return fmt_bytes(x, "/h")


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def leak_signals(run: Run) -> tuple[str | None, tuple[LeakSignal, ...]]:
    """The judged scenario and each memory_leak verdict's signal, RSS first."""
    out: list[LeakSignal] = []
    scenario = None
    for v in run.verdicts:
        x = v.extra.get("x_leak") if v.row == "memory_leak" else None
        if not isinstance(x, Mapping):
            continue
        scenario = scenario or v.scenario
        ci = x.get("ci_bph")
        out.append(LeakSignal(v.stat, str(x.get("series", "?")), v.verdict, _num(x.get("slope_bph")),
                              (float(ci[0]), float(ci[1])) if isinstance(ci, list) and len(ci) == 2 else None,
                              _num(x.get("mde_bph")), _num(x.get("resolution_bph")), _num(x.get("warmup_s")),
                              _num(x.get("analysed_s")) or 0.0, int(x.get("points") or 0)))
    out.sort(key=lambda s: s.series != "rss")
    return scenario, tuple(out)


def growth_of(summary: Mapping[str, Any], root: str | None = None) -> Growth | None:
    g = summary.get("heap_growth")
    if not isinstance(g, Mapping):
        return None
    if "sites" not in g:
        return Growth(None, None, 0.0, 0, (), 0, None, None, str(g.get("error", "no growth table")))
    span = _num(g.get("span_s")) or 0.0
    sites = []
    for s in g.get("sites") or []:
        if not isinstance(s, Mapping):
            continue
        grown = int(s.get("bytes_grown") or 0)
        path = str(s.get("file", "?"))
        sites.append(GrowthSite(f"{short_path(path, root)}:{s.get('line', '?')}", path,
                                tuple(short_path(str(x), root) for x in s.get("stack") or ()), grown,
                                int(s.get("count_grown") or 0), int(s.get("bytes_now") or 0),
                                grown / (span / 3600.0) if span > 0 else None))
    before, now = _num(g.get("traced_bytes_baseline")), _num(g.get("traced_bytes_now"))
    return Growth(_num(g.get("baseline_t")), _num(g.get("t")), span, int(g.get("frames") or 0), tuple(sites),
                  int(g.get("sites_grown") or len(sites)), _num(g.get("snapshot_ms")),
                  int(now - before) if now is not None and before is not None else None)


def heap_source(run: Run) -> str:
    debug = run.conditions.get("bot", {}).get("debug", {}) if isinstance(run.conditions.get("bot"), Mapping) else {}
    frames = debug.get("heap_trace_frames") if isinstance(debug, Mapping) else None
    if isinstance(frames, int) and frames > 0:
        return (f"tracemalloc's traced bytes ({frames} frame{'s' if frames > 1 else ''}; "
                f"debug.heap_trace_frames), beside sys.getallocatedblocks()")
    return ("sys.getallocatedblocks() only: the bot did not trace its heap (debug.heap_trace_frames = 0), "
            "so no heap bytes")


def _column(scn: Scenario, key: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    pts = [(r.t, float(r.rss_bytes) if key == "rss_bytes" else float(r.extra[key])) for r in scn.resources
           if key == "rss_bytes" or isinstance(r.extra.get(key), int | float)]
    arr = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def memory_figure(scn: Scenario, signals: Sequence[LeakSignal], path: Path) -> Path | None:
    """RSS and heap bytes (MB) with each one's fitted trend after warm-up; heap blocks beside them."""
    from harness.report import plots

    rss, heap, blocks = _column(scn, "rss_bytes"), _column(scn, "x_heap_bytes"), _column(scn, "x_heap_blocks")
    if not rss[0].size and not blocks[0].size:
        return None
    fig = plots._figure(12.6, 3.0, left=0.06, bottom=0.17, top=0.88, wspace=0.18)
    left, right = fig.subplots(1, 2)
    warm = {s.series: s.warmup_s for s in signals}
    for (t, v), name, colour in ((rss, "rss", plots.BLUE), (heap, "heap", plots.GREEN)):
        if not t.size:
            continue
        left.plot(t, v / MB, color=colour, linewidth=1.2, label="RSS" if name == "rss" else "heap (traced bytes)")
        w = warm.get(name)
        after = t >= t[0] + w if w is not None else np.zeros_like(t, dtype=bool)
        if int(after.sum()) >= 2:
            k, b = np.polyfit(t[after], v[after] / MB, 1)
            left.plot(t[after], k * t[after] + b, color=colour, linestyle="--", linewidth=1.0,
                      label=f"{'RSS' if name == 'rss' else 'heap'} trend {k * 3600:.3g} MB/h")
    first = [s.warmup_s for s in signals if s.warmup_s is not None]
    if first and rss[0].size:
        left.axvspan(float(rss[0][0]), float(rss[0][0]) + first[0], color="#f3f4f6", label="warm-up (not judged)")
    left.set_ylim(bottom=0)
    left.legend(fontsize=7, frameon=False, loc="lower right")
    plots._style(left, "Memory: RSS and the Python heap", "seconds from scenario start", "MB")
    if blocks[0].size:
        right.plot(blocks[0], blocks[1] / 1000, color=plots.PURPLE, linewidth=1.2)
    else:
        right.text(0.5, 0.5, "not measured", transform=right.transAxes, ha="center", va="center", color=plots.GREY)
    plots._style(right, "Live heap blocks (sys.getallocatedblocks)", "seconds from scenario start", "thousands")
    return plots._save(fig, path)


def memory_section(run: Run, plot_dir: Path, root: str | None = None) -> MemorySection | None:
    """The section, or None when the run judged no memory signal and has no growth table or memray capture."""
    sid, signals = leak_signals(run)
    memray = run.extra.get("x_memray")
    scn = run.scenario(sid) if sid else None
    if scn is None:
        scn = next((s for s in run.scenarios if "heap_growth" in s.summary or s.id == "soak"), None)
    if scn is None and not isinstance(memray, Mapping):
        return None
    growth = growth_of(scn.summary, root) if scn is not None else None
    if not signals and growth is None and not isinstance(memray, Mapping):
        return None
    plot = None
    if scn is not None and scn.resources:
        name = f"memory-{re.sub(r'[^a-z0-9]+', '-', scn.id.lower())}.png"
        if memory_figure(scn, signals, plot_dir / name) is not None:
            plot = f"plots/{name}"
    from harness.run.heapgrowth import HEAP_TRACE_COST

    traced = heap_source(run).startswith("tracemalloc")
    return MemorySection(scn.id if scn is not None else (sid or "-"), heap_source(run), signals, growth, plot,
                         memray if isinstance(memray, Mapping) else None,
                         HEAP_TRACE_COST.text() if traced else None)
