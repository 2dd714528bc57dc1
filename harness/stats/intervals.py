"""Confidence intervals for every figure the harness reports.

Samples close in time are correlated (a GC pause, a full block, a slow disk slows many operations
at once), so a naive bootstrap over single samples gives intervals that are far too narrow. The
methods here respect that:

- latency mean/percentiles: a *circular block bootstrap* that resamples runs of whole intervals
  (each interval is already a histogram), vectorised as ``weights @ bucket-counts`` with numpy;
  percentiles are found with a coarse-then-fine pass so only the buckets near the answer are
  materialised, which keeps 1M samples / 3600 intervals fast;
- a distribution-free order-statistic (binomial) CI for a quantile, when intervals are too few for
  the bootstrap (it assumes independent samples; the note says so);
- rates per window: *batch means* (consecutive windows grouped into batches, a t-interval over the
  batch rates), which absorbs correlation shorter than a batch;
- proportions (error rate, uptime): Wilson score interval;
- trends (drift, memory growth): OLS slope with Newey-West (Bartlett) HAC standard error, with the
  lag chosen by Andrews' AR(1) plug-in rule so strongly correlated noise widens the interval.

Everything is pure and seeded: the same input gives the same interval.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats as sps

from harness.errors import ConfigError
from harness.stats.histograms import (
    BucketSeries,
    FloatArray,
    IntArray,
    bucket_highest,
    bucket_lowest,
    bucket_median,
    target_rank,
    validate_percentile,
    wsum,
)

NAN = float("nan")
_COARSE = 64  # columns per coarse bin in the two-pass percentile search
_CHUNK_CELLS = 4_000_000  # bootstrap weight cells per chunk (~32 MB of float64)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval. ``lo``/``hi`` are NaN when no CI exists."""

    value: float
    lo: float
    hi: float
    confidence: float
    method: str
    n: int
    note: str = ""

    @property
    def has_ci(self) -> bool:
        return not (math.isnan(self.lo) or math.isnan(self.hi))

    @property
    def halfwidth(self) -> float:
        """The larger distance from the estimate to a CI bound (CIs may be asymmetric)."""
        if not self.has_ci or math.isnan(self.value):
            return NAN
        return max(self.value - self.lo, self.hi - self.value)

    def scaled(self, factor: float) -> Estimate:
        """The same estimate in another unit (e.g. µs -> ms with factor 1e-3)."""
        return replace(self, value=self.value * factor, lo=self.lo * factor, hi=self.hi * factor)


def _check_confidence(confidence: float) -> None:
    if not 0.5 <= confidence < 1.0:
        raise ConfigError(f"confidence {confidence!r} is out of range: use a value in [0.5, 1), e.g. 0.95")


def default_block_len(n: int) -> int:
    """Block length in intervals: ~n^(1/3), the usual rate for block bootstraps of means."""
    return max(1, math.floor(math.pow(n, 1.0 / 3.0) + 0.5))


def circular_block_weights(rng: np.random.Generator, n: int, n_boot: int, block_len: int) -> FloatArray:
    """``n_boot x n`` matrix: how often each interval appears in each circular-block resample."""
    block_len = max(1, min(block_len, n))
    k = -(-n // block_len)
    starts = rng.integers(0, n, size=(n_boot, k))
    idx = (starts[:, :, None] + np.arange(block_len)[None, None, :]).reshape(n_boot, k * block_len)[:, :n] % n
    flat = (idx + (np.arange(n_boot) * n)[:, None]).ravel()
    return np.asarray(np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n), dtype=np.float64)


def _dense_columns(series: BucketSeries, col_lo: int, col_hi: int) -> FloatArray:
    """Dense ``n_intervals x (col_hi - col_lo)`` counts for a column range."""
    width = col_hi - col_lo
    mask = (series.cols >= col_lo) & (series.cols < col_hi)
    flat = series.rows[mask] * width + (series.cols[mask] - col_lo)
    return wsum(flat, series.vals[mask], series.n_intervals * width).reshape(series.n_intervals, width)


