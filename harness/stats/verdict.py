"""Pure verdicts: an estimate with its confidence interval against a threshold.

- **pass**: the whole CI satisfies the threshold;
- **fail**: the whole CI violates it;
- **inconclusive**: the CI straddles it. We then estimate how much more run time would decide
  it: a CI half-width shrinks roughly as ``1/sqrt(n)``, so to shrink the half-width ``h`` on the
  threshold's side to the distance ``d`` between estimate and threshold needs
  ``duration * ((h/d)^2 - 1)`` more seconds. It is a rough guide (the estimate itself will move,
  and correlated noise shrinks slower), capped, and ``None`` when the estimate sits exactly on the
  threshold: no amount of running decides that. (For slopes the CI shrinks faster, see ``decide``.)

The margin is relative to the threshold and signed so that positive means headroom
(``(threshold - value)/|threshold|`` for ``<``/``<=``, the opposite for ``>``/``>=``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from harness.errors import ConfigError
from harness.stats.intervals import Estimate, wilson_trials_needed

Op = Literal["<", "<=", ">", ">="]
Outcome = Literal["pass", "fail", "inconclusive"]

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

DEFAULT_MAX_MORE_TIME_S = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Verdict:
    verdict: Outcome
    margin: float | None
    more_time_s: float | None
    note: str


def relative_margin(value: float, op: str, threshold: float) -> float | None:
    """Signed headroom relative to the threshold (positive = on the good side); None if unknown."""
    if math.isnan(value):
        return None
    diff = threshold - value if op in ("<", "<=") else value - threshold
    return diff / abs(threshold) if threshold != 0 else diff


def _human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def decide(
    est: Estimate,
    op: str,
    threshold: float,
    *,
    duration_s: float | None,
    max_more_time_s: float = DEFAULT_MAX_MORE_TIME_S,
    shrink_exponent: float = 0.5,
) -> Verdict:
    """Judge ``est`` against ``value <op> threshold``; ``duration_s`` is the run time behind the CI.

    ``shrink_exponent`` e says how the CI half-width falls with run time T (h ~ T^-e): 0.5 for means,
    rates and percentiles; 1.5 for a slope sampled at a fixed rate (n ~ T and the spread of the
    sample times ~ T), so the time needed is ``duration * ((h/d)^(1/e) - 1)``.
    """
    check = OPS.get(op)
    if check is None:
        raise ConfigError(f"unknown comparison {op!r}: use one of <, <=, >, >=")
    if math.isnan(est.value):
        return Verdict("inconclusive", None, None, "no measurement")
    margin = relative_margin(est.value, op, threshold)
    if not est.has_ci:
        return Verdict("inconclusive", margin, None,
                       "no confidence interval could be computed (too few windows or samples)")
    ok_lo, ok_hi = check(est.lo, threshold), check(est.hi, threshold)
    if ok_lo and ok_hi:
        return Verdict("pass", margin, None, "the whole CI meets the threshold")
    if not ok_lo and not ok_hi:
        return Verdict("fail", margin, None, "the whole CI misses the threshold")
    distance = abs(est.value - threshold)
    if distance == 0.0:
        return Verdict("inconclusive", margin, None,
                       "the estimate sits exactly on the threshold: running longer cannot decide it")
    toward = est.hi - est.value if threshold > est.value else est.value - est.lo
    if duration_s is None or duration_s <= 0:
        return Verdict("inconclusive", margin, None, "the CI straddles the threshold; run duration unknown")
    log_growth = (math.log(toward) - math.log(distance)) / shrink_exponent if toward > distance else 0.0
    # A threshold a hair from the estimate would overflow the power; anything past 1e12x is "never".
    factor = math.exp(log_growth) - 1.0 if log_growth < 27.6 else math.inf
    if est.method == "wilson" and est.n > 0:
        needed = wilson_trials_needed(est.value, float(est.n), threshold, est.confidence)
        factor = math.inf if needed is None else needed / est.n - 1.0
    more = max(duration_s * factor, 0.0)
    shrink = "1/sqrt(run time)" if shrink_exponent == 0.5 else f"run time^-{shrink_exponent:g}"
    if est.method == "wilson":
        shrink = "the Wilson interval does with more trials at the same rate"
    basis = f"assuming the CI shrinks as {shrink} and the estimate stays put"
    if more > max_more_time_s:
        return Verdict("inconclusive", margin, max_more_time_s,
                       f"the CI straddles the threshold; deciding would take more than "
                       f"{_human(max_more_time_s)} more (capped; {basis}): the estimate is too close "
                       f"to the threshold to settle by running longer")
    return Verdict("inconclusive", margin, more,
                   f"the CI straddles the threshold; about {_human(more)} more run time would decide it ({basis})")


def combine(primary: Verdict, condition: Verdict, why: str) -> Verdict:
    """The weaker of a figure's verdict and a condition it depends on (e.g. "none dropped").

    A failed condition fails the figure; an undecided one can at best leave it inconclusive.
    """
    if condition.verdict == "fail":
        return Verdict("fail", primary.margin, None, f"{primary.note}; failed because {why}")
    if condition.verdict == "inconclusive" and primary.verdict == "pass":
        return Verdict("inconclusive", primary.margin, condition.more_time_s,
                       f"{primary.note}; undecided because {why}")
    return primary
