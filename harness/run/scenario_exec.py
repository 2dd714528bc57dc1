"""Running one scenario against the running stack, and shaping its part of results.json.

Trades and market data are paced by the feed (open loop: it never waits for the bot); the HTTP
API is loaded by Locust in its own process. Every tick carries its scenario's tag (a stress step
its own), and a scenario is judged on what its own ticks caused: an earlier scenario's backlog
completing inside this one is reported as ``summary.carry_over``, never judged. While a scenario
runs, the live line shows what the bot reports each second, and results are flushed every few
seconds so a killed run keeps them.
"""

from __future__ import annotations

import time
from typing import Any

from harness.probes.machine import clock_ticks_per_s, own_cpu_seconds, read_cpu_times
from harness.results.capacity import MarketStep
from harness.results.writer import ResultsWriter
from harness.run import feedrun
from harness.run.bisection import StressSearch
from harness.run.checkpointing import BACKLOG_KEY, finish_heap
from harness.run.collect import carry_over, merge_intervals, tag_filter, totals
from harness.run.drift import drift
from harness.run.drive import drive, wait_drained, wait_handled, wait_telemetry
from harness.run.feedrun import FeedRun
from harness.run.figures import cpu_per_trade
from harness.run.progress import Ui
from harness.run.scenario_doc import new_scenario_doc, resources_between, step_window
from harness.run.scenarios import Scenario
from harness.run.stack import Stack
from harness.run.stress import StepOutcome, judge_step
from harness.run.stress_exec import MarketPlan, Ran, TradePlan, market_capacity, run_search, trade_steps
from harness.slo.spec import latency_limits_ms, load_spec
from harness.stats.saturation import in_flight_cap, judge_saturation

__all__ = ["run_scenario", "step_window"]

# Room for the ramp, a bisection to 10% (3-4 steps from a doubling) and a re-run or two.
EXTRA_STEPS = 6


def _latency_limits(st: Stack) -> dict[str, dict[str, float]]:
    return latency_limits_ms(load_spec(st.slo))


async def run_scenario(scn: Scenario, st: Stack, ui: Ui, writer: ResultsWriter) -> dict[str, Any]:
    if scn.kind == "api":
        from harness.run.apiload import run_api_scenario

        return dict(await run_api_scenario(scn, st, ui, writer))
    t0_wall, t0_mono = time.time(), time.monotonic()
    cpu0, own0 = read_cpu_times(), own_cpu_seconds()
    doc = new_scenario_doc(scn, t0_wall, scn.duration_s)
    st.prober.reset()
    own = tag_filter(scn.id)
    steps_out: list[dict[str, Any]] = []
    search: dict[str, Any] = {}
    market: tuple[StressSearch[MarketStep], list[Ran[MarketStep]]] | None = None
    ladder, max_steps = [s.rate for s in scn.steps], len(scn.steps) + EXTRA_STEPS
    runs: list[FeedRun]
    if scn.stop_on_break and scn.kind == "market_data":
        msearch = StressSearch[MarketStep](ladder, max_steps=max_steps)
        mran = await run_search(st, ui, writer, scn, doc, t0_wall, MarketPlan(st, t0_wall, scn.drain_s), msearch)
        market, runs = (msearch, mran), [r.step.feed for r in mran]
    elif scn.stop_on_break:
        tsearch = StressSearch[StepOutcome](ladder, max_steps=max_steps, resolution=scn.resolution)
        tran = await run_search(st, ui, writer, scn, doc, t0_wall, TradePlan(st, t0_wall, _latency_limits(st)),
                                tsearch)
        steps_out, search, runs = trade_steps(tran), tsearch.summary(), [r.step.feed for r in tran]
    if scn.stop_on_break:
        feed_intervals = doc.pop("x_feed_intervals")
        doc["duration_s"] = time.time() - t0_wall
    else:
        fr = await drive(st, ui, writer, scn, doc, list(scn.steps), scn.kind == "trades", t0_wall, scn.id, scn.id)
        runs, feed_intervals = [fr], fr.intervals
    backlog = doc.pop(BACKLOG_KEY, [])
    await wait_drained(st, scn.drain_s)
    await wait_telemetry(st, time.time())
    handled_wait = None
    if scn.kind == "market_data":
        ws_sent = int(totals(feed_intervals).get("ws_sent", 0))
        handled_wait = await wait_handled(st, t0_wall, own, ws_sent, scn.drain_s)
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
    cpu1, own1 = read_cpu_times(), own_cpu_seconds()
    if cpu0 is not None and cpu1 is not None:
        own_ticks = None if own0 is None or own1 is None else (own1 - own0) * clock_ticks_per_s()
        doc["summary"]["machine"] = cpu1.since(cpu0, own_ticks)
    await finish_heap(st, writer.journal, scn, doc, t0_wall)  # heap levels and growth sites (checkpointing)
    if scn.kind == "trades" and not steps_out:
        # Whether the latency rows held during this scenario (point estimates): the judge counts a
        # scenario's in-flight peak toward concurrent_operations only where they did.
        whole = judge_step(scn.total / max(scn.duration_s, 1e-9), 0.0, doc["duration_s"], doc["intervals"],
                           _latency_limits(st), warmup_s=0.0)
        doc["summary"]["latency_ok"] = whole.latency_ok
        doc["summary"]["drift"] = drift(doc["intervals"], scn.duration_s)
        doc["summary"]["cpu_per_trade"] = cpu_per_trade(doc["intervals"], doc["resources"], 0.0, scn.duration_s)
        if doc["schedule"].get("kind") == "constant":
            # Whether the bot kept up: with a growing backlog, memory grows with it (memory_leak says so).
            doc["summary"]["saturation"] = judge_saturation(
                backlog, rate=scn.total / max(scn.duration_s, 1e-9), duration_s=scn.duration_s,
                in_flight_cap=in_flight_cap(st.bot_settings)).to_json()
    if steps_out:
        for step in steps_out:
            # Over the step's judged window (its warm-up already cut): CPU per trade at each rate.
            step["cpu_per_trade"] = cpu_per_trade(doc["intervals"], doc["resources"], step["start"], step["end"],
                                                  warmup_s=0.0)
        doc["summary"]["steps"] = steps_out
        doc["summary"]["search"] = search
        doc["summary"]["breaking_point"] = search.get("breaking_point")
        doc["summary"]["first_broken"] = search.get("broken_by")
    if market is not None:
        capacity = market_capacity(*market, doc["resources"])
        doc["summary"]["capacity"] = capacity.to_json()
        doc["summary"]["dropped"] = sum(s.dropped for s in capacity.steps)
        # Behind by the search's own rule (harness.run.wsstress): the feed's 1-ms lag policy flags
        # every step at these rates on two shared cores, though it hands off every tick on time.
        doc["summary"]["generator_behind"] = any(s.generator_bound for s in capacity.steps)
    return doc
