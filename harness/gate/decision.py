"""The gate's decision rules, pure: timings in, verdicts out (no processes, no clock, no git).

Wall-clock tier. Each revision ran in several processes; in every round the runner measured base
process ``i`` and head process ``i`` back to back (order alternating), so a pair shares the
machine's load of that moment. The unit of evidence is the *pair*: its median over rounds of the
slot-to-slot log ratio. Pairs are independent (different processes), and a process carries effects
a slot cannot average away (memory layout, hash seed, which core it landed on). On the log scale:

- the noise model is the spread of the pair estimates measured in this same job (for identical code
  this is exactly the A/A spread), never taken below what the slot-to-slot spread alone implies for a
  median of that many rounds;
- the effect is the mean of the pair estimates (head over base), i.e. a ratio;
- a one-sided t-test across pairs gives a p-value; Holm's step-down corrects for the number of cases;
- the noise threshold is the effect the test needs at the level the case was tested at
  (``t * standard error``), and never below the difference this job measured between two halves of
  the pairs (scaled to the comparison's size). So the threshold comes from the measured noise, not
  from a guessed percentage.

A case is a regression when the Holm-corrected test rejects and the slowdown exceeds the threshold
(and the optional policy floor ``min_effect``).

Instruction-count tier. Callgrind counts are deterministic (with ``PYTHONHASHSEED=0``); the noise
model is the measured difference between two repeated base runs, and the threshold is
``max(min_effect, noise_factor * that difference)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean, median

from scipy import stats as sps

from harness.gate.mde import DEFAULT_POWER, mde


class GateInputError(ValueError):
    """Timings the rule cannot judge (too few processes or slots); the message says what to change."""


@dataclass(frozen=True)
class WallComparison:
    case: str
    ratio: float  # head / base, from the mean log process-medians
    ci95: tuple[float, float]
    p_value: float  # one-sided: head slower than base
    base_ns: float
    head_ns: float
    sigma_process: float  # log-scale spread of the per-pair estimates (the noise model)
    sigma_slot: float  # log-scale spread of slot-to-slot ratios within a pair
    aa_ratio: float  # the difference between two halves of the pairs (scaled): noise seen in this job
    se: float  # standard error of the log ratio
    df: int
    n_base: int
    n_head: int


@dataclass(frozen=True)
class CallgrindComparison:
    case: str
    base_per_iter: float
    base_repeat_per_iter: float
    head_per_iter: float
    ratio: float
    aa_diff: float  # |repeat / base - 1|: the measured noise of the tier
    threshold: float  # as a fraction, e.g. 0.005 for +0.5%


@dataclass(frozen=True)
class Acknowledgement:
    benchmark: str
    reason: str
    source: str  # "commit abc1234" or "perf-acknowledged.toml"


@dataclass(frozen=True)
class Decision:
    case: str
    status: str  # regression | acknowledged | improvement | unchanged | skipped
    tiers: tuple[str, ...]  # the tiers that saw a regression
    wall: WallComparison | None = None
    wall_threshold: float | None = None  # as a fraction of the base time
    wall_p_adjusted: float | None = None
    callgrind: CallgrindComparison | None = None
    acknowledged: Acknowledgement | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    # The smallest wall-clock slowdown this run would have caught (harness.gate.mde); the instruction
    # count's is its threshold, since the count repeats exactly.
    wall_mde: float | None = None

    @property
    def failing(self) -> bool:
        return self.status == "regression"


def _log_medians(processes: Sequence[Sequence[float]], side: str, case: str) -> list[float]:
    out = []
    for values in processes:
        if not values:
            raise GateInputError(f"{case}: a {side} process has no slots; raise --rounds")
        if min(values) <= 0:
            raise GateInputError(f"{case}: {side} timings must be positive nanoseconds per operation")
        out.append(math.log(median(values)))
    return out


def _sample_var(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return 0.0
    mean = fmean(xs)
    return sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)


def _halves_log_diff(logs: Sequence[float]) -> float:
    """|mean(odd) - mean(even)|: the difference between two groups of identical-code processes."""
    if len(logs) < 2:
        return 0.0
    return abs(fmean(logs[0::2]) - fmean(logs[1::2]))


def compare_wallclock(
    case: str, base: Sequence[Sequence[float]], head: Sequence[Sequence[float]]
) -> WallComparison:
    """Compare per-process slot timings (ns per operation) of two revisions for one case.

    ``base[i]`` and ``head[i]`` are a *pair*: in every round the runner measured base process ``i``
    and head process ``i`` back to back (in alternating order), so both saw nearly the same machine
    load. Each pair gives one estimate, the median over rounds of the slot-to-slot log ratio; the
    pairs are independent units (different processes), and the test runs across them.
    """
    if len(base) != len(head):
        raise GateInputError(f"{case}: base has {len(base)} processes and head {len(head)}; they must pair up")
    if len(base) < 2:
        raise GateInputError(
            f"{case}: need at least 2 processes per revision to measure the A/A spread "
            f"(got {len(base)}); raise --processes"
        )
    xb = _log_medians(base, "base", case)
    xh = _log_medians(head, "head", case)
    pair_logs: list[list[float]] = []
    for b, h in zip(base, head, strict=True):
        rounds = min(len(b), len(h))
        pair_logs.append([math.log(h[r]) - math.log(b[r]) for r in range(rounds)])
    d = [median(v) for v in pair_logs]
    n = len(d)
    df = n - 1
    sigma_slot, min_slots = _pair_sigma(pair_logs)
    # The median of n slot ratios varies at least by ~1.25 sigma/sqrt(n) even if the processes were
    # identical; with few pairs the between-pair estimate can come out implausibly small by chance.
    floor_var = (math.pi / 2) * sigma_slot**2 / min_slots
    var_pair = max(_sample_var(d), floor_var)
    se = math.sqrt(var_pair / n)
    diff = fmean(d)
    if se > 0:
        p_value = float(sps.t.sf(diff / se, df))
        half = float(sps.t.ppf(0.975, df)) * se
    else:
        p_value = 0.0 if diff > 0 else 1.0
        half = 0.0
    # Two halves of the pairs estimate the same effect; their difference is pure noise measured in
    # this job. Its variance is 4x that of the overall mean, hence the factor 1/2.
    aa_log = _halves_log_diff(d) / 2
    return WallComparison(
        case=case,
        ratio=math.exp(diff),
        ci95=(math.exp(diff - half), math.exp(diff + half)),
        p_value=p_value,
        base_ns=math.exp(fmean(xb)),
        head_ns=math.exp(fmean(xh)),
        sigma_process=math.sqrt(var_pair),
        sigma_slot=sigma_slot,
        aa_ratio=math.exp(aa_log),
        se=se,
        df=df,
        n_base=len(xb),
        n_head=len(xh),
    )


def _pair_sigma(pair_logs: Sequence[Sequence[float]]) -> tuple[float, int]:
    """Robust spread (MAD) of slot log ratios around their pair's median, and the fewest rounds."""
    residuals: list[float] = []
    for values in pair_logs:
        mid = median(values)
        residuals.extend(abs(v - mid) for v in values)
    return (1.4826 * median(residuals) if residuals else 0.0), min(len(v) for v in pair_logs)


