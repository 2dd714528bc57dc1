"""The measuring shell: the worker protocol, callgrind output parsing, and the isolation checks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.gate import runner

GATE = Path(__file__).resolve().parents[2] / "harness" / "gate"


def test_parse_callgrind_total() -> None:
    text = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nfl=(1)\n0 5\nsummary: 225210246\ntotals: 225210246\n"
    assert runner.parse_callgrind_total(text) == 225_210_246
    with pytest.raises(HarnessError, match="summary"):
        runner.parse_callgrind_total("events: Ir\n")


def test_install_runner_needs_all_its_files(tmp_path: Path) -> None:
    dest = runner.install_runner(GATE, tmp_path / "ok")
    assert sorted(p.name for p in (dest / runner.RUNNER_PACKAGE).iterdir()) == [
        "__init__.py", "cases.py", "plant.py", "vgclient.py", "worker.py",
    ]  # fmt: skip
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "worker.py").write_text("")
    with pytest.raises(HarnessError, match=r"cases\.py is missing"):
        runner.install_runner(tmp_path / "partial", tmp_path / "bad")


def test_origins_outside_the_worktree_void_the_run(tmp_path: Path) -> None:
    side = runner.Side("base", tmp_path / "wt")
    (tmp_path / "wt" / "bot").mkdir(parents=True)
    runner._check_origins(side, {"bot": str(tmp_path / "wt" / "bot" / "__init__.py"), "harness": None})
    with pytest.raises(HarnessError, match="shadows the worktree"):
        runner._check_origins(side, {"bot": "/somewhere/else/bot/__init__.py"})


def test_worker_protocol_against_this_checkout(tmp_path: Path) -> None:
    root = GATE.parents[1]
    runner_dir = runner.install_runner(GATE, tmp_path)
    worker = runner.WorkerProcess(runner.Side("base", root), 0, runner_dir, sys.executable)
    try:
        assert "alive=True" in repr(worker)
        setup = worker.request({"op": "setup", "case": "codec.encode_request"})
        assert setup["ok"] and setup["planted"] == 0.0
        assert setup["origins"]["bot"] == str(root / "bot" / "__init__.py")
        loops = worker.request({"op": "calibrate", "case": "codec.encode_request", "target_s": 0.002})["loops"]
        assert loops >= 1
        values = worker.request({"op": "measure", "case": "codec.encode_request", "loops": loops, "repeats": 3})
        assert len(values["ns_per_op"]) == 3 and all(v > 0 for v in values["ns_per_op"])
        with pytest.raises(HarnessError, match="unknown op"):
            worker.request({"op": "nonsense"})
    finally:
        worker.close()
    assert "alive=False" in repr(worker)


def test_callgrind_plan_counts_a_few_ms_of_calls_in_plant_exact_multiples() -> None:
    settings = runner.CallgrindSettings()
    plan = runner.callgrind_plan(["fast", "slow", "unknown", "glacial"],
                                 {"fast": 100.0, "slow": 80_000.0, "glacial": 10e6}, settings)
    by = {name: (n, warm) for name, n, warm in plan}
    assert by["fast"] == (10_000, 5_000) and by["unknown"] == (10_000, 5_000)
    assert by["slow"] == (70, 40)  # 5 ms / 80 µs = 63 calls, to a multiple of 10
    assert by["glacial"] == (20, 10)
    assert all(n % 10 == 0 and warm % 10 == 0 for _, n, warm in plan)


@pytest.mark.parametrize("instrument", [False, True])
def test_the_batch_worker_marks_the_stretches_the_runner_expects(tmp_path: Path, instrument: bool) -> None:
    """Run ``worker cgbatch`` natively (os.getsid and the client requests are harmless outside
    valgrind): its labels are the plan's, written as it went; set-up is unmarked when it instruments."""
    import json
    import subprocess

    dest = runner.install_runner(GATE, tmp_path / "r")
    plan = [("mailbox.put_get", 200, 100), ("hdrh.record", 100, 100)]
    spec = ",".join(f"{n}={c}:{w}" for n, c, w in plan)
    proc = subprocess.run([sys.executable, "-m", f"{runner.RUNNER_PACKAGE}.worker", "cgbatch", "--plan", spec,
                           *(["--instrument"] if instrument else [])],
                          env=runner.worker_env(dest, runner.Side("base", GATE.parents[1])), capture_output=True,
                          text=True, check=True, cwd=tmp_path)
    out = json.loads(proc.stdout)
    expected = runner.expected_labels(plan, instrument=instrument)
    assert out["labels"] == expected and out["skipped"] == {}
    assert runner.batch_labels(tmp_path, plan, instrument=instrument) == expected
    assert any(label.startswith("setup") for label in expected) != instrument


def test_the_runner_reads_the_labels_written_not_the_plan(tmp_path: Path) -> None:
    # A case that could not set up in this revision marks no calls: the dumps follow what was written.
    plan = [("gone", 100, 100), ("b", 100, 100)]
    (tmp_path / runner.LABELS_FILE).write_text("warm b\nn1 b 100\nn2 b 200\n")
    labels = runner.batch_labels(tmp_path, plan, instrument=True)
    assert runner.per_call_counts({1: 5, 2: 1_000, 3: 3_000}, labels) == {"b": 20.0}
    assert runner.batch_labels(tmp_path / "none", plan, instrument=True) == runner.expected_labels(plan,
                                                                                                   instrument=True)


def test_per_call_counts_use_finished_cases_only(tmp_path: Path) -> None:
    labels = runner.expected_labels([("a", 100, 100), ("b", 10, 10)])
    # dumps 1-4 belong to "a" (setup, warm, n1 = 100 calls, n2 = 200 calls); "b" was cut off after its n1.
    totals = {1: 9_999_999, 2: 55_000, 3: 50_500, 4: 100_500, 5: 7, 6: 8, 7: 900}
    assert runner.per_call_counts(totals, labels) == {"a": 500.0}
    for k, total in totals.items():
        (tmp_path / f"callgrind.out.{k}").write_text(f"events: Ir\nsummary: {total}\n")
    (tmp_path / "callgrind.out").write_text("events: Ir\nsummary: 1\n")  # the final dump: not a stretch
    assert runner.read_dumps(tmp_path) == totals


def test_a_head_whose_worker_cannot_instrument_per_case_runs_this_checkouts_definitions(tmp_path: Path) -> None:
    from harness.gate.micro import HERE, runner_source

    gate = tmp_path / "head" / "harness" / "gate"
    gate.mkdir(parents=True)
    for name in runner.RUNNER_FILES:
        (gate / name).write_text((GATE / name).read_text())
    notes: list[str] = []
    assert runner_source(tmp_path / "head", notes) == gate and notes == []
    (gate / "worker.py").write_text("def cgbatch(): ...\n")  # before --instrument
    assert runner_source(tmp_path / "head", notes) == HERE and "predates" in notes[0]
    assert runner_source(tmp_path / "none", notes) == HERE and "no harness/gate" in notes[1]
