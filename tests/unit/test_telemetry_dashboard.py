"""The Grafana dashboard is valid JSON, its queries parse as PromQL, and they use metrics the bot exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.telemetry.prometheus import make_registry, render
from bot.telemetry.recorder import Telemetry

DASHBOARD = Path(__file__).resolve().parents[2] / "bot" / "telemetry" / "dashboard.json"


def exprs() -> list[str]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def test_dashboard_structure() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] and doc["title"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"] for p in doc["panels"])
    for op in ("trade_execution", "tx_submission", "price_fetch", "balance_check"):
        assert op in titles


def test_dashboard_uses_only_exported_metrics() -> None:
    t = Telemetry()
    t.record("trade_execution", 1000)
    t.error("timeout")
    t.count("ticks_handled")
    t.count("drops{reason=market_data.dropped_oldest}")
    t.set_gauge("net_bytes_sent", 1)
    t.set_gauge("net_bytes_received", 1)
    exposed = set(re.findall(r"^([a-z_]+)(?:\{| )", render(make_registry(t)).decode(), re.MULTILINE))
    used = {m for e in exprs() for m in re.findall(r"\b(bot_[a-z_]+)", e)}
    assert used and used <= exposed, sorted(used - exposed)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package 'prometheus')")
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # Dashboard variables are not PromQL: substitute what Grafana would.
    rules = [{"record": f"dashboard:query_{i}", "expr": e.replace("$job", ".*").replace("$instance", ".*")}
             for i, e in enumerate(exprs())]
    (tmp_path / "q.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    promtool = shutil.which("promtool")
    assert promtool is not None
    r = subprocess.run([promtool, "check", "rules", str(tmp_path / "q.yml")], capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
