"""Number formatting: significant figures, units, CIs, margins and the inconclusive wording."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.report import format as F


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (12.345, "ms", "12.3 ms"),
        (0.0003701, "MB/s", "0.000370 MB/s"),
        (1630.0, "req/s", "1,630 req/s"),
        (48.5, "%", "48.5%"),
        (180_000.0, "bytes/h", "180 kB/h"),
        (-420_000.0, "bytes/h", "-420 kB/h"),
        (None, "ms", "n/a"),
    ],
)
def test_fmt_value(value: float | None, unit: str, text: str) -> None:
    assert F.fmt_value(value, unit) == text


@given(st.floats(min_value=1e-6, max_value=1e12, allow_nan=False))
def test_sig_keeps_three_significant_figures(x: float) -> None:
    parsed = float(F.sig(x).replace(",", ""))
    assert parsed == pytest.approx(x, rel=5e-3)


def test_margin_ci_more_time_and_rates() -> None:
    assert F.fmt_margin(0.375) == "+37.5%"
    assert F.fmt_margin(-0.2) == "-20.0%"
    assert F.fmt_margin(None) == "n/a" and F.fmt_margin(math.nan) == "n/a"
    assert F.fmt_ci((1.0, 2.5), "ms") == "[1.00, 2.50]"
    assert F.fmt_ci(None, "ms") == "n/a"
    assert F.fmt_more_time(900.0) == "about 15 min more run time would decide it"
    assert F.fmt_more_time(30.0) == "about 30 s more run time would decide it"
    assert F.fmt_more_time(None) == "no estimate of the run time that would decide it"
    assert F.fmt_rate(99.5) == "99.5/s" and F.fmt_rate(None) == "n/a" and F.fmt_rate("x") == "n/a"
