"""Helpers over HdrHistogram (module ``hdrh``) and a numpy view of interval series.

Every latency in the project is recorded in microseconds into ``HdrHistogram(1, 60_000_000, 3)``.
This module encodes/decodes those histograms, merges them (percentiles are never averaged: the
counts are added and the percentile is read from the sum), and turns a series of per-interval
histograms into a compact sparse matrix (:class:`BucketSeries`) so that bootstrap resampling can
work on bucket counts with numpy instead of on raw samples.

The numpy functions reproduce hdrh's own conventions exactly, so a figure computed here equals
the one ``HdrHistogram.get_value_at_percentile`` / ``get_mean_value`` would give:

- a percentile is the *highest equivalent value* of the bucket where the cumulative count first
  reaches ``max(1, int(q/100 * N + 0.5))``;
- the mean weights each bucket by its *median equivalent value*.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

from harness.errors import ConfigError

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_FIGURES = 3

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def new_histogram() -> HdrHistogram:
    """An empty histogram with the project's standard layout (1 µs .. 60 s, 3 significant digits)."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


_TEMPLATE = new_histogram()
COUNTS_LEN: int = _TEMPLATE.counts_len
_HALF_MAG: int = _TEMPLATE.sub_bucket_half_count_magnitude
_HALF_COUNT: int = _TEMPLATE.sub_bucket_half_count


def encode(hist: HdrHistogram) -> str:
    """Compressed base64 text (the standard HdrHistogram V2 encoding), ready for JSON."""
    raw = hist.encode()
    return raw.decode("ascii") if isinstance(raw, bytes) else str(raw)


def decode(text: str | bytes, *, where: str = "histogram") -> HdrHistogram:
    """Decode base64 text produced by :func:`encode` (or any HdrHistogram V2 encoder).

    ``where`` names the field in error messages, e.g. ``"scenario sustained interval 3 trade_execution"``.
    """
    try:
        hist = HdrHistogram.decode(text)
    except Exception as exc:
        # hdrh raises its own classes (HdrCookieException, ...), binascii.Error and zlib.error: one message.
        raise ConfigError(
            f"{where}: not a valid HdrHistogram base64 encoding ({type(exc).__name__}: {exc}); "
            "produce it with harness.stats.histograms.encode() or HdrHistogram.encode()"
        ) from exc
    if hist.counts_len != COUNTS_LEN:
        # A different layout (another range or precision): re-record into the standard one so that
        # bucket indices line up across intervals. hdrh's add() does this value by value.
        std = new_histogram()
        std.add(hist)
        return std
    return hist


def merge(hists: Iterable[HdrHistogram]) -> HdrHistogram:
    """Sum histograms into a new one (counts add; never average percentiles)."""
    total = new_histogram()
    for h in hists:
        total.add(h)
    return total


def merge_encoded(texts: Iterable[str], *, where: str = "histogram") -> HdrHistogram:
    """Decode and sum encoded histograms."""
    return merge(decode(t, where=f"{where}[{i}]") for i, t in enumerate(texts))


def counts_array(hist: HdrHistogram) -> IntArray:
    """The bucket counts as an int64 numpy array of length :data:`COUNTS_LEN` (a copy)."""
    raw = np.ctypeslib.as_array(hist.counts)
    out = np.zeros(COUNTS_LEN, dtype=np.int64)
    n = min(len(raw), COUNTS_LEN)
    out[:n] = raw[:n]
    return out


def bucket_lowest(index: IntArray) -> IntArray:
    """Lowest value (µs) of the buckets with these counts-array indices (vectorised hdrh)."""
    index = np.asarray(index, dtype=np.int64)
    bucket = (index >> _HALF_MAG) - 1
    sub = (index & (_HALF_COUNT - 1)) + _HALF_COUNT
    first = bucket < 0
    sub = np.where(first, sub - _HALF_COUNT, sub)
    bucket = np.where(first, 0, bucket)
    return np.asarray(sub << bucket, dtype=np.int64)


