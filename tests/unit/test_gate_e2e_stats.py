"""The end-to-end tier's figures and decisions (pure): a window's own tag, the p99 rule, paired tests, Holm."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.gate.decision import Acknowledgement, holm, weighted_holm
from harness.gate.e2emetrics import (
    CPU_METRIC,
    METRICS,
    NODE_CPU_METRIC,
    OpStats,
    WindowMetrics,
    min_samples,
    quantile_ci_ranks,
    quantile_judgeable,
    window_ops,
)
from harness.gate.e2eplan import plan
from harness.gate.e2estats import (
    MIN_PAIRS,
    E2EComparison,
    E2EDecision,
    PairValue,
    aa_log_ratios,
    compare,
    compare_all,
    decide,
    holm_weights,
    pair_values,
    speed_factors,
)
from harness.stats.histograms import encode, new_histogram


def _windows(quartets: int, *, head_factor: float = 1.0, noise: float = 0.03, seed: int = 0, samples: int = 800,
             slow_metric: str = CPU_METRIC, speed_noise: float = 0.0, reference: bool = True,
             node_factor: float = 1.0) -> list[WindowMetrics]:
    """Windows of a planned run whose figures are 1000 µs x lognormal noise; head's ``slow_metric`` x factor.

    ``speed_noise``: the machine's speed per window (lognormal), which scales the bot's CPU and the
    reference CPU (node 600 µs, harness 200 µs per trade) alike; ``node_factor`` scales head's node CPU."""
    rng = random.Random(seed)
    out = []
    for w in plan(quartets, seconds=5.0, seed=seed):
        slow = math.exp(rng.gauss(0, speed_noise))
        node = 600e-6 * samples * slow * (node_factor if w.side == "head" else 1.0) if reference else 0.0
        def fig(metric: str, w: object = w) -> float:
            k = head_factor if getattr(w, "side", "") == "head" and metric == slow_metric else 1.0
            return 1000.0 * k * math.exp(rng.gauss(0, noise))

        ops = {op: OpStats(samples, fig(f"{op}.mean"), fig(f"{op}.p99") * 3)
               for op in ("trade_execution", "tx_submission", "price_fetch", "balance_check")}
        out.append(WindowMetrics(index=w.index, side=w.side, quartet=w.quartet, pair=w.pair, position=w.position,
                                 seconds=w.seconds, ops=ops, trades_ok=samples, sent=samples,
                                 cpu_s=fig(CPU_METRIC) * slow * samples / 1e6, node_cpu_s=node,
                                 harness_cpu_s=200e-6 * samples * slow if reference else 0.0))
    return out


def test_min_samples_for_a_p99_and_the_rank_rule() -> None:
    n = min_samples(0.99)
    assert 450 < n < 700  # the README's "about 600 samples for a p99"
    assert quantile_judgeable(n) and not quantile_judgeable(n - 1)
    lower, upper = quantile_ci_ranks(1000)
    assert 1 <= lower < 990 < upper <= 1000


@given(st.integers(1, 5000))
def test_the_p99_rule_holds_for_every_count_above_its_minimum(n: int) -> None:
    assert quantile_judgeable(n) == (n >= min_samples(0.99))


def test_pairs_are_one_base_and_one_head_window_and_the_middle_is_aa() -> None:
    ws = _windows(3)
    pairs = pair_values(ws, CPU_METRIC)
    assert [p.pair for p in pairs] == list(range(6))
    assert len(aa_log_ratios(ws, CPU_METRIC)) == 3
    # A p99 pair counts only when both windows hold enough samples for one.
    assert pair_values(_windows(3, samples=100), "trade_execution.p99", min_samples(0.99)) == []


@given(st.floats(0.5, 3.0), st.integers(2, 10), st.integers(0, 1000))
def test_an_exact_factor_is_measured_exactly(factor: float, quartets: int, seed: int) -> None:
    ws = _windows(quartets, head_factor=factor, noise=0.0, seed=seed)
    comp = compare(CPU_METRIC, pair_values(ws, CPU_METRIC), aa_log_ratios(ws, CPU_METRIC))
    assert comp.ratio == pytest.approx(factor)
    assert comp.ci95[0] <= comp.ratio <= comp.ci95[1]


@given(st.lists(st.tuples(st.floats(10, 1e4), st.floats(10, 1e4)), min_size=MIN_PAIRS, max_size=30),
       st.lists(st.floats(-1, 1), max_size=10))
