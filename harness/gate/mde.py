"""The minimum detectable effect (pure): the smallest slowdown a comparison would have caught.

A comparison on the log scale tests the mean of ``n`` paired differences with standard error ``se``
and ``df`` degrees of freedom, at one-sided level ``level``. A true slowdown ``delta`` (log) is caught
with probability ``power`` when ``delta >= (t[1 - level] + t[power]) * se`` (the usual power equation
for a t-test, with the noncentral t replaced by a shifted central one: a close, slightly
conservative approximation for the df used here). The gate also refuses to call anything below its
noise floors (the two-halves difference, a policy floor), so the MDE is never below those.

``level`` is the strictest one Holm can test a benchmark at (``alpha / m``): the MDE is what the run
could have caught for *any* of its benchmarks, whichever order their p-values came in.

The same figures, run backwards, say how much time a wanted sensitivity needs (``units_for``), which
is what ``--budget`` reports as the effect it could resolve in the time it was given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats as sps

DEFAULT_POWER = 0.95  # 19 of 20: the detection rate the gate's goals ask for


def _check(level: float, power: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")


def multiplier(df: int, level: float, power: float = DEFAULT_POWER) -> float:
    """``t[1 - level] + t[power]`` for ``df`` degrees of freedom: the MDE in standard errors."""
    _check(level, power)
    if df < 1:
        return math.inf
    return float(sps.t.ppf(1 - level, df) + sps.t.ppf(power, df))


def mde(se: float, df: int, level: float, power: float = DEFAULT_POWER, floors: Sequence[float] = ()) -> float:
    """The smallest slowdown (a fraction: 0.05 is +5%) caught with probability ``power``.

    ``se`` is the log-scale standard error; ``floors`` are log-scale thresholds the effect must also
    clear (the two-halves noise, ``log1p(min_effect)``)."""
    if se < 0 or not math.isfinite(se):
        raise ValueError(f"se must be a finite number >= 0, got {se}")
    log_effect = max(multiplier(df, level, power) * se, *floors, 0.0)
    # Past e^700 the float overflows; the answer there is "nothing this run could resolve" anyway.
    return math.expm1(log_effect) if log_effect < 700 else math.inf


def predicted_mde(sigma_unit: float, units: int, level: float, power: float = DEFAULT_POWER) -> float:
    """The MDE ``units`` independent paired units would give, each with log-scale spread ``sigma_unit``."""
    if units < 2:
        return math.inf
    return mde(sigma_unit / math.sqrt(units), units - 1, level, power)


def units_for(target: float, sigma_unit: float, level: float, power: float = DEFAULT_POWER,
              max_units: int = 100_000) -> int | None:
    """The fewest units whose predicted MDE is at most ``target`` (None: not within ``max_units``)."""
    if target <= 0:
        raise ValueError(f"target must be a fraction > 0, got {target}")
    if sigma_unit == 0:
        return 2
    lo, hi = 2, 2
    while predicted_mde(sigma_unit, hi, level, power) > target:
        lo, hi = hi, hi * 2
        if hi > max_units:
            return None
    while lo < hi:  # predicted_mde falls as units grow: bisect for the first that is small enough
        mid = (lo + hi) // 2
        if predicted_mde(sigma_unit, mid, level, power) <= target:
            hi = mid
        else:
            lo = mid + 1
    return hi