def holm(p_values: Sequence[float], alpha: float) -> tuple[list[bool], list[float], list[float]]:
    """Holm-Bonferroni: (rejected, adjusted p-values, per-test level) in the input order."""
    return weighted_holm(p_values, [1.0] * len(p_values), alpha)


def weighted_holm(p_values: Sequence[float], weights: Sequence[float], alpha: float
                  ) -> tuple[list[bool], list[float], list[float]]:
    """Holm's weighted step-down (Holm 1979): (rejected, adjusted p-values, per-test level), input order.

    Among the hypotheses still standing, the one with the smallest ``p / w`` is tested at
    ``alpha * w / (sum of the standing weights)``; the family-wise error stays at ``alpha`` for any
    positive weights fixed before the data. Equal weights are plain Holm. A metric named in advance
    as the one that matters most (the e2e tier's CPU per trade) gets a larger share of ``alpha``
    without loosening the family: the others share the rest, and inherit it once it is rejected."""
    m = len(p_values)
    if len(weights) != m or any(not w > 0 for w in weights):
        raise ValueError(f"weighted_holm: {m} p-values need {m} positive weights, got {list(weights)}")
    order = sorted(range(m), key=lambda i: (p_values[i] / weights[i], p_values[i]))  # p breaks an underflow's tie
    rejected = [False] * m
    adjusted = [1.0] * m
    standing = float(sum(weights))
    levels = [alpha * w / standing for w in weights]
    running = 0.0
    still_rejecting = True
    for i in order:
        running = max(running, min(1.0, p_values[i] * standing / weights[i]))
        adjusted[i] = running
        levels[i] = alpha * weights[i] / standing
        if still_rejecting and p_values[i] <= levels[i]:
            rejected[i] = True
        else:
            still_rejecting = False
        standing -= weights[i]
    return rejected, adjusted, levels


