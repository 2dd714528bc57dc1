"""The micro tier: the hot-path benchmarks of both revisions, interleaved wall clock plus instruction counts.

``run_micro`` takes the two worktrees ``harness.gate.gate`` checked out and returns the per-case
decisions' inputs; the statistics are ``harness.gate.decision``'s, the processes ``runner``'s.
Under ``--budget`` the wall-clock rounds are fitted to ``wall_deadline``, and the instruction-count
processes are stopped at ``callgrind_deadline``, keeping the cases they finished.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from harness.errors import ConfigError, HarnessError
from harness.gate import decision as dec
from harness.gate import runner
from harness.gate.plant import ENV_VAR as PLANT_ENV

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class MicroSettings:
    cases: tuple[str, ...] = ()  # fnmatch patterns; empty = all
    processes: int = 12
    rounds: int = 16
    slot_s: float = 0.01
    callgrind: str = "auto"  # auto | on | off
    callgrind_cases: tuple[str, ...] = ()  # patterns; empty = the cases marked callgrind=True
    callgrind_iterations: int = 10_000
    callgrind_min_effect: float = 0.005
    plant_head: str | None = None
    seed: int = 0
    wall_deadline: float | None = None  # monotonic; --budget
    callgrind_deadline: float | None = None
    # --budget: the instruction counts keep their planned share even when the wall-clock tier ran
    # over its own (its fixed cost, 24 worker processes set up, took 244 s of a 145 s share on a slow
    # minute here, and left the counts 77 s), up to ``callgrind_limit``: the time after which the
    # end-to-end tier would get less than it needs.
    callgrind_share_s: float | None = None
    callgrind_limit: float | None = None


@dataclass(frozen=True)
class MicroResult:
    names: tuple[str, ...]
    wall: dict[str, dec.WallComparison]
    callgrind: dict[str, dec.CallgrindComparison]
    wall_result: runner.WallResult
    callgrind_used: bool
    durations: dict[str, float]
    notes: tuple[str, ...] = field(default_factory=tuple)


def runner_source(head_root: Path, notes: list[str]) -> Path:
    candidate = head_root / "harness" / "gate"
    if (candidate / "worker.py").is_file():
        # A head from before the one-process, set-up-uninstrumented instruction counts has a worker
        # this gate cannot drive.
        if all((candidate / f).is_file() for f in runner.RUNNER_FILES) and \
                "--instrument" in (candidate / "worker.py").read_text():
            return candidate
        notes.append("the head revision's benchmark worker predates this gate; used this checkout's definitions")
        return HERE
    notes.append("the head revision has no harness/gate benchmarks; used this checkout's definitions")
    return HERE


def list_cases(runner_dir: Path, python: str) -> list[dict[str, object]]:
    proc = subprocess.run(
        [python, "-m", f"{runner.RUNNER_PACKAGE}.worker", "list"],
        env=runner.worker_env(runner_dir, runner.Side("list", runner_dir)),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise HarnessError(f"could not list benchmark cases: {proc.stderr.strip()[-1500:]}")
    listed: list[dict[str, object]] = json.loads(proc.stdout)
    return listed


def select(names: Sequence[str], patterns: Sequence[str], flag: str) -> list[str]:
    if not patterns:
        return list(names)
    chosen = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    if not chosen:
        raise ConfigError(f"{flag} {list(patterns)} matches no benchmark; known: {', '.join(names)}")
    return chosen


def _plant_envs(plant_head: str | None) -> tuple[dict[str, str], dict[str, str]]:
    if not plant_head:
        return {}, {}
    # The base gets a same-length spec that matches no case: the environment is part of what
    # callgrind counts, so only the planted work may differ between the two sides.
    case, _, fraction = plant_head.rpartition(":")
    return {PLANT_ENV: "~" * len(case) + ":" + fraction}, {PLANT_ENV: plant_head}


def run_micro(s: MicroSettings, trees: dict[str, Path], tmp: Path, python: str, notes: list[str],
              console: Console, quiet: bool) -> MicroResult:
    runner_dir = runner.install_runner(runner_source(trees["head"], notes), tmp / "runner")
    listed = list_cases(runner_dir, python)
    names = select([str(c["name"]) for c in listed], s.cases, "--case")
    base_env, head_env = _plant_envs(s.plant_head)
    base_side = runner.Side("base", trees["base"], base_env)
    head_side = runner.Side("head", trees["head"], head_env)
    if not quiet:
        rounds = "rounds fitted to the budget" if s.wall_deadline is not None else f"{s.rounds} rounds"
        console.print(f"[bold]gate[/] micro tier: {len(names)} benchmarks, {s.processes} processes x {rounds} "
                      "per revision, interleaved")
    settings = runner.WallSettings(processes=s.processes, rounds=s.rounds, slot_s=s.slot_s, seed=s.seed,
                                   deadline=s.wall_deadline)
    t_wall = time.monotonic()
    wall_result = runner.run_wall_tier([base_side, head_side], names, settings, runner_dir, python)
    durations = {"wall_s": round(time.monotonic() - t_wall, 1)}
    wall = {case: dec.compare_wallclock(case, t["base"], t["head"]) for case, t in wall_result.timings.items()}
    cg_default = [str(c["name"]) for c in listed if c["callgrind"] and str(c["name"]) in names]
    cg_names = select(names, s.callgrind_cases, "--callgrind-case") if s.callgrind_cases else cg_default
    cg_names = [n for n in cg_names if n not in wall_result.skipped]
    use_cg = s.callgrind == "on" or (s.callgrind == "auto" and runner.callgrind_available())
    if s.callgrind == "on" and not runner.callgrind_available():
        raise HarnessError("--callgrind on, but valgrind is not installed (apt-get install valgrind)")
    if s.callgrind == "auto" and not use_cg:
        notes.append("valgrind not found: instruction-count tier skipped")
    t_cg = time.monotonic()
    callgrind: dict[str, dec.CallgrindComparison] = {}
    if use_cg:
        left_out = [f"{c['name']} ({c['callgrind_note']})" for c in listed
                    if not c["callgrind"] and c.get("callgrind_note") and str(c["name"]) in names]
        if left_out and not s.callgrind_cases:
            notes.append("not in the instruction-count tier: " + "; ".join(left_out))
        ns = {case: w.base_ns for case, w in wall.items()}
        callgrind = _callgrind_cases(s, cg_names, base_side, head_side, runner_dir, python, tmp, notes, console,
                                     quiet, ns)
    durations["callgrind_s"] = round(time.monotonic() - t_cg, 1)
    return MicroResult(tuple(names), wall, callgrind, wall_result, use_cg, durations)


def callgrind_deadline(s: MicroSettings, now: float) -> float | None:
    """When the instruction counts must stop (pure): the planned deadline, or their share from
    ``now`` if the wall-clock tier ran over, never past ``callgrind_limit``."""
    if s.callgrind_deadline is None or s.callgrind_share_s is None:
        return s.callgrind_deadline
    wanted = max(s.callgrind_deadline, now + s.callgrind_share_s)
    return wanted if s.callgrind_limit is None else max(s.callgrind_deadline, min(wanted, s.callgrind_limit))


def _callgrind_cases(s: MicroSettings, cg_names: list[str], base_side: runner.Side, head_side: runner.Side,
                     runner_dir: Path, python: str, tmp: Path, notes: list[str], console: Console, quiet: bool,
                     ns_per_op: dict[str, float]) -> dict[str, dec.CallgrindComparison]:
    cg_settings = runner.CallgrindSettings(iterations=s.callgrind_iterations, min_effect=s.callgrind_min_effect)
    deadline = callgrind_deadline(s, time.monotonic())
    plan = runner.callgrind_plan(cg_names, ns_per_op, cg_settings)
    if not quiet:
        console.print(f"[dim]callgrind: {len(plan)} cases, one process per revision (and the base repeated)[/]")
    counts, cg_notes = runner.run_callgrind_batch(base_side, head_side, plan, settings=cg_settings,
                                                  runner_dir=runner_dir, python=python, work=tmp / "callgrind",
                                                  deadline=deadline)
    notes.extend(cg_notes)
    return {case: dec.compare_callgrind(case, c.base, c.base_repeat, c.head, min_effect=s.callgrind_min_effect)
            for case, c in counts.items()}
