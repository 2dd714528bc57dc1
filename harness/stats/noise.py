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


def between_runs(noise: float | None) -> float:
    """The noise threshold for a comparison of two single runs: the run-to-run spread unless the
    caller measured their own (``--noise``, or ``params.noise`` of the regression row)."""
    if noise is not None and not 0 <= noise < 10:
        raise ValueError(f"noise {noise!r}: give a fraction such as 0.1 (10%)")
    return RUN_TO_RUN_NOISE if noise is None else noise


# A stress search's result (the best rate that held, the in-flight peak while latency held) is
# one sample of the machine's state: between five quick runs of one build on the 2-core box its
# log had a standard deviation of 0.26 (transactions_per_sec 260-518 tx/s) and 0.23
# (concurrent_operations 43-73), while each run's within-step CI was a few percent wide. A single
# run's verdict on such a figure therefore takes the wider of the two intervals: a threshold
# inside the run-to-run spread is inconclusive, not a coin-flip pass or fail.
STRESS_RUN_TO_RUN_LOG_SD = 0.26


def widen_between_runs(value: float, lo: float, hi: float, *, log_sd: float, z: float) -> tuple[float, float]:
    """``(lo, hi)`` widened to at least ``value * exp(±z * log_sd)``; NaN bounds are replaced."""
    if not value > 0 or not math.isfinite(value):
        return lo, hi
    f = math.exp(z * log_sd)
    spread_lo, spread_hi = value / f, value * f
    lo = spread_lo if math.isnan(lo) else min(lo, spread_lo)
    hi = spread_hi if math.isnan(hi) else max(hi, spread_hi)
    return lo, hi
