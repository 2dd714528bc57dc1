"""The command line of ``harness gate``: its arguments, and the options they make (no gate logic here)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.gate.budget import parse_duration


def add_gate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True, help="the revision to compare against (branch, tag, SHA)")
    p.add_argument("--head", default=None,
                   help="the revision under test (default: HEAD for the micro tier, the working tree for --e2e); "
                        "'.' is the working tree (end-to-end tier only)")
    tiers = p.add_argument_group("tiers and time")
    tiers.add_argument("--e2e", action="store_true", help="also run the end-to-end tier: both bots, in turn")
    tiers.add_argument("--e2e-only", action="store_true", help="run only the end-to-end tier")
    tiers.add_argument("--budget", default=None, metavar="DURATION",
                       help="fit both tiers' rounds to this much time (e.g. 10m) and report the minimum detectable "
                            "effect it bought")
    tiers.add_argument("--mde-power", type=float, default=0.95,
                       help="detection probability the minimum detectable effect is stated for (default 0.95)")
    micro = p.add_argument_group("micro tier (hot-path benchmarks)")
    micro.add_argument("--case", action="append", default=[], help="only benchmarks matching this glob (repeatable)")
    micro.add_argument("--processes", type=int, default=12, help="worker processes per revision (default 12)")
    micro.add_argument("--rounds", type=int, default=16, help="interleaved slots per process (default 16)")
    micro.add_argument("--slot", type=float, default=0.01, help="seconds per measurement slot (default 0.01)")
    micro.add_argument("--callgrind", choices=("auto", "on", "off"), default="auto",
                       help="instruction-count tier (auto: when valgrind is installed)")
    micro.add_argument("--callgrind-case", action="append", default=[],
                       help="benchmarks for the instruction-count tier (default: every deterministic one)")
    micro.add_argument("--callgrind-iterations", type=int, default=10_000, help="iterations counted (default 10000)")
    micro.add_argument("--callgrind-min-effect", type=float, default=0.005,
                       help="smallest instruction-count change that fails, as a fraction (default 0.005)")
    micro.add_argument("--plant-head", default=None, metavar="CASE:FRACTION",
                       help="proofs only: plant an exact slowdown in the head side (e.g. hdrh.record:0.10)")
    e2e = p.add_argument_group("end-to-end tier (the whole bot)")
    e2e.add_argument("--quartets", type=int, default=8, help="ABBA quartets of windows (default 8; --budget fits them)")
    e2e.add_argument("--window", type=float, default=6.0, help="measured seconds per window, +-20%% (default 6)")
    e2e.add_argument("--rate", type=float, default=120.0, help="trade signals per second (default 120)")
    e2e.add_argument("--bot", action="append", default=[], metavar="KEY=VALUE",
                     help="a bot.toml setting for both bots (repeatable), e.g. engine.signing=thread")
    e2e.add_argument("--bot-head", action="append", default=[], metavar="KEY=VALUE",
                     help="a bot.toml setting for the head's bot only; proofs: debug.burn_us_per_trade=150")
    e2e.add_argument("--p99-max-ci", type=float, default=0.25,
                     help="judge a p99 only when its 95%% CI is within this fraction (default 0.25)")
    common = p.add_argument_group("decision and output")
    common.add_argument("--alpha", type=float, default=0.01,
                        help="family-wise false-alarm rate per tier (default 0.01)")
    common.add_argument("--min-effect", type=float, default=0.0,
                        help="policy floor for wall-clock regressions, as a fraction (default 0: noise decides)")
    common.add_argument("--out", type=Path, default=None, help="report directory (default reports/gate-BASE-HEAD)")
    common.add_argument("--seed", type=int, default=0, help="seed of the slot and window order (default 0)")


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of ``GateOptions`` (a dict, so this module need not import the gate)."""
    return {
        "base": args.base, "head": args.head, "cases": tuple(args.case), "processes": args.processes,
        "rounds": args.rounds, "slot_s": args.slot, "alpha": args.alpha, "min_effect": args.min_effect,
        "callgrind": args.callgrind, "callgrind_cases": tuple(args.callgrind_case),
        "callgrind_iterations": args.callgrind_iterations, "callgrind_min_effect": args.callgrind_min_effect,
        "plant_head": args.plant_head, "out_dir": args.out, "seed": args.seed,
        "micro": not args.e2e_only, "e2e": args.e2e or args.e2e_only,
        "budget_s": None if args.budget is None else parse_duration(args.budget),
        "quartets": args.quartets, "window_s": args.window, "rate": args.rate, "bot": tuple(args.bot),
        "bot_head": tuple(args.bot_head), "p99_max_ci": args.p99_max_ci, "power": args.mde_power,
    }  # fmt: skip
