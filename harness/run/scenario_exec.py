"""Running one scenario against the running stack, and shaping its part of results.json.

Trades and market data are paced by the feed (open loop: it never waits for the bot); the HTTP
API is loaded by Locust in its own process. Every tick carries its scenario's tag (a stress step
its own), and a scenario is judged on what its own ticks caused: an earlier scenario's backlog
completing inside this one is reported as ``summary.carry_over``, never judged. While a scenario
runs, the live line shows what the bot reports each second, and results are flushed every few
seconds so a killed run keeps them.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from harness.load.schedules import schedule_from_spec
from harness.probes.machine import read_cpu_times
from harness.results.writer import ResultsWriter
from harness.run import feedrun
from harness.run.collect import TagFilter, carry_over, merge_intervals, own_tagged, tag_filter, totals
from harness.run.drift import drift
from harness.run.feedrun import FeedRun
from harness.run.figures import cpu_per_trade
from harness.run.progress import Ui
from harness.run.scenario_doc import live_line, new_scenario_doc, resources_between, step_window
from harness.run.scenarios import Scenario, Step
from harness.run.settle import settle
from harness.run.stack import Stack
from harness.run.stress import MIN_SAMPLES, StressSearch, judge_step
from harness.slo.spec import latency_limits_ms, load_spec

__all__ = ["run_scenario", "step_window"]

FLUSH_EVERY_S = 5.0
STRESS_WARMUP_S = 2.0  # each step's first seconds: the bot and node adjust to the new rate
STEP_SETTLE_S = 30.0  # a broken step's backlog must clear before the next (lower) rate is judged


def _latency_limits(st: Stack) -> dict[str, dict[str, float]]:
    return latency_limits_ms(load_spec(st.slo))


async def _wait_telemetry(st: Stack, until_wall: float, timeout_s: float = 5.0) -> None:
    """Until the bot's closed intervals reach ``until_wall`` (bounded): the step's last second is in."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ivs = st.puller.intervals
        if ivs and float(ivs[-1]["end"]) >= until_wall:
            return
        await asyncio.sleep(0.1)


async def _wait_drained(st: Stack, seconds: float) -> None:
    """Let this scenario's trades reach their receipts, up to ``seconds`` (ends once nothing is in
    flight or queued, on telemetry pulled after this call began)."""
    start = time.monotonic()
    deadline = start + seconds
    while time.monotonic() < deadline:
        g = st.puller.gauges
        if st.puller.pulled_at > start + 0.5 and int(g.get("in_flight", 1)) == 0 and int(g.get("queue_depth", 1)) == 0:
            break
        await asyncio.sleep(0.25)


async def _wait_handled(st: Stack, t0_wall: float, own: TagFilter, sent: int, seconds: float) -> float:
    """Until the bot has handled as many of this scenario's ticks as the feed sent (bounded); returns
    the seconds waited. Ticks the feed wrote can sit in socket buffers after the schedule ends,
    and the bot counts them only when it reads them; collecting earlier would judge them dropped."""
    start = time.monotonic()
    deadline = start + seconds
    while time.monotonic() < deadline:
        # Tag slices only, as merge_intervals counts them for an interval that straddles the start.
        handled = sum(own_tagged(iv, own)[1].get("ticks_handled", 0)
                      for iv in st.puller.intervals if float(iv["end"]) > t0_wall)
        if handled >= sent:
            break
        await asyncio.sleep(0.1)
    return time.monotonic() - start


async def _drive(st: Stack, ui: Ui, writer: ResultsWriter, scn: Scenario, doc: dict[str, Any], steps: list[Step],
                 trade: bool, t0_wall: float, label: str, tag: str) -> FeedRun:
    """Run ``steps`` through the feed with a progress bar; returns the feed's per-second counters."""
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
    own = tag_filter(scn.id)
    while not run.done():
        await asyncio.wait({run}, timeout=0.5)
        ui.update(task, min(total, time.monotonic() - start), live_line(st))
        if time.monotonic() - last_flush > FLUSH_EVERY_S:
            doc["intervals"] = merge_intervals(t0_wall, st.puller.intervals, own=own)
            writer.upsert_scenario(doc)
            last_flush = time.monotonic()
    ui.update(task, total, live_line(st))
    return run.result()