def _boot_percentiles(series: BucketSeries, w: FloatArray, qs: Sequence[float]) -> FloatArray:
    """Percentiles (µs) of each resampled histogram ``w @ counts``; shape ``len(w) x len(qs)``."""
    m = series.n_columns
    k = -(-m // _COARSE)
    coarse = wsum(series.rows * k + series.cols // _COARSE, series.vals, series.n_intervals * k)
    coarse_cum = np.cumsum(coarse.reshape(series.n_intervals, k), axis=1)
    boot_cum = w @ coarse_cum  # cumulative count at the end of each coarse bin, per resample
    total = boot_cum[:, -1]
    highest = bucket_highest(series.columns).astype(np.float64)
    out = np.full((len(w), len(qs)), NAN)
    for j, q in enumerate(qs):
        rank = target_rank(q, total)
        valid = total > 0
        bins = np.where(valid, (boot_cum >= rank[:, None]).argmax(axis=1), -1)
        for b in np.unique(bins[bins >= 0]):
            rows = np.nonzero(bins == b)[0]
            lo_col = int(b) * _COARSE
            hi_col = min(lo_col + _COARSE, m)
            fine = np.cumsum(w[rows] @ _dense_columns(series, lo_col, hi_col), axis=1)
            if b > 0:
                fine += boot_cum[rows, b - 1][:, None]
            pos = (fine >= rank[rows][:, None]).argmax(axis=1)
            out[rows, j] = highest[lo_col + pos]
    return out


def percentile_interval(boot: FloatArray, point: float, confidence: float) -> tuple[float, float]:
    """Percentile bootstrap interval of ``boot`` (NaNs ignored), widened to contain ``point``."""
    finite = boot[np.isfinite(boot)]
    if len(finite) == 0:
        return NAN, NAN
    alpha = 1.0 - confidence
    lo, hi = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0])
    # The percentile interval can miss a point estimate of a skewed statistic; widen rather than lie.
    return float(min(lo, point)), float(max(hi, point))


def stat_key(q_percent: float) -> str:
    """``95.0 -> "p95"``, ``99.9 -> "p99.9"``."""
    return f"p{q_percent:g}"


def bootstrap_latency(
    series: BucketSeries,
    percentiles: Sequence[float],
    *,
    n_boot: int = 1000,
    block_len: int | None = None,
    seed: int = 0,
) -> tuple[FloatArray, FloatArray]:
    """Bootstrap distributions (µs) of the mean (``n_boot``) and percentiles (``n_boot x len(q)``).

    Resamples are circular blocks of whole intervals. A resample drawing only empty intervals
    gives NaN (callers ignore NaNs).
    """
    n = series.n_intervals
    blen = block_len if block_len is not None else default_block_len(n)
    rng = np.random.default_rng(seed)
    counts = series.interval_counts()
    sums = series.interval_sums_us()
    boot_mean = np.empty(n_boot)
    boot_q = np.empty((n_boot, len(percentiles)))
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        w = circular_block_weights(rng, n, stop - start, blen)
        c = w @ counts
        with np.errstate(invalid="ignore", divide="ignore"):
            boot_mean[start:stop] = np.where(c > 0, (w @ sums) / c, NAN)
        if percentiles:
            boot_q[start:stop] = _boot_percentiles(series, w, percentiles)
    return boot_mean, boot_q


def latency_cis(
    series: BucketSeries,
    percentiles: Sequence[float] = (50.0, 95.0, 99.0),
    *,
    confidence: float = 0.95,
    n_boot: int = 1000,
    block_len: int | None = None,
    seed: int = 0,
    min_intervals: int = 10,
) -> dict[str, Estimate]:
    """Mean and percentiles (µs) of an interval series with block-bootstrap CIs.

    Keys: ``"mean"`` and :func:`stat_key` of each percentile. With fewer than ``min_intervals``
    non-empty intervals, percentiles fall back to :func:`quantile_order_stat_ci` and the mean to a
    normal interval over samples (both assume independent samples, and say so in ``note``).
    """
    _check_confidence(confidence)
    for q in percentiles:
        validate_percentile(q)
    if n_boot < 100:
        raise ConfigError(f"n_boot={n_boot} is too small for a percentile interval: use at least 100")
    full = series.merged_full()
    total = int(full.sum())
    out: dict[str, Estimate] = {}
    if total == 0:
        for key in ["mean", *[stat_key(q) for q in percentiles]]:
            out[key] = Estimate(NAN, NAN, NAN, confidence, "none", 0, "no samples recorded")
        return out
    point_mean = series.mean_us()
    points = {q: float(series.percentile_us(q)) for q in percentiles}
    counts = series.interval_counts()
    used = int((counts > 0).sum())
    if used < min_intervals:
        note = f"only {used} non-empty intervals: CI assumes independent samples (too few for a block bootstrap)"
        out["mean"] = _mean_normal_ci(full, point_mean, confidence, note)
        for q in percentiles:
            out[stat_key(q)] = quantile_order_stat_ci(full, q, confidence=confidence, note=note)
        return out
    n = series.n_intervals
    blen = block_len if block_len is not None else default_block_len(n)
    boot_mean, boot_q = bootstrap_latency(series, percentiles, n_boot=n_boot, block_len=blen, seed=seed)
    method = "block-bootstrap"
    note = f"circular block bootstrap over {n} intervals, block {blen}, {n_boot} resamples, seed {seed}"
    lo, hi = percentile_interval(boot_mean, point_mean, confidence)
    out["mean"] = Estimate(point_mean, lo, hi, confidence, method, total, note)
    for j, q in enumerate(percentiles):
        lo, hi = percentile_interval(boot_q[:, j], points[q], confidence)
        out[stat_key(q)] = Estimate(points[q], lo, hi, confidence, method, total, note)
    return out