def wall_threshold(comp: WallComparison, level: float, min_effect: float = 0.0) -> float:
    """The slowdown (fraction) this comparison must exceed to count as a regression at ``level``."""
    t_crit = float(sps.t.ppf(1 - level, comp.df)) if comp.se > 0 else 0.0
    stat_log = t_crit * comp.se
    log_threshold = max(stat_log, math.log(comp.aa_ratio), math.log1p(min_effect))
    return math.expm1(log_threshold)


def compare_callgrind(
    case: str,
    base_per_iter: float,
    base_repeat_per_iter: float,
    head_per_iter: float,
    *,
    min_effect: float = 0.005,
    noise_factor: float = 10.0,
) -> CallgrindComparison:
    if base_per_iter <= 0 or head_per_iter <= 0 or base_repeat_per_iter <= 0:
        raise GateInputError(f"{case}: instruction counts per iteration must be positive")
    aa = abs(base_repeat_per_iter / base_per_iter - 1.0)
    return CallgrindComparison(
        case=case,
        base_per_iter=base_per_iter,
        base_repeat_per_iter=base_repeat_per_iter,
        head_per_iter=head_per_iter,
        ratio=head_per_iter / base_per_iter,
        aa_diff=aa,
        threshold=max(min_effect, noise_factor * aa),
    )


def decide(
    cases: Sequence[str],
    wall: Mapping[str, WallComparison],
    callgrind: Mapping[str, CallgrindComparison],
    acknowledgements: Sequence[Acknowledgement] = (),
    *,
    alpha: float = 0.01,
    min_effect: float = 0.0,
    skipped: Mapping[str, str] | None = None,
    power: float = DEFAULT_POWER,
) -> list[Decision]:
    """One decision per case, with Holm's correction over the wall-clock comparisons made."""
    skipped = skipped or {}
    wall_names = [c for c in cases if c in wall]
    strictest = alpha / max(1, len(wall_names))
    rejected, adjusted, levels = holm([wall[c].p_value for c in wall_names], alpha)
    wall_verdict = {
        name: (rej, adj, lvl) for name, rej, adj, lvl in zip(wall_names, rejected, adjusted, levels, strict=True)
    }
    acks = {a.benchmark: a for a in acknowledgements}
    decisions = []
    for case in cases:
        if case in skipped and case not in wall and case not in callgrind:
            decisions.append(Decision(case, "skipped", (), notes=(skipped[case],)))
            continue
        tiers: list[str] = []
        wall_faster = cg_fewer = False
        threshold = p_adj = None
        notes: list[str] = [skipped[case]] if case in skipped else []
        wc = wall.get(case)
        if wc is not None:
            rej, p_adj, level = wall_verdict[case]
            threshold = wall_threshold(wc, level, min_effect)
            if rej and wc.ratio - 1 > threshold:
                tiers.append("wall")
            elif wc.ratio < 1 / (1 + threshold) and wc.p_value > 1 - level:
                wall_faster = True
        cg = callgrind.get(case)
        cg_same = False
        if cg is not None:
            if cg.ratio - 1 > cg.threshold:
                tiers.append("callgrind")
            elif cg.ratio < 1 - cg.threshold:
                cg_fewer = True
            else:
                cg_same = True
        # A wall-clock gain that the instruction counts do not show is not claimed: on identical
        # code (an A/A) the wall tier once read 0.61x with p > 0.999 while callgrind read 1.0000,
        # because a disturbance hit one side's slots. A slowdown is still a slowdown (it can come
        # from memory or system calls, which callgrind does not count); a gain is not reported.
        improved = cg_fewer or (wall_faster and not cg_same)
        if wall_faster and cg_same and wc is not None:
            notes.append(f"wall clock {wc.ratio:.2f}x, but the instruction counts are equal: not called an improvement")
        ack = acks.get(case)
        if tiers:
            status = "acknowledged" if ack is not None else "regression"
        else:
            status = "improvement" if improved else "unchanged"
        decisions.append(
            Decision(
                case,
                status,
                tuple(tiers),
                wall=wc,
                wall_threshold=threshold,
                wall_p_adjusted=p_adj,
                callgrind=cg,
                acknowledged=ack if tiers else None,
                notes=tuple(notes),
                wall_mde=None if wc is None else mde(
                    wc.se, wc.df, strictest, power, (math.log(wc.aa_ratio), math.log1p(min_effect))
                ),
            )
        )
    return decisions
