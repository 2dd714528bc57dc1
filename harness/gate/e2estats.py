"""The end-to-end tier's decision rules (pure): window figures in, verdicts out.

The statistics are the micro tier's (``harness.gate.decision``), with a window pair as the unit:

- per pair, the log ratio head/base of the metric; the effect is their mean (a ratio), with a
  one-sided t-test across pairs (``df = pairs - 1``) and a 95% CI;
- the noise model is the spread of the pair differences, never taken below the spread of the A/A
  pairs measured in the same job: the two middle windows of every quartet belong to one revision
  (``harness.gate.e2eplan``), and for identical code a pair difference has exactly their variance.
  A few pairs can look implausibly alike by chance; the A/A spread keeps the threshold honest;
- Holm's weighted step-down over the judged metrics (family-wise ``alpha``): CPU per trade, the
  primary metric, weighs as much as all the others together (``holm_weights``);
- the noise threshold is the effect the test needs at the level the metric was tested at
  (``t * se``), never below the difference between the pairs of even and odd quartets (halved:
  noise measured in this job), nor below the policy floor ``min_effect``. A metric fails when the
  corrected test rejects and the slowdown exceeds the threshold.

CPU per trade is judged at the machine's speed, not the moment's: each window's figure is scaled by
the run's geometric mean of the *reference* CPU per trade (the node's and this harness's, for the
same ticks; ``harness.gate.e2emetrics``) over that window's own (``speed_factors``). Both windows of a
pair replay the same ticks, so the pair's log ratio becomes log(bot ratio) - log(reference ratio).
The uncorrected ratio stays in the decision's notes.

A p99 from a short window is mostly its few largest samples. A window's p99 counts only when its
sample count pins the quantile down (``e2emetrics.quantile_judgeable``, about 560 samples), and the
metric is judged only when enough pairs qualify and its CI is narrower than ``p99_max_ci``;
otherwise it is reported, marked *not judged*, and left out of the Holm family.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from statistics import fmean

from scipy import stats as sps

from harness.gate.decision import Acknowledgement, weighted_holm
from harness.gate.e2emetrics import CPU_METRIC, METRICS, NODE_CPU_METRIC, WindowMetrics, min_samples
from harness.gate.mde import DEFAULT_POWER, mde

MIN_PAIRS = 3  # a t-test across fewer pairs has df < 2: its critical values are useless
ACK_PREFIX = "e2e."  # acknowledgement names: e2e.trade_execution.mean, e2e.bot_cpu_per_trade


@dataclass(frozen=True)
class PairValue:
    pair: int
    quartet: int
    base: float
    head: float

    @property
    def log_ratio(self) -> float:
        return math.log(self.head / self.base)


@dataclass(frozen=True)
class E2EComparison:
    metric: str
    n_pairs: int
    ratio: float  # head / base
    ci95: tuple[float, float]
    p_value: float  # one-sided: head slower
    base_value: float  # geometric means over the pairs used (µs)
    head_value: float
    se: float  # log scale
    df: int
    sigma_pair: float  # spread of the pair differences
    sigma_aa: float  # spread of the A/A pairs (root mean square of their log ratios)
    aa_pairs: int
    halves_log: float  # |mean(even quartets) - mean(odd quartets)| / 2
    judged: bool = True
    raw_ratio: float | None = None  # CPU per trade before the machine-speed correction (None: not corrected)
    reason: str = ""  # why not judged


@dataclass(frozen=True)
class E2EDecision:
    metric: str
    status: str  # regression | acknowledged | improvement | unchanged | not judged
    comparison: E2EComparison | None
    threshold: float | None = None  # as a fraction of the base figure
    p_adjusted: float | None = None
    mde: float | None = None  # the smallest slowdown this run would have caught (power DEFAULT_POWER)
    acknowledged: Acknowledgement | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def failing(self) -> bool:
        return self.status == "regression"

    @property
    def benchmark(self) -> str:
        return ACK_PREFIX + self.metric


def _judgeable(w: WindowMetrics, metric: str, p99_min: int) -> bool:
    return w.value(metric) is not None and (not metric.endswith(".p99") or w.samples(metric) >= p99_min)


def speed_factors(windows: Sequence[WindowMetrics]) -> dict[int, float]:
    """Window index -> the factor that puts its CPU per trade at the run's mean machine speed: the
    geometric mean of every window's reference CPU per trade over its own. Empty (no correction)
    unless every window with trades has a reference: half-corrected pairs would compare unlike figures."""
    refs = {w.index: w.reference_cpu_per_trade_us for w in windows if w.trades_ok > 0}
    if not refs or any(v is None or v <= 0 for v in refs.values()):
        return {}
    logs = {i: math.log(v) for i, v in refs.items() if v is not None}
    centre = fmean(logs.values())
    return {i: math.exp(centre - lv) for i, lv in logs.items()}


def _value(w: WindowMetrics, metric: str, factors: Mapping[int, float]) -> float:
    v = w.value(metric)
    assert v is not None
    return v * factors.get(w.index, 1.0) if metric == CPU_METRIC else v


def pair_values(windows: Sequence[WindowMetrics], metric: str, p99_min: int = 0,
                factors: Mapping[int, float] | None = None) -> list[PairValue]:
    """The pairs (one base and one head window) where both windows have the metric; CPU per trade
    scaled by ``factors`` (``speed_factors``) when given."""
    f = factors or {}
    by_pair: dict[int, dict[str, WindowMetrics]] = {}
    for w in windows:
        by_pair.setdefault(w.pair, {})[w.side] = w
    out = []
    for pair, sides in sorted(by_pair.items()):
        b, h = sides.get("base"), sides.get("head")
        if b is None or h is None or not (_judgeable(b, metric, p99_min) and _judgeable(h, metric, p99_min)):
            continue
        out.append(PairValue(pair, b.quartet, _value(b, metric, f), _value(h, metric, f)))
    return out


def aa_log_ratios(windows: Sequence[WindowMetrics], metric: str, p99_min: int = 0,
                  factors: Mapping[int, float] | None = None) -> list[float]:
    """log(second / first) of each quartet's two middle windows: one revision against itself."""
    f = factors or {}
    by_q: dict[int, dict[int, WindowMetrics]] = {}
    for w in windows:
        by_q.setdefault(w.quartet, {})[w.position] = w
    out = []
    for _, pos in sorted(by_q.items()):
        first, second = pos.get(1), pos.get(2)
        if first is None or second is None or first.side != second.side:
            continue
        if _judgeable(first, metric, p99_min) and _judgeable(second, metric, p99_min):
            out.append(math.log(_value(second, metric, f) / _value(first, metric, f)))
    return out


