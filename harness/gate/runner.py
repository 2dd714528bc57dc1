"""The measuring shell: benchmark worker processes per revision, interleaved slots, callgrind runs.

The gate copies ``worker.py``, ``cases.py`` and ``plant.py`` from the head revision into a private
package (``_tbgate``) in a temporary directory, and runs every worker with
``PYTHONPATH=<that dir>:<revision worktree>``: the benchmark definitions are the head's, the code
they exercise is each revision's own, and both use the same interpreter and venv.

Wall-clock tier: all workers stay alive; each round asks every worker, in an interleaved order
(base and head alternate, the starting side alternates per round), for one short slot. Load that
comes and goes on this shared machine therefore lands on both revisions alike.

Instruction-count tier: ``valgrind --tool=callgrind`` on ``worker once`` with ``PYTHONHASHSEED=0``,
identical command lines and equal-length paths for both revisions. Start-up and set-up are removed by
differencing two iteration counts; a first run per revision is discarded as warm-up.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

RUNNER_PACKAGE = "_tbgate"
_RUNNER_FILES = ("worker.py", "cases.py", "plant.py")


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
    for name in _RUNNER_FILES:
        src = source_dir / name
        if not src.is_file():
            raise HarnessError(f"{src} is missing: the gate needs {', '.join(_RUNNER_FILES)} beside it")
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


@dataclass(frozen=True)
class WallResult:
    timings: dict[str, dict[str, list[list[float]]]]  # case -> side -> process -> slot ns/op
    skipped: dict[str, str]
    loops: dict[str, int]
    origins: dict[str, dict[str, str | None]]  # side -> package -> file the workers imported


def _check_origins(side: Side, origins: dict[str, str | None]) -> None:
    """The whole comparison is void if a worker imported the project from anywhere but its worktree."""
    for package, origin in origins.items():
        if origin is not None and not Path(origin).resolve().is_relative_to(side.root.resolve()):
            raise HarnessError(
                f"{side.name} worker imported {package} from {origin}, not from {side.root}; "
                "an installed copy shadows the worktree (reinstall with `pip install -e .`)"
            )


def run_wall_tier(
    sides: Sequence[Side], cases: Sequence[str], settings: WallSettings, runner_dir: Path, python: str
) -> WallResult:
    rng = random.Random(settings.seed)
    timings: dict[str, dict[str, list[list[float]]]] = {}
    skipped: dict[str, str] = {}
    loops_by_case: dict[str, int] = {}
    origins: dict[str, dict[str, str | None]] = {}
    with worker_pool(sides, settings.processes, runner_dir, python) as pool:
        for case in cases:
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
            per_side: dict[str, list[list[float]]] = {
                side.name: [[] for _ in range(settings.processes)] for side in sides
            }
            for rnd in range(settings.rounds):
                order = list(range(settings.processes))
                rng.shuffle(order)
                side_order = list(sides) if rnd % 2 == 0 else list(reversed(sides))
                for index in order:
                    for side in side_order:
                        worker = pool[side.name][index]
                        reply = worker.request(
                            {"op": "measure", "case": case, "loops": loops, "repeats": settings.sub_runs}
                        )
                        per_side[side.name][index].append(min(float(v) for v in reply["ns_per_op"]))
            timings[case] = per_side
    return WallResult(timings=timings, skipped=skipped, loops=loops_by_case, origins=origins)


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
    warm_iterations: int = 200
    iterations: int = 10_000
    min_effect: float = 0.005
    jobs: int = 2


def _callgrind_once(
    side: Side, case: str, iterations: int, *, runner_dir: Path, python: str, work: Path, tag: str
) -> int:
    # Equal-length names for both revisions: paths end up in argv and the environment, and the
    # count is only comparable between identical command lines.
    out_dir = work / f"cg-{side.name[:4]:_<4}-{tag}"
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=callgrind.out",
        python, "-m", f"{RUNNER_PACKAGE}.worker", "once", "--case", case, "--iterations", str(iterations),
    ]  # fmt: skip
    proc = subprocess.run(
        cmd,
        cwd=out_dir,
        env=worker_env(runner_dir, side, hash_seed="0"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise HarnessError(
            f"callgrind run of {case} on {side.name} failed: {proc.stdout[-500:]}{proc.stderr[-1500:]}"
        )
    return parse_callgrind_total((out_dir / "callgrind.out").read_text())


@dataclass(frozen=True)
class CallgrindCounts:
    """Instructions per iteration: base, base repeated (the tier's A/A), head."""

    base: float
    base_repeat: float
    head: float


def run_callgrind_tier(
    base: Side, head: Side, case: str, *, settings: CallgrindSettings, runner_dir: Path, python: str, work: Path
) -> CallgrindCounts:
    n1 = settings.warm_iterations
    n2 = n1 + settings.iterations
    plan = [
        (base, n1, "w"), (head, n1, "w"),  # warm-up runs: discarded
        (base, n1, "a"), (base, n2, "b"), (base, n2, "c"), (head, n1, "a"), (head, n2, "b"),
    ]  # fmt: skip
    # Instruction counts do not depend on machine load, so the runs may share the cores.
    with ThreadPoolExecutor(max_workers=max(1, settings.jobs)) as pool:
        futures = [
            pool.submit(
                _callgrind_once, side, case, n, runner_dir=runner_dir, python=python, work=work / case, tag=tag
            )
            for side, n, tag in plan
        ]
        counts = [f.result() for f in futures]
    _, _, b1, b2, b2r, h1, h2 = counts
    span = settings.iterations
    return CallgrindCounts(base=(b2 - b1) / span, base_repeat=(b2r - b1) / span, head=(h2 - h1) / span)


def default_python() -> str:
    return sys.executable