def test_swapping_the_revisions_inverts_the_ratio_and_the_aa_spread_is_a_floor(
    values: list[tuple[float, float]], aa: list[float]
) -> None:
    pairs = [PairValue(i, i // 2, b, h) for i, (b, h) in enumerate(values)]
    swapped = [PairValue(p.pair, p.quartet, p.head, p.base) for p in pairs]
    a, b = compare("m", pairs, aa), compare("m", swapped, aa)
    assert a.ratio * b.ratio == pytest.approx(1.0)
    assert a.se == pytest.approx(b.se)
    if aa:
        assert a.se >= math.sqrt(sum(x * x for x in aa) / len(aa) / len(pairs)) - 1e-12


def test_aa_is_quiet_and_a_planted_cpu_slowdown_is_caught() -> None:
    quiet = decide(compare_all(_windows(8, seed=1)))
    assert [d.metric for d in quiet] == list(METRICS)
    assert not any(d.failing for d in quiet)
    planted = decide(compare_all(_windows(8, head_factor=1.10, seed=1)))
    cpu = next(d for d in planted if d.metric == CPU_METRIC)
    assert cpu.status == "regression" and cpu.threshold is not None and cpu.comparison is not None
    assert cpu.comparison.ratio - 1 > cpu.threshold
    assert cpu.mde is not None and cpu.mde < 0.10  # the run could resolve what it caught
    assert [d.metric for d in planted if d.failing] == [CPU_METRIC]


@given(st.floats(0.7, 1.5), st.floats(0.02, 0.4), st.integers(0, 10_000))
def test_the_machines_speed_per_window_cancels_out_of_cpu_per_trade(factor: float, speed: float, seed: int) -> None:
    # The machine's speed moves the bot's CPU and the reference alike; the correction recovers the
    # planted factor exactly, and the uncorrected ratio stays in the comparison beside it.
    ws = _windows(3, head_factor=factor, noise=0.0, speed_noise=speed, seed=seed)
    comp = compare_all(ws)[CPU_METRIC]
    assert isinstance(comp, E2EComparison)
    assert comp.ratio == pytest.approx(factor) and comp.se == pytest.approx(0.0, abs=1e-9)
    assert comp.raw_ratio is not None
    raw = compare(CPU_METRIC, pair_values(ws, CPU_METRIC), aa_log_ratios(ws, CPU_METRIC))
    assert comp.raw_ratio == pytest.approx(raw.ratio)


def test_speed_correction_is_all_or_nothing() -> None:
    ws = _windows(2, speed_noise=0.2)
    assert sorted(speed_factors(ws)) == [w.index for w in ws]
    assert math.prod(speed_factors(ws).values()) == pytest.approx(1.0)  # centred on the run's mean speed
    # One window without its reference (an old gate.json, a node that exited): no window is corrected.
    ws[3] = WindowMetrics(**{**ws[3].__dict__, "node_cpu_s": 0.0})
    assert speed_factors(ws) == {}
    comp = compare_all(ws)[CPU_METRIC]
    assert isinstance(comp, E2EComparison) and comp.raw_ratio is None


def test_a_slowdown_hidden_by_the_machines_speed_is_caught_once_corrected() -> None:
    # 15% speed noise per window buries +10% in 8 quartets; the correction takes the speed out.
    corrected = decide(compare_all(_windows(8, head_factor=1.10, speed_noise=0.15, seed=3)))
    raw = decide(compare_all(_windows(8, head_factor=1.10, speed_noise=0.15, seed=3, reference=False)))
    assert next(d for d in corrected if d.metric == CPU_METRIC).status == "regression"
    assert next(d for d in raw if d.metric == CPU_METRIC).status == "unchanged"
    note = next(d for d in corrected if d.metric == CPU_METRIC).notes
    assert note and "uncorrected" in note[0]


def test_work_moved_onto_the_node_is_judged_on_its_own() -> None:
    # The reference would absorb part of it from the bot's figure; node CPU per trade shows it.
    decisions = decide(compare_all(_windows(8, node_factor=1.4, noise=0.02, speed_noise=0.02, seed=5)))
    node = next(d for d in decisions if d.metric == NODE_CPU_METRIC)
    assert node.status == "regression" and node.comparison is not None
    assert node.comparison.ratio == pytest.approx(1.4, rel=0.05)


def test_cpu_per_trade_weighs_as_much_as_all_other_metrics_together() -> None:
    weights = holm_weights(list(METRICS))
    assert weights[CPU_METRIC] == sum(w for m, w in weights.items() if m != CPU_METRIC) == len(METRICS) - 1
    planted = decide(compare_all(_windows(8, head_factor=1.10, seed=1)))
    cpu = next(d for d in planted if d.metric == CPU_METRIC)
    assert cpu.comparison is not None and cpu.p_adjusted is not None
    # Tested first, at alpha / 2: its adjusted p is its p doubled, not multiplied by the family's size.
    assert cpu.p_adjusted == pytest.approx(min(1.0, 2 * cpu.comparison.p_value))


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12), st.floats(0.001, 0.2))
def test_weighted_holm_with_equal_weights_is_holm(p_values: list[float], alpha: float) -> None:
    rejected, adjusted, levels = weighted_holm(p_values, [1.0] * len(p_values), alpha)
    h_rej, h_adj, h_lev = holm(p_values, alpha)
    assert rejected == h_rej
    assert adjusted == pytest.approx(h_adj)
    assert levels == pytest.approx(h_lev)
    for p, adj, rej in zip(p_values, adjusted, rejected, strict=True):
        assert rej == (adj <= alpha + 1e-12) and adj >= p - 1e-12


