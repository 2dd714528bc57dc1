"""``harness demo``: see the bot trade. Starts anvil, deploys the pairs, starts the bot as its own
process and drives it through the feed for a while, then prints the bot's own summary: swaps
confirmed, errors by kind and latency per operation."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from harness.errors import HarnessError
from harness.load.schedules import schedule_from_spec
from harness.results.writer import new_run_id
from harness.run.options import RunOptions
from harness.run.progress import Ui
from harness.run.stack import stack


async def demo(opts: RunOptions, seconds: float, rate: float) -> Path:
    run_dir = opts.out / f"demo-{new_run_id()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    ui = Ui(enabled=opts.progress)
    with ui:
        async with stack(opts, run_dir, ui) as st:
            await st.feed.wait_for_client(10)
            task = ui.task(f"trading {rate:g}/s over {len(st.deployment['pairs'])} pairs", seconds)
            from harness.run.scenario_doc import live_line as _live

            run = asyncio.create_task(st.feed.run(trades=schedule_from_spec(
                {"kind": "constant", "rate": rate, "duration": seconds})))
            start = time.monotonic()
            while not run.done():
                await asyncio.wait({run}, timeout=0.5)
                ui.update(task, min(seconds, time.monotonic() - start), _live(st))
            await asyncio.sleep(2)  # the last swaps reach their receipts
    text = (run_dir / "bot.log").read_text(errors="replace")
    summary = text[text.rfind("bot ran"):] if "bot ran" in text else "(the bot printed no summary; see its log)"
    print(summary.rstrip())
    return run_dir


def cmd_demo(args: argparse.Namespace) -> int:
    if args.seconds <= 0 or args.rate <= 0:
        raise HarnessError("--seconds and --rate must be positive")
    opts = RunOptions(pairs=args.pairs, out=args.out, block_time=args.block_time, progress=not args.no_progress)
    run_dir = asyncio.run(demo(opts, args.seconds, args.rate))
    print(f"logs and deployment: {run_dir}")
    return 0
