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


def test_install_runner_needs_all_three_files(tmp_path: Path) -> None:
    dest = runner.install_runner(GATE, tmp_path / "ok")
    assert sorted(p.name for p in (dest / runner.RUNNER_PACKAGE).iterdir()) == [
        "__init__.py", "cases.py", "plant.py", "worker.py",
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
