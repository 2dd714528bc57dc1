"""PNG plots for the reports (matplotlib, Agg canvas; no pyplot global state).

A thin shell over ``views``: every function takes prepared arrays, draws one figure and writes one
PNG. Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas directly, so rendering is
thread-safe, needs no display and leaves no open figures behind. Sizes and DPI are chosen so a full
run page renders in a few seconds on a small machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

from harness.report import histograms as H
from harness.report.format import sig
from harness.report.views import OpView, ResourcePanel, ThroughputView, log_bins
from harness.results import Annotation

DPI = 96
BLUE, ORANGE, GREEN, RED, PURPLE, GREY = "#1f6feb", "#d97706", "#15803d", "#b91c1c", "#7c3aed", "#6b7280"
TEAL, BROWN, PINK, OLIVE = "#0f766e", "#92400e", "#db2777", "#65a30d"
SERIES_COLOURS = (BLUE, GREEN, PURPLE, RED, ORANGE, TEAL, BROWN, PINK, OLIVE, GREY)
SPECTRUM_TICKS = (2.0, 10.0, 100.0, 1000.0, 10000.0)
SPECTRUM_LABELS = ("50%", "90%", "99%", "99.9%", "99.99%")


def _figure(width: float, height: float, **margins: float) -> Figure:
    # Fixed margins rather than constrained layout: the layout solver was half of the render time.
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    adjust = {"left": 0.065, "right": 0.985, "bottom": 0.16, "top": 0.9, "wspace": 0.3, "hspace": 0.5}
    adjust.update(margins)
    fig.subplots_adjust(**adjust)
    return fig


def _style(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, which="major", color="#e5e7eb", linewidth=0.8)
    # Minor ticks on log axes cost more render time than they add readability here.
    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_locator(NullLocator())
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Light PNG compression: files stay small enough and saving is ~40% faster than the default level.
    fig.savefig(path, dpi=DPI, facecolor="white", pil_kwargs={"compress_level": 1})
    return path


ANNOTATION_CHARS = 34


def _annotate(ax: Axes, annotations: Sequence[Annotation]) -> None:
    """Dotted lines at scenario events; events at the same time share one label, cut to fit the axes
    (the page's event table has the full text)."""
    merged: dict[float, list[str]] = {}
    for a in annotations:
        merged.setdefault(a.t, []).append(a.label)
    for t, labels in merged.items():
        text = " · ".join(labels)
        if len(text) > ANNOTATION_CHARS:
            text = text[: ANNOTATION_CHARS - 1] + "…"
        ax.axvline(t, color=GREY, linestyle=":", linewidth=0.9)
        ax.annotate(text, xy=(t, 1.0), xycoords=("data", "axes fraction"), xytext=(2, -2),
                    textcoords="offset points", rotation=90, va="top", ha="left", fontsize=6.5, color=GREY)


def _log_axis(ax: Axes, which: str) -> None:
    """Log scale with 1-2-5 ticks labelled as plain numbers (decades alone leave narrow ranges unlabelled)."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    lo, hi = ax.get_ylim() if which == "y" else ax.get_xlim()
    wide = lo > 0 and hi / lo > 300  # beyond ~2.5 decades 1-2-5 ticks would collide
    axis.set_major_locator(LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: sig(v, 2)))


def spectrum_axes(ax: Axes) -> None:
    """HdrHistogram-style percentile axis: x = 1/(1-p) on a log scale, labelled as percentiles."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(SPECTRUM_TICKS))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: _spectrum_label(x)))
    ax.set_xlim(1.0, 10_000.0)


def _spectrum_label(x: float) -> str:
    for tick, label in zip(SPECTRUM_TICKS, SPECTRUM_LABELS, strict=True):
        if abs(x - tick) / tick < 1e-6:
            return label
    return ""


def _spectrum(ax: Axes, d: H.Dense | None, label: str, colour: str, style: str = "-") -> None:
    if d is None or d.total == 0:
        return
    x, y = H.spectrum_ms(d)
    ax.plot(x, y, style, color=colour, linewidth=1.6, label=label, drawstyle="steps-post")


def _targets(ax: Axes, targets: Sequence[tuple[float, float, str]]) -> None:
    """SLO percentile targets as red diamonds on the spectrum: a curve passing above one misses it."""
    for x, y, label in targets:
        ax.plot([x], [y], marker="D", markersize=5, color=RED, linestyle="none")
        ax.annotate(label, xy=(x, y), xytext=(4, 3), textcoords="offset points", fontsize=6.5, color=RED)


def latency_figure(
    view: OpView,
    annotations: Sequence[Annotation],
    path: Path,
    targets: Sequence[tuple[float, float, str]] = (),
) -> Path:
    """Three panels for one operation: distribution, percentile spectrum, p50/p99 over time.

    ``targets`` are (1/(1-p), latency ms, label) points drawn on the spectrum, e.g. the p99 target.
    """
    fig = _figure(12.6, 3.2, left=0.045, right=0.975, bottom=0.15)
    ax_h, ax_s, ax_t = fig.subplots(1, 3)
    if view.corrected is not None and view.corrected.total:
        edges, counts = log_bins(view.corrected)
        ax_h.stairs(counts, edges, fill=True, color=BLUE, alpha=0.35, label=view.keys.corrected_label)
        ax_h.stairs(counts, edges, color=BLUE, linewidth=1.0)
        if view.service is not None and view.service.total:
            s_edges, s_counts = log_bins(view.service)
            ax_h.stairs(s_counts, s_edges, color=ORANGE, linewidth=1.2, label=view.keys.service_label)
        _log_axis(ax_h, "x")
        ax_h.legend(fontsize=7, frameon=False)
    elif view.service is not None and view.service.total:  # only a service time (a closed-loop tool)
        s_edges, s_counts = log_bins(view.service)
        ax_h.stairs(s_counts, s_edges, color=ORANGE, linewidth=1.2, label=view.keys.service_label)
        _log_axis(ax_h, "x")
        ax_h.legend(fontsize=7, frameon=False)
    _style(ax_h, "Latency distribution", "latency (ms, log)", "operations")
    _spectrum(ax_s, view.corrected, view.keys.corrected_label, BLUE)
    _spectrum(ax_s, view.service, view.keys.service_label, ORANGE, "--")
    _targets(ax_s, targets)
    spectrum_axes(ax_s)
    _log_axis(ax_s, "y")
    _style(ax_s, "Percentile spectrum", "percentile", "latency (ms, log)")
    if ax_s.lines:
        ax_s.legend(fontsize=7, frameon=True, framealpha=0.85, edgecolor="none", loc="best")
    if view.t.size:
        ax_t.plot(view.t, view.p99, color=PURPLE, linewidth=1.2, label="p99")
        ax_t.plot(view.t, view.p50, color=GREEN, linewidth=1.2, label="p50")
        _log_axis(ax_t, "y")
        ax_t.legend(fontsize=7, frameon=True, framealpha=0.85, edgecolor="none", loc="best")
    _annotate(ax_t, annotations)
    _style(ax_t, "Latency over time (per interval)", "seconds from scenario start", "latency (ms, log)")
    return _save(fig, path)


def throughput_figure(view: ThroughputView, annotations: Sequence[Annotation], path: Path) -> Path:
    fig = _figure(12.6, 3.0, left=0.06, right=0.86)
    ax = fig.subplots()
    for colour, (name, rate) in zip(SERIES_COLOURS, view.rates.items(), strict=False):
        # "sent" is drawn wide and pale so "ok" on top of it stays visible when they coincide.
        wide = name == "sent"
        ax.plot(view.t, rate, color=colour, linewidth=4.0 if wide else 1.3, alpha=0.35 if wide else 1.0,
                label=f"{name}/s")
    if view.target is not None and view.t.size:
        ax.plot(view.t, view.target, color=GREY, linestyle="--", linewidth=1.2, label="target rate (schedule)",
                drawstyle="steps-mid")
    _annotate(ax, annotations)
    _style(ax, "Throughput per interval", "seconds from scenario start", "per second")
    if ax.lines:
        ax.legend(fontsize=7.5, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def resources_figure(panels: Sequence[ResourcePanel], annotations: Sequence[Annotation], path: Path) -> Path:
    fig = _figure(12.6, 4.8, left=0.06, bottom=0.1, top=0.93, hspace=0.55, wspace=0.18)
    axes = fig.subplots(2, 2).ravel()
    for ax, p in zip(axes, panels, strict=False):
        if p.t.size:
            ax.plot(p.t, p.values, color=BLUE, linewidth=1.3, label="measured")
            top = float(np.nanmax(p.values)) if p.values.size else 0.0
            # Limit lines far above the data would squash it flat: show them only when near.
            off_scale_y = 0.95
            for level, value, colour in (("target", p.target, GREEN), ("maximum", p.maximum, RED)):
                if value is not None and value <= max(top * 3.0, 1e-9):
                    ax.axhline(value, color=colour, linestyle="--", linewidth=1.1, label=f"{level} {value:g} {p.unit}")
                elif value is not None:
                    ax.annotate(f"{level} {value:g} {p.unit} (off scale)", xy=(0.99, off_scale_y),
                                xycoords="axes fraction", ha="right", va="top", fontsize=7, color=colour)
                    off_scale_y -= 0.09
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=7, frameon=False, loc="lower right")
        else:
            ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", va="center", color=GREY)
        _annotate(ax, annotations)
        _style(ax, p.title, "seconds from scenario start", p.unit)
    return _save(fig, path)


@dataclass(frozen=True)
class SpectrumPair:
    label: str
    colour: str
    corrected: H.Dense | None
    service: H.Dense | None


def compare_spectrum_figure(title: str, pairs: Sequence[SpectrumPair], path: Path) -> Path:
    """Base and head percentile spectra of one operation on the same axes."""
    fig = _figure(6.2, 3.4, left=0.11, right=0.95, bottom=0.15)
    ax = fig.subplots()
    for p in pairs:
        _spectrum(ax, p.corrected, f"{p.label} corrected", p.colour)
        _spectrum(ax, p.service, f"{p.label} service", p.colour, ":")
    spectrum_axes(ax)
    _log_axis(ax, "y")
    _style(ax, title, "percentile", "latency (ms, log)")
    if ax.lines:
        ax.legend(fontsize=7, frameon=False, loc="upper left")
    return _save(fig, path)


@dataclass(frozen=True)
class TrendSeries:
    label: str
    x: Sequence[int]
    values: Sequence[float]
    lo: Sequence[float]
    hi: Sequence[float]
    threshold: float | None


def trend_figure(title: str, unit: str, run_labels: Sequence[str], series: Sequence[TrendSeries], path: Path) -> Path:
    """One SLO row across runs (oldest left): value with CI error bars, thresholds dashed."""
    fig = _figure(6.2, 3.2, left=0.12, bottom=0.3)
    ax = fig.subplots()
    for colour, s in zip(SERIES_COLOURS, series, strict=False):
        v = np.asarray(s.values, dtype=np.float64)
        err = np.vstack([v - np.asarray(s.lo), np.asarray(s.hi) - v])
        ax.errorbar(s.x, v, yerr=np.clip(err, 0, None), color=colour, marker="o", markersize=3.5, linewidth=1.1,
                    capsize=3, label=s.label)
        if s.threshold is not None:
            ax.axhline(s.threshold, color=colour, linestyle="--", linewidth=0.8, alpha=0.7)
    ax.set_xticks(range(len(run_labels)))
    ax.set_xticklabels(run_labels, rotation=30, ha="right", fontsize=7)
    _style(ax, title, "run (oldest → newest)", unit)
    if series:
        ax.legend(fontsize=7, frameon=False)
    return _save(fig, path)