def bucket_width(index: IntArray) -> IntArray:
    index = np.asarray(index, dtype=np.int64)
    bucket = np.maximum((index >> _HALF_MAG) - 1, 0)
    return np.asarray(np.left_shift(1, bucket), dtype=np.int64)


def bucket_highest(index: IntArray) -> IntArray:
    """Highest equivalent value: what hdrh reports for a percentile falling in the bucket."""
    return bucket_lowest(index) + bucket_width(index) - 1


def bucket_median(index: IntArray) -> IntArray:
    """Median equivalent value: what hdrh uses for the mean."""
    return bucket_lowest(index) + (bucket_width(index) >> 1)


def target_rank(q_percent: float | FloatArray, total: float | FloatArray) -> FloatArray:
    """hdrh's rank for a percentile: ``max(1, int(q/100 * N + 0.5))`` (q in percent)."""
    q = np.minimum(np.asarray(q_percent, dtype=np.float64), 100.0)
    return np.maximum(np.floor(q * np.asarray(total, dtype=np.float64) / 100.0 + 0.5), 1.0)


def validate_percentile(q_percent: float) -> None:
    if not 0.0 < q_percent <= 100.0:
        raise ConfigError(f"percentile {q_percent!r} is out of range: use a value in (0, 100], e.g. 99")


@dataclass(frozen=True)
class HistogramSummary:
    """Headline figures of one histogram, in microseconds."""

    count: int
    mean_us: float
    stddev_us: float
    min_us: int
    max_us: int
    p50_us: int
    p90_us: int
    p95_us: int
    p99_us: int
    p999_us: int


def summarize(hist: HdrHistogram) -> HistogramSummary:
    return summarize_counts(counts_array(hist))


def summarize_counts(counts: IntArray) -> HistogramSummary:
    """Summary of a full-length counts array (e.g. ``BucketSeries.merged_full()``)."""
    n = int(counts.sum())
    if n == 0:
        return HistogramSummary(0, float("nan"), float("nan"), 0, 0, 0, 0, 0, 0, 0)
    nz = np.nonzero(counts)[0]
    mids = bucket_median(nz).astype(np.float64)
    w = counts[nz].astype(np.float64)
    mean = float((mids * w).sum() / n)
    std = float(np.sqrt(((mids - mean) ** 2 * w).sum() / n))
    ps = {q: percentile_from_counts(counts, q) for q in (50.0, 90.0, 95.0, 99.0, 99.9)}
    return HistogramSummary(
        count=n,
        mean_us=mean,
        stddev_us=std,
        min_us=int(bucket_lowest(nz[:1])[0]),
        max_us=int(bucket_highest(nz[-1:])[0]),
        p50_us=ps[50.0],
        p90_us=ps[90.0],
        p95_us=ps[95.0],
        p99_us=ps[99.0],
        p999_us=ps[99.9],
    )


def percentile_from_counts(counts: IntArray, q_percent: float) -> int:
    """Percentile (µs) of a full-length counts array, identical to hdrh's ``get_value_at_percentile``."""
    validate_percentile(q_percent)
    total = int(counts.sum())
    if total == 0:
        return 0
    rank = float(target_rank(q_percent, total))
    cum = np.cumsum(counts)
    idx = int(np.searchsorted(cum, rank, side="left"))
    return int(bucket_highest(np.array([idx]))[0])


def mean_from_counts(counts: IntArray) -> float:
    total = int(counts.sum())
    if total == 0:
        return float("nan")
    nz = np.nonzero(counts)[0]
    return float((bucket_median(nz).astype(np.float64) * counts[nz]).sum() / total)


def wsum(index: IntArray, weights: FloatArray, length: int) -> FloatArray:
    """Weighted bincount as float64 (``np.bincount`` with weights, typed)."""
    return np.asarray(np.bincount(index, weights=weights, minlength=length), dtype=np.float64)


