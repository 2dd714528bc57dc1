"""``harness profile``: a py-spy flame graph of the bot process under steady load.

py-spy attaches to the running bot by PID (so the profile ends without killing the bot) while
the feed drives trades at a constant rate; the SVG (or speedscope JSON) lands in the run folder.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from harness.errors import HarnessError
from harness.load.schedules import schedule_from_spec
from harness.probes.profilers import start_pyspy
from harness.results.writer import new_run_id
from harness.run.options import RunOptions
from harness.run.progress import Ui
from harness.run.stack import stack


async def _profile(opts: RunOptions, seconds: int, rate: float, fmt: str) -> Path:
    run_dir = opts.out / f"profile-{new_run_id()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    out = run_dir / {"flamegraph": "bot-flamegraph.svg", "speedscope": "bot-profile.speedscope.json",
                     "raw": "bot-profile.folded.txt"}[fmt]
    ui = Ui(enabled=opts.progress)
    with ui:
        async with stack(opts, run_dir, ui) as st:
            await st.feed.wait_for_client(10)
            warm = 3.0  # let connections and caches warm up before sampling
            run = asyncio.create_task(st.feed.run(trades=schedule_from_spec(
                {"kind": "constant", "rate": rate, "duration": seconds + warm + 1})))
            await asyncio.sleep(warm)
            spy = start_pyspy(st.bot.pid, out, seconds, fmt=fmt)
            task = ui.task(f"py-spy on pid {st.bot.pid} at {rate:g} trades/s", seconds)
            start = time.monotonic()
            while spy.poll() is None and time.monotonic() - start < seconds + 30:
                await asyncio.sleep(0.5)
                ui.update(task, min(seconds, time.monotonic() - start))
            await run
    if not out.exists():
        raise HarnessError(f"py-spy wrote no profile; see {out}.log")
    return out


def run_profile(opts: RunOptions, seconds: int, rate: float, fmt: str) -> int:
    if seconds <= 0 or rate <= 0:
        raise HarnessError("--seconds and --rate must be positive")
    out = asyncio.run(_profile(opts, seconds, rate, fmt))
    if fmt == "raw":
        from harness.probes.folded import parse_folded, summarize

        total, shares = summarize(parse_folded(out.read_text(encoding="utf-8")), top=25)
        print(f"{total:,} samples; inclusive / self share of the bot's samples:")
        for f in shares:
            print(f"  {f.inclusive * 100:5.1f}%  {f.self_ * 100:5.1f}%  {f.name}")
    print(f"profile: {out}")
    return 0
