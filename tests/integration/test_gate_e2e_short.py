"""The end-to-end gate tier, short form, on real bots: an A/A run is not flagged, a large CPU plant is caught.

Both runs are real ``harness gate --e2e-only --base . --head .``: one anvil, one feed, the working tree's
bot against itself in ABBA turns, with ``debug.burn_us_per_trade`` on the head's bot in the second
run. The plant is sized from the CPU per trade the A/A run measured (three times it: +300%), so it
means the same on a machine two or three times slower; nothing here waits a fixed time or expects a
throughput, and the timeout leaves room for such a machine.

Two quartets at df = 3 make every test strict (Holm's first level is 0.01/5 at t = 7.5): an A/A false
alarm needs a freak run, and only a large plant clears it, which is what this short form is for.
The full figures (20 A/A runs, +10%, +5%, +1 ms per price read) are ``python -m harness.gate.proof --e2e``.
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import median

import pytest

from harness.gate.e2emetrics import CPU_METRIC
from harness.gate.gate import WORKING_TREE, GateOptions, GateOutcome, run_gate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLANT = 3.0  # burn three times the measured CPU per trade on the head's bot


def _gate(out: Path, bot_head: tuple[str, ...] = ()) -> GateOutcome:
    return run_gate(GateOptions(base=WORKING_TREE, head=WORKING_TREE, micro=False, e2e=True, quartets=2,
                                window_s=2.0, rate=60.0, bot_head=bot_head, out_dir=out, quiet=True, seed=7))


def _summary(outcome: GateOutcome) -> str:
    return (outcome.report_dir / "summary.md").read_text()


@pytest.mark.timeout(900)
def test_e2e_tier_is_quiet_on_aa_and_catches_a_large_cpu_plant(tmp_path: Path) -> None:
    aa = _gate(tmp_path / "aa")
    assert aa.e2e is not None
    sides = [w.side for w in aa.e2e.windows]
    assert len(sides) == 8 and sides.count("base") == sides.count("head") == 4
    assert all(w.trades_ok > 0 for w in aa.e2e.windows), _summary(aa)
    assert aa.exit_code == 0 and not any(d.failing for d in aa.e2e.decisions), _summary(aa)
    cpu_aa = next(d for d in aa.e2e.decisions if d.metric == CPU_METRIC)
    assert cpu_aa.status in ("unchanged", "improvement") and cpu_aa.mde is not None

    base_cpu = median(w.cpu_per_trade_us or 0.0 for w in aa.e2e.windows if w.side == "base")
    burn = round(PLANT * base_cpu)
    planted = _gate(tmp_path / "planted", (f"debug.burn_us_per_trade={burn}",))
    assert planted.e2e is not None
    cpu = next(d for d in planted.e2e.decisions if d.metric == CPU_METRIC)
    assert cpu.status == "regression", _summary(planted)
    assert planted.exit_code == 1
    assert cpu.comparison is not None and cpu.comparison.ratio > 1 + PLANT / 2, _summary(planted)

    report = json.loads((planted.report_dir / "gate.json").read_text())
    assert report["tiers"] == ["e2e"] and report["exit_code"] == 1
    assert report["e2e"]["settings"]["sides"]["head"]["bot"] == {"debug": {"burn_us_per_trade": burn}}
    assert len(report["e2e"]["windows"]) == 8 and "e2e.bot_cpu_per_trade" in report["e2e"]["failing"]
    assert "End-to-end tier" in _summary(planted) and "FAIL" in _summary(planted)
    assert "burn_us_per_trade" in (planted.report_dir / "e2e-logs" / "bot-head.log").read_text()