@dataclass(frozen=True)
class BucketSeries:
    """A series of per-interval histograms as a sparse (COO) matrix over the buckets in use.

    ``columns`` are the counts-array indices that are non-zero in at least one interval, ascending
    (so ascending in value). Entry ``k`` says interval ``rows[k]`` has ``vals[k]`` samples in bucket
    ``columns[cols[k]]``. Intervals without the histogram are present with zero counts: an empty
    interval is information (nothing completed), not something to drop.
    """

    n_intervals: int
    columns: IntArray
    rows: IntArray
    cols: IntArray
    vals: FloatArray

    def __repr__(self) -> str:
        # The arrays can hold millions of entries: show the shape of the data, not the data.
        return (f"BucketSeries(intervals={self.n_intervals}, samples={self.total}, buckets={self.n_columns}, "
                f"nonzero={len(self.vals)})")

    @property
    def n_columns(self) -> int:
        return len(self.columns)

    @property
    def total(self) -> int:
        return int(self.vals.sum())

    def interval_counts(self) -> FloatArray:
        """Samples per interval."""
        return wsum(self.rows, self.vals, self.n_intervals)

    def interval_sums_us(self) -> FloatArray:
        """Sum of (median-equivalent) values per interval, for means."""
        mids = bucket_median(self.columns).astype(np.float64)
        return wsum(self.rows, self.vals * mids[self.cols], self.n_intervals)

    def merged_counts(self) -> FloatArray:
        """Counts per column for the whole series."""
        return wsum(self.cols, self.vals, self.n_columns)

    def merged_full(self) -> IntArray:
        """Full-length counts array of the whole series (the merged histogram)."""
        full = np.zeros(COUNTS_LEN, dtype=np.int64)
        full[self.columns] = np.rint(self.merged_counts()).astype(np.int64)
        return full

    def percentile_us(self, q_percent: float) -> int:
        return percentile_from_counts(self.merged_full(), q_percent)

    def mean_us(self) -> float:
        return mean_from_counts(self.merged_full())

    def subset(self, keep: Sequence[int] | IntArray) -> BucketSeries:
        """The series restricted to the given interval positions (renumbered 0..len(keep)-1)."""
        keep_arr = np.asarray(keep, dtype=np.int64)
        remap = np.full(self.n_intervals, -1, dtype=np.int64)
        remap[keep_arr] = np.arange(len(keep_arr))
        mask = remap[self.rows] >= 0
        return BucketSeries(
            len(keep_arr), self.columns, remap[self.rows[mask]], self.cols[mask], self.vals[mask]
        )


def series_from_counts(per_interval: Sequence[IntArray | None]) -> BucketSeries:
    """Build a :class:`BucketSeries` from full-length counts arrays (``None`` = empty interval)."""
    rows_l: list[IntArray] = []
    idx_l: list[IntArray] = []
    val_l: list[IntArray] = []
    for r, counts in enumerate(per_interval):
        if counts is None:
            continue
        nz = np.nonzero(counts)[0]
        rows_l.append(np.full(len(nz), r, dtype=np.int64))
        idx_l.append(nz.astype(np.int64))
        val_l.append(counts[nz].astype(np.int64))
    if not idx_l:
        empty = np.zeros(0, dtype=np.int64)
        return BucketSeries(len(per_interval), empty, empty, empty, np.zeros(0))
    idx = np.concatenate(idx_l)
    columns, cols = np.unique(idx, return_inverse=True)
    return BucketSeries(
        n_intervals=len(per_interval),
        columns=columns.astype(np.int64),
        rows=np.concatenate(rows_l),
        cols=cols.astype(np.int64).ravel(),
        vals=np.concatenate(val_l).astype(np.float64),
    )


def series_from_encoded(texts: Sequence[str | None], *, where: str = "histogram") -> BucketSeries:
    """Build a :class:`BucketSeries` from encoded per-interval histograms (``None`` = absent)."""
    return series_from_counts(
        [
            None if t is None else counts_array(decode(t, where=f"{where} interval {i}"))
            for i, t in enumerate(texts)
        ]
    )


def series_from_histograms(hists: Sequence[HdrHistogram | None]) -> BucketSeries:
    return series_from_counts([None if h is None else counts_array(h) for h in hists])
