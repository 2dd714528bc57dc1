"""The gate's decision rule on synthetic timings with a known truth: quiet on A/A, catches +10%."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.gate.decision import (
    Acknowledgement,
    GateInputError,
    compare_callgrind,
    compare_wallclock,
    decide,
    holm,
)

CASES = [f"case{i}" for i in range(8)]


def synthetic_side(
    rng: random.Random, true_ns: float, processes: int, rounds: int, drift: list[float]
) -> list[list[float]]:
    """One revision's slot timings: process offsets, drift, skewed load spikes (no time pairing)."""
    out = []
    for _ in range(processes):
        proc = rng.gauss(0.0, 0.025)
        slots = []
        for r in range(rounds):
            value = true_ns * math.exp(proc + drift[r] + rng.gauss(0.0, 0.03))
            if rng.random() < 0.05:  # another job grabbed the core during this slot
                value *= rng.uniform(1.1, 1.8)
            slots.append(value)
        out.append(slots)
    return out


def synthetic_pairs(
    rng: random.Random, true_ns: float, slowdown: float, processes: int, rounds: int
) -> tuple[list[list[float]], list[list[float]]]:
    """Both revisions' slots in the runner's order, as this shared box produces them.

    The levels are at or above those measured here: between-process spread 2.5% (A/A gate runs saw
    0.5-3%), slot noise 3%, load that swings slowly over the job (an AR(1) process, up to ~+-20%)
    shared by back-to-back slots, and spikes of +10-80% on 5% of the slots.
    """
    offsets = {side: [rng.gauss(0.0, 0.025) for _ in range(processes)] for side in ("base", "head")}
    out: dict[str, list[list[float]]] = {side: [[] for _ in range(processes)] for side in ("base", "head")}
    load = 0.0
    for r in range(rounds):
        order = list(range(processes))
        rng.shuffle(order)
        sides = ("base", "head") if r % 2 == 0 else ("head", "base")
        for i in order:
            for side in sides:
                load = 0.95 * load + rng.gauss(0.0, 0.02)
                factor = 1 + slowdown if side == "head" else 1.0
                value = true_ns * factor * math.exp(offsets[side][i] + load + rng.gauss(0.0, 0.03))
                if rng.random() < 0.05:
                    value *= rng.uniform(1.1, 1.8)
                out[side][i].append(value)
    return out["base"], out["head"]


def synthetic_job(seed: int, slowdown: dict[str, float], processes: int = 12, rounds: int = 16) -> list[str]:
    rng = random.Random(seed)
    wall = {}
    for i, case in enumerate(CASES):
        base, head = synthetic_pairs(rng, 200.0 * (3**i), slowdown.get(case, 0.0), processes, rounds)
        wall[case] = compare_wallclock(case, base, head)
    return [d.case for d in decide(CASES, wall, {}) if d.failing]


# The gate's defaults: 12 processes per revision, 16 rounds, family-wise alpha 0.01 over 8 cases.


def test_quiet_on_aa_in_at_least_19_of_20_jobs() -> None:
    alarms = [synthetic_job(seed, {}) for seed in range(20)]
    assert sum(1 for flagged in alarms if flagged) <= 1, alarms


def test_detects_a_10_percent_slowdown_in_at_least_19_of_20_jobs() -> None:
    results = [synthetic_job(1000 + seed, {"case3": 0.10}) for seed in range(20)]
    detected = sum(1 for flagged in results if "case3" in flagged)
    assert detected >= 19, results
    # The other seven cases stayed quiet (family-wise error control over the whole job).
    assert sum(1 for flagged in results for c in flagged if c != "case3") <= 1


def test_a_1_percent_slowdown_is_within_this_noise_and_not_flagged() -> None:
    results = [synthetic_job(2000 + seed, {"case3": 0.01}) for seed in range(10)]
    assert sum(1 for flagged in results if flagged) <= 1


