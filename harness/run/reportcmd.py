"""``harness report``: re-render a run (partial ones too), the history page, or a comparison."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import HarnessError


def _run_dir(p: Path) -> Path:
    d = p.parent if p.name == "results.json" else p
    if not (d / "results.json").is_file():
        raise HarnessError(f"{p}: no results.json there; give a run folder such as reports/<run-id>")
    return d


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import render_from_results, write_comparison, write_history

    if args.compare:
        base, head = (_run_dir(p) for p in args.compare)
        out = args.out / f"compare-{base.name}-{head.name}"
        page = write_comparison(base, head, out, noise=args.noise)
        summary = page.parent / "summary.txt"
        if summary.is_file():  # the verdicts first, a "machine differs" warning among them
            print(summary.read_text().rstrip())
        print(f"comparison: {page}")
        return 0
    if args.run is not None:
        run_dir = _run_dir(args.run)
        from harness.run.rejudge import rejudge_killed

        # A run whose harness was killed mid-scenario: rebuilt from checkpoint.jsonl and judged first.
        outcome = rejudge_killed(run_dir)
        if outcome.message:
            print(f"{'re-judged' if outcome.status == 'rejudged' else 'note'}: {outcome.message}")
        page = render_from_results(run_dir)
        print(f"report: {page}")
        write_history(args.out)
        return 0
    if args.history:
        print(f"history: {write_history(args.out)}")
        return 0
    raise HarnessError("say what to render: a run folder, --compare BASE HEAD, or --history")
