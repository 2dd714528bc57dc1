"""`harness gate --base REF [--head REF] [--e2e] [--budget 10m]`: compare two revisions; fail on a real regression.

Two tiers, one report:

- **micro** (``harness.gate.micro``): the hot-path benchmarks, interleaved wall clock plus instruction
  counts. Both revisions are checked out into temporary git worktrees (removed afterwards); the
  benchmark definitions come from the head (or, if the head predates the gate, from this checkout)
  and run against each revision's own code.
- **end-to-end** (``--e2e``, ``harness.gate.e2e``): both revisions' whole bots take turns trading on
  one anvil under one open-loop feed, ABBA-ordered in randomized windows; compared per operation from
  their own telemetry, and on CPU per trade. The base bot runs from a worktree, the head bot from the
  working tree (uncommitted changes included) unless ``--head`` names a revision.

Exit code: 1 for an unacknowledged significant regression in either tier, 0 otherwise; harness
failures raise ``HarnessError`` (exit 3 in the CLI).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from harness.errors import ConfigError
from harness.gate import budget as budgeting
from harness.gate import decision as dec
from harness.gate import report, revisions, runner
from harness.gate.e2e import MIN_QUARTETS, E2EResult, run_e2e
from harness.gate.e2erig import BotSide, E2ESettings
from harness.gate.gateargs import add_gate_arguments, options_from_args
from harness.gate.mde import DEFAULT_POWER
from harness.gate.micro import MicroResult, MicroSettings, run_micro
from harness.gate.plant import parse_plant
from harness.probes.calibration import cpu_reference
from harness.run.botconfig import parse_overrides

WORKING_TREE = "."  # --base/--head: the working tree as it is (end-to-end tier only)


@dataclass(frozen=True)
class GateOptions:
    base: str
    head: str | None = None  # micro: HEAD; end-to-end: the working tree
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
    micro: bool = True
    e2e: bool = False
    budget_s: float | None = None
    quartets: int = 8
    window_s: float = 6.0
    rate: float = 120.0
    bot: tuple[str, ...] = ()  # KEY=VALUE bot settings for both revisions' bots
    bot_head: tuple[str, ...] = ()  # ... for the head's only (proofs: debug.burn_us_per_trade=N)
    p99_max_ci: float = 0.25
    power: float = DEFAULT_POWER


@dataclass(frozen=True)
class GateOutcome:
    exit_code: int
    decisions: tuple[dec.Decision, ...]
    report_dir: Path
    e2e: E2EResult | None = None
    conditions: dict[str, object] = dataclasses.field(default_factory=dict)


def machine_conditions() -> dict[str, object]:
    """The machine the figures were measured on: its speed now (``harness.probes.calibration``'s CPU
    reference loop, with its spread) and its load, so a reader can tell a slow run from a slow box."""
    cpu, spread = cpu_reference(5)
    return {"cores": os.cpu_count(), "cpu_ref_per_s": round(cpu), "cpu_ref_spread": round(spread, 3),
            "loadavg_start": round(os.getloadavg()[0], 2)}


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
    if not (opts.micro or opts.e2e):
        raise ConfigError("no tier to run: drop --e2e-only or add --e2e")
    if opts.micro and WORKING_TREE in (opts.base, opts.head):
        raise ConfigError("--base/--head '.' (the working tree) is for the end-to-end tier only: add --e2e-only")
    if opts.quartets < MIN_QUARTETS:
        raise ConfigError(f"--quartets must be at least {MIN_QUARTETS}: four window pairs is the fewest a "
                          "paired test can use")
    if not 1 <= opts.window_s <= 600:
        raise ConfigError("--window must be between 1 and 600 seconds, e.g. 6")
    if not 0 < opts.rate <= 2000:
        raise ConfigError("--rate must be in (0, 2000] trade signals per second, e.g. 120")
    if opts.p99_max_ci <= 0:
        raise ConfigError("--p99-max-ci must be a fraction > 0, e.g. 0.25 for ±25%")
    if not 0.5 <= opts.power < 1:
        raise ConfigError("--mde-power must be in [0.5, 1), e.g. 0.95")
    parse_overrides(opts.bot)
    parse_overrides(opts.bot_head)


def _resolve(repo: Path, ref: str) -> revisions.Revision:
    if ref == WORKING_TREE:
        head = revisions.resolve(repo, "HEAD")
        dirty = bool(revisions.git(repo, "status", "--porcelain", "--untracked-files=no").strip())
        return revisions.Revision("working tree" + (" (uncommitted changes)" if dirty else ""), head.sha)
    return revisions.resolve(repo, ref)


def _micro_settings(opts: GateOptions, plan: budgeting.Budget | None, t0: float) -> MicroSettings:
    return MicroSettings(
        cases=opts.cases, processes=opts.processes, rounds=opts.rounds, slot_s=opts.slot_s, callgrind=opts.callgrind,
        callgrind_cases=opts.callgrind_cases, callgrind_iterations=opts.callgrind_iterations,
        callgrind_min_effect=opts.callgrind_min_effect, plant_head=opts.plant_head, seed=opts.seed,
        wall_deadline=None if plan is None else t0 + plan.micro_wall_s,
        callgrind_deadline=None if plan is None else t0 + plan.micro_s,
        callgrind_share_s=None if plan is None else plan.micro_callgrind_s,
        # The end-to-end tier keeps at least half its share (4 quartets resolved ~5% in the proof).
        callgrind_limit=None if plan is None else t0 + plan.total_s - budgeting.SLACK_S - plan.e2e_s / 2,
    )  # fmt: skip


def _e2e_settings(opts: GateOptions) -> E2ESettings:
    return E2ESettings(quartets=opts.quartets, window_s=opts.window_s, rate=opts.rate, seed=opts.seed)


def run_gate(opts: GateOptions, console: Console | None = None) -> GateOutcome:
    validate(opts)
    t0 = time.monotonic()
    conditions = machine_conditions()
    console = console or Console(stderr=True, width=None if Console(stderr=True).is_terminal else 150)
    python = opts.python or runner.default_python()
    repo = revisions.repo_root(opts.repo)
    cg_likely = opts.callgrind == "on" or (opts.callgrind == "auto" and runner.callgrind_available())
    plan = (budgeting.split(opts.budget_s, micro=opts.micro, e2e=opts.e2e, callgrind=cg_likely)
            if opts.budget_s is not None else None)
    base = _resolve(repo, opts.base)
    micro_head = _resolve(repo, opts.head or "HEAD")
    e2e_head = _resolve(repo, opts.head or WORKING_TREE)
    head = micro_head if opts.micro else e2e_head
    wanted = {"base": base, "head": micro_head} if opts.micro else {}
    if opts.e2e and opts.base != WORKING_TREE:
        wanted["base"] = base
    if opts.e2e and not opts.micro and opts.head not in (None, WORKING_TREE):
        wanted["head"] = e2e_head
    notes: list[str] = []
    if opts.micro and opts.e2e and opts.head is None and e2e_head.ref != "working tree":
        notes.append("the end-to-end tier ran the working tree with its uncommitted changes; the micro tier, HEAD")
    if opts.micro and opts.processes < 6:
        notes.append(f"only {opts.processes} processes per revision: the noise threshold is wide (use 12 for a gate)")
    out_dir = opts.out_dir or repo / "reports" / f"gate-{base.short}-{head.short}"
    micro: MicroResult | None = None
    e2e: E2EResult | None = None
    with revisions.worktrees(repo, wanted) as (tmp, trees):
        if opts.micro:
            micro = run_micro(_micro_settings(opts, plan, t0), trees, tmp, python, notes, console, opts.quiet)
        acks = [
            *revisions.trailer_acknowledgements(repo, base, head),
            *revisions.file_acknowledgements(trees.get("head", repo)),
        ]
        if opts.e2e:
            e2e = _run_e2e(opts, trees, repo, tmp, acks, plan, t0, console, python, out_dir)
    decisions: list[dec.Decision] = []
    if micro is not None:
        decisions = dec.decide(list(micro.names), micro.wall, micro.callgrind, acks, alpha=opts.alpha,
                               min_effect=opts.min_effect, skipped=micro.wall_result.skipped, power=opts.power)
    conditions["loadavg_end"] = round(os.getloadavg()[0], 2)
    failing = any(d.failing for d in decisions) or (e2e is not None and e2e.failing)
    exit_code = 1 if failing else 0
    ctx = report.GateContext(base.ref, base.sha, head.ref, head.sha,
                             {**_settings(opts, python, micro, plan, time.monotonic() - t0),
                              "conditions": conditions}, tuple(notes),
                             micro.wall_result.origins if micro else {}, micro.wall_result.timings if micro else {},
                             e2e=e2e, tiers=tuple(t for t, on in (("micro", opts.micro), ("e2e", opts.e2e)) if on))
    report.write_report(out_dir, decisions, ctx, exit_code)
    if not opts.quiet:
        report.print_report(decisions, ctx, console)
        console.print(f"report: {out_dir / 'summary.md'} ({time.monotonic() - t0:.0f} s)")
    return GateOutcome(exit_code, tuple(decisions), out_dir, e2e, conditions)


def _run_e2e(opts: GateOptions, trees: dict[str, Path], repo: Path, tmp: Path, acks: list[dec.Acknowledgement],
             plan: budgeting.Budget | None, t0: float, console: Console, python: str, out_dir: Path) -> E2EResult:
    base_root = repo if opts.base == WORKING_TREE else trees["base"]
    head_root = repo if opts.head in (None, WORKING_TREE) else trees["head"]
    sides = {"base": BotSide("base", base_root), "head": BotSide("head", head_root, parse_overrides(opts.bot_head))}
    deadline = None if plan is None else t0 + plan.total_s - budgeting.SLACK_S
    if not opts.quiet:
        console.print(f"[bold]gate[/] end-to-end tier: both bots in turn, ABBA windows of ~{opts.window_s:g} s at "
                      f"{opts.rate:g} trades/s, " + ("quartets fitted to the budget" if deadline else
                                                      f"{opts.quartets} quartets"))
    run_dir = tmp / "e2e"
    try:
        return run_e2e(sides, _e2e_settings(opts), run_dir, acknowledgements=acks, alpha=opts.alpha,
                       min_effect=opts.min_effect, p99_max_ci=opts.p99_max_ci, power=opts.power, deadline=deadline,
                       common=parse_overrides(opts.bot), progress=None if opts.quiet else console.print,
                       python=python)
    finally:  # the bots' and the node's logs outlive the temporary directory, beside the report
        logs = out_dir / "e2e-logs"
        for log in run_dir.glob("*.log"):
            logs.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, logs / log.name)


def _settings(opts: GateOptions, python: str, micro: MicroResult | None, plan: budgeting.Budget | None,
              seconds: float) -> dict[str, object]:
    skip = ("out_dir", "repo", "quiet", "python")
    out: dict[str, object] = {k: v for k, v in dataclasses.asdict(opts).items() if k not in skip}
    out["python"] = python
    out["seconds"] = round(seconds, 1)
    if plan is not None:
        out["budget"] = plan.as_dict()
    if micro is not None:
        out.update(loops=micro.wall_result.loops, rounds_run=micro.wall_result.rounds,
                   callgrind_used=micro.callgrind_used, durations=micro.durations)
    return out


HELP = "compare two revisions (hot paths, and with --e2e the whole bot); exit 1 on a significant regression"
EPILOG = ("example:\n  harness gate --base HEAD~1\n  harness gate --e2e --base origin/main --budget 10m\n"
          "  harness gate --base origin/main --head HEAD --case 'orjson.*'")


def add_gate_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "gate", help=HELP, description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_gate_arguments(p)
    p.set_defaults(func=gate_main)
    return p


def gate_main(args: argparse.Namespace) -> int:
    # SIGTERM (CI cancelling the job) must unwind like Ctrl-C, so worktrees and processes are removed.
    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return run_gate(GateOptions(**options_from_args(args))).exit_code
    finally:
        signal.signal(signal.SIGTERM, previous)