async def _stress(st: Stack, ui: Ui, writer: ResultsWriter, scn: Scenario, doc: dict[str, Any],
                  t0_wall: float) -> tuple[list[dict[str, Any]], list[FeedRun], dict[str, Any]]:
    """Ramp the ladder until a step breaks, then bisect to the breaking point (``StressSearch``)."""
    limits = _latency_limits(st)
    # Room for the ramp, a bisection to 10% (3-4 steps from a doubling) and a re-run or two.
    search = StressSearch([s.rate for s in scn.steps], max_steps=len(scn.steps) + 6)
    base_seconds = scn.steps[0].seconds
    feed_intervals: list[dict[str, Any]] = []
    runs: list[FeedRun] = []
    steps_out: list[dict[str, Any]] = []
    while (rate := search.next_rate()) is not None:
        n = len(steps_out) + 1
        tag = f"{scn.id}/{n}"
        # Long enough that the judged window can hold MIN_SAMPLES at this rate: a low rate in a
        # short step would only ever come back undecided.
        seconds = math.ceil(max(base_seconds, STRESS_WARMUP_S + 1.25 * MIN_SAMPLES / rate) * search.next_seconds_factor)
        # Step boundaries are taken from the clock, not added up: judging a step on a window
        # that drifted into the pause between steps would read as "could not keep up".
        step_start = time.time() - t0_wall
        doc["annotations"].append({"t": round(step_start, 2), "label": f"step {n}: {rate:g}/s"})
        fr = await _drive(st, ui, writer, scn, doc, [Step(rate, seconds)], True, t0_wall,
                          f"{scn.id} {rate:g}/s ({search.phase})", tag)
        step_end = time.time() - t0_wall
        runs.append(fr)
        feed_intervals += [{**fv, "start": fv["start"] + step_start, "end": fv["end"] + step_start}
                           for fv in fr.intervals]
        await _wait_telemetry(st, t0_wall + step_end + 1.0)
        ivs = merge_intervals(t0_wall, st.puller.intervals, feed_intervals, own=tag_filter(tag))
        lo, hi = step_window(step_start, step_end)
        outcome = judge_step(rate, lo, hi, [iv for iv in ivs if lo <= iv["start"] < hi], limits,
                             warmup_s=STRESS_WARMUP_S)
        search.record(outcome)
        steps_out.append({**outcome.as_dict(), "tag": tag, "phase_after": search.phase})
        verdict = "undecided" if outcome.undecided else (f"broke {outcome.broken}" if outcome.broken else "held")
        ui.log(f"stress: {rate:g}/s {verdict} ({outcome.achieved:.0f} tx/s accepted, {outcome.samples} samples)")
        if search.next_rate() is not None:
            pause = await settle(st, timeout_s=STEP_SETTLE_S)
            steps_out[-1]["settle_s"] = round(pause.settle_s, 2)
    result = search.summary()
    if search.breaking_point is not None:
        doc["annotations"].append({"t": round(time.time() - t0_wall, 2),
                                   "label": f"breaking point: {search.breaking_point:g}/s ({result.get('broken_by')})"})
    doc["x_feed_intervals"] = feed_intervals
    return steps_out, runs, result


async def run_scenario(scn: Scenario, st: Stack, ui: Ui, writer: ResultsWriter) -> dict[str, Any]:
    if scn.kind == "api":
        from harness.run.apiload import run_api_scenario

        return dict(await run_api_scenario(scn, st, ui, writer))
    t0_wall, t0_mono = time.time(), time.monotonic()
    cpu0 = read_cpu_times()
    doc = new_scenario_doc(scn, t0_wall, scn.duration_s)
    st.prober.reset()
    own = tag_filter(scn.id)
    steps_out: list[dict[str, Any]] = []
    search: dict[str, Any] = {}
    if scn.stop_on_break:
        steps_out, runs, search = await _stress(st, ui, writer, scn, doc, t0_wall)
        feed_intervals = doc.pop("x_feed_intervals")
        doc["duration_s"] = time.time() - t0_wall
    else:
        fr = await _drive(st, ui, writer, scn, doc, list(scn.steps), scn.kind == "trades", t0_wall, scn.id, scn.id)
        runs, feed_intervals = [fr], fr.intervals
    await _wait_drained(st, scn.drain_s)
    await _wait_telemetry(st, time.time())
    handled_wait = None
    if scn.kind == "market_data":
        ws_sent = int(totals(feed_intervals).get("ws_sent", 0))
        handled_wait = await _wait_handled(st, t0_wall, own, ws_sent, scn.drain_s)
    end_mono = time.monotonic()
    window = time.time() - t0_wall
    doc["intervals"] = merge_intervals(t0_wall, st.puller.intervals, feed_intervals, duration_s=doc["duration_s"],
                                       own=own)
    doc["resources"] = resources_between(st, t0_mono, end_mono)
    doc["health"] = st.prober.statistics().as_dict()
    tot = totals(doc["intervals"])
    sent = tot.get("sent", tot.get("ws_sent", 0))
    doc["summary"] = {
        "target_rate": scn.total / scn.duration_s if scn.duration_s else None,
        "achieved_rate": sent / doc["duration_s"] if doc["duration_s"] else None,
        "dropped": tot.get("dropped", 0),
        "totals": tot,
        "drain_s": round(end_mono - t0_mono - doc["duration_s"], 2),
        "tag": scn.id,
        "carry_over": carry_over(t0_wall, window, st.puller.intervals, own),
        **({"handled_wait_s": round(handled_wait, 2)} if handled_wait is not None else {}),
        **feedrun.combine(runs),
    }
    cpu1 = read_cpu_times()
    if cpu0 is not None and cpu1 is not None:
        doc["summary"]["machine"] = cpu1.since(cpu0)
    if scn.kind == "trades" and not steps_out:
        # Whether the latency rows held during this scenario (point estimates): the judge counts a
        # scenario's in-flight peak toward concurrent_operations only where they did.
        whole = judge_step(scn.total / max(scn.duration_s, 1e-9), 0.0, doc["duration_s"], doc["intervals"],
                           _latency_limits(st), warmup_s=0.0)
        doc["summary"]["latency_ok"] = whole.latency_ok
        doc["summary"]["drift"] = drift(doc["intervals"], scn.duration_s)
        doc["summary"]["cpu_per_trade"] = cpu_per_trade(doc["intervals"], doc["resources"], 0.0, scn.duration_s)
    if steps_out:
        for step in steps_out:
            # Over the step's judged window (its warm-up already cut): CPU per trade at each rate.
            step["cpu_per_trade"] = cpu_per_trade(doc["intervals"], doc["resources"], step["start"], step["end"],
                                                  warmup_s=0.0)
        doc["summary"]["steps"] = steps_out
        doc["summary"]["search"] = search
        doc["summary"]["breaking_point"] = search.get("breaking_point")
        doc["summary"]["first_broken"] = search.get("broken_by")
    return doc