def test_weighted_holm_keeps_the_family_wise_error_under_the_global_null() -> None:
    # Nine true nulls (uniform p-values), the first with half the weight: any rejection is a false alarm.
    rng = random.Random(11)
    weights = [8.0] + [1.0] * 8
    draws, alpha = 20_000, 0.05
    alarms = sum(any(weighted_holm([rng.random() for _ in weights], weights, alpha)[0]) for _ in range(draws))
    assert alarms / draws <= alpha + 0.005
    with pytest.raises(ValueError, match="positive weights"):
        weighted_holm([0.1, 0.2], [1.0, 0.0], alpha)


def test_an_acknowledged_metric_does_not_fail() -> None:
    ack = Acknowledgement("e2e.bot_cpu_per_trade", "on purpose", "perf-acknowledged.toml")
    decisions = decide(compare_all(_windows(8, head_factor=1.2, seed=2)), [ack])
    cpu = next(d for d in decisions if d.metric == CPU_METRIC)
    assert cpu.status == "acknowledged" and cpu.acknowledged == ack and not cpu.failing


def test_short_windows_leave_the_p99_not_judged_and_out_of_the_family() -> None:
    results = compare_all(_windows(4, samples=200))
    assert isinstance(results["trade_execution.p99"], str) and "samples per window" in results["trade_execution.p99"]
    decisions = decide(results)
    p99 = next(d for d in decisions if d.metric == "trade_execution.p99")
    assert p99.status == "not judged" and "need" in p99.notes[0]
    # Holm runs over the six judged metrics only (four means, node CPU, and bot CPU weighing 5 of 10).
    judged = [d for d in decisions if d.status != "not judged"]
    assert len(judged) == 6 and all(d.p_adjusted is not None for d in judged)
    weights = holm_weights([d.metric for d in judged])
    assert sum(weights.values()) == 10

    def p_over_w(d: E2EDecision) -> float:
        return d.comparison.p_value / weights[d.metric] if d.comparison else 1.0

    first = min(judged, key=p_over_w)
    assert first.comparison is not None and first.p_adjusted is not None
    assert first.p_adjusted == pytest.approx(min(1.0, 10 / weights[first.metric] * first.comparison.p_value))


def test_a_wide_p99_interval_is_reported_but_not_judged() -> None:
    results = compare_all(_windows(3, noise=0.6, seed=5), p99_max_ci=0.05)
    p99 = results["trade_execution.p99"]
    assert not isinstance(p99, str) and not p99.judged and "wider than" in p99.reason
    assert next(d for d in decide(results) if d.metric == "trade_execution.p99").status == "not judged"


def _enc(values: list[int]) -> str:
    h = new_histogram()
    for v in values:
        h.record_value(v)
    return encode(h)


def test_a_window_counts_only_its_own_tag_and_nothing_before_it() -> None:
    warm = {"start": 9.0, "end": 10.0, "histograms": {"price_fetch": _enc([5000] * 10)},
            "counters": {"trades_ok": 10}, "tags": {"gate-warm/4": {"histograms": {"price_fetch": _enc([5000] * 10)},
                                                                 "counters": {"trades_ok": 10}}}}
    straddling = {"start": 10.0, "end": 11.0, "histograms": {"price_fetch": _enc([5000] * 5 + [1000] * 20)},
                  "counters": {"trades_ok": 25, "trades_failed": 1},
                  "tags": {"gate-warm/4": {"histograms": {"price_fetch": _enc([5000] * 5)},
                                           "counters": {"trades_ok": 5}},
                           "gate/4": {"histograms": {"price_fetch": _enc([1000] * 20)},
                                      "counters": {"trades_ok": 20, "trades_failed": 1}}}}
    later = {"start": 11.0, "end": 12.0, "histograms": {"price_fetch": _enc([2000] * 20)},
             "counters": {"trades_ok": 20},
             "tags": {"gate/4": {"histograms": {"price_fetch": _enc([2000] * 20)}, "counters": {"trades_ok": 20}}}}
    ops, counts = window_ops([warm, straddling, later], "gate/4", since_wall=10.2)
    assert ops["price_fetch"].count == 40 and 1400 < ops["price_fetch"].mean_us < 1600
    assert (counts.ok, counts.errors) == (40, 1)
    # A bot without tags (an old base revision) is read whole, from the intervals after the start.
    untagged = [{k: v for k, v in iv.items() if k != "tags"} for iv in (warm, later)]
    ops, counts = window_ops(untagged, "gate/4", since_wall=10.2)
    assert ops["price_fetch"].count == 20 and counts.ok == 20


def test_window_values_and_cpu_per_trade() -> None:
    w = WindowMetrics(0, "base", 0, 0, 0, 5.0, {"price_fetch": OpStats(10, 1500.0, 4000.0)}, trades_ok=500,
                      errors=2, skipped=3, sent=510, cpu_s=1.5)
    assert w.cpu_per_trade_us == pytest.approx(3000.0)
    assert w.value("price_fetch.mean") == 1500.0 and w.value("price_fetch.p99") == 4000.0
    assert w.value("tx_submission.mean") is None and w.unaccounted == 5
    assert WindowMetrics(0, "base", 0, 0, 0, 5.0).cpu_per_trade_us is None
