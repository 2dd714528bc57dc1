"""Change detection between two runs (BASE vs HEAD), for latency series and benchmark samples.

A change is called only when three things agree:

1. a rank test (two-sided Mann-Whitney U) on *windowed* samples says the two differ, after a
   multiple-comparison correction across all benchmarks compared together (Holm by default,
   Benjamini-Hochberg on request). Windowed: for a latency series, one value per interval (the
   interval's mean), because single samples within an interval are not independent;
2. the bootstrap CI of the ratio HEAD/BASE excludes 1;
3. the ratio's point estimate is beyond the noise threshold (e.g. 5%): smaller changes are real
   but too small to act on, and this machine's noise makes them unreliable.

Otherwise the verdict is "no change". :func:`flag_unstable` marks benchmarks whose own samples are
too noisy to compare (coefficient of variation or share of outliers too high, in pyperf's spirit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

from harness.errors import ConfigError
from harness.stats.histograms import BucketSeries, FloatArray
from harness.stats.intervals import Estimate, bootstrap_latency, default_block_len, percentile_interval

Change = Literal["regression", "improvement", "no change"]
Correction = Literal["holm", "bh", "none"]


@dataclass(frozen=True)
class Comparison:
    """BASE vs HEAD for one benchmark. ``ratio`` is HEAD/BASE of ``statistic`` (> 1 = slower)."""

    name: str
    statistic: str
    ratio: Estimate
    p_value: float
    p_adjusted: float
    change: Change
    n_base: int
    n_head: int
    note: str


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (controls the family-wise error rate)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return [float(x) for x in out]


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (controls the false discovery rate)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return [float(x) for x in out]


def adjust(p_values: Sequence[float], correction: Correction) -> list[float]:
    if correction == "holm":
        return holm(p_values)
    if correction == "bh":
        return benjamini_hochberg(p_values)
    if correction == "none":
        return [float(x) for x in p_values]
    raise ConfigError(f"unknown correction {correction!r}: use 'holm', 'bh' or 'none'")


def mann_whitney_p(base: Sequence[float] | FloatArray, head: Sequence[float] | FloatArray) -> float:
    """Two-sided Mann-Whitney U p-value; 1.0 when either side has no samples or all values tie."""
    a = np.asarray(base, dtype=np.float64)
    b = np.asarray(head, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        return 1.0
    if np.all(a == a[0]) and np.all(b == a[0]):
        return 1.0
    return float(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def _ratio_estimate(boot_base: FloatArray, boot_head: FloatArray, point: float, *, confidence: float,
                    note: str, n: int) -> Estimate:
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = boot_head / boot_base
    lo, hi = percentile_interval(boot, point, confidence)
    return Estimate(point, lo, hi, confidence, "bootstrap-ratio", n, note)


def ratio_ci_samples(
    base: Sequence[float] | FloatArray,
    head: Sequence[float] | FloatArray,
    *,
    statistic: Literal["median", "mean"] = "median",
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Estimate:
    """HEAD/BASE ratio of medians (or means) of independent samples, with a bootstrap CI."""
    a = np.asarray(base, dtype=np.float64)
    b = np.asarray(head, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ConfigError(f"need at least 2 samples on each side to compare (got {len(a)} base, {len(b)} head)")
    fn = np.median if statistic == "median" else np.mean
    base_point = float(fn(a))
    if base_point == 0.0:
        raise ConfigError("the base statistic is 0: a ratio is undefined; compare absolute values instead")
    rng = np.random.default_rng(seed)
    ba = fn(a[rng.integers(0, len(a), size=(n_boot, len(a)))], axis=1)
    bb = fn(b[rng.integers(0, len(b), size=(n_boot, len(b)))], axis=1)
    return _ratio_estimate(np.asarray(ba, dtype=np.float64), np.asarray(bb, dtype=np.float64),
                           float(fn(b)) / base_point, confidence=confidence,
                           note=f"bootstrap ratio of {statistic}s, {n_boot} resamples, seed {seed}",
                           n=len(a) + len(b))


def window_means(series: BucketSeries) -> FloatArray:
    """One value per non-empty interval: its mean (µs). The unit for rank tests on a series."""
    counts = series.interval_counts()
    sums = series.interval_sums_us()
    keep = counts > 0
    return np.asarray(sums[keep] / counts[keep], dtype=np.float64)


def ratio_ci_series(
    base: BucketSeries,
    head: BucketSeries,
    *,
    statistic: str = "mean",
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """HEAD/BASE ratio of a latency statistic (``"mean"`` or ``"p50"``/``"p99"``...) with a CI from
    independent block bootstraps of both series."""
    qs: list[float] = [] if statistic == "mean" else [_parse_pct(statistic)]
    bm, bq = bootstrap_latency(base, qs, n_boot=n_boot, seed=seed)
    hm, hq = bootstrap_latency(head, qs, n_boot=n_boot, seed=seed + 1)
    if statistic == "mean":
        b_point, h_point, bb, hb = base.mean_us(), head.mean_us(), bm, hm
    else:
        b_point, h_point = float(base.percentile_us(qs[0])), float(head.percentile_us(qs[0]))
        bb, hb = bq[:, 0], hq[:, 0]
    if not b_point > 0:
        raise ConfigError("the base series has no samples (or only zeros): nothing to compare against")
    note = (f"ratio of {statistic}s, independent circular block bootstraps "
            f"(blocks {default_block_len(base.n_intervals)}/{default_block_len(head.n_intervals)} intervals), "
            f"{n_boot} resamples")
    return _ratio_estimate(bb, hb, h_point / b_point, confidence=confidence, note=note,
                           n=base.total + head.total)


def _parse_pct(stat: str) -> float:
    try:
        return float(stat.removeprefix("p"))
    except ValueError:
        raise ConfigError(f"unknown statistic {stat!r}: use 'mean' or a percentile like 'p50', 'p99'") from None


def classify(ratio: Estimate, p_adjusted: float, *, alpha: float = 0.05, noise: float = 0.05) -> Change:
    """regression / improvement / no change for a ratio where > 1 means slower (worse)."""
    if not ratio.has_ci or math.isnan(ratio.value) or p_adjusted >= alpha:
        return "no change"
    if ratio.lo > 1.0 and ratio.value > 1.0 + noise:
        return "regression"
    if ratio.hi < 1.0 and ratio.value < 1.0 - noise:
        return "improvement"
    return "no change"


def compare_series(
    pairs: Mapping[str, tuple[BucketSeries, BucketSeries]],
    *,
    statistic: str = "mean",
    alpha: float = 0.05,
    noise: float = 0.05,
    correction: Correction = "holm",
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[Comparison]:
    """Compare many latency series at once (name -> (BASE, HEAD)), correcting for multiplicity."""
    names = list(pairs)
    ratios = [ratio_ci_series(*pairs[k], statistic=statistic, confidence=confidence, n_boot=n_boot,
                              seed=seed) for k in names]
    windows = [(window_means(pairs[k][0]), window_means(pairs[k][1])) for k in names]
    ps = [mann_whitney_p(a, b) for a, b in windows]
    adj = adjust(ps, correction)
    return [
        Comparison(k, statistic, r, p, pa, classify(r, pa, alpha=alpha, noise=noise), len(w[0]), len(w[1]),
                   f"Mann-Whitney U on {len(w[0])}/{len(w[1])} interval means, {correction} correction over "
                   f"{len(names)}; {r.note}")
        for k, r, p, pa, w in zip(names, ratios, ps, adj, windows, strict=True)
    ]


def compare_samples(
    pairs: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    statistic: Literal["median", "mean"] = "median",
    alpha: float = 0.05,
    noise: float = 0.05,
    correction: Correction = "holm",
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> list[Comparison]:
    """Compare many benchmarks given as repeated timings (name -> (BASE samples, HEAD samples))."""
    names = list(pairs)
    ratios = [ratio_ci_samples(*pairs[k], statistic=statistic, confidence=confidence, n_boot=n_boot,
                               seed=seed) for k in names]
    ps = [mann_whitney_p(*pairs[k]) for k in names]
    adj = adjust(ps, correction)
    return [
        Comparison(k, statistic, r, p, pa, classify(r, pa, alpha=alpha, noise=noise), len(pairs[k][0]),
                   len(pairs[k][1]), f"Mann-Whitney U, {correction} correction over {len(names)}; {r.note}")
        for k, r, p, pa in zip(names, ratios, ps, adj, strict=True)
    ]


@dataclass(frozen=True)
class Stability:
    cv: float
    outlier_share: float
    unstable: bool
    reasons: tuple[str, ...]


def flag_unstable(
    samples: Sequence[float] | FloatArray, *, max_cv: float = 0.10, max_outlier_share: float = 0.05
) -> Stability:
    """Is a benchmark too noisy to trust? pyperf warns when the std dev exceeds 10% of the mean;
    we also flag when more than 5% of samples are Tukey outliers (beyond 1.5 IQR of the quartiles)."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < 3:
        return Stability(math.nan, math.nan, True, (f"only {len(x)} samples: need at least 3 to judge stability",))
    mean = float(x.mean())
    cv = float(x.std(ddof=1) / abs(mean)) if mean != 0 else math.inf
    q1, q3 = np.quantile(x, [0.25, 0.75])
    iqr = q3 - q1
    share = float(((x < q1 - 1.5 * iqr) | (x > q3 + 1.5 * iqr)).mean())
    reasons: list[str] = []
    if cv > max_cv:
        reasons.append(f"std dev is {cv:.0%} of the mean (limit {max_cv:.0%})")
    if share > max_outlier_share:
        reasons.append(f"{share:.0%} of samples are outliers (limit {max_outlier_share:.0%})")
    return Stability(cv, share, bool(reasons), tuple(reasons))
