"""Micro benchmarks of the hot paths (pytest-benchmark), criterion-style.

The cases are the same registry the gate and asv use (``harness/gate/cases.py``), so a number here
means the same as a number there. pytest-benchmark calibrates the iterations per round (timer
precision), warms up, classifies outliers (``1.5 IQR`` and ``1 SD`` columns) and saves baselines.

Not part of the normal test run (``addopts`` ignores ``tests/bench``). Run it with ``harness bench``,
or by hand::

    .venv/bin/pytest tests/bench -o addopts="" --benchmark-warmup=on --benchmark-min-rounds=20 \\
        --benchmark-autosave                      # saves .benchmarks/<machine>/NNNN_<commit>.json
    .venv/bin/pytest tests/bench -o addopts="" --benchmark-compare \\
        --benchmark-compare-fail=median:25%       # compare with the last save; fail above +25%

A ``--benchmark-compare-fail`` percentage is only as trustworthy as the machine is quiet: on a
shared 2-core box, identical code spread 15-20% over 8 runs. ``harness gate`` is the regression
check that accounts for noise; these numbers are for looking at.
"""

from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from harness.gate.cases import CASES, Case, CaseUnavailable


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hot_path(benchmark: BenchmarkFixture, case: Case) -> None:
    try:
        op = case.setup()
    except CaseUnavailable as exc:
        pytest.skip(str(exc))
    benchmark.group = case.name.split(".")[0]
    benchmark.extra_info["description"] = case.description
    result = benchmark(op)
    # The benchmark must exercise the real code path, not a no-op that returns nothing useful.
    assert result is not None
