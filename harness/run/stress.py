"""Judging one step of the trading stress test (pure, sans-I/O); the search itself is ``harness.run.bisection``.

A step is broken when the bot could not keep up (accepted under 95% of the offered rate, or the
feed had to drop), when errors reach 0.1%, or when a latency statistic fails its SLO threshold
*with confidence*: the lower end of its 95% interval is above the limit. A point estimate alone
would let one scheduler hiccup on a shared machine end the stress test at its first step; a
step whose latency is merely uncertain goes on to the next rate. The first target that broke
is named.

Two things keep a step's verdict about the rate it was offered:

- **warm-up**: the first ``warmup_s`` seconds after a rate change are not judged. The bot's
  queues, the node's pool and the block cadence take a moment to reach the new rate; judging
  that transient would blame a rate for the previous one (a backlog carried over, or a burst of
  acceptances catching up).
- **sample floor**: a step with too few latency samples in its judged window is ``undecided``,
  neither good nor broken. With few samples a p99 *is* the largest sample or close to it: a
  couple of slow trades would break it, and a real tail would go unseen (see ``MIN_SAMPLES``).

:class:`StressSearch` (``harness.run.bisection``, re-exported here) is the state machine the async
runner drives: ``next_rate()`` says what to run (and ``next_seconds_factor`` how much longer than a
normal step), ``record()`` takes the judged step. It ramps up the ladder to the first broken step,
then bisects the bracket between the last good rate and the lowest broken one until the breaking
point is known within ``resolution``. ``judged_window`` and ``surely_below`` are shared with the
market-data stress (``harness.run.wsstress``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats as sps

from harness.run.bisection import MIN_RATE, Phase, StopReason, StressSearch
from harness.stats.histograms import series_from_encoded
from harness.stats.intervals import latency_cis, stat_key

KEEP_UP = 0.95
MAX_ERROR_RATE = 0.001
WARMUP_S = 2.0
# The sample floor, for the p99 the latency rows judge. The 95% distribution-free (binomial
# order-statistic) interval of a p99 reaches the sample maximum up to n = 550: below that the
# interval is open-ended in practice, the "p99" is one of the top few samples, and two or three
# slow trades in one hiccup decide the step. From 560 its upper end is an inner sample; at 600 a
# p99 whose tail beyond the limit is three times the allowed 1% (3% of trades over the limit) is
# caught with 95% probability (88% at 500, 19% at 50). Those figures assume independent samples;
# correlated ones (one GC pause slows many trades) need more, which the block bootstrap over
# intervals accounts for once a step has 10 intervals or more. tests/unit/test_run_stress.py
# recomputes both properties with scipy.
MIN_SAMPLES = 600
_EPS = 1e-6

__all__ = ["KEEP_UP", "MIN_RATE", "MIN_SAMPLES", "Phase", "StepOutcome", "StopReason", "StressSearch",
           "judge_step", "judged_window", "surely_below"]


@dataclass(frozen=True)
class StepOutcome:
    rate: float
    start: float  # the judged window: the step's window after its warm-up
    end: float
    achieved: float
    error_rate: float
    latency_ok: bool  # judged and not failed with confidence (False when undecided: not shown to hold)
    broken: str | None  # the first target broken at this step, if any
    samples: int = 0  # latency samples in the judged window, of the latency row with the fewest
    undecided: bool = False  # too few samples (or no window left after warm-up) to call it good
    warmup_s: float = 0.0  # seconds at the step's start that were not judged

    def as_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "start": self.start, "end": self.end, "achieved": round(self.achieved, 2),
                "error_rate": self.error_rate, "latency_ok": self.latency_ok, "broken": self.broken,
                "samples": self.samples, "undecided": self.undecided, "warmup_s": self.warmup_s}


def _after_warmup(intervals: Sequence[Mapping[str, Any]], cut: float) -> list[Mapping[str, Any]]:
    kept = []
    for iv in intervals:
        if "start" not in iv:
            raise ValueError("judge_step: an interval has no 'start'; excluding the warm-up needs interval starts "
                             "(seconds from the scenario start), or pass warmup_s=0 to judge every interval")
        if float(iv["start"]) >= cut - _EPS:
            kept.append(iv)
    return kept


def judged_window(intervals: Sequence[Mapping[str, Any]], start: float,
                  warmup_s: float) -> tuple[list[Mapping[str, Any]], float]:
    """The intervals judged after a warm-up, and where the judged window starts: at the first interval
    kept, so a warm-up that is not a whole number of intervals does not dilute a rate with a partial one."""
    if warmup_s <= 0:
        return list(intervals), start
    judged = _after_warmup(intervals, start + warmup_s)
    first = min((float(iv["start"]) for iv in judged), default=start + warmup_s)
    return judged, max(first, start + warmup_s)


def surely_below(judged: Sequence[Mapping[str, Any]], limit: float, confidence: float = 0.95,
                 counters: Sequence[str] = ("tx_accepted",)) -> bool:
    """Whether the rate of ``counters`` (summed) is below ``limit`` with confidence: a t-interval over
    the judged intervals' per-second rates (a stall shows as one low interval, a saturated bot as all
    of them)."""
    rates = [sum(float(iv["counters"].get(c, 0)) for c in counters)
             / max(float(iv.get("end", 1.0)) - float(iv.get("start", 0.0)), _EPS)
             for iv in judged]
    if len(rates) < 3:
        return sum(rates) / max(len(rates), 1) < limit  # too few to tell a stall from saturation
    mean = statistics.fmean(rates)
    half = float(sps.t.ppf(0.5 + confidence / 2, len(rates) - 1)) * statistics.stdev(rates) / math.sqrt(len(rates))
    return mean + half < limit


def judge_step(
    rate: float,
    start: float,
    end: float,
    intervals: Sequence[Mapping[str, Any]],
    latency_limits_ms: Mapping[str, Mapping[str, float]],
    *,
    warmup_s: float = WARMUP_S,
    min_samples: int = MIN_SAMPLES,
) -> StepOutcome:
    """``intervals``: the step's scenario intervals; ``latency_limits_ms``: row -> {"mean"|"p95"|"p99": ms}.

    Intervals starting before ``start + warmup_s`` are not judged (``warmup_s=0`` judges them all,
    as for a whole scenario). The judged window starts at the first interval kept, so a warm-up
    that is not a whole number of intervals does not dilute the rate with a partial interval.
    Latency rows with no samples at all are skipped (the workload does not exercise them); a row
    with fewer than ``min_samples`` is not judged, and unless the counters broke a target the step
    is then ``undecided``. Counters still break an under-sampled step: a bot that stopped accepting
    transactions completes few trades, and must not pass for "not enough data".
    """
    if warmup_s < 0 or min_samples < 0:
        raise ValueError(f"judge_step: warmup_s={warmup_s} and min_samples={min_samples} must be >= 0")
    judged, judged_start = judged_window(intervals, start, warmup_s)
    window_s = end - judged_start
    if not judged or window_s <= _EPS:
        return StepOutcome(rate, judged_start, end, 0.0, 0.0, False, None, 0, True, judged_start - start)

    def total(name: str) -> int:
        return sum(int(iv["counters"].get(name, 0)) for iv in judged)

    sent, dropped, accepted = total("sent"), total("dropped"), total("tx_accepted")
    ok, errors = total("ok"), total("errors")
    achieved = accepted / window_s
    error_rate = errors / (ok + errors) if ok + errors else 0.0
    broken: str | None = None
    latency_ok = True
    fewest: int | None = None
    for row, limits in latency_limits_ms.items():
        encoded = [iv.get("histograms", {}).get(row) for iv in judged]
        if not any(encoded):
            continue
        series = series_from_encoded(encoded, where=row)
        n = int(series.total)
        fewest = n if fewest is None else min(fewest, n)
        if n < min_samples:
            continue  # neither good nor broken: see MIN_SAMPLES
        pcts = sorted({float(s.lstrip("p")) for s in limits if s != "mean"})
        cis = latency_cis(series, pcts, n_boot=200)
        for stat, limit in limits.items():
            est = cis["mean"] if stat == "mean" else cis[stat_key(float(stat.lstrip("p")))]
            lower_ms = (est.lo if est.has_ci else est.value) / 1000.0
            if lower_ms >= limit:
                latency_ok = False
                broken = broken or f"{row}.{stat}"
    if broken is None and error_rate >= MAX_ERROR_RATE:
        broken = "error_rate"
    short = achieved < KEEP_UP * rate
    if broken is None and ((short and surely_below(judged, KEEP_UP * rate))
                           or (sent and dropped / (sent + dropped) > 0.001)):
        broken = "transactions_per_sec"
    samples = fewest or 0
    # No latency rows to judge (none configured) leaves nothing to be undecided about. A step that
    # fell short of the offered rate, but not surely (one stall of a shared machine in a few
    # seconds), is undecided too: it is re-run rather than ending the search on a hiccup.
    undecided = broken is None and ((bool(latency_limits_ms) and samples < min_samples) or short)
    if undecided:
        latency_ok = False  # not shown to hold: the throughput and concurrency judges skip the step
    return StepOutcome(rate, judged_start, end, achieved, error_rate, latency_ok, broken, samples, undecided,
                       judged_start - start)