def _mean_normal_ci(full: IntArray, point: float, confidence: float, note: str) -> Estimate:
    nz = np.nonzero(full)[0]
    w = full[nz].astype(np.float64)
    n = float(w.sum())
    mids = bucket_median(nz).astype(np.float64)
    if n < 2:
        return Estimate(point, NAN, NAN, confidence, "normal", int(n), note + "; one sample: no CI")
    var = float(((mids - point) ** 2 * w).sum() / (n - 1.0))
    h = float(sps.t.ppf(0.5 + confidence / 2.0, n - 1.0)) * math.sqrt(var / n)
    return Estimate(point, point - h, point + h, confidence, "normal", int(n), note)


def quantile_order_stat_ci(
    counts: IntArray, q_percent: float, *, confidence: float = 0.95, note: str = ""
) -> Estimate:
    """Distribution-free CI for a percentile from a full-length counts array (µs).

    The number of samples below the true quantile is Binomial(N, q); the ranks at its
    ``alpha/2`` and ``1 - alpha/2`` quantiles bracket the true quantile with at least the requested
    confidence (for independent samples). Bounds are widened to whole histogram buckets.
    """
    _check_confidence(confidence)
    validate_percentile(q_percent)
    total = int(counts.sum())
    if total == 0:
        return Estimate(NAN, NAN, NAN, confidence, "order-statistic", 0, "no samples recorded")
    p = min(q_percent / 100.0, 1.0)
    alpha = 1.0 - confidence
    lo_rank = max(1, int(sps.binom.ppf(alpha / 2.0, total, p)))
    hi_rank = min(total, int(sps.binom.ppf(1.0 - alpha / 2.0, total, p)) + 1)
    cum = np.cumsum(counts)
    idx = np.searchsorted(cum, np.array([lo_rank, hi_rank, float(target_rank(q_percent, total))]), side="left")
    lo = float(bucket_lowest(idx[:1])[0])
    hi = float(bucket_highest(idx[1:2])[0])
    point = float(bucket_highest(idx[2:3])[0])
    text = f"order-statistic (binomial) CI, ranks {lo_rank}..{hi_rank} of {total}"
    return Estimate(point, min(lo, point), max(hi, point), confidence, "order-statistic", total,
                    f"{text}; {note}" if note else text)


def _batches(n: int) -> int:
    """How many batches for batch means: ~sqrt(n), at least min(n, 10), at most 60."""
    return int(min(n, max(min(n, 10), min(60, math.isqrt(n)))))


def rate_ci(
    counts: Sequence[float] | FloatArray,
    durations: Sequence[float] | FloatArray,
    *,
    confidence: float = 0.95,
) -> Estimate:
    """Events per second over windows: total / time, with a batch-means t-interval.

    Consecutive windows are grouped into ~sqrt(n) batches so correlation shorter than a batch does
    not shrink the interval; with fewer than 2 windows there is no CI.
    """
    _check_confidence(confidence)
    c = np.asarray(counts, dtype=np.float64)
    d = np.asarray(durations, dtype=np.float64)
    if c.shape != d.shape:
        raise ConfigError(f"rate_ci: {len(c)} counts but {len(d)} durations: give one duration per window")
    if len(d) and (d <= 0).any():
        raise ConfigError("rate_ci: a window has a duration <= 0 s: windows need end > start")
    if len(c) == 0:
        return Estimate(NAN, NAN, NAN, confidence, "batch-means", 0, "no windows")
    value = float(c.sum() / d.sum())
    if len(c) < 2:
        return Estimate(value, NAN, NAN, confidence, "batch-means", 1, "one window: no CI")
    b = _batches(len(c))
    edges = np.linspace(0, len(c), b + 1).round().astype(np.int64)
    rates = np.array([c[s:e].sum() / d[s:e].sum() for s, e in itertools.pairwise(edges)])
    se = float(rates.std(ddof=1) / math.sqrt(b))
    h = float(sps.t.ppf(0.5 + confidence / 2.0, b - 1)) * se
    return Estimate(value, value - h, value + h, confidence, "batch-means", len(c),
                    f"batch means: {len(c)} windows in {b} batches, t-interval")


