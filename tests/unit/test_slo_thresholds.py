"""harness.slo.thresholds: k6-style expressions parse, round-trip, and refuse garbage clearly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.slo.thresholds import AGGREGATES, Threshold, format_number, parse_threshold

ops = st.sampled_from(["<", "<=", ">", ">="])
numbers = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
pcts = st.floats(min_value=0.001, max_value=100.0)
space = st.sampled_from(["", " ", "  ", "\t"])


@st.composite
def expressions(draw: st.DrawFn) -> tuple[str, Threshold]:
    op = draw(ops)
    value = draw(numbers)
    if draw(st.booleans()):
        pct = draw(pcts)
        left, want = f"p({draw(space)}{pct!r}{draw(space)})", Threshold("p", op, value, pct)  # type: ignore[arg-type]
    else:
        agg = draw(st.sampled_from(AGGREGATES))
        left, want = agg, Threshold(agg, op, value)  # type: ignore[arg-type]
    return f"{draw(space)}{left}{draw(space)}{op}{draw(space)}{value!r}{draw(space)}", want


@given(expressions())
def test_generated_expressions_parse_and_round_trip(case: tuple[str, Threshold]) -> None:
    text, want = case
    got = parse_threshold(text)
    assert got == want
    assert parse_threshold(str(got)) == got


@pytest.mark.parametrize(
    ("text", "stat", "op", "value"),
    [
        ("p(95) < 100", "p95", "<", 100.0),
        ("p(99.9)<=2.5e3", "p99.9", "<=", 2500.0),
        ("avg < 50", "mean", "<", 50.0),
        ("med < 7", "p50", "<", 7.0),
        ("rate < 0.001", "rate", "<", 0.001),
        ("value >= 500", "value", ">=", 500.0),
        ("max < 256", "max", "<", 256.0),
    ],
)
def test_examples(text: str, stat: str, op: str, value: float) -> None:
    t = parse_threshold(text)
    assert (t.stat, t.op, t.value) == (stat, op, value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("p95 < 100", r"write the percentile as p\(95\), not p95"),
        ("p(95) < 100ms", "cannot parse"),
        ("avg = 5", "equality"),
        ("avg == 5", "equality"),
        ("p(0) < 5", r"\(0, 100\]"),
        ("p(101) < 5", r"\(0, 100\]"),
        ("mean < 5", "unknown aggregate 'mean'"),
        ("", "cannot parse"),
        ("avg <", "cannot parse"),
    ],
)
def test_garbage_gives_a_clear_error_naming_the_field(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as exc:
        parse_threshold(text, where="row x thresholds[0].expr")
    assert "row x thresholds[0].expr" in str(exc.value)


@given(st.text(max_size=30))
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        t = parse_threshold(text)
    except ConfigError as exc:
        assert "e.g." in str(exc) or "use" in str(exc) or "must" in str(exc)
    else:
        assert parse_threshold(str(t)) == t


def test_non_string_is_refused() -> None:
    with pytest.raises(ConfigError, match="expected a string"):
        parse_threshold(5)


@given(numbers)
def test_format_number_round_trips(x: float) -> None:
    assert float(format_number(x)) == x
