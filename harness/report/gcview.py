"""Garbage collection and py-spy profiles per scenario, for the run page (pure: reads ``harness.results``).

GC figures come from the bot's own counters and its ``gc_pause`` histogram (``bot.telemetry.gcwatch``),
carried into each scenario's intervals by ``harness.run.collect``, over the scenario's whole window (its
schedule and drain: the seconds its intervals cover). The share of wall time is the summed pauses over
that window: the part of the bot's time its event loop could not run because the collector did.

A scenario profiled with ``harness run --profile-bot`` carries ``summary.profile`` (``harness.run.profiling``):
its page, flame graph and the top functions by self time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.telemetry.gcwatch import COLLECTIONS, CPU_US, GC_PAUSE_OP, GENERATIONS, PAUSE_US
from harness.results import Run, Scenario
from harness.stats.histograms import merge_encoded


@dataclass(frozen=True)
class GcFigures:
    scenario: str
    seconds: float  # the window the figures cover
    collections: tuple[int, ...]  # per generation
    pause_ms: tuple[float, ...]  # total per generation
    cpu_ms: tuple[float, ...]  # the collector's CPU time per generation (a busy neighbour does not inflate it)
    pauses: int  # samples in the histogram (every generation)
    p99_ms: float | None
    max_ms: float | None

    @property
    def per_s(self) -> tuple[float, ...]:
        return tuple(n / self.seconds if self.seconds else 0.0 for n in self.collections)

    @property
    def mean_ms(self) -> tuple[float | None, ...]:
        return tuple(t / n if n else None for t, n in zip(self.pause_ms, self.collections, strict=True))

    @property
    def share(self) -> float | None:
        """Fraction of the window's wall time spent paused in collections."""
        return sum(self.pause_ms) / 1000 / self.seconds if self.seconds else None

    @property
    def cpu_share(self) -> float | None:
        """The collector's CPU time as a fraction of the window's wall time (of one core)."""
        return sum(self.cpu_ms) / 1000 / self.seconds if self.seconds else None

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "seconds": self.seconds, "collections": list(self.collections),
                "collections_per_s": [round(x, 3) for x in self.per_s], "pause_ms": list(self.pause_ms),
                "cpu_ms": list(self.cpu_ms), "p99_ms": self.p99_ms, "max_ms": self.max_ms, "share": self.share,
                "cpu_share": self.cpu_share}


def gc_figures(scn: Scenario) -> GcFigures | None:
    """None when the scenario's bot recorded no collector figures (an older bot, or an API-only scenario)."""
    collections = [0, 0, 0]
    pause_us = [0, 0, 0]
    cpu_us = [0, 0, 0]
    hists: list[str] = []
    seconds = 0.0
    for iv in scn.intervals:
        seconds += iv.duration
        for g in GENERATIONS:
            collections[g] += int(iv.counters.get(COLLECTIONS[g], 0))
            pause_us[g] += int(iv.counters.get(PAUSE_US[g], 0))
            cpu_us[g] += int(iv.counters.get(CPU_US[g], 0))
        enc = iv.histograms.get(GC_PAUSE_OP)
        if enc:
            hists.append(enc)
    if not hists and not any(collections):
        return None
    merged = merge_encoded(hists, where=f"{scn.id} {GC_PAUSE_OP}") if hists else None
    n = int(merged.get_total_count()) if merged is not None else 0
    return GcFigures(
        scn.id, seconds, tuple(collections), tuple(us / 1000 for us in pause_us), tuple(us / 1000 for us in cpu_us), n,
        merged.get_value_at_percentile(99) / 1000 if merged is not None and n else None,
        merged.get_max_value() / 1000 if merged is not None and n else None,
    )


def gc_rows(run: Run) -> list[GcFigures]:
    return [f for f in (gc_figures(s) for s in run.scenarios) if f is not None]


@dataclass(frozen=True)
class ProfileRow:
    scenario: str
    profile: Mapping[str, Any]  # summary.profile as the runner wrote it


def profile_rows(run: Run) -> list[ProfileRow]:
    return [ProfileRow(s.id, s.summary["profile"]) for s in run.scenarios
            if isinstance(s.summary.get("profile"), Mapping)]


def gc_section(run: Run) -> dict[str, Any]:
    """The run page's "Garbage collection and profiles" context."""
    freeze = (run.conditions.get("bot") or {}).get("engine", {})
    return {"gc": gc_rows(run), "profiles": profile_rows(run),
            "gc_freeze": freeze.get("gc_freeze"), "gc_threshold": freeze.get("gc_threshold")}
