"""CPU per trade (harness.run.figures, harness.stats.intervals.per_unit_ci) and the folded-stack
summary of ``harness profile --format raw``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.probes.folded import parse_folded, summarize
from harness.run.figures import cpu_per_trade, cpu_seconds_per_second
from harness.stats.intervals import per_unit_ci


@settings(max_examples=60, deadline=None)
@given(
    amounts=st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=80),
    units=st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=80),
)
def test_per_unit_ci_is_the_ratio_of_sums_and_brackets_it(amounts: list[float], units: list[int]) -> None:
    n = min(len(amounts), len(units))
    a, u = amounts[:n], units[:n]
    est = per_unit_ci(a, u)
    if sum(u) == 0:
        assert math.isnan(est.value)
        return
    assert est.value == pytest.approx(sum(a) / sum(u), rel=1e-9, abs=1e-9)
    if est.has_ci:
        assert est.lo <= est.value + 1e-6 and est.value - 1e-6 <= est.hi


def test_per_unit_ci_covers_the_true_cost_about_as_often_as_it_claims() -> None:
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(400):
        trades = rng.poisson(100, size=60).astype(float)
        cpu = trades * 900.0 + rng.normal(0, 3000, size=60)  # 900 µs a trade, per-second noise
        est = per_unit_ci(cpu, trades)
        hits += est.lo <= 900.0 <= est.hi
    assert 0.90 <= hits / 400 <= 0.99


def test_per_unit_ci_names_bad_input() -> None:
    with pytest.raises(ConfigError, match="2 amounts but 3"):
        per_unit_ci([1.0, 2.0], [1, 2, 3])
    with pytest.raises(ConfigError, match="negative"):
        per_unit_ci([1.0, 2.0], [1, -2])


def test_cpu_is_spread_over_the_seconds_its_samples_cover() -> None:
    # Samples every 0.5 s at 40%, then a second at 100%: each second gets its share of each span.
    res = [{"t": t, "cpu_percent": 40.0} for t in (0.25, 0.75, 1.25, 1.75)] + [{"t": 2.75, "cpu_percent": 100.0}]
    per_s = cpu_seconds_per_second(res, 3)
    # [0.25, 1) at 40%; [1, 1.75) at 40% + [1.75, 2) at 100%; [2, 2.75) at 100%
    assert per_s == pytest.approx([0.3, 0.55, 0.75])


def _scenario(seconds: int, rate: int, cpu_us_per_trade: float, fixed_cpu_percent: float) -> tuple[list, list]:
    intervals = [{"start": float(k), "end": float(k + 1), "counters": {"ok": rate}} for k in range(seconds)]
    pct = fixed_cpu_percent + rate * cpu_us_per_trade / 1e6 * 100
    resources = [{"t": 0.5 * i, "cpu_percent": pct} for i in range(2 * seconds + 1)]
    return intervals, resources


def test_cpu_per_trade_recovers_a_planted_cost_and_its_context() -> None:
    ivs, res = _scenario(30, 200, 900.0, 0.0)
    fig = cpu_per_trade(ivs, res, 0.0, 30.0)
    assert fig is not None
    assert fig["value_us"] == pytest.approx(900.0, rel=1e-6)
    assert fig["window"] == [2, 30] and fig["trades"] == 200 * 28 and fig["trades_per_s"] == 200
    assert fig["cpu_percent"] == pytest.approx(18.0)
    # A fixed cost (idle CPU) is per second, so it shows per trade as fixed / rate.
    ivs, res = _scenario(30, 100, 900.0, 10.0)
    fig = cpu_per_trade(ivs, res, 0.0, 30.0)
    assert fig is not None and fig["value_us"] == pytest.approx(900.0 + 100_000.0 / 100, rel=1e-6)


def test_cpu_per_trade_needs_a_window_trades_and_samples() -> None:
    ivs, res = _scenario(30, 200, 900.0, 0.0)
    assert cpu_per_trade(ivs, res, 0.0, 5.0) is None  # 3 whole seconds after the warm-up
    assert cpu_per_trade(ivs, res[:1], 0.0, 30.0) is None
    idle = [{**iv, "counters": {"ok": 0}} for iv in ivs]
    assert cpu_per_trade(idle, res, 0.0, 30.0) is None
    # A stress step's judged window: only its own seconds count.
    step = cpu_per_trade(ivs, res, 10.0, 20.0, warmup_s=0.0)
    assert step is not None and step["window"] == [10, 20] and step["trades"] == 2000


def test_folded_stacks_parse_across_a_frame_with_a_newline_and_summarise() -> None:
    text = (
        "main (a.py:1);loop (a.py:2);send (aiohttp/x.py:10) 6\n"
        "main (a.py:1);loop (a.py:2);send (aiohttp/x.py:12) 2\n"
        "main (a.py:1);loop (a.py:2);__create_fn__.<locals>.__init\n 2\n"
    )
    stacks = parse_folded(text)
    assert [c for _, c in stacks] == [6, 2, 2]
    total, shares = summarize(stacks)
    assert total == 10
    by = {s.name: s for s in shares}
    assert "main (a.py)" not in by  # on every stack: says nothing
    assert by["send (aiohttp/x.py)"].inclusive == pytest.approx(0.8)  # lines of one function merge
    assert by["send (aiohttp/x.py)"].self_ == pytest.approx(0.8)
    with pytest.raises(ValueError, match="no sample count"):
        parse_folded("main (a.py:1);loop (a.py:2)\n")
