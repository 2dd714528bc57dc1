"""How far two whole runs of the same build differ on this kind of machine (a measured constant).

Two runs are two samples of the machine's state as well as of the code: a latency mean from 60
one-second intervals has a tight within-run confidence interval, yet the next run of the same
build, minutes later on a shared 2-core box, lands 10-20% away (the A/A proof,
``python -m harness.proof.aa``, measured it; README "Repeatable verdicts"). A test that takes the
intervals of one run as the replicates therefore calls every such difference significant: it
answers "did these two runs differ?", which they always do, not "is this build slower?".

Until a comparison has replicate runs of each side (the interleaved gate, ``harness gate``, has
many), a change between two single runs is called only beyond this run-to-run spread. It is the
default noise threshold of ``harness report --compare`` and of the ``regression`` row, and
the notes of both state it. Re-measure with the A/A proof on your machine and pass ``--noise``.
"""

from __future__ import annotations

import math

# Largest |ratio - 1| of a latency mean between two quick runs of one build in the A/A proof on
# the project's 2-core machine (5 runs, 10 pairs), rounded up with a margin.
RUN_TO_RUN_NOISE = 0.25


# Sub-millisecond to few-millisecond operations differ between runs of one build by more than any
# ratio: the A/A proof (5 quick runs, 2026-12-02) saw tx_submission's mean at 0.98-1.59 ms and its
# p95 at 1.46-4.37 ms, price_fetch's p95 at 1.9-5.2 ms, while trade_execution (35-43 ms) stayed
# within 1.23x. Such jitter is additive (a preemption or a core shared with anvil delays a 1 ms
# call as much as a 40 ms one), so it is modelled as an absolute floor added to the relative
# spread: a latency change is called only beyond ``rel * base + floor``. Largest differences seen:
# 0.82 ms (means), 6.2 ms (p95/p99); the floors round them up.
LATENCY_FLOOR_MS = {"mean": 1.0, "tail": 10.0}


def latency_floor_ms(stat: str) -> float:
    """The absolute run-to-run floor for a latency statistic (``mean``/``median``, else a tail)."""
    return LATENCY_FLOOR_MS["mean" if stat in ("mean", "median", "p50") else "tail"]


def with_floor(rel: float, base_ms: float | None, stat: str) -> float:
    """The relative noise threshold for a latency change from ``base_ms``: ``rel`` plus the
    absolute floor expressed relative to the base (unchanged when the base is unknown or 0)."""
    if base_ms is None or not base_ms > 0 or not math.isfinite(base_ms):
        return rel
    return rel + latency_floor_ms(stat) / base_ms


def between_runs(noise: float | None) -> float:
    """The noise threshold for a comparison of two single runs: the run-to-run spread unless the
    caller measured their own (``--noise``, or ``params.noise`` of the regression row)."""
    if noise is not None and not 0 <= noise < 10:
        raise ValueError(f"noise {noise!r}: give a fraction such as 0.1 (10%)")
    return RUN_TO_RUN_NOISE if noise is None else noise


def change_threshold(rel: float, base_ms: float | None, stat: str, *, latency: bool, measured: bool) -> float:
    """The smallest relative change between two single runs that may be called, for one figure.

    ``rel`` is the relative spread in force. A ``measured`` one (``--noise``, the regression row's
    ``params.noise``) is a spread the caller measured and replaces the default model as a whole; the
    default model adds, for a latency, the absolute floor relative to its base (``with_floor``)."""
    return with_floor(rel, base_ms, stat) if latency and not measured else rel


# A stress search's result (the best rate that held, the in-flight peak while latency held) is
# one sample of the machine's state. Two A/A proofs of five quick runs each on the 2-core box
# (2026-12-02) gave its log a standard deviation of 0.26 and 0.34 (transactions_per_sec 260-518
# and 154-336 tx/s) and 0.24 and 0.36 (concurrent_operations 43-73 and 23-54), pooled 0.30, while
# each run's within-step CI was a few percent wide. A single run's verdict on such a figure
# therefore takes the wider of the two intervals: a threshold inside the run-to-run spread is
# inconclusive, not a coin-flip pass or fail.
STRESS_RUN_TO_RUN_LOG_SD = 0.30


def widen_between_runs(value: float, lo: float, hi: float, *, log_sd: float, z: float) -> tuple[float, float]:
    """``(lo, hi)`` widened to at least ``value * exp(±z * log_sd)``; NaN bounds are replaced."""
    if not value > 0 or not math.isfinite(value):
        return lo, hi
    f = math.exp(z * log_sd)
    spread_lo, spread_hi = value / f, value * f
    lo = spread_lo if math.isnan(lo) else min(lo, spread_lo)
    hi = spread_hi if math.isnan(hi) else max(hi, spread_hi)
    return lo, hi
