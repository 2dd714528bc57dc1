"""`harness gate --base REF [--head REF]`: compare two revisions' hot paths and fail on a real regression.

Both revisions are checked out into temporary git worktrees (removed afterwards). The benchmark
definitions come from the head revision (or, if the head predates the gate, from this checkout), and
run against each revision's own package code. Exit code: 1 for an unacknowledged significant
regression, 0 otherwise; harness failures raise ``HarnessError`` (exit 3 in the CLI).
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from harness.errors import ConfigError, HarnessError
from harness.gate import decision as dec
from harness.gate import report, revisions, runner
from harness.gate.plant import ENV_VAR as PLANT_ENV
from harness.gate.plant import parse_plant

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class GateOptions:
    base: str
    head: str = "HEAD"
    cases: tuple[str, ...] = ()  # fnmatch patterns; empty = all
    processes: int = 12
    rounds: int = 16
    slot_s: float = 0.01
    alpha: float = 0.01
    min_effect: float = 0.0
    callgrind: str = "auto"  # auto | on | off
    callgrind_cases: tuple[str, ...] = ()  # patterns; empty = the cases marked callgrind=True
    callgrind_iterations: int = 10_000
    callgrind_min_effect: float = 0.005
    plant_head: str | None = None  # for proofs: TRADEBENCH_PLANT_SLOWDOWN for the head side only
    out_dir: Path | None = None
    repo: Path = Path(".")
    python: str = ""
    seed: int = 0
    quiet: bool = False


@dataclass(frozen=True)
class GateOutcome:
    exit_code: int
    decisions: tuple[dec.Decision, ...]
    report_dir: Path


def validate(opts: GateOptions) -> None:
    if opts.processes < 2:
        raise ConfigError("--processes must be at least 2: the A/A noise model needs two processes per revision")
    if opts.rounds < 3:
        raise ConfigError("--rounds must be at least 3 so each process has a median of several slots")
    if not 0 < opts.alpha < 1:
        raise ConfigError("--alpha must be in (0, 1), e.g. 0.05")
    if not 0.0005 <= opts.slot_s <= 5:
        raise ConfigError("--slot must be between 0.0005 and 5 seconds, e.g. 0.01")
    if opts.callgrind not in ("auto", "on", "off"):
        raise ConfigError("--callgrind must be auto, on or off")
    if opts.callgrind_iterations < 100:
        raise ConfigError("--callgrind-iterations must be at least 100, e.g. 10000")
    if opts.min_effect < 0 or opts.callgrind_min_effect < 0:
        raise ConfigError("--min-effect and --callgrind-min-effect are fractions >= 0, e.g. 0.005 for 0.5%")
    parse_plant(opts.plant_head)


def _runner_source(head_root: Path, notes: list[str]) -> Path:
    candidate = head_root / "harness" / "gate"
    if all((candidate / f).is_file() for f in ("worker.py", "cases.py", "plant.py")):
        return candidate
    notes.append("the head revision has no harness/gate benchmarks; used this checkout's definitions")
    return HERE


def _list_cases(runner_dir: Path, python: str) -> list[dict[str, object]]:
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


def _select(names: Sequence[str], patterns: Sequence[str], flag: str) -> list[str]:
    if not patterns:
        return list(names)
    chosen = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    if not chosen:
        raise ConfigError(f"{flag} {list(patterns)} matches no benchmark; known: {', '.join(names)}")
    return chosen


def run_gate(opts: GateOptions, console: Console | None = None) -> GateOutcome:
    validate(opts)
    console = console or Console(stderr=True, width=None if Console(stderr=True).is_terminal else 150)
    python = opts.python or runner.default_python()
    repo = revisions.repo_root(opts.repo)
    base = revisions.resolve(repo, opts.base)
    head = revisions.resolve(repo, opts.head)
    notes: list[str] = []
    if opts.processes < 6:
        notes.append(f"only {opts.processes} processes per revision: the noise threshold is wide (use 12 for a gate)")
    with revisions.worktrees(repo, {"base": base, "head": head}) as (tmp, trees):
        runner_dir = runner.install_runner(_runner_source(trees["head"], notes), tmp / "runner")
        listed = _list_cases(runner_dir, python)
        names = _select([str(c["name"]) for c in listed], opts.cases, "--case")
        head_env = {PLANT_ENV: opts.plant_head} if opts.plant_head else {}
        # The base gets a same-length spec that matches no case: the environment is part of what
        # callgrind counts, so only the planted work may differ between the two sides.
        base_env = (
            {PLANT_ENV: "~" * len(opts.plant_head.rpartition(":")[0]) + ":" + opts.plant_head.rpartition(":")[2]}
            if opts.plant_head
            else {}
        )
        base_side = runner.Side("base", trees["base"], base_env)
        head_side = runner.Side("head", trees["head"], head_env)
        if not opts.quiet:
            console.print(
                f"[bold]gate[/] {len(names)} benchmarks, {opts.processes} processes x {opts.rounds} rounds "
                f"per revision, interleaved"
            )
        settings = runner.WallSettings(processes=opts.processes, rounds=opts.rounds, slot_s=opts.slot_s, seed=opts.seed)
        t_wall = time.monotonic()
        wall_result = runner.run_wall_tier([base_side, head_side], names, settings, runner_dir, python)
        durations = {"wall_s": round(time.monotonic() - t_wall, 1)}
        wall = {case: dec.compare_wallclock(case, t["base"], t["head"]) for case, t in wall_result.timings.items()}
        cg_default = [str(c["name"]) for c in listed if c["callgrind"] and str(c["name"]) in names]
        cg_names = _select(names, opts.callgrind_cases, "--callgrind-case") if opts.callgrind_cases else cg_default
        cg_names = [n for n in cg_names if n not in wall_result.skipped]
        callgrind: dict[str, dec.CallgrindComparison] = {}
        use_cg = opts.callgrind == "on" or (opts.callgrind == "auto" and runner.callgrind_available())
        if opts.callgrind == "on" and not runner.callgrind_available():
            raise HarnessError("--callgrind on, but valgrind is not installed (apt-get install valgrind)")
        if opts.callgrind == "auto" and not use_cg:
            notes.append("valgrind not found: instruction-count tier skipped")
        t_cg = time.monotonic()
        if use_cg:
            cg_settings = runner.CallgrindSettings(
                iterations=opts.callgrind_iterations, min_effect=opts.callgrind_min_effect
            )
            for case in cg_names:
                if not opts.quiet:
                    console.print(f"[dim]callgrind: {case}[/]")
                counts = runner.run_callgrind_tier(
                    base_side, head_side, case, settings=cg_settings, runner_dir=runner_dir, python=python,
                    work=tmp / "callgrind",
                )  # fmt: skip
                callgrind[case] = dec.compare_callgrind(
                    case, counts.base, counts.base_repeat, counts.head, min_effect=opts.callgrind_min_effect
                )
        durations["callgrind_s"] = round(time.monotonic() - t_cg, 1)
        acks = [
            *revisions.trailer_acknowledgements(repo, base, head),
            *revisions.file_acknowledgements(trees["head"]),
        ]
    decisions = dec.decide(
        names, wall, callgrind, acks, alpha=opts.alpha, min_effect=opts.min_effect, skipped=wall_result.skipped
    )
    exit_code = 1 if any(d.failing for d in decisions) else 0
    settings_dict = {
        **{k: v for k, v in dataclasses.asdict(opts).items() if k not in ("out_dir", "repo", "quiet")},
        "python": python,
        "loops": wall_result.loops,
        "callgrind_used": use_cg,
        "durations": durations,
    }
    ctx = report.GateContext(
        base.ref, base.sha, head.ref, head.sha, settings_dict, tuple(notes), wall_result.origins, wall_result.timings
    )
    out_dir = opts.out_dir or repo / "reports" / f"gate-{base.short}-{head.short}"
    report.write_report(out_dir, decisions, ctx, exit_code)
    if not opts.quiet:
        report.print_table(decisions, ctx, console)
        console.print(f"report: {out_dir / 'summary.md'}")
    return GateOutcome(exit_code, tuple(decisions), out_dir)


HELP = "compare two revisions' hot-path benchmarks; exit 1 on a significant regression"
EPILOG = "example:\n  harness gate --base HEAD~1\n  harness gate --base origin/main --head HEAD --case 'orjson.*'"


def add_gate_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "gate", help=HELP, description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_gate_arguments(p)
    return p


def add_gate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True, help="the revision to compare against (branch, tag, SHA)")
    p.add_argument("--head", default="HEAD", help="the revision under test (default: HEAD)")
    p.add_argument("--case", action="append", default=[], help="only benchmarks matching this glob (repeatable)")
    p.add_argument("--processes", type=int, default=12, help="worker processes per revision (default 12)")
    p.add_argument("--rounds", type=int, default=16, help="interleaved slots per process (default 16)")
    p.add_argument("--slot", type=float, default=0.01, help="seconds per measurement slot (default 0.01)")
    p.add_argument("--alpha", type=float, default=0.01, help="family-wise false-alarm rate (default 0.01)")
    p.add_argument(
        "--min-effect",
        type=float,
        default=0.0,
        help="policy floor for wall-clock regressions, as a fraction (default 0: noise decides)",
    )
    p.add_argument(
        "--callgrind",
        choices=("auto", "on", "off"),
        default="auto",
        help="instruction-count tier (auto: when valgrind is installed)",
    )
    p.add_argument(
        "--callgrind-case",
        action="append",
        default=[],
        help="benchmarks for the instruction-count tier (default: those marked small)",
    )
    p.add_argument("--callgrind-iterations", type=int, default=10_000, help="iterations counted (default 10000)")
    p.add_argument(
        "--callgrind-min-effect",
        type=float,
        default=0.005,
        help="smallest instruction-count change that fails, as a fraction (default 0.005)",
    )
    p.add_argument(
        "--plant-head",
        default=None,
        metavar="CASE:FRACTION",
        help="proofs only: plant an exact slowdown in the head side (e.g. hdrh.record:0.10)",
    )
    p.add_argument("--out", type=Path, default=None, help="report directory (default reports/gate-BASE-HEAD)")
    p.add_argument("--seed", type=int, default=0, help="seed of the slot order (default 0)")
    p.set_defaults(func=gate_main)  # fmt: skip


def options_from_args(args: argparse.Namespace) -> GateOptions:
    return GateOptions(
        base=args.base,
        head=args.head,
        cases=tuple(args.case),
        processes=args.processes,
        rounds=args.rounds,
        slot_s=args.slot,
        alpha=args.alpha,
        min_effect=args.min_effect,
        callgrind=args.callgrind,
        callgrind_cases=tuple(args.callgrind_case),
        callgrind_iterations=args.callgrind_iterations,
        callgrind_min_effect=args.callgrind_min_effect,
        plant_head=args.plant_head,
        out_dir=args.out,
        seed=args.seed,
    )


def gate_main(args: argparse.Namespace) -> int:
    # SIGTERM (CI cancelling the job) must unwind like Ctrl-C, so worktrees and workers are removed.
    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return run_gate(options_from_args(args)).exit_code
    finally:
        signal.signal(signal.SIGTERM, previous)
