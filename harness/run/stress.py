"""Finding the stress test's breaking point: judging one step, and choosing the next (pure, sans-I/O).

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

:class:`StressSearch` is the state machine the async runner drives: ``next_rate()`` says what to
run (and ``next_seconds_factor`` how much longer than a normal step), ``record()`` takes the judged
step. It ramps up the ladder to the first broken step, then bisects the bracket between the last
good rate and the lowest broken one until the breaking point is known within ``resolution``.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from scipy import stats as sps

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
MIN_RATE = 1.0  # per second: bisected rates are whole numbers, and nothing below one is offered
_EPS = 1e-6


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


def _surely_below(judged: Sequence[Mapping[str, Any]], limit: float, confidence: float = 0.95) -> bool:
    """Whether the accepted rate is below ``limit`` with confidence: a t-interval over the judged
    intervals' per-second rates (a stall shows as one low interval, a saturated bot as all of them)."""
    rates = [float(iv["counters"].get("tx_accepted", 0)) / max(float(iv.get("end", 1.0)) - float(iv.get("start", 0.0)),
                                                                _EPS)
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
    if warmup_s > 0:
        judged = _after_warmup(intervals, start + warmup_s)
        first = min((float(iv["start"]) for iv in judged), default=start + warmup_s)
        judged_start = max(first, start + warmup_s)
    else:
        judged, judged_start = list(intervals), start
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
    if broken is None and ((short and _surely_below(judged, KEEP_UP * rate))
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


Phase = Literal["ramp", "bisect", "done"]
StopReason = Literal["resolved", "ladder_held", "max_steps"]


class StressSearch:
    """Where the breaking point lies, narrowed step by step (pure: the runner runs the steps).

    - **ramp**: the ladder's rates in order, until the first broken step.
    - **bisect**: the bracket (last good, lowest broken] is split at its *geometric* midpoint,
      rounded to a whole rate, until ``hi <= lo * (1 + resolution)``. The stopping rule is a
      ratio, and the geometric midpoint halves the bracket's log-ratio every step, so the number
      of steps is the fewest for a relative resolution whatever the bracket's height; an
      arithmetic midpoint would spend its first steps on the top of a wide bracket (800..1600
      splits at 1200, leaving 1.5x below and 1.33x above, against 1131: 1.41x on both sides).
      The search also ends when no whole rate lies strictly inside the bracket: the breaking
      point is then known exactly on the grid of rates that can be offered.
    - If the very first ladder rate breaks, there is no good rate to bisect from: the search
      offers a quarter of the lowest broken rate (at least ``MIN_RATE``), again and again, until
      one holds, and then bisects. A guessed lower bound (0 or ladder[0]/4) that was never run
      could end the search on a bracket whose lower end is not known good; a quarter is one
      step down into territory the ladder's author did not expect, and then ~4 bisections to 10%.
    - An **undecided** step is run once more at the same rate, ``next_seconds_factor`` (2.0)
      times as long, for the samples it lacked. If it is undecided again it counts as *not
      broken* for bracketing (if the step budget leaves no room for the re-run, it counts for
      nothing and the search ends there): like a step whose
      latency is merely uncertain, it did not break anything with confidence, and undecided
      steps are the low, short ones where the bot is idling (a bot that cannot keep up breaks on
      its counters, which need no latency samples). Such rates are listed in ``summary()``
      under ``undecided_rates`` so a last_good that rests on one can be seen.

    ``max_steps`` bounds every step run, re-runs included; hitting it ends the search with
    ``resolved`` False and the bracket as narrowed so far.
    """

    def __init__(self, ladder: Sequence[float], *, resolution: float = 0.10, max_steps: int = 14) -> None:
        rates = tuple(float(r) for r in ladder)
        if not rates:
            raise ValueError("StressSearch: the ladder is empty; give at least one rate")
        if any(not math.isfinite(r) or r < MIN_RATE for r in rates):
            raise ValueError(f"StressSearch: ladder {list(rates)} has a rate under {MIN_RATE:g}/s or not finite")
        if any(b <= a for a, b in itertools.pairwise(rates)):
            raise ValueError(f"StressSearch: ladder {list(rates)} must be strictly increasing")
        if not (math.isfinite(resolution) and resolution > 0):
            raise ValueError(f"StressSearch: resolution={resolution} must be > 0 (0.10 reports within 10%)")
        if max_steps < 1:
            raise ValueError(f"StressSearch: max_steps={max_steps} must be at least 1")
        self._ladder = rates
        self._resolution = resolution
        self._max_steps = max_steps
        self._next_index = 0  # the ladder rate the ramp offers next
        self._lo: float | None = None  # highest rate not broken
        self._hi: StepOutcome | None = None  # the step at the lowest rate broken
        self._first_broken: StepOutcome | None = None
        self._outcomes: list[StepOutcome] = []
        self._undecided_rates: list[float] = []
        self._rerun = False
        self._phase: Phase = "ramp"
        self._stop: StopReason | None = None
        self._pending: float | None = rates[0]

    # ------------------------------------------------------------------------------------ driving
    def next_rate(self) -> float | None:
        """The rate to run next (the same until it is recorded); None once the search is done."""
        return self._pending

    @property
    def next_seconds_factor(self) -> float:
        """How much longer than a normal step the next one should run: 2.0 when re-running an undecided step."""
        return 2.0 if self._rerun and self._pending is not None else 1.0

    def record(self, outcome: StepOutcome) -> None:
        """Take the judged step that ran at ``next_rate()``."""
        if self._pending is None:
            raise ValueError("StressSearch.record: the search is done; no step was asked for")
        if not math.isclose(outcome.rate, self._pending, rel_tol=1e-9, abs_tol=1e-9):
            raise ValueError(f"StressSearch.record: a step at {outcome.rate:g}/s, "
                             f"but {self._pending:g}/s was asked for")
        self._outcomes.append(outcome)
        rerun_done = self._rerun
        self._rerun = False
        if outcome.broken:
            if self._hi is None or outcome.rate < self._hi.rate:
                self._hi = outcome
            self._first_broken = self._first_broken or outcome
        elif outcome.undecided and not rerun_done:
            if self.steps_run < self._max_steps:
                self._rerun = True  # the same rate again, longer; the phase does not move
                return
            # No budget for its re-run: the step tells nothing, so the bracket stays as it was.
            self._undecided_rates.append(outcome.rate)
        else:
            if outcome.undecided:
                self._undecided_rates.append(outcome.rate)
            self._lo = outcome.rate if self._lo is None else max(self._lo, outcome.rate)
            if self._hi is None:
                self._next_index += 1
        self._advance()

    def _advance(self) -> None:
        if self._hi is None:
            if self._next_index >= len(self._ladder):
                self._finish("ladder_held")
            elif self.steps_run >= self._max_steps:
                self._finish("max_steps")
            else:
                self._pending = self._ladder[self._next_index]
            return
        inside = self._inside()
        if inside is None:
            self._finish("resolved")
        elif self.steps_run >= self._max_steps:
            self._finish("max_steps")
        else:
            self._phase = "bisect"
            self._pending = inside

    def _finish(self, reason: StopReason) -> None:
        self._phase, self._stop, self._pending = "done", reason, None

    def _inside(self) -> float | None:
        """The next whole rate strictly inside the bracket, or None when the bracket is narrow enough."""
        assert self._hi is not None
        hi, lo = self._hi.rate, self._lo
        if lo is None:
            below = max(MIN_RATE, float(round(hi / 4)))
            return below if below < hi else None
        if hi <= lo * (1.0 + self._resolution):
            return None
        lowest, highest = math.floor(lo) + 1, math.ceil(hi) - 1  # whole rates strictly inside (lo, hi)
        if lowest > highest:
            return None
        return float(min(max(round(math.sqrt(lo * hi)), lowest), highest))

    # ------------------------------------------------------------------------------------ results
    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def breaking_point(self) -> float | None:
        """The lowest rate known broken (once bisected: within ``resolution`` of last_good)."""
        return self._hi.rate if self._hi is not None else None

    @property
    def last_good(self) -> float | None:
        """The highest rate that did not break (the ladder's top when the whole ladder held)."""
        return self._lo

    @property
    def first_broken(self) -> StepOutcome | None:
        """The first step, in the order run, that broke (the ramp's; bisection may find lower ones)."""
        return self._first_broken

    @property
    def resolved(self) -> bool:
        """A breaking point is known and the bracket is within the resolution (or holds no whole rate)."""
        return self._hi is not None and self._inside() is None

    @property
    def steps_run(self) -> int:
        return len(self._outcomes)

    @property
    def outcomes(self) -> tuple[StepOutcome, ...]:
        return tuple(self._outcomes)

    def summary(self) -> dict[str, Any]:
        return {
            "ladder": list(self._ladder),
            "resolution": self._resolution,
            "last_good": self.last_good,
            "breaking_point": self.breaking_point,
            "broken_by": self._hi.broken if self._hi is not None else None,
            "bracket": [self.last_good, self.breaking_point],
            "resolved": self.resolved,
            "steps_run": self.steps_run,
            "phase": self._phase,
            # resolved | ladder_held | max_steps (null while running): tells a held ladder from a cut-off search
            "stop_reason": self._stop,
            "undecided_rates": list(self._undecided_rates),
        }
