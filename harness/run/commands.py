"""The ``run``, ``soak``, ``profile`` and ``node`` verbs."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.errors import HarnessError
from harness.run.botconfig import check_overrides, parse_overrides
from harness.run.finalize import exit_code
from harness.run.options import RunOptions
from harness.run.runner import execute
from harness.run.scenarios import Profile, profile, with_chaos

COLOURS = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
SOAK_HEAP_TRACE_FRAMES = 1  # tracemalloc frames in a soak's bot (0 turns it off: --bot debug.heap_trace_frames=0)


def _options(args: argparse.Namespace, **extra: Any) -> RunOptions:
    return RunOptions(profile=getattr(args, "profile", "custom"), pairs=args.pairs, out=args.out,
                      node_url=args.node_url, allow_remote=args.allow_remote, deployment=args.deployment,
                      block_time=args.block_time, slo=args.slo, baseline=args.baseline, seed=args.seed,
                      progress=not args.no_progress, faults=getattr(args, "faults", None),
                      network=getattr(args, "network", "loopback"),
                      fault_schedule=getattr(args, "fault_schedule", None),
                      extra_bot=_bot_overrides(args.bot), bot_allocator=getattr(args, "bot_allocator", "system"),
                      **extra)


def _bot_overrides(items: list[str]) -> dict[str, Any]:
    overrides = parse_overrides(items)
    check_overrides(overrides)
    return overrides


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def print_verdicts(doc: dict[str, Any], run_dir: Path) -> int:
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    network = doc.get("conditions", {}).get("network_profile", "loopback")
    table = Table(title=f"run {doc['run_id']} ({doc['profile']}, {doc['status']}) · network {network}",
                  show_lines=False)
    for col in ("row", "stat", "scenario", "value", "95% CI", "threshold", "verdict"):
        table.add_column(col, no_wrap=True)
    table.add_column("note", overflow="ellipsis", no_wrap=True, max_width=60)
    shown, hidden = _chaos_only_rows(doc)
    for v in shown:
        ci = v.get("ci") or [None, None]
        th = v.get("threshold") or {}
        verdict = v["verdict"]
        note = v.get("note", "")
        if verdict == "inconclusive" and v.get("more_time_s"):
            note = f"~{_duration(v['more_time_s'])} more would decide. {note}"
        value = f"{_fmt(v.get('value'))} {v.get('unit', '')}"
        threshold = f"{th.get('op', '')} {_fmt(th.get('value'))} {th.get('level', '')}"
        table.add_row(v["row"], v.get("stat", ""), v.get("scenario") or "-", value, f"[{_fmt(ci[0])}, {_fmt(ci[1])}]",
                      threshold, f"[{COLOURS.get(verdict, 'white')}]{verdict}[/]", note[:80])
    console.print(table)
    if hidden:
        console.print(f"{hidden} rows not measured by a chaos-only run (each is in results.json and the report)")
    counts = {k: sum(1 for v in doc["verdicts"] if v["verdict"] == k) for k in COLOURS}
    console.print(f"{counts['pass']} pass, {counts['fail']} fail, {counts['inconclusive']} inconclusive")
    console.print(f"results: {run_dir / 'results.json'}")
    console.print(f"report:  {run_dir / 'index.html'}")
    return exit_code(doc["verdicts"])


def _chaos_only_rows(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The verdicts to print, and how many were left out: a run of chaos scenarios alone leaves every SLO
    row "not measured", and a table of them would bury the few rows it did judge."""
    scenarios = doc.get("scenarios", [])
    verdicts: list[dict[str, Any]] = doc["verdicts"]
    if not scenarios or any(s.get("kind") != "chaos" for s in scenarios):
        return verdicts, 0
    shown = [v for v in verdicts if not str(v.get("note", "")).startswith("not measured in this run")]
    return shown, len(verdicts) - len(shown)


def _run(opts: RunOptions, prof: Profile) -> int:
    run_dir, doc = asyncio.run(execute(opts, prof))
    code = print_verdicts(doc, run_dir)
    if doc["status"] == "interrupted":
        print("harness: interrupted; partial results and report written", file=sys.stderr)
        return 4
    return code


def cmd_run(args: argparse.Namespace) -> int:
    base = profile(args.profile, args.minutes)
    chaos = getattr(args, "chaos", None)
    prof = with_chaos(base, args.only, chaos) if chaos is not None else base.select(args.only)
    if not 0 <= args.locust_workers <= 64:
        raise HarnessError("--locust-workers: give 0..64 local worker processes")
    return _run(_options(args, locust_workers=args.locust_workers, fresh_bot=args.fresh_bot,
                         reset_chain=not args.keep_chain, chain_reset_blocks=args.chain_reset_blocks,
                         calibrate=not args.no_calibrate, settle_timeout_s=args.settle_timeout,
                         profile_bot=args.profile_bot), prof)


def cmd_soak(args: argparse.Namespace) -> int:
    from harness.run.soakrate import DEFAULT_RATE, soak_scenario

    minutes = args.minutes if args.minutes is not None else (args.hours or 24.0) * 60.0
    if minutes <= 0:
        raise HarnessError("--hours/--minutes must be positive")
    if args.rate is not None and args.rate <= 0:
        raise HarnessError("--rate must be positive (trades per second)")
    # Without --rate the runner sets the rate from the run's calibration (harness.run.soakrate).
    prof = Profile("soak", (soak_scenario(args.rate or DEFAULT_RATE, minutes, not args.no_memray),))
    args.profile = "soak"
    # The heap's bytes and the sites that grew (bot.heapwatch) are what a soak is for; the user's --bot wins.
    args.bot = [f"debug.heap_trace_frames={SOAK_HEAP_TRACE_FRAMES}", *args.bot]
    return _run(_options(args, memray=not args.no_memray, soak_rate=args.rate, soak_seconds=minutes * 60.0), prof)


def cmd_profile(args: argparse.Namespace) -> int:
    from harness.run.profilecmd import profile_request, run_profile

    args.profile = "profile"
    return int(run_profile(_options(args), profile_request(args)))


def cmd_node(args: argparse.Namespace) -> int:
    from harness.run.nodecmd import run_node

    return asyncio.run(run_node(args.pairs, args.block_time, args.out))