def _sample_var(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = fmean(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def halves_log(pairs: Sequence[PairValue]) -> float:
    """Half the difference between the pairs of even and of odd quartets (each half holds AB and BA
    pairs alike, so the order within a pair cancels in both)."""
    even = [p.log_ratio for p in pairs if p.quartet % 2 == 0]
    odd = [p.log_ratio for p in pairs if p.quartet % 2 == 1]
    if not even or not odd:
        return 0.0
    return abs(fmean(even) - fmean(odd)) / 2


def compare(metric: str, pairs: Sequence[PairValue], aa: Sequence[float]) -> E2EComparison:
    """The paired comparison of one metric (needs at least ``MIN_PAIRS`` pairs)."""
    if len(pairs) < MIN_PAIRS:
        raise ValueError(f"{metric}: {len(pairs)} pairs; at least {MIN_PAIRS} are needed")
    d = [p.log_ratio for p in pairs]
    n = len(d)
    df = n - 1
    var_pair = _sample_var(d)
    # The A/A log ratios have mean zero for identical code: their mean square is the variance of a
    # two-window difference, which is what a pair difference is.
    var_aa = fmean([x * x for x in aa]) if aa else 0.0
    se = math.sqrt(max(var_pair, var_aa) / n)
    diff = fmean(d)
    if se > 0:
        p = float(sps.t.sf(diff / se, df))
        half = float(sps.t.ppf(0.975, df)) * se
    else:
        p, half = (0.0 if diff > 0 else 1.0), 0.0
    return E2EComparison(
        metric=metric, n_pairs=n, ratio=math.exp(diff), ci95=(math.exp(diff - half), math.exp(diff + half)),
        p_value=p, base_value=math.exp(fmean([math.log(x.base) for x in pairs])),
        head_value=math.exp(fmean([math.log(x.head) for x in pairs])), se=se, df=df,
        sigma_pair=math.sqrt(var_pair), sigma_aa=math.sqrt(var_aa), aa_pairs=len(aa), halves_log=halves_log(pairs),
    )  # fmt: skip


def compare_all(windows: Sequence[WindowMetrics], *, p99_max_ci: float = 0.25,
                metrics: Sequence[str] = METRICS) -> dict[str, E2EComparison | str]:
    """Every metric's comparison, or the reason it has none (too few pairs with the figure)."""
    p99_min = min_samples(0.99)
    factors = speed_factors(windows)
    out: dict[str, E2EComparison | str] = {}
    for metric in metrics:
        is_p99 = metric.endswith(".p99")
        if metric == CPU_METRIC and factors:
            pairs = pair_values(windows, metric, factors=factors)
            if len(pairs) >= MIN_PAIRS:
                raw = compare(metric, pair_values(windows, metric), aa_log_ratios(windows, metric))
                out[metric] = replace(compare(metric, pairs, aa_log_ratios(windows, metric, factors=factors)),
                                      raw_ratio=raw.ratio)
                continue
        pairs = pair_values(windows, metric, p99_min if is_p99 else 0)
        if len(pairs) < MIN_PAIRS:
            total = len({w.pair for w in windows})
            why = (f"{len(pairs)} of {total} pairs had {p99_min}+ samples per window (a p99 needs them)"
                   if is_p99 else f"{len(pairs)} of {total} pairs had the figure")
            out[metric] = f"not judged: {why}; need {MIN_PAIRS}"
            continue
        comp = compare(metric, pairs, aa_log_ratios(windows, metric, p99_min if is_p99 else 0))
        if is_p99:
            lo, hi = comp.ci95
            spread = max(hi / comp.ratio - 1, 1 - lo / comp.ratio)
            if spread > p99_max_ci:
                comp = replace(comp, judged=False,
                               reason=f"its 95% CI is ±{spread:.0%} (wider than ±{p99_max_ci:.0%}); reported only")
        out[metric] = comp
    return out


def threshold(comp: E2EComparison, level: float, min_effect: float = 0.0) -> float:
    """The slowdown (fraction) ``comp`` must exceed to count as a regression at ``level``."""
    t_crit = float(sps.t.ppf(1 - level, comp.df)) if comp.se > 0 else 0.0
    return math.expm1(max(t_crit * comp.se, comp.halves_log, math.log1p(min_effect)))


def decide(results: Mapping[str, E2EComparison | str], acknowledgements: Sequence[Acknowledgement] = (), *,
           alpha: float = 0.01, min_effect: float = 0.0, power: float = DEFAULT_POWER) -> list[E2EDecision]:
    """One decision per metric; weighted Holm (``holm_weights``) over the judged ones."""
    judged = [m for m, r in results.items() if isinstance(r, E2EComparison) and r.judged]
    weights = holm_weights(judged)
    rejected, adjusted, levels = weighted_holm([_comp(results[m]).p_value for m in judged],
                                               [weights[m] for m in judged], alpha)
    verdict = dict(zip(judged, zip(rejected, adjusted, levels, strict=True), strict=True))
    acks = {a.benchmark: a for a in acknowledgements}
    total_weight = sum(weights.values()) or 1.0
    out = []
    for metric, r in results.items():
        if isinstance(r, str):
            out.append(E2EDecision(metric, "not judged", None, notes=(r,)))
            continue
        floors = (r.halves_log, math.log1p(min_effect))
        # The level the metric is first tested at: what a slowdown of it alone must clear.
        first_level = alpha * weights.get(metric, 1.0) / (total_weight if metric in weights else total_weight + 1)
        detectable = mde(r.se, r.df, first_level, power, floors)
        if metric not in verdict:
            out.append(E2EDecision(metric, "not judged", r, mde=detectable, notes=(f"not judged: {r.reason}",)))
            continue
        rej, p_adj, level = verdict[metric]
        thr = threshold(r, level, min_effect)
        notes = () if r.raw_ratio is None else (
            f"at the machine's mean speed: each window scaled by the node's and the harness's CPU for the same "
            f"ticks (uncorrected {r.raw_ratio - 1:+.1%})",)
        slower = rej and r.ratio - 1 > thr
        faster = r.ratio < 1 / (1 + thr) and r.p_value > 1 - level
        ack = acks.get(ACK_PREFIX + metric)
        status = ("acknowledged" if ack else "regression") if slower else ("improvement" if faster else "unchanged")
        out.append(E2EDecision(metric, status, r, thr, p_adj, detectable, ack if slower else None, notes))
    return out


def holm_weights(judged: Sequence[str]) -> dict[str, float]:
    """Each judged metric's weight in the weighted Holm step-down: CPU per trade, the tier's primary
    metric (named in advance, as the issue and the README do), holds as much weight as all the others
    together, so it is tested at alpha/2 and not alpha/9. At 16 pairs with a 10% pair spread
    that lowers its threshold from ~9% to ~7.4% (one-sided t, df 15: 3.73 against 2.95 standard errors)."""
    others = sum(1 for m in judged if m != CPU_METRIC)
    return {m: float(max(1, others)) if m == CPU_METRIC else 1.0 for m in judged}


def _comp(r: E2EComparison | str) -> E2EComparison:
    assert isinstance(r, E2EComparison)
    return r


def describe_metric(metric: str) -> str:
    if metric == CPU_METRIC:
        return "bot CPU per trade"
    if metric == NODE_CPU_METRIC:
        return "node CPU per trade"
    op, _, stat = metric.rpartition(".")
    return f"{op} {stat}"
