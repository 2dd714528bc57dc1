"""``harness run`` end to end, as a user runs it: every SLO row judged, results kept when killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.report import load_results
from harness.results.journal import load_journal
from harness.slo.spec import load_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = {row.id for row in load_spec(None).rows}


def _harness(*args: str, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args, "--out", str(out), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})


def _only_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if (p / "results.json").exists()]
    assert len(runs) == 1, runs
    return runs[0]


def test_a_short_run_judges_every_row_and_writes_the_reports(tmp_path: Path) -> None:
    # --chain-reset-blocks 0: every scenario starts on a chain reverted to the deployment snapshot,
    # so the revert and the fresh bot it needs are exercised whatever this machine's speed.
    proc = _harness("run", "--only", "burst,sustained", "--minutes", "0.2", "--pairs", "5", "--chain-reset-blocks", "0",
                    out=tmp_path)
    output, _ = proc.communicate(timeout=240)
    run = _only_run(tmp_path)
    doc = json.loads((run / "results.json").read_text())
    assert doc["status"] == "complete", output
    assert {v["row"] for v in doc["verdicts"]} == ROWS  # every row of every table, always
    by = {(v["row"], v["stat"]): v for v in doc["verdicts"]}
    # measured rows carry a value and an interval; rows of scenarios not run say why, not guess
    assert by[("trade_execution", "p99")]["value"] > 0 and by[("trade_execution", "p99")]["ci"][0] is not None
    assert "not measured" in by[("api_calls_per_sec", "target")]["note"]
    sustained = next(s for s in doc["scenarios"] if s["id"] == "sustained")
    assert sum(iv["counters"].get("ok", 0) for iv in sustained["intervals"]) >= 100
    assert doc["conditions"]["node"]["mining"] == "interval:0.05s"
    load_results(run / "results.json")  # valid against the shipped JSON Schema
    assert (run / "index.html").exists() and (run / "junit.xml").exists()
    assert (tmp_path / "index.html").exists()  # the history page
    # exit code: some rows fail or stay inconclusive in so short a run; never 0 with failures
    kinds = {v["verdict"] for v in doc["verdicts"]}
    expected = 1 if "fail" in kinds else (2 if "inconclusive" in kinds else 0)
    assert proc.returncode == expected, output
    assert "results:" in output and "report:" in output
    assert "TRADEBENCH_BOT_KEYS" not in (run / "bot.toml").read_text().replace('env = "TRADEBENCH_BOT_KEYS"', "")
    # the figures are tied to the machine: a calibration taken in this run, on this node
    cal = doc["conditions"]["calibration"]
    assert cal["node_accept_per_s"] > 0 and cal["cpu_ref_per_s"] > 0 and cal["node_mined"] is True
    for scn in doc["scenarios"]:
        summary = scn["summary"]
        assert summary["settle_s"] >= 0 and summary["quiescence"]["timed_out"] is False, summary
        assert summary["generator_lag_p99_ms"] >= 0 and summary["generator_lag_max_ms"] >= summary[
            "generator_lag_p99_ms"]
        assert summary["carry_over"]["tags"] == [], summary["carry_over"]  # it settled: nothing carried over
    # Each scenario starts on the chain as deployed: sustained runs on a chain reverted to the
    # snapshot, with a fresh bot that read its nonces back from it (its 100+ trades went through).
    burst = next(s for s in doc["scenarios"] if s["id"] == "burst")
    b_node, s_node = burst["summary"]["node"], sustained["summary"]["node"]
    assert s_node["reset"] is True and "reverted" in s_node["reset_reason"], s_node
    assert s_node["block_start"] < b_node["block_end"], (b_node, s_node)  # it began below where burst ended
    assert sustained["summary"]["fresh_bot"] is True
    assert s_node["rss_mb_max"] > 0 and s_node["cpu_percent_mean"] >= 0  # the node's resources, beside the bot's
    # The bot's ledger, reconciled against the chain before each revert and at the end of the run:
    # nothing lost or doubled, every intent terminal, every account's count balanced.
    ledger = doc["ledger"]
    c = ledger["counts"]
    assert ledger["complete"] is True and len(ledger["sessions"]) >= 2, ledger["sessions"]
    assert (c["lost"], c["doubled"], c["unexplained"], c["not_terminal"]) == (0, 0, 0, 0), ledger["discrepancies"]
    assert c["reported"] >= 100 and c["mined_confirmed"] >= 100, c
    assert all(a["chain_txs"] == a["mined"] + a["late"] for a in ledger["accounts"]), ledger["accounts"]
    assert by[("ledger_reconciliation", "lost_or_doubled")]["verdict"] == "pass"
    assert 'id="ledger-counts"' in (run / "index.html").read_text()


def test_an_interrupted_run_leaves_readable_partial_results(tmp_path: Path) -> None:
    proc = _harness("run", "--only", "sustained", "--minutes", "5", "--pairs", "5", out=tmp_path)
    deadline = time.monotonic() + 120
    run: Path | None = None
    while time.monotonic() < deadline:  # wait until the sustained scenario has checkpointed some intervals
        runs = [p for p in tmp_path.iterdir() if (p / "checkpoint.jsonl").exists()]
        read = load_journal(runs[0]) if runs else None
        if read is not None and sum(len(r.get("intervals", [])) for r in read.records) >= 5:
            run = runs[0]
            break
        time.sleep(0.5)
    assert run is not None, "the run never checkpointed a scenario"
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 4, output
    doc = json.loads((run / "results.json").read_text())
    assert doc["status"] == "interrupted"
    assert {v["row"] for v in doc["verdicts"]} == ROWS
    # the scenario that was running, rebuilt from its checkpoints, and the window its verdicts cover
    sustained = next(s for s in doc["scenarios"] if s["id"] == "sustained")
    assert sustained["summary"]["partial"]["cause"] == "interrupted" and sustained["resources"]
    assert doc["x_rejudged"]["windows"][0]["window"].startswith("partial: first")
    assert (run / "index.html").exists()
    # no process of the run outlives it
    left = subprocess.run(["pgrep", "-f", str(run)], capture_output=True, text=True, check=False).stdout.split()
    assert left == [], left
