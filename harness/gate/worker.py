"""The benchmark worker: one process of one revision, timing cases on command.

The gate starts several of these per revision with ``PYTHONPATH`` set to that revision's worktree,
so ``import bot``/``import harness`` resolve to *that revision's* code while the case definitions
(copied beside this file into a throw-away package) come from the head revision. Standard-library
only, for the same reason as ``cases.py``.

Two modes:

- ``serve`` (default): JSON lines on stdin/stdout. The orchestrator keeps every worker alive and
  asks them in turn for short measurement slots, which is what makes the comparison interleaved
  (A B A B ...) without paying interpreter start-up and imports per slot.
- ``once --case NAME --iterations N``: set up and run the case N times, then exit.
- ``cgbatch --plan NAME=N,NAME=N,...``: the instruction-count tier's command line, run under
  ``valgrind --tool=callgrind --dump-before=getsid``. Every case is set up and run in this one
  process; before and after each counted stretch the worker calls ``os.getsid(0)``, a libc function
  CPython itself never calls, so callgrind writes one dump per stretch. Per case: set-up (discarded,
  imports included), a warm-up of W calls (discarded: the adaptive interpreter specialises), W calls,
  then W + N calls; the difference of the last two is exactly N calls, with the marker's own cost
  cancelled. The labels of the stretches are written to ``cg-labels.txt`` as they end (and printed as
  JSON at the end), so the dumps can be matched. One process per revision instead of one per case:
  start-up and imports under valgrind are paid once, not once per case. With ``--instrument``
  (valgrind's ``--instr-atstart=no``) set-up runs uninstrumented and only the calls are instrumented
  (``vgclient``): about 8x native instead of 40x for the imports.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from typing import Any

from . import vgclient
from .cases import CASES, CaseUnavailable, get_case
from .plant import plant_from_env, planted

Op = Any


def _module_origin(name: str) -> str | None:
    mod = sys.modules.get(name)
    return getattr(mod, "__file__", None) if mod is not None else None


class Worker:
    """Holds the set-up cases of one process; every method answers one request."""

    def __init__(self) -> None:
        self._ops: dict[str, Op] = {}
        self._plant = plant_from_env()
        self._every: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<Worker cases={sorted(self._ops)} plant={self._plant}>"

    def setup(self, name: str) -> dict[str, Any]:
        try:
            op = get_case(name).setup()
        except CaseUnavailable as exc:
            return {"ok": False, "unavailable": str(exc)}
        plant = self._plant if self._plant is not None and self._plant.case == name else None
        self._ops[name] = planted(op, plant)
        if plant is not None:
            self._every[name] = plant.every
        op()  # first call outside any timing: lazy imports, caches
        gc.collect()
        return {
            "ok": True,
            "planted": plant.exact_fraction if plant is not None else 0.0,
            "origins": {pkg: _module_origin(pkg) for pkg in ("bot", "harness")},
        }

    def calibrate(self, name: str, target_s: float) -> dict[str, Any]:
        """The loop count that makes one timed batch last about ``target_s`` (doubling search)."""
        op = self._ops[name]
        loops = 1
        while True:
            t0 = time.perf_counter_ns()
            for _ in range(loops):
                op()
            elapsed = (time.perf_counter_ns() - t0) / 1e9
            if elapsed >= target_s / 2 or loops >= 1 << 24:
                scaled = loops * target_s / max(elapsed, 1e-9)
                return {"ok": True, "loops": max(1, min(int(scaled), 1 << 24))}
            loops *= 2

    def measure(self, name: str, loops: int, repeats: int) -> dict[str, Any]:
        op = self._ops[name]
        # A planted case runs a whole number of plant cycles per timing, so that every timing holds
        # exactly the planted share of extra work (a fastest-of-N would otherwise pick a timing
        # that happened to contain fewer extra calls). Times are per operation, so the counts may differ.
        every = self._every.get(name, 1)
        loops = -(-loops // every) * every
        values: list[float] = []
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            for _ in range(loops):
                op()
            values.append((time.perf_counter_ns() - t0) / loops)
        return {"ok": True, "ns_per_op": values}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        kind = request.get("op")
        if kind == "setup":
            return self.setup(str(request["case"]))
        if kind == "calibrate":
            return self.calibrate(str(request["case"]), float(request["target_s"]))
        if kind == "measure":
            return self.measure(str(request["case"]), int(request["loops"]), int(request["repeats"]))
        return {"ok": False, "error": f"unknown op {kind!r}; expected setup|calibrate|measure|quit"}


def serve() -> int:
    worker = Worker()
    print(json.dumps({"ready": True, "python": sys.version.split()[0]}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("op") == "quit":
            break
        try:
            reply = worker.handle(request)
        except Exception as exc:  # a broken case must not kill the other cases' measurements
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)
    return 0


def once(name: str, iterations: int) -> int:
    worker = Worker()
    reply = worker.setup(name)
    if not reply["ok"]:
        print(json.dumps(reply), flush=True)
        return 4
    op = worker._ops[name]
    for _ in range(iterations):
        op()
    return 0


def _calls(op: Op, n: int) -> None:
    for _ in range(n):
        op()


LABELS_FILE = "cg-labels.txt"  # in the working directory: the stretches dumped so far, one per line


def cgbatch(plan: list[tuple[str, int, int]], *, instrument: bool = False) -> int:
    """``instrument``: valgrind was started with ``--instr-atstart=no``; switch instrumentation on for
    each case's calls only (``vgclient``). Set-up then runs uninstrumented, ~5x faster, and is not
    marked: with instrumentation off the marker call is not seen, so no dump would match its label."""
    labels: list[str] = []
    # Written as it goes: a batch stopped at the budget's deadline still says which dump is which.
    with open(LABELS_FILE, "w", encoding="utf-8") as out:

        def mark(label: str) -> None:  # the stretch that ends here was ``label``
            labels.append(label)
            out.write(label + "\n")
            out.flush()
            os.getsid(0)

        worker = Worker()
        skipped: dict[str, str] = {}
        for name, n, warm in plan:
            reply = worker.setup(name)
            if not instrument:
                mark(f"setup {name}")
            if not reply["ok"]:
                skipped[name] = str(reply["unavailable"])
                continue
            op = worker._ops[name]
            if instrument:
                vgclient.start_instrumentation()
            _calls(op, warm)
            mark(f"warm {name}")
            _calls(op, warm)
            mark(f"n1 {name} {warm}")
            _calls(op, warm + n)
            mark(f"n2 {name} {warm + n}")
            if instrument:
                vgclient.stop_instrumentation()
    print(json.dumps({"labels": labels, "skipped": skipped}), flush=True)
    return 0


def parse_plan(text: str) -> list[tuple[str, int, int]]:
    """``NAME=N:W,...``: count N calls of NAME after W warm-up calls."""
    out = []
    for item in text.split(","):
        name, _, counts = item.rpartition("=")
        n, _, warm = counts.partition(":")
        out.append((name, int(n), int(warm)))
    return out


def list_cases() -> int:
    print(json.dumps([{"name": c.name, "callgrind": c.callgrind, "description": c.description,
                       "callgrind_note": getattr(c, "callgrind_note", "")} for c in CASES]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tradebench gate benchmark worker")
    sub = parser.add_subparsers(dest="mode")
    sub.add_parser("serve")
    sub.add_parser("list")
    p_once = sub.add_parser("once")
    p_once.add_argument("--case", required=True)
    p_once.add_argument("--iterations", type=int, required=True)
    p_batch = sub.add_parser("cgbatch")
    p_batch.add_argument("--plan", required=True, help="NAME=CALLS:WARM,NAME=CALLS:WARM,...")
    p_batch.add_argument("--instrument", action="store_true",
                         help="valgrind runs with --instr-atstart=no: instrument each case's calls only")
    args = parser.parse_args(argv)
    if args.mode == "cgbatch":
        return cgbatch(parse_plan(args.plan), instrument=args.instrument)
    if args.mode == "list":
        return list_cases()
    if args.mode == "once":
        return once(args.case, args.iterations)
    return serve()


if __name__ == "__main__":
    sys.exit(main())
