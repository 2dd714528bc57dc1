"""Number formatting shared by the HTML, JUnit and comparison reports (pure).

One place decides how a value in a unit is written, so the same number reads the same everywhere:
three significant figures for measured quantities (more would claim precision the CI does not have),
thousands separators for rates, SI prefixes for bytes.
"""

from __future__ import annotations

import math

_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant figures, without scientific notation for everyday magnitudes."""
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if mag >= digits - 1:
        return f"{round(x):,}"
    decimals = max(0, digits - 1 - mag)
    return f"{x:.{decimals}f}"


def _bytes(x: float, suffix: str) -> str:
    for scale, prefix in _SI:
        if abs(x) >= scale:
            return f"{sig(x / scale)} {prefix}B{suffix}"
    return f"{sig(x)} B{suffix}"


def fmt_number(value: float | None, unit: str) -> str:
    """The number alone, scaled for its unit (bytes get SI prefixes and carry the unit themselves)."""
    if value is None:
        return "n/a"
    if unit.startswith("bytes"):
        return _bytes(value, unit[len("bytes"):])
    return sig(value)


def fmt_value(value: float | None, unit: str) -> str:
    """A value with its unit: ``12.3 ms``, ``1,630 req/s``, ``48.5%``, ``180 kB/h``."""
    if value is None:
        return "n/a"
    if unit.startswith("bytes"):
        return fmt_number(value, unit)
    if unit == "%":
        return f"{sig(value)}%"
    return f"{sig(value)} {unit}"


def fmt_ci(ci: tuple[float, float] | None, unit: str) -> str:
    if ci is None:
        return "n/a"
    return f"[{fmt_number(ci[0], unit)}, {fmt_number(ci[1], unit)}]"


def fmt_margin(margin: float | None) -> str:
    """Relative headroom to the threshold; positive is on the good side."""
    if margin is None or math.isnan(margin):
        return "n/a"
    return f"{margin * 100:+.1f}%"


def fmt_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def fmt_more_time(more_time_s: float | None) -> str:
    """What an inconclusive row needs, in words."""
    if more_time_s is None:
        return "no estimate of the run time that would decide it"
    return f"about {fmt_duration(more_time_s)} more run time would decide it"


def fmt_rate(value: object) -> str:
    """A per-second rate from a free-form summary field (``None`` or non-numbers read ``n/a``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a"
    return f"{sig(float(value))}/s"


def fmt_ratio(r: float | None) -> str:
    if r is None or math.isnan(r):
        return "n/a"
    return f"{r:.3f}×"