def per_unit_ci(
    amounts: Sequence[float] | FloatArray,
    units: Sequence[float] | FloatArray,
    *,
    confidence: float = 0.95,
) -> Estimate:
    """Amount per unit over time-ordered windows (e.g. CPU µs per completed trade): a ratio of sums,
    with a batch-means t-interval over the batches' own ratios.

    Unlike ``rate_ci`` a window may hold no units (a second in which no trade completed still
    spent CPU): only a batch needs some. Summing within batches before dividing keeps the estimator
    the ratio of sums, which a mean of per-window ratios is not (a second with one trade would
    weigh as much as one with three hundred).
    """
    _check_confidence(confidence)
    a = np.asarray(amounts, dtype=np.float64)
    u = np.asarray(units, dtype=np.float64)
    if a.shape != u.shape:
        raise ConfigError(f"per_unit_ci: {len(a)} amounts but {len(u)} unit counts: give one of each per window")
    if len(u) and (u < 0).any():
        raise ConfigError("per_unit_ci: a window has a negative unit count: counts are >= 0")
    if len(a) == 0 or u.sum() <= 0:
        return Estimate(NAN, NAN, NAN, confidence, "batch-means", len(a), "no units in any window")
    value = float(a.sum() / u.sum())
    b = _batches(len(a))
    edges = np.linspace(0, len(a), b + 1).round().astype(np.int64)
    ratios = np.array([a[s:e].sum() / u[s:e].sum() for s, e in itertools.pairwise(edges) if u[s:e].sum() > 0])
    if len(ratios) < 2:
        return Estimate(value, NAN, NAN, confidence, "batch-means", len(a),
                        "fewer than 2 batches with units: no CI")
    se = float(ratios.std(ddof=1) / math.sqrt(len(ratios)))
    h = float(sps.t.ppf(0.5 + confidence / 2.0, len(ratios) - 1)) * se
    return Estimate(value, value - h, value + h, confidence, "batch-means", len(a),
                    f"ratio of sums: {len(a)} windows in {len(ratios)} batches, t-interval")


def mean_ci(values: Sequence[float] | FloatArray, *, confidence: float = 0.95) -> Estimate:
    """Mean of a time-ordered series (e.g. CPU % per second) with a batch-means t-interval."""
    v = np.asarray(values, dtype=np.float64)
    est = rate_ci(v, np.ones_like(v), confidence=confidence)
    return replace(est, note=est.note.replace("windows", "samples"))


