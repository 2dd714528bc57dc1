"""Memory-leak detection: the slope of memory over time after warm-up, with its CI, in bytes/hour.

A process's memory is noisy (GC cycles, allocator arenas, buffers that grow and shrink) and the
noise is correlated in time, so a slope is judged with a batch-means interval
(:func:`harness.stats.intervals.linear_trend`), never with the naive OLS error.

The verdict follows the quality rule "growth not distinguishable from zero, within a stated
sensitivity S":

- **no leak**: the CI's upper bound is below S (any growth is smaller than we promised to see);
- **leak**: the CI's lower bound is above S (growth of at least S, with confidence);
- **inconclusive**: otherwise. The run's *resolution* (the CI half-width: the smallest growth
  this run could tell from zero) is always reported, and with it how much longer to run.

Warm-up (imports, pools and caches filling) is excluded: by default the first 20% of the run,
at most 30 minutes. Less than 30 minutes of data after warm-up gives no pass (see
``DEFAULT_MIN_ANALYSED_S``), and a fail only above a *short-window floor*: a clean process still
grows in its first minutes (bounded caches and retained histories filling: the reference bot
grew 100-112 MB/h at 10-20 trades/s in its first minute, 267 MB/h under memray), so a short window calls a
leak only when even its CI's lower bound exceeds that floor (``short_floor_bph``, given by the
caller: the judge scales a per-trade figure by the trade rate). Every result states the smallest
growth its window could have called a leak (``detectable_bph``).

The same statistic runs on each memory series the run recorded: RSS, and the Python heap's traced bytes
when the bot traced them (``x_heap_bytes``, ``bot.heapwatch``). The heap has no allocator arenas or
freed-but-kept pages in it, so it is the quieter signal: in 45-s soaks here (10 trades/s) its CI
half-width was 4 MB/h clean and 31-52 MB/h with a planted leak where RSS's was 27-28 and 60-95 MB/h;
the clean bot's heap grew 72-74 MB/h, its RSS 106-108 MB/h. The judge gives each series its own verdict, so
``memory_leak`` fails when either shows a leak.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from harness.errors import ConfigError
from harness.stats.histograms import FloatArray
from harness.stats.intervals import Estimate, Trend, linear_trend
from harness.stats.verdict import DEFAULT_MAX_MORE_TIME_S, decide

LeakVerdict = Literal["no leak", "leak", "inconclusive"]

DEFAULT_WARMUP_FRACTION = 0.2
DEFAULT_WARMUP_MAX_S = 1800.0
# Memory wanders on time scales of minutes (GC generations, arenas); over a short window that
# wander is indistinguishable from a trend and its correlation cannot be estimated, so shorter
# runs report their slope and CI but no verdict. Simulated 4-minute windows of such noise gave
# CIs that covered zero only ~70% of the time; 45-minute windows ~91%, 5 hours ~97%.
DEFAULT_MIN_ANALYSED_S = 1800.0
MIN_POINTS = 10
_HOUR = 3600.0


@dataclass(frozen=True)
class LeakResult:
    """Growth of one memory series (``"rss"`` or ``"heap"``) after warm-up, in bytes per hour."""

    series: str
    slope_bph: float
    lo_bph: float
    hi_bph: float
    confidence: float
    sensitivity_bph: float
    resolution_bph: float
    verdict: LeakVerdict
    more_time_s: float | None
    warmup_s: float
    analysed_s: float
    n: int
    note: str
    # The smallest growth this window could call a leak: the threshold it must clear (the sensitivity,
    # or in a short window the short-window floor) plus the CI half-width. inf: none in this window.
    detectable_bph: float = float("inf")

    def estimate(self) -> Estimate:
        return Estimate(self.slope_bph, self.lo_bph, self.hi_bph, self.confidence, "ols-batch-means", self.n,
                        self.note)


def _fmt(bph: float) -> str:
    return f"{bph / 1e6:.3g} MB/h"


def detect_leak(
    t_s: Sequence[float] | FloatArray,
    values_bytes: Sequence[float] | FloatArray,
    *,
    sensitivity_bph: float,
    series: str = "rss",
    warmup_s: float | None = None,
    warmup_fraction: float = DEFAULT_WARMUP_FRACTION,
    warmup_max_s: float = DEFAULT_WARMUP_MAX_S,
    min_analysed_s: float = DEFAULT_MIN_ANALYSED_S,
    confidence: float = 0.95,
    max_more_time_s: float = DEFAULT_MAX_MORE_TIME_S,
    short_floor_bph: float | None = None,
) -> LeakResult:
    """Judge one memory series sampled at times ``t_s`` (seconds from the scenario start).

    ``short_floor_bph``: below ``min_analysed_s`` of data a leak is called only when the CI's lower
    bound exceeds this growth (None: never, the window gives no verdict); it is never a pass."""
    if sensitivity_bph <= 0:
        raise ConfigError(f"sensitivity_bph={sensitivity_bph!r}: give a positive growth rate in bytes/hour")
    if not 0.0 <= warmup_fraction < 1.0:
        raise ConfigError(f"warmup_fraction={warmup_fraction!r}: use a fraction in [0, 1), e.g. 0.2")
    t = np.asarray(t_s, dtype=np.float64)
    y = np.asarray(values_bytes, dtype=np.float64)
    if t.shape != y.shape:
        raise ConfigError(f"{series}: {len(t)} times but {len(y)} values: give one time per sample")
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    span = float(t[-1] - t[0]) if len(t) else 0.0
    warm = warmup_s if warmup_s is not None else min(warmup_fraction * span, warmup_max_s)
    keep = t >= (t[0] + warm if len(t) else 0.0)
    ta, ya = t[keep], y[keep]
    if len(ta) < MIN_POINTS or float(ta[-1] - ta[0]) <= 0:
        return LeakResult(series, float("nan"), float("nan"), float("nan"), confidence, sensitivity_bph,
                          float("nan"), "inconclusive", None, warm, 0.0, len(ta),
                          f"only {len(ta)} samples after a {warm:.0f} s warm-up: need at least {MIN_POINTS}")
    trend: Trend = linear_trend(ta, ya, confidence=confidence)
    est = trend.estimate(_HOUR)
    analysed = float(ta[-1] - ta[0])
    resolution = est.halfwidth
    v = decide(est, "<", sensitivity_bph, duration_s=analysed, max_more_time_s=max_more_time_s,
               shrink_exponent=1.5)
    verdict: LeakVerdict = {"pass": "no leak", "fail": "leak"}.get(v.verdict, "inconclusive")  # type: ignore[assignment]
    more = v.more_time_s
    short = ""
    detectable = sensitivity_bph + resolution
    if analysed < min_analysed_s:
        floor = max(sensitivity_bph, short_floor_bph) if short_floor_bph is not None else float("inf")
        detectable = floor + resolution
        window = f"only {analysed / 60:.2g} min after warm-up"
        if est.lo > floor:
            short = (f"; {window}, too short to rule a leak out, but even the CI's lower bound is above the "
                     f"short-window floor {_fmt(floor)} (growth a clean process shows while its caches fill), "
                     f"so it is a leak")
            verdict, more = "leak", None
        else:
            short = (f"; {window}: at least {min_analysed_s / 60:.0f} min are needed before memory wander and "
                     f"caches filling can be told from a leak, so "
                     + (f"no pass; this window would have called a leak from {_fmt(detectable)} up"
                        if math.isfinite(detectable) else "no verdict"))
            verdict = "inconclusive"
            more = max(more or 0.0, min_analysed_s - analysed)
    if analysed < min_analysed_s:  # the short-window note says what decided
        why = f"growth {_fmt(est.value)}, CI [{_fmt(est.lo)}, {_fmt(est.hi)}]"
    elif verdict == "inconclusive" and est.value < sensitivity_bph:
        why = (f"growth {_fmt(est.value)} is below the sensitivity {_fmt(sensitivity_bph)} but the CI reaches "
               f"{_fmt(est.hi)}")
    elif verdict == "inconclusive":
        why = (f"growth {_fmt(est.value)} is above the sensitivity {_fmt(sensitivity_bph)} but the CI reaches "
               f"{_fmt(est.lo)}")
    else:
        why = f"growth {_fmt(est.value)}, CI [{_fmt(est.lo)}, {_fmt(est.hi)}]"
    note = (f"{series}: {why}; this run resolves growth of {_fmt(resolution)} over {analysed / 3600:.2f} h "
            f"after a {warm:.0f} s warm-up{short}; {trend.detail}")
    return LeakResult(series, est.value, est.lo, est.hi, confidence, sensitivity_bph, resolution, verdict,
                      more, warm, analysed, len(ta), note, detectable)