def test_threshold_grows_with_measured_noise() -> None:
    rng = random.Random(7)
    drift = [0.0] * 15
    quiet = compare_wallclock(
        "c", synthetic_side(rng, 100.0, 6, 15, drift), synthetic_side(rng, 100.0, 6, 15, drift)
    )
    noisy_base = [[v * rng.uniform(0.7, 1.6) for v in p] for p in synthetic_side(rng, 100.0, 6, 15, drift)]
    noisy_head = [[v * rng.uniform(0.7, 1.6) for v in p] for p in synthetic_side(rng, 100.0, 6, 15, drift)]
    noisy = compare_wallclock("c", noisy_base, noisy_head)
    t_quiet = decide(["c"], {"c": quiet}, {})[0].wall_threshold
    t_noisy = decide(["c"], {"c": noisy}, {})[0].wall_threshold
    assert t_quiet is not None and t_noisy is not None
    assert t_noisy > t_quiet > 0


def test_one_process_per_side_is_refused_with_the_fix() -> None:
    with pytest.raises(GateInputError, match="--processes"):
        compare_wallclock("c", [[1.0, 1.1]], [[1.0, 1.2]])
    with pytest.raises(GateInputError, match="pair up"):
        compare_wallclock("c", [[1.0, 1.1], [1.0, 1.0]], [[1.0, 1.2]])


def test_callgrind_tier_catches_2_percent_and_ignores_its_own_repeat_noise() -> None:
    quiet = compare_callgrind("c", 1_000_000, 1_000_000.1, 1_000_000.2)
    planted = compare_callgrind("c", 1_000_000, 1_000_000.1, 1_020_000)
    decisions = decide(["q", "p"], {}, {"q": quiet, "p": planted})
    assert [d.status for d in decisions] == ["unchanged", "regression"]
    assert decisions[1].tiers == ("callgrind",)


def test_callgrind_threshold_follows_a_noisy_repeat() -> None:
    comp = compare_callgrind("c", 1_000_000, 1_003_000, 1_020_000)
    assert comp.threshold == pytest.approx(0.03)
    assert not decide(["c"], {}, {"c": comp})[0].failing


def test_acknowledged_regression_does_not_fail_and_keeps_its_reason() -> None:
    planted = compare_callgrind("c", 1_000_000, 1_000_000, 1_100_000)
    ack = Acknowledgement("c", "new validation step", "commit abc1234")
    (decision,) = decide(["c"], {}, {"c": planted}, [ack])
    assert decision.status == "acknowledged"
    assert not decision.failing
    assert decision.acknowledged is not None and decision.acknowledged.reason == "new validation step"


def test_skipped_case_keeps_its_note() -> None:
    (decision,) = decide(["c"], {}, {}, skipped={"c": "base lacks bot.rpc.codec"})
    assert decision.status == "skipped" and decision.notes == ("base lacks bot.rpc.codec",)


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=30), st.floats(0.001, 0.2))
def test_holm_is_consistent(p_values: list[float], alpha: float) -> None:
    rejected, adjusted, _ = holm(p_values, alpha)
    for p, adj, rej in zip(p_values, adjusted, rejected, strict=True):
        assert adj >= p - 1e-12
        assert rej == (adj <= alpha + 1e-12)
    # Holm never rejects more than unadjusted testing, never fewer than Bonferroni.
    assert sum(rejected) <= sum(p <= alpha for p in p_values)
    assert sum(rejected) >= sum(p <= alpha / len(p_values) for p in p_values)


def test_a_wall_gain_the_instruction_counts_do_not_show_is_not_called_an_improvement() -> None:
    rng = random.Random(5)
    # Head's slots 40% faster on the wall clock (a disturbance on base's side), same code.
    base, head = synthetic_pairs(rng, 10_000.0, -0.4, 6, 6)
    wall = {"c": compare_wallclock("c", base, head)}
    same = {"c": compare_callgrind("c", 1_000_000, 1_000_000.2, 1_000_000.1)}
    fewer = {"c": compare_callgrind("c", 1_000_000, 1_000_000.2, 900_000)}
    assert decide(["c"], wall, {})[0].status == "improvement"  # the wall tier alone still reports it
    (quiet,) = decide(["c"], wall, same)
    assert quiet.status == "unchanged" and "instruction counts are equal" in quiet.notes[0]
    assert decide(["c"], wall, fewer)[0].status == "improvement"
    # A slowdown on the wall clock stands even when the counts are equal (memory, system calls).
    base, head = synthetic_pairs(rng, 10_000.0, 0.4, 6, 6)
    (slow,) = decide(["c"], {"c": compare_wallclock("c", base, head)}, same)
    assert slow.status == "regression" and slow.tiers == ("wall",)
