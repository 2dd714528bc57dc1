"""Garbage collection and py-spy profiles per scenario, for the run page (pure: reads ``harness.results``).

GC figures come from the bot's own counters and its ``gc_pause`` histogram (``bot.telemetry.gcwatch``),
carried into each scenario's intervals by ``harness.run.collect``, over the scenario's whole window (its
schedule and drain: the seconds its intervals cover). The share of wall time is the summed pauses over
that window: the part of the bot's time its event loop could not run because the collector did.
The p99 pause per generation comes from ``gc_pause.gen0`` .. ``gc_pause.gen2``.

Overlap with the latency tail (``GcOverlap``): the bot records each sample of a judged latency operation
that overlapped a collection pausing ``LONG_PAUSE_NS`` (1 ms) or more again under ``<op>.gc_overlap``
(``bot.telemetry.gcclock``). Over the scenario, the samples at or above the operation's p99 (the merged
histogram's p99 bucket and above, so to its 0.1% resolution) are counted, and of those the ones that
overlapped: the same buckets of the overlap histogram, which holds a subset of the same values. A
collector pause that sat inside most of the slowest 1% is a cause of the p99; one in a few of them, as in
the rest of the samples, is not.

A scenario profiled with ``harness run --profile-bot`` carries ``summary.profile`` (``harness.run.profiling``):
its page, flame graph and the top functions by self time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.telemetry.gcclock import GC_PAUSE_GEN_OPS, GC_PAUSE_OP, LONG_PAUSE_NS, overlap_op
from bot.telemetry.gcwatch import COLLECTIONS, CPU_US, GENERATIONS, PAUSE_US
from harness.results import LATENCY_OPERATIONS, Run, Scenario
from harness.stats.histograms import IntArray, bucket_highest, counts_array, merge_encoded, target_rank

LONG_PAUSE_MS = LONG_PAUSE_NS / 1e6
TAIL_PERCENTILE = 99.0


@dataclass(frozen=True)
class GcOverlap:
    """One latency operation's samples in a scenario against the collector's long pauses."""

    op: str
    samples: int
    overlapped: int  # samples that overlapped a pause >= LONG_PAUSE_MS
    p99_ms: float
    tail: int  # samples at or above the p99 (its bucket and above)
    tail_overlapped: int  # those of them that overlapped a long pause

    def __repr__(self) -> str:
        return (f"<GcOverlap {self.op} p99={self.p99_ms:.3g} ms tail {self.tail_overlapped}/{self.tail} "
                f"all {self.overlapped}/{self.samples}>")

    @property
    def tail_share(self) -> float | None:
        return self.tail_overlapped / self.tail if self.tail else None

    @property
    def share(self) -> float | None:
        return self.overlapped / self.samples if self.samples else None

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "samples": self.samples, "overlapped": self.overlapped, "share": self.share,
                "p99_ms": self.p99_ms, "tail": self.tail, "tail_overlapped": self.tail_overlapped,
                "tail_share": self.tail_share}


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
    gen_p99_ms: tuple[float | None, ...] = (None, None, None)  # None: no pause of that generation (or an older bot)
    overlap: tuple[GcOverlap, ...] = ()  # per latency operation; empty for a bot that did not record it

    def __repr__(self) -> str:
        return (f"<GcFigures {self.scenario} {self.seconds:.0f} s collections={self.collections} "
                f"p99_ms={self.p99_ms} gen_p99_ms={self.gen_p99_ms} overlap={list(self.overlap)}>")

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
                "cpu_share": self.cpu_share, "p99_ms_by_generation": list(self.gen_p99_ms),
                "long_pause_ms": LONG_PAUSE_MS, "overlap": [o.to_json() for o in self.overlap]}


def _counts(scn: Scenario, key: str) -> IntArray | None:
    """``key``'s histograms over the scenario merged, as bucket counts; None when it has none."""
    texts = [enc for iv in scn.intervals if (enc := iv.histograms.get(key))]
    return counts_array(merge_encoded(texts, where=f"{scn.id} {key}")) if texts else None


def tail_index(counts: IntArray, q_percent: float = TAIL_PERCENTILE) -> int:
    """Index of the bucket holding the ``q_percent`` percentile (hdrh's ``get_value_at_percentile``)."""
    cum = np.cumsum(counts)
    return int(np.searchsorted(cum, float(target_rank(q_percent, int(cum[-1]))), side="left"))


def overlap_figures(op: str, counts: IntArray, overlap: IntArray | None) -> GcOverlap | None:
    """``op``'s samples at or above its p99 and how many of them (and of all) overlapped a long pause."""
    n = int(counts.sum())
    if not n:
        return None
    i = tail_index(counts)
    ov = overlap if overlap is not None else np.zeros_like(counts)
    return GcOverlap(op, n, int(ov.sum()), int(bucket_highest(np.array([i]))[0]) / 1000,
                     int(counts[i:].sum()), int(ov[i:].sum()))


def _p99_ms(counts: IntArray | None) -> float | None:
    if counts is None or not counts.sum():
        return None
    return int(bucket_highest(np.array([tail_index(counts)]))[0]) / 1000


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
    gen = [_counts(scn, GC_PAUSE_GEN_OPS[g]) for g in GENERATIONS]
    overlaps = [_counts(scn, overlap_op(op)) for op in LATENCY_OPERATIONS]
    rows: list[GcOverlap] = []
    # A bot that splits pauses by generation also marks overlaps: no overlap histogram then means none overlapped.
    if any(c is not None for c in (*gen, *overlaps)):
        for op, ov in zip(LATENCY_OPERATIONS, overlaps, strict=True):
            counts = _counts(scn, op)
            row = overlap_figures(op, counts, ov) if counts is not None else None
            if row is not None:
                rows.append(row)
    return GcFigures(
        scn.id, seconds, tuple(collections), tuple(us / 1000 for us in pause_us), tuple(us / 1000 for us in cpu_us), n,
        merged.get_value_at_percentile(99) / 1000 if merged is not None and n else None,
        merged.get_max_value() / 1000 if merged is not None and n else None,
        tuple(_p99_ms(c) for c in gen), tuple(rows),
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
    rows = gc_rows(run)
    return {"gc": rows, "profiles": profile_rows(run), "long_pause_ms": LONG_PAUSE_MS,
            "overlap": [(f.scenario, o) for f in rows for o in f.overlap],
            "gc_freeze": freeze.get("gc_freeze"), "gc_threshold": freeze.get("gc_threshold")}