def median_ci(
    values: Sequence[float] | FloatArray,
    *,
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    block_len: int | None = None,
) -> Estimate:
    """Median of a time-ordered series with a circular block bootstrap CI."""
    _check_confidence(confidence)
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n == 0:
        return Estimate(NAN, NAN, NAN, confidence, "block-bootstrap", 0, "no samples")
    point = float(np.median(v))
    if n < 2:
        return Estimate(point, NAN, NAN, confidence, "block-bootstrap", 1, "one sample: no CI")
    blen = block_len if block_len is not None else default_block_len(n)
    rng = np.random.default_rng(seed)
    k = -(-n // blen)
    starts = rng.integers(0, n, size=(n_boot, k))
    idx = (starts[:, :, None] + np.arange(blen)).reshape(n_boot, k * blen)[:, :n] % n
    boot = np.median(v[idx], axis=1)
    lo, hi = percentile_interval(boot, point, confidence)
    return Estimate(point, lo, hi, confidence, "block-bootstrap", n,
                    f"circular block bootstrap of the median, block {blen}, {n_boot} resamples, seed {seed}")


def wilson(successes: int, trials: int, *, confidence: float = 0.95) -> Estimate:
    """Wilson score interval for a proportion (good near 0 and 1, unlike the normal interval)."""
    _check_confidence(confidence)
    if trials < 0 or successes < 0 or successes > trials:
        raise ConfigError(f"wilson: need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return Estimate(NAN, NAN, NAN, confidence, "wilson", 0, "no trials")
    p = successes / trials
    lo, hi = wilson_bounds(p, float(trials), confidence)
    return Estimate(p, lo, hi, confidence, "wilson", trials, f"Wilson score interval, {successes}/{trials}")


def wilson_bounds(p: float, n: float, confidence: float) -> tuple[float, float]:
    """Wilson interval for an observed proportion ``p`` over ``n`` trials (n may be fractional)."""
    z = float(sps.norm.ppf(0.5 + confidence / 2.0))
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    h = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / denom
    # At p = 0 or 1 the exact bound is 0 or 1; rounding must not push it past the estimate.
    lo = 0.0 if p <= 0.0 else min(max(0.0, centre - h), p)
    hi = 1.0 if p >= 1.0 else max(min(1.0, centre + h), p)
    return lo, hi


def wilson_trials_needed(p: float, n: float, threshold: float, confidence: float) -> float | None:
    """Trials at which the Wilson bound facing ``threshold`` would reach it, if ``p`` stayed put.

    Near 0 and 1 the interval shrinks like 1/n, not 1/sqrt(n), so the generic rule would
    overstate the time needed many times over. None if ``p`` equals the threshold.
    """
    if p == threshold:
        return None
    side = 1 if threshold > p else 0

    def reached(m: float) -> bool:
        b = wilson_bounds(p, m, confidence)[side]
        return b < threshold if side == 1 else b > threshold

    lo, hi = n, n * 2.0
    while not reached(hi):
        lo, hi = hi, hi * 2.0
        if hi > n * 1e9:
            return None
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if reached(mid) else (mid, hi)
    return hi


@dataclass(frozen=True)
class Trend:
    """A linear slope (units of y per unit of t) with its confidence interval."""

    slope: float
    lo: float
    hi: float
    se: float
    intercept: float
    confidence: float
    n: int
    method: str
    detail: str

    @property
    def halfwidth(self) -> float:
        return (self.hi - self.lo) / 2.0

    def estimate(self, factor: float = 1.0) -> Estimate:
        return Estimate(self.slope * factor, self.lo * factor, self.hi * factor, self.confidence,
                        self.method, self.n, self.detail)


def andrews_lags(resid: FloatArray) -> tuple[int, float]:
    """Bartlett-kernel lag from Andrews' (1991) AR(1) plug-in rule; returns (lags, rho)."""
    n = len(resid)
    if n < 3:
        return 0, 0.0
    e0, e1 = resid[:-1], resid[1:]
    den = float((e0 * e0).sum())
    rho = float((e0 * e1).sum() / den) if den > 0 else 0.0
    rho = min(max(rho, -0.97), 0.97)  # a unit root would need infinite lags; cap and stay finite
    a1 = 4.0 * rho * rho / ((1.0 - rho) ** 2 * (1.0 + rho) ** 2)
    lags = math.floor(1.1447 * (a1 * n) ** (1.0 / 3.0))
    return int(min(max(lags, 0), n // 2)), rho


def integrated_autocorr_time(x: FloatArray, c: float = 5.0) -> float:
    """Integrated autocorrelation time (in samples) with Sokal's automatic window (M >= c * tau).

    1 for white noise; ~ (1 + rho)/(1 - rho) for AR(1). The variance of a smooth weighted sum of
    the series is about ``tau`` times what independence would give.
    """
    n = len(x)
    if n < 4:
        return 1.0
    d = x - x.mean()
    f = np.fft.rfft(d, 2 * n)
    acov = np.fft.irfft(f * np.conj(f))[:n]
    if acov[0] <= 0:
        return 1.0
    rho = acov / acov[0]
    taus = 1.0 + 2.0 * np.cumsum(rho[1:])
    window = np.arange(1, n)
    ok = np.nonzero(window >= c * taus)[0]
    tau = float(taus[ok[0]]) if len(ok) else float(taus[-1])
    return max(tau, 1.0)


def _ols(t: FloatArray, y: FloatArray) -> tuple[float, float, FloatArray, FloatArray, float]:
    """slope, intercept, centred t, residuals, Sxx."""
    tc = t - t.mean()
    sxx = float((tc * tc).sum())
    slope = float((tc * (y - y.mean())).sum() / sxx)
    intercept = float(y.mean() - slope * t.mean())
    return slope, intercept, tc, y - (intercept + slope * t), sxx


def _hac_se(tc: FloatArray, resid: FloatArray, sxx: float, lags: int) -> float:
    n = len(tc)
    u = tc * resid
    s = float((u * u).sum())
    for lag in range(1, lags + 1):
        s += 2.0 * (1.0 - lag / (lags + 1.0)) * float((u[lag:] * u[:-lag]).sum())
    return math.sqrt(max(s, 0.0) * n / (n - 2)) / sxx


def linear_trend(
    t: Sequence[float] | FloatArray,
    y: Sequence[float] | FloatArray,
    *,
    confidence: float = 0.95,
    batches: int = 10,
) -> Trend:
    """OLS slope of y on t with a CI that survives correlated noise.

    With at least ``3 * batches`` points the CI comes from *batch means*: the series is cut into
    ``batches`` consecutive segments, the segment means are regressed on the segment mean times,
    and that slope's standard error is used with a t distribution of ``batches - 2`` df. Noise
    correlated over less than a segment then cannot fake a trend. (A Newey-West interval with an
    AR(1) plug-in lag was tried first: on white noise mixed with slow AR(1) noise, the plug-in
    misses the slow part and false trends appeared in 60-80% of simulated runs; batch means stayed
    near the nominal 5% for correlation times up to ~1/40 of the run.) With fewer points, a
    Newey-West SE with Andrews' lag and n-2 df is used instead.
    """
    _check_confidence(confidence)
    tt = np.asarray(t, dtype=np.float64)
    yy = np.asarray(y, dtype=np.float64)
    if tt.shape != yy.shape:
        raise ConfigError(f"linear_trend: {len(tt)} times but {len(yy)} values: give one time per value")
    n = len(tt)
    if n < 3:
        raise ConfigError(f"linear_trend: {n} points are too few for a slope with a CI: need at least 3")
    if not (np.isfinite(tt).all() and np.isfinite(yy).all()):
        raise ConfigError("linear_trend: times and values must be finite numbers (found NaN or inf)")
    if float(tt.max() - tt.min()) == 0.0:
        raise ConfigError("linear_trend: all samples share one time: a slope needs samples spread over time")
    if batches < 3:
        raise ConfigError(f"linear_trend: batches={batches}: use at least 3 (10 is a good default)")
    order = np.argsort(tt, kind="stable")
    tt, yy = tt[order], yy[order]
    slope, intercept, tc, resid, sxx = _ols(tt, yy)
    if n >= 3 * batches:
        edges = np.linspace(0, n, batches + 1).round().astype(np.int64)
        tm = np.array([tt[a:b].mean() for a, b in itertools.pairwise(edges)])
        ym = np.array([yy[a:b].mean() for a, b in itertools.pairwise(edges)])
        _, _, _, bres, bsxx = _ols(tm, ym)
        se_batch = math.sqrt(float((bres * bres).sum()) / (batches - 2) / bsxx) if bsxx > 0 else math.inf
        # Batches shorter than the noise's correlation time make batch means look independent when
        # they are not; the integrated autocorrelation time tau catches that (var x tau).
        tau = integrated_autocorr_time(resid)
        se_tau = math.sqrt(float((resid * resid).sum()) / (n - 2) / sxx * tau)
        se = max(se_batch, se_tau)
        # Few correlation times in the run = few independent pieces of information: fewer df.
        df = float(min(batches - 2, max(1.0, n / tau - 2.0)))
        method = "ols-batch-means"
        detail = (f"OLS slope of {n} samples; CI from {batches} batch means (t, {df:.0f} df), "
                  f"widened to the residual autocorrelation time {tau:.1f} samples if larger")
        if tau * 20 > n:
            detail += f"; the run spans only {n / tau:.0f} correlation times: treat the CI with care"
    else:
        lags, rho = andrews_lags(resid)
        se = _hac_se(tc, resid, sxx, lags)
        df = float(n - 2)
        method = "ols-hac"
        detail = f"OLS slope of {n} samples; Newey-West SE with {lags} lags (residual AR(1) rho {rho:.2f})"
    h = float(sps.t.ppf(0.5 + confidence / 2.0, df)) * se
    return Trend(slope, slope - h, slope + h, se, intercept, confidence, n, method, detail)
