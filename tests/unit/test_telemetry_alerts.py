"""The alert rules are valid PromQL, their promtool unit tests pass, and they use metrics the bot exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bot.telemetry.prometheus import make_registry, render
from bot.telemetry.recorder import Telemetry

HERE = Path(__file__).resolve().parents[2] / "bot" / "telemetry"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package 'prometheus'; ./dev setup installs it)"
)


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=HERE, capture_output=True, text=True, timeout=60, check=False)


@needs_promtool
def test_promtool_check_rules() -> None:
    r = run_promtool("check", "rules", "alerts.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 rules found" in r.stdout


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    r = run_promtool("test", "rules", "alerts_test.yml")
    assert r.returncode == 0, r.stdout + r.stderr


@needs_promtool
def test_promtool_unit_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    """The unit tests can fail: loosen one threshold and promtool must report it."""
    rules = (HERE / "alerts.yml").read_text().replace("> 512e6", "> 700e6")
    (tmp_path / "alerts.yml").write_text(rules)
    shutil.copy(HERE / "alerts_test.yml", tmp_path / "alerts_test.yml")
    assert PROMTOOL is not None
    r = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode != 0 and "MemoryUsageHigh" in r.stdout + r.stderr


def test_rules_match_the_slo_table() -> None:
    doc = yaml.safe_load((HERE / "alerts.yml").read_text())
    rules = {r["alert"]: r for g in doc["groups"] for r in g["rules"]}
    assert set(rules) == {"HighTransactionLatency", "MemoryUsageHigh", "HighErrorRate"}
    assert (rules["HighTransactionLatency"]["for"], rules["HighTransactionLatency"]["labels"]["severity"]) == (
        "2m", "warning")
    assert (rules["MemoryUsageHigh"]["for"], rules["MemoryUsageHigh"]["labels"]["severity"]) == ("5m", "critical")
    assert (rules["HighErrorRate"]["for"], rules["HighErrorRate"]["labels"]["severity"]) == ("2m", "warning")
    assert "histogram_quantile" in rules["HighTransactionLatency"]["expr"]
    assert "rate(bot_operation_latency_seconds_bucket" in rules["HighTransactionLatency"]["expr"]


def test_rules_only_use_metrics_the_bot_exports() -> None:
    t = Telemetry()
    t.record("trade_execution", 1000)
    t.error("timeout")
    exposed = render(make_registry(t)).decode()
    names = set(re.findall(r"^([a-z_]+)(?:\{| )", exposed, re.MULTILINE))
    used = set(re.findall(r"\b(bot_[a-z_]+)", (HERE / "alerts.yml").read_text()))
    assert used, "alerts.yml names no bot_ metric"
    assert used <= names, f"alerts use metrics the bot does not export: {sorted(used - names)}"
