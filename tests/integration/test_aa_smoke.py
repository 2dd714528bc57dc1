"""The A/A proof, short: two `harness run --profile smoke` of this build must not flip pass <-> fail.

A flip means the same build both proved and disproved one promise: a verdict claimed with confidence
that the next run contradicts. pass/inconclusive differences are allowed (a smoke run is short, its
intervals wide), and so are significant changes between the two runs: this test does not assert the
proof's exit code 0, which also demands no change that ``harness report --compare`` would call
significant. Those are reported in aa.json; the full proof (``python -m harness.proof.aa``) judges them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN_TIMEOUT_S = 420  # per harness run; the proof stops a run past it and reports a harness error



@pytest.mark.timeout(2 * RUN_TIMEOUT_S + 120)
def test_two_smoke_runs_of_the_same_build_do_not_flip(tmp_path: Path) -> None:
    out = tmp_path / "aa"
    proc = subprocess.run(
        [sys.executable, "-m", "harness.proof.aa", "--runs", "2", "--out", str(out),
         "--timeout", str(RUN_TIMEOUT_S), "--", "--profile", "smoke"],
        capture_output=True, text=True, timeout=2 * RUN_TIMEOUT_S + 90, env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    output = proc.stdout + proc.stderr
    summary = json.loads((out / "aa.json").read_text())
    # Both runs measured something: a proof over broken runs would pass vacuously.
    assert summary["harness_errors"] == [], output
    assert proc.returncode in (0, 1), output
    assert summary["runs_used"] == 2 and summary["rows"] > 0, output
    # A verdict resting on an exact figure (an observed maximum: a zero-width interval) has no margin
    # for noise and flips whenever the figure lands either side of its threshold; only verdicts decided
    # on a confidence interval must agree. Such flips are still reported in aa.json.
    docs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/results.json"))]
    exact = {(v["row"], v["stat"]) for d in docs for v in d["verdicts"]
             if v.get("ci") is not None and v["ci"][0] == v["ci"][1] and v["table"] != "quality"}
    flips = {f["row"] for f in summary["flips"] if (f["row"], f["stat"]) not in exact}
    assert flips == set(), output
    assert summary["exit_code"] == proc.returncode
    for name in ("agreement.csv", "history.csv", "comparisons.csv", "aa.html"):
        assert (out / name).stat().st_size > 0, name
    assert "run 2/2: " in proc.stdout
