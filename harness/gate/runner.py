"""The measuring shell: benchmark worker processes per revision, interleaved slots, callgrind runs.

The gate copies ``worker.py``, ``cases.py`` and ``plant.py`` from the head revision into a private
package (``_tbgate``) in a temporary directory, and runs every worker with
``PYTHONPATH=<that dir>:<revision worktree>``: the benchmark definitions are the head's, the code
they exercise is each revision's own, and both use the same interpreter and venv.

Wall-clock tier: all workers stay alive; each round asks every worker, in an interleaved order
(base and head alternate, the starting side alternates per round), for one short slot. Load that
comes and goes on this shared machine therefore lands on both revisions alike.

Instruction-count tier: ``valgrind --tool=callgrind`` on ``worker cgbatch`` with ``PYTHONHASHSEED=0``,
identical command lines and equal-length paths for both revisions, one process per revision for every
case (``worker.py`` explains the dump markers). Start-up, set-up and the interpreter's warm-up are
outside the counted stretches; two counted stretches are differenced, so only the calls remain.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any

from harness.errors import HarnessError
from harness.gate import vgclient
from harness.gate.budget import MAX_ROUNDS, rounds_that_fit
from harness.gate.worker import LABELS_FILE

RUNNER_PACKAGE = "_tbgate"
RUNNER_FILES = ("worker.py", "cases.py", "plant.py", "vgclient.py")


@dataclass(frozen=True)
class Side:
    """One revision under test: its name in reports, its worktree and any extra environment."""

    name: str
    root: Path
    env: dict[str, str] = field(default_factory=dict)


def install_runner(source_dir: Path, dest: Path) -> Path:
    """Copy the worker and case definitions from ``source_dir`` into ``dest/_tbgate``; return ``dest``."""
    pkg = dest / RUNNER_PACKAGE
    pkg.mkdir(parents=True, exist_ok=True)
    for name in RUNNER_FILES:
        src = source_dir / name
        if not src.is_file():
            raise HarnessError(f"{src} is missing: the gate needs {', '.join(RUNNER_FILES)} beside it")
        shutil.copyfile(src, pkg / name)
    (pkg / "__init__.py").write_text('"""Benchmark runner copied by harness gate."""\n')
    return dest


def worker_env(runner_dir: Path, side: Side, *, hash_seed: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRADEBENCH_PLANT_SLOWDOWN")}
    env["PYTHONPATH"] = f"{runner_dir}{os.pathsep}{side.root}"
    env["PYTHONNOUSERSITE"] = "1"
    # One thread per worker: sixteen workers each spinning a BLAS thread pool would measure contention.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    if hash_seed is not None:
        env["PYTHONHASHSEED"] = hash_seed
    env.update(side.env)
    return env


class WorkerProcess:
    """A live ``worker serve`` process of one revision, spoken to with JSON lines."""

    def __init__(self, side: Side, index: int, runner_dir: Path, python: str) -> None:
        self.side = side
        self.index = index
        self.requests = 0
        self._proc = subprocess.Popen(
            [python, "-m", f"{RUNNER_PACKAGE}.worker", "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=worker_env(runner_dir, side),
            cwd=str(side.root),
        )
        hello = self._read()
        if not hello.get("ready"):
            raise HarnessError(f"{self!r} did not start: {hello}")

    def __repr__(self) -> str:
        return (
            f"<WorkerProcess {self.side.name}#{self.index} pid={self._proc.pid} "
            f"root={self.side.root} requests={self.requests} alive={self._proc.poll() is None}>"
        )

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            err = self._proc.stderr.read() if self._proc.stderr is not None else ""
            raise HarnessError(f"benchmark worker {self.side.name}#{self.index} exited: {err.strip()[-2000:]}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self.requests += 1
        self._proc.stdin.write(json.dumps(payload) + "\n")
        self._proc.stdin.flush()
        reply = self._read()
        if not reply.get("ok") and "error" in reply:
            raise HarnessError(f"{self.side.name}#{self.index} failed on {payload}: {reply['error']}")
        return reply

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write('{"op": "quit"}\n')
                self._proc.stdin.flush()
                self._proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def worker_pool(
    sides: Sequence[Side], processes: int, runner_dir: Path, python: str
) -> Iterator[dict[str, list[WorkerProcess]]]:
    pool: dict[str, list[WorkerProcess]] = {side.name: [] for side in sides}
    try:
        # Started alternately so neither revision gets systematically earlier (warmer) processes.
        for index in range(processes):
            for side in sides:
                pool[side.name].append(WorkerProcess(side, index, runner_dir, python))
        yield pool
    finally:
        for workers in pool.values():
            for worker in workers:
                worker.close()


@dataclass(frozen=True)
class WallSettings:
    processes: int = 12
    rounds: int = 16
    slot_s: float = 0.01
    # A slot is the fastest of this many back-to-back sub-runs: on a busy machine a 10 ms run is
    # almost always preempted somewhere, while one of five 2 ms runs usually is not.
    sub_runs: int = 5
    seed: int = 0
    # --budget: stop fitting rounds to ``rounds`` and fit them to the time left before this
    # (monotonic) instead, timing each case's first round (harness.gate.budget).
    deadline: float | None = None


@dataclass(frozen=True)
class WallResult:
    timings: dict[str, dict[str, list[list[float]]]]  # case -> side -> process -> slot ns/op
    skipped: dict[str, str]
    loops: dict[str, int]
    origins: dict[str, dict[str, str | None]]  # side -> package -> file the workers imported
    rounds: dict[str, int] = field(default_factory=dict)  # rounds run per case (fitted under --budget)


def _check_origins(side: Side, origins: dict[str, str | None]) -> None:
    """The whole comparison is void if a worker imported the project from anywhere but its worktree."""
    for package, origin in origins.items():
        if origin is not None and not Path(origin).resolve().is_relative_to(side.root.resolve()):
            raise HarnessError(
                f"{side.name} worker imported {package} from {origin}, not from {side.root}; "
                "an installed copy shadows the worktree (reinstall with `pip install -e .`)"
            )


def _measure_round(pool: dict[str, list[WorkerProcess]], sides: Sequence[Side], case: str, loops: int,
                   settings: WallSettings, rnd: int, rng: random.Random,
                   per_side: dict[str, list[list[float]]]) -> None:
    """One slot per worker: pairs in a shuffled order, base and head back to back, the first side
    alternating by round."""
    order = list(range(settings.processes))
    rng.shuffle(order)
    side_order = list(sides) if rnd % 2 == 0 else list(reversed(sides))
    for index in order:
        for side in side_order:
            reply = pool[side.name][index].request(
                {"op": "measure", "case": case, "loops": loops, "repeats": settings.sub_runs}
            )
            per_side[side.name][index].append(min(float(v) for v in reply["ns_per_op"]))


def run_wall_tier(
    sides: Sequence[Side], cases: Sequence[str], settings: WallSettings, runner_dir: Path, python: str
) -> WallResult:
    rng = random.Random(settings.seed)
    timings: dict[str, dict[str, list[list[float]]]] = {}
    skipped: dict[str, str] = {}
    loops_by_case: dict[str, int] = {}
    rounds_by_case: dict[str, int] = {}
    origins: dict[str, dict[str, str | None]] = {}
    setup_s: list[float] = []
    with worker_pool(sides, settings.processes, runner_dir, python) as pool:
        for n_case, case in enumerate(cases):
            t_setup = time.monotonic()
            if settings.deadline is not None and t_setup >= settings.deadline:
                # Out of time: a case not measured is said so; it is never judged on too few rounds.
                skipped[case] = "not measured: --budget ran out before this benchmark (see the budget line)"
                continue
            missing = []
            for side in sides:
                for worker in pool[side.name]:
                    reply = worker.request({"op": "setup", "case": case})
                    if not reply["ok"]:
                        missing.append(f"{side.name}: {reply['unavailable']}")
                        break
                    _check_origins(side, reply["origins"])
                    origins.setdefault(side.name, {}).update(
                        {k: v for k, v in reply["origins"].items() if v is not None}
                    )
            if missing:
                skipped[case] = "; ".join(missing)
                continue
            first = pool[sides[0].name][0]
            target_s = settings.slot_s / settings.sub_runs
            loops = int(first.request({"op": "calibrate", "case": case, "target_s": target_s})["loops"])
            loops_by_case[case] = loops
            setup_s.append(time.monotonic() - t_setup)
            per_side: dict[str, list[list[float]]] = {
                side.name: [[] for _ in range(settings.processes)] for side in sides
            }
            rounds = settings.rounds
            t_round = time.monotonic()
            _measure_round(pool, sides, case, loops, settings, 0, rng, per_side)
            if settings.deadline is not None:
                cost = time.monotonic() - t_round
                left = len(cases) - n_case
                # What the cases still to come will spend on their set-up is not for rounds.
                remaining = settings.deadline - time.monotonic() + cost - fmean(setup_s) * (left - 1)
                rounds = rounds_that_fit(remaining, left, cost, max_rounds=max(settings.rounds, MAX_ROUNDS))
            for rnd in range(1, rounds):
                _measure_round(pool, sides, case, loops, settings, rnd, rng, per_side)
            rounds_by_case[case] = rounds
            timings[case] = per_side
    return WallResult(timings=timings, skipped=skipped, loops=loops_by_case, origins=origins, rounds=rounds_by_case)


# --- instruction-count tier ---------------------------------------------------------------------

_TOTALS = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def parse_callgrind_total(text: str) -> int:
    """The total instruction count (``Ir``) from a callgrind output file."""
    match = _TOTALS.search(text)
    if match is None:
        raise HarnessError("callgrind output has no 'summary:' or 'totals:' line; was it truncated?")
    return int(match.group(1))


def callgrind_available() -> bool:
    return shutil.which("valgrind") is not None


@dataclass(frozen=True)
class CallgrindSettings:
    iterations: int = 10_000  # the most calls counted per case
    # Native work per counted stretch. The count repeats exactly (0 difference between repeated
    # processes for all 15 cases here), so a few milliseconds of calls are enough, and a case that
    # takes milliseconds per call costs seconds, not minutes, under valgrind (~50x slower).
    target_ns: float = 5e6
    min_iterations: int = 20
    min_effect: float = 0.005
    timeout_s: float = 3600.0


@dataclass(frozen=True)
class CallgrindCounts:
    """Instructions per iteration: base, base repeated (the tier's A/A), head."""

    base: float
    base_repeat: float
    head: float


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def callgrind_plan(cases: Sequence[str], ns_per_op: dict[str, float], settings: CallgrindSettings
                   ) -> list[tuple[str, int, int]]:
    """(case, calls counted N, warm-up calls W) for the batch: ``target_ns`` of native work, within bounds.

    N and W are multiples of 100 (of 10 for a case slower than ``target_ns / 100`` a call), so a
    planted slowdown of one extra call in 100, 50, 20 or 10 stays exact (``harness.gate.plant``)."""
    plan = []
    for case in cases:
        ns = ns_per_op.get(case)
        n = settings.iterations if not ns else math.ceil(settings.target_ns / ns)
        n = max(settings.min_iterations, min(settings.iterations, n))
        step = 100 if n >= 100 else 10
        n = _round_up(n, step)
        plan.append((case, n, max(step, _round_up(n // 2, step))))
    return plan


def expected_labels(plan: Sequence[tuple[str, int, int]], *, instrument: bool = False) -> list[str]:
    """The stretches ``worker cgbatch`` marks, in order, when every case sets up (it writes the ones
    it did mark to ``cg-labels.txt``; with ``instrument`` set-up is not marked)."""
    labels = []
    for name, n, warm in plan:
        labels += [] if instrument else [f"setup {name}"]
        labels += [f"warm {name}", f"n1 {name} {warm}", f"n2 {name} {warm + n}"]
    return labels


def batch_labels(out_dir: Path, plan: Sequence[tuple[str, int, int]], *, instrument: bool) -> list[str]:
    """The labels the worker wrote as it went; the expected ones if it wrote none (an old runner)."""
    path = out_dir / LABELS_FILE
    if path.is_file():
        return [line for line in path.read_text().splitlines() if line]
    return expected_labels(plan, instrument=instrument)


def per_call_counts(totals: dict[int, int], labels: Sequence[str]) -> dict[str, float]:
    """Instructions per call of each case whose two counted stretches were both dumped (pure).

    ``totals[k]`` is the total of dump ``k`` (1-based): the stretch that ended at the k-th marker,
    ``labels[k - 1]``."""
    n1: dict[str, tuple[int, int]] = {}
    out: dict[str, float] = {}
    for k, label in enumerate(labels, start=1):
        kind, name, *rest = label.split(" ")
        if k not in totals or kind not in ("n1", "n2"):
            continue
        if kind == "n1":
            n1[name] = (int(rest[0]), totals[k])
        elif name in n1:
            calls1, count1 = n1[name]
            out[name] = (totals[k] - count1) / (int(rest[0]) - calls1)
    return out


_DUMP = re.compile(r"\.(\d+)$")


def read_dumps(out_dir: Path, stem: str = "callgrind.out") -> dict[int, int]:
    """Dump number -> total instructions, for every ``stem.N`` callgrind wrote."""
    totals = {}
    for path in out_dir.glob(f"{stem}.*"):
        m = _DUMP.search(path.name)
        if m is not None:
            with contextlib.suppress(HarnessError, OSError):
                totals[int(m.group(1))] = parse_callgrind_total(path.read_text())
    return totals


def run_callgrind_batch(
    base: Side, head: Side, plan: Sequence[tuple[str, int, int]], *, settings: CallgrindSettings, runner_dir: Path,
    python: str, work: Path, deadline: float | None = None,
) -> tuple[dict[str, CallgrindCounts], list[str]]:
    """Count every case of ``plan`` in three callgrind processes at once: base, base again, head.

    Instruction counts do not depend on the machine's load, so the three share the cores. At
    ``deadline`` (``--budget``) the processes still running are killed; the cases they finished
    (their dumps are written as they go) are kept, and the notes say which were not."""
    spec = ",".join(f"{name}={n}:{warm}" for name, n, warm in plan)
    # Set-up uninstrumented where the worker can switch instrumentation on itself (``vgclient``).
    instrument = vgclient.supported()
    runs = {"base": base, "rept": base, "head": head}  # equal-length names: paths are in what is counted
    procs: dict[str, subprocess.Popen[str]] = {}
    for tag, side in runs.items():
        out_dir = work / f"cg-{tag}"
        out_dir.mkdir(parents=True, exist_ok=True)
        cmd = ["valgrind", "--tool=callgrind", "--dump-before=getsid", "--callgrind-out-file=callgrind.out",
               *(["--instr-atstart=no"] if instrument else []),
               python, "-m", f"{RUNNER_PACKAGE}.worker", "cgbatch", "--plan", spec,
               *(["--instrument"] if instrument else [])]
        procs[tag] = subprocess.Popen(cmd, cwd=out_dir, env=worker_env(runner_dir, side, hash_seed="0"),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = min(deadline if deadline is not None else math.inf, time.monotonic() + settings.timeout_s)
    notes: list[str] = []
    try:
        for tag, proc in procs.items():
            try:
                _, err = proc.communicate(timeout=max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                continue
            if proc.returncode != 0:
                raise HarnessError(f"callgrind batch ({tag}) failed with code {proc.returncode}: {err[-1500:]}")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    per = {tag: per_call_counts(read_dumps(work / f"cg-{tag}"),
                                batch_labels(work / f"cg-{tag}", plan, instrument=instrument)) for tag in runs}
    counts = {name: CallgrindCounts(per["base"][name], per["rept"][name], per["head"][name])
              for name, _, _ in plan if all(name in per[tag] for tag in runs)}
    missing = [name for name, _, _ in plan if name not in counts]
    if missing:
        notes.append(f"instruction counts of {len(missing)} cases not finished in time: {', '.join(missing)}")
    return counts, notes


def default_python() -> str:
    return sys.executable
