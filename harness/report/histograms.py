"""Dense HdrHistogram arithmetic for the reports (pure; numpy).

The report needs many statistics over many interval histograms: merged percentiles, per-interval
p50/p99 series, percentile spectra and bootstrap replicates for comparisons. Doing this through
``hdrh``'s pure-Python iterators would take seconds; instead each decoded histogram becomes a dense
numpy count vector over the histogram's index space, and every statistic is a vectorised cumsum.

Values follow ``hdrh`` exactly: a percentile is the *highest equivalent value* of the bucket where the
cumulative count reaches ``round(p/100 * total)`` (at least 1), and the mean weights each bucket by its
*median equivalent value*. Values are microseconds in, milliseconds out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

from harness.results import ResultsError

Counts = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
US_PER_MS = 1000.0


@dataclass(frozen=True)
class Layout:
    """Per-index values of one histogram configuration (lowest, highest, significant figures)."""

    lowest: Floats
    highest: Floats
    median: Floats

    @property
    def size(self) -> int:
        return int(self.lowest.shape[0])


@cache
def layout(lowest_trackable: int, highest_trackable: int, sig_figs: int) -> Layout:
    """Index -> value tables for a histogram configuration, computed once (mirrors hdrh's arithmetic)."""
    h = HdrHistogram(lowest_trackable, highest_trackable, sig_figs)
    idx = np.arange(h.counts_len, dtype=np.int64)
    half_mag = h.sub_bucket_half_count_magnitude
    half = h.sub_bucket_half_count
    bucket = (idx >> half_mag) - 1
    sub = (idx & (half - 1)) + half
    first = bucket < 0
    sub = np.where(first, sub - half, sub)
    bucket = np.where(first, 0, bucket)
    low = sub << (bucket + h.unit_magnitude)
    width = np.left_shift(1, h.unit_magnitude + bucket)
    return Layout(
        lowest=low.astype(np.float64),
        highest=(low + width - 1).astype(np.float64),
        median=(low + (width >> 1)).astype(np.float64),
    )


@dataclass(frozen=True)
class Dense:
    """One or more merged histograms as a dense count vector plus its layout."""

    counts: Counts
    layout: Layout

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def __repr__(self) -> str:
        return f"Dense(total={self.total}, buckets_used={int(np.count_nonzero(self.counts))}/{self.layout.size})"


def decode(encoded: str, where: str = "histogram") -> Dense:
    """Decode one ``HdrHistogram.encode()`` string; ``where`` names it in the error on bad data."""
    try:
        h = HdrHistogram.decode(encoded)
    except Exception as exc:  # hdrh raises TypeError, zlib.error and its own cookie/length errors
        raise ResultsError(
            where, [f"not a decodable HdrHistogram ({type(exc).__name__}: {exc}); fix: store encode() output"]
        ) from exc
    lay = layout(int(h.lowest_trackable_value), int(h.highest_trackable_value), int(h.significant_figures))
    counts = np.ctypeslib.as_array(h.counts).astype(np.int64, copy=True)
    return Dense(counts, lay)


def merge(parts: Iterable[Dense]) -> Dense | None:
    """Sum histograms of the same configuration, consuming ``parts`` lazily; ``None`` when there are none.

    Summed in place one at a time: materialising thousands of 17k-long vectors first (a long run has
    one per interval) would need gigabytes.
    """
    total: Dense | None = None
    for d in parts:
        if total is None:
            total = Dense(d.counts.copy(), d.layout)
        elif d.layout is not total.layout:
            raise ResultsError("histograms", ["cannot merge histograms of different configurations"])
        else:
            np.add(total.counts, d.counts, out=total.counts)
    return total


def percentile_ms(d: Dense, p: float) -> float:
    """Latency (ms) at percentile ``p`` in [0, 100], as hdrh's ``get_value_at_percentile``."""
    return float(percentiles_ms(d, [p])[0])


def percentiles_ms(d: Dense, ps: Sequence[float]) -> Floats:
    total = d.total
    if total == 0:
        return np.full(len(ps), np.nan)
    cum = np.cumsum(d.counts)
    targets = np.maximum(np.floor(np.minimum(np.asarray(ps, dtype=np.float64), 100.0) * total / 100 + 0.5), 1)
    idx = np.searchsorted(cum, targets, side="left")
    return d.layout.highest[idx] / US_PER_MS


def mean_ms(d: Dense) -> float:
    total = d.total
    if total == 0:
        return float("nan")
    return float(np.dot(d.counts, d.layout.median) / total / US_PER_MS)


def max_ms(d: Dense) -> float:
    nz = np.flatnonzero(d.counts)
    return float(d.layout.highest[nz[-1]] / US_PER_MS) if nz.size else float("nan")


def stat_ms(d: Dense, stat: str) -> float:
    """A named statistic: ``mean``, ``max`` or ``pNN`` / ``pNN.NN`` (percentile)."""
    if stat == "mean":
        return mean_ms(d)
    if stat == "max":
        return max_ms(d)
    if stat.startswith("p"):
        try:
            p = float(stat[1:])
        except ValueError:
            pass
        else:
            if 0 <= p <= 100:
                return percentile_ms(d, p)
    raise ValueError(f"unknown latency statistic {stat!r}: use 'mean', 'max' or 'p<percentile>' like 'p99'")


def spectrum_levels(max_nines: int = 4, per_decade: int = 24) -> Floats:
    """Percentiles spaced evenly in log(1/(1-p)) from p0 up to 1 - 10**-max_nines (p99.99 for 4)."""
    x = np.logspace(0, max_nines, max_nines * per_decade + 1)
    return 100.0 * (1.0 - 1.0 / x)


def spectrum_ms(d: Dense, max_nines: int = 4) -> tuple[Floats, Floats]:
    """Percentile spectrum: (1/(1-p), latency ms), truncated where the sample count cannot resolve p."""
    levels = spectrum_levels(max_nines)
    # Beyond 1/total the tail is a single sample: plotting further only repeats the maximum.
    resolvable = 1.0 / (1.0 - levels / 100.0) <= max(d.total, 1)
    levels = levels[resolvable] if resolvable.any() else levels[:1]
    return 1.0 / (1.0 - levels / 100.0), percentiles_ms(d, list(levels))
