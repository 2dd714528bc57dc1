"""Driving the feed through a scenario's steps, and the bounded waits around it (async, shared by every kind).

``drive`` runs a schedule through the feed with a progress bar and appends a checkpoint every few
seconds (``checkpoint.jsonl``: harness.run.checkpointing); the waits end when the bot's telemetry
shows what the harness needs before it collects (the last second closed, trades drained, every tick
sent counted), each bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from harness.load.schedules import schedule_from_spec
from harness.results.writer import ResultsWriter
from harness.run import feedrun
from harness.run.checkpointing import BACKLOG_KEY, append_checkpoint, begin
from harness.run.collect import BOT_HANDLED, TagFilter, own_tagged
from harness.run.feedrun import FeedRun
from harness.run.progress import Ui
from harness.run.scenario_doc import live_line
from harness.run.scenarios import Scenario, Step
from harness.run.stack import Stack

FLUSH_EVERY_S = 5.0


async def wait_telemetry(st: Stack, until_wall: float, timeout_s: float = 5.0) -> None:
    """Until the bot's closed intervals reach ``until_wall`` (bounded): the step's last second is in."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ivs = st.puller.intervals
        if ivs and float(ivs[-1]["end"]) >= until_wall:
            return
        await asyncio.sleep(0.1)


async def wait_drained(st: Stack, seconds: float) -> None:
    """Let this scenario's trades reach their receipts, up to ``seconds`` (ends once nothing is in
    flight or queued, on telemetry pulled after this call began)."""
    start = time.monotonic()
    deadline = start + seconds
    while time.monotonic() < deadline:
        g = st.puller.gauges
        if st.puller.pulled_at > start + 0.5 and int(g.get("in_flight", 1)) == 0 and int(g.get("queue_depth", 1)) == 0:
            break
        await asyncio.sleep(0.25)


def counted_since(st: Stack, t0_wall: float, own: TagFilter, names: tuple[str, ...] = BOT_HANDLED) -> int:
    """What the bot counted under ``names`` for ``own``'s tags since ``t0_wall`` (by default the market
    ticks it handled: looked at or conflated)."""
    # Tag slices only, as merge_intervals counts them for an interval that straddles the start.
    return sum(int(own_tagged(iv, own)[1].get(k, 0)) for iv in st.puller.intervals if float(iv["end"]) > t0_wall
               for k in names)


async def wait_handled(st: Stack, t0_wall: float, own: TagFilter, sent: int, seconds: float) -> float:
    """Until the bot has handled as many of this scenario's ticks as the feed sent (bounded); returns
    the seconds waited. Ticks the feed wrote can sit in socket buffers after the schedule ends,
    and the bot counts them only when it reads them; collecting earlier would judge them dropped."""
    start = time.monotonic()
    deadline = start + seconds
    while time.monotonic() < deadline:
        if counted_since(st, t0_wall, own) >= sent:
            break
        await asyncio.sleep(0.1)
    return time.monotonic() - start


def checkpoint(st: Stack, writer: ResultsWriter, scn: Scenario, doc: dict[str, Any], t0_wall: float) -> None:
    """Append what the scenario measured since the last checkpoint to checkpoint.jsonl, so a killed run
    keeps it (harness.run.checkpointing: the cost does not grow with the scenario's age)."""
    append_checkpoint(st, writer.journal, scn, doc, t0_wall)


def sample_backlog(st: Stack, doc: dict[str, Any], t0_wall: float, last_pull: float) -> float:
    """Add the bot's in-flight and queued counts to ``doc``'s backlog series when a newer pull has them
    (the saturation rule reads it, harness.stats.saturation); returns the pull time seen."""
    pulled = st.puller.pulled_at
    if pulled > last_pull:
        g = st.puller.gauges
        doc.setdefault(BACKLOG_KEY, []).append(
            [round(time.time() - t0_wall, 2), float(g.get("in_flight", 0)), float(g.get("queue_depth", 0))])
    return pulled


async def drive(st: Stack, ui: Ui, writer: ResultsWriter, scn: Scenario, doc: dict[str, Any], steps: list[Step],
                trade: bool, t0_wall: float, label: str, tag: str, *, checkpoints: bool = True) -> FeedRun:
    """Run ``steps`` through the feed with a progress bar; returns the feed's per-second counters.

    ``checkpoints=False`` writes nothing while the feed runs: at tens of thousands of ticks per second even
    an append's few ms on the loop the feed shares would show in the feed's lag."""
    spec = ({"kind": "burst", "count": int(steps[0].rate * steps[0].seconds), "within": steps[0].seconds}
            if scn.id == "burst" else
            {"kind": "constant", "rate": steps[0].rate, "duration": steps[0].seconds} if len(steps) == 1 else
            {"kind": "steps", "steps": [[s.rate, s.seconds] for s in steps]})
    schedule = schedule_from_spec(spec)
    total = sum(s.seconds for s in steps)
    task = ui.task(label, total)
    run = asyncio.create_task(feedrun.run(st.feed, schedule, trade=trade, tag=tag))
    start = time.monotonic()
    last_flush = start
    last_pull = st.puller.pulled_at
    begin(writer.journal, scn, doc, t0_wall)  # the scenario's header, before anything can kill the run
    try:
        while not run.done():
            await asyncio.wait({run}, timeout=0.5)
            ui.update(task, min(total, time.monotonic() - start), live_line(st))
            last_pull = sample_backlog(st, doc, t0_wall, last_pull)
            if checkpoints and time.monotonic() - last_flush > FLUSH_EVERY_S:
                checkpoint(st, writer, scn, doc, t0_wall)
                last_flush = time.monotonic()
    except asyncio.CancelledError:
        with contextlib.suppress(OSError):  # the cancellation must go on even if the disk refuses
            checkpoint(st, writer, scn, doc, t0_wall)  # Ctrl-C / SIGTERM: what came since the last one
        raise
    ui.update(task, total, live_line(st))
    return run.result()
