"""The live dashboard's window arithmetic (pure, numpy): closed intervals as sparse bucket counts.

A closed interval's histograms are decoded once into ``Sparse`` bucket counts (a few hundred
buckets where the dense array has 17,408), so a window of ten intervals is re-read on every refresh
without decoding anything again. A window's percentile adds its intervals' sparse counts into one
dense array and reads the percentile with hdrh's own convention (``harness.stats.histograms``):
a figure here equals ``get_value_at_percentile`` of the merged histogram. Percentiles are never
averaged across intervals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from hdrh.histogram import HdrHistogram

from harness.stats.histograms import COUNTS_LEN, IntArray, bucket_highest, decode, target_rank

_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Sparse:
    """One histogram's non-zero buckets: counts-array ``index`` (ascending) and their ``counts``."""

    index: IntArray = field(default_factory=lambda: _EMPTY)
    counts: IntArray = field(default_factory=lambda: _EMPTY)

    def __repr__(self) -> str:
        return f"Sparse(samples={self.total}, buckets={len(self.index)})"

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @staticmethod
    def of(hist: HdrHistogram) -> Sparse:
        """A copy of ``hist``'s counts (so a live histogram may go on recording)."""
        raw = np.ctypeslib.as_array(hist.counts)[:COUNTS_LEN]
        nz = np.flatnonzero(raw)
        return Sparse(nz.astype(np.int64), raw[nz].astype(np.int64))


@dataclass(frozen=True)
class Closed:
    """One closed interval: ``key`` orders them (the bot's ``seq``, or a series' index); times in seconds."""

    key: int
    start: float
    end: float
    counters: Mapping[str, float]
    hists: Mapping[str, Sparse]


def decode_bot_interval(iv: Mapping[str, object], ops: Iterable[str]) -> Closed:
    """A ``/stats`` interval (docs/DESIGN.md), decoding only the histograms of ``ops`` (the totals, not tag slices)."""
    hists = iv.get("histograms")
    encoded: Mapping[str, str] = hists if isinstance(hists, Mapping) else {}
    counters = iv.get("counters")
    decoded = {op: Sparse.of(decode(encoded[op], where=f"interval {iv.get('seq')} {op}"))
               for op in ops if encoded.get(op)}
    return Closed(int(str(iv.get("seq", 0))), float(str(iv["start"])), float(str(iv["end"])),
                  dict(counters) if isinstance(counters, Mapping) else {}, decoded)


def from_series(index: int, hists: Mapping[str, HdrHistogram], counters: Mapping[str, int],
                keys: Iterable[str], interval_s: float = 1.0) -> Closed:
    """One interval of a live ``IntervalSeries`` (the generator's or the feed's), copied."""
    return Closed(index, index * interval_s, (index + 1) * interval_s, dict(counters),
                  {k: Sparse.of(hists[k]) for k in keys if k in hists})


def window(closed: Sequence[Closed], seconds: float) -> list[Closed]:
    """The newest intervals covering the last ``seconds`` up to the newest one's end (in order)."""
    if not closed:
        return []
    edge = closed[-1].end - seconds
    out = [c for c in reversed(closed) if c.end > edge + 1e-9]
    out.reverse()
    return out


def covered_s(win: Sequence[Closed]) -> float:
    return float(sum(c.end - c.start for c in win))


def total(win: Iterable[Closed], *names: str) -> float:
    return float(sum(float(c.counters.get(n, 0)) for c in win for n in names))


def per_second(win: Sequence[Closed], *names: str) -> float:
    span = covered_s(win)
    return total(win, *names) / span if span > 0 else 0.0


def dense(parts: Iterable[Sparse], into: IntArray | None = None) -> IntArray:
    """The parts' counts added into one full-length counts array (``into``, in place, if given)."""
    out = np.zeros(COUNTS_LEN, dtype=np.int64) if into is None else into
    for p in parts:
        out[p.index] += p.counts  # indices are unique within one part
    return out


def merged(win: Iterable[Closed], key: str) -> IntArray:
    return dense(c.hists[key] for c in win if key in c.hists)


def percentiles_us(counts: IntArray, qs: Sequence[float]) -> tuple[int, ...]:
    """hdrh's ``get_value_at_percentile`` for each of ``qs`` (percent), one cumulative sum for all; 0s if empty."""
    n = int(counts.sum())
    if n == 0:
        return tuple(0 for _ in qs)
    cum = np.cumsum(counts)
    idx = np.searchsorted(cum, target_rank(np.asarray(qs, dtype=np.float64), n), side="left")
    return tuple(int(v) for v in bucket_highest(np.asarray(idx, dtype=np.int64)))


def max_us(counts: IntArray) -> int:
    """hdrh's ``get_max_value``: the highest equivalent value of the highest non-empty bucket (0 if empty)."""
    nz = np.flatnonzero(counts)
    return int(bucket_highest(nz[-1:])[0]) if len(nz) else 0


def peak(win: Iterable[Closed], name: str) -> float | None:
    values = [float(c.counters[name]) for c in win if name in c.counters]
    return max(values) if values else None
