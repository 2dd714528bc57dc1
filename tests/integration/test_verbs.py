"""The smaller verbs, as a user runs them: demo shows the bot trading, profile leaves a flame graph."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _harness(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args, "--no-progress"], capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_demo_prints_the_bots_own_summary(tmp_path: Path) -> None:
    res = _harness("demo", "--seconds", "3", "--rate", "20", "--pairs", "5", "--out", str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "bot ran" in out and "trades_ok=60" in out and "errors by kind: none" in out
    for op in ("tx_submission", "price_fetch", "balance_check", "trade_execution"):
        assert op in out


def test_profile_writes_a_flame_graph_of_the_bot(tmp_path: Path) -> None:
    res = _harness("profile", "--seconds", "4", "--rate", "200", "--pairs", "5", "--out", str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    (svg,) = list(tmp_path.glob("profile-*/bot-flamegraph.svg"))
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    # samples landed in the bot's own modules (which ones varies with a few hundred samples)
    assert re.search(r"bot/[a-z_]+(/[a-z_]+)*\.py", text), "no sample in the bot's code"
