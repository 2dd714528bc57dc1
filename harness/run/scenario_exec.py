"""Running one scenario against the running stack, and shaping its part of results.json.

Trades and market data are paced by the feed (open loop: it never waits for the bot); the HTTP
API is loaded by Locust in its own process. While a scenario runs, the live line shows what the
bot reports each second, and results are flushed every few seconds so a killed run keeps them.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from hdrh.histogram import HdrHistogram

from harness.load.schedules import schedule_from_spec
from harness.run import feedrun
from harness.run.collect import merge_intervals, totals
from harness.run.progress import Ui
from harness.run.results import ResultsWriter
from harness.run.runner import Stack
from harness.run.scenarios import Scenario, Step
from harness.run.stress import judge_step

FLUSH_EVERY_S = 5.0


def _live(st: Stack) -> str:
    if not st.puller.intervals:
        return ""
    iv = st.puller.intervals[-1]
    c = iv.get("counters", {})
    parts = [f"tx/s {c.get('tx_accepted', 0):>4}", f"ok {c.get('trades_ok', 0):>4}"]
    enc = iv.get("histograms", {}).get("trade_execution")
    if enc:
        h = HdrHistogram.decode(enc)
        parts.append(f"trade p99 {h.get_value_at_percentile(99) / 1000:.0f} ms")
    samples = st.sampler.series.samples
    if samples:
        parts.append(f"rss {samples[-1].rss_bytes / 2**20:.0f} MB cpu {samples[-1].cpu_percent:.0f}%")
    return "  ".join(parts)


def _scenario_doc(scn: Scenario, t0_wall: float, duration: float) -> dict[str, Any]:
    return {"id": scn.id, "description": scn.description, "kind": scn.kind, "started_at": t0_wall,
            "duration_s": duration, "schedule": scn.schedule_dict(), "annotations": [], "intervals": [],
            "resources": [], "health": {"probes": 0, "ok": 0}, "summary": {}}


def _resources(st: Stack, since_mono: float, until_mono: float) -> list[dict[str, Any]]:
    origin = st.sampler.series.origin
    out = []
    for s in st.sampler.series.samples:
        t_abs = origin + s.t
        if since_mono <= t_abs <= until_mono:
            d = s.as_dict()
            d["t"] = round(t_abs - since_mono, 3)
            out.append(d)
    return out


async def _wait_drained(st: Stack, ui: Ui, seconds: float) -> None:
    """Let in-flight trades reach their receipts, up to ``seconds`` (ends early when nothing is in flight)."""
    deadline = time.monotonic() + seconds
    await asyncio.sleep(min(1.5, seconds))  # at least one full telemetry interval
    while time.monotonic() < deadline:
        if int(st.puller.gauges.get("in_flight", 1)) == 0:
            break
        await asyncio.sleep(0.25)


async def _drive(st: Stack, ui: Ui, writer: ResultsWriter, scn: Scenario, doc: dict[str, Any], steps: list[Step],
                 trade: bool, t0_wall: float, label: str) -> list[dict[str, Any]]:
    """Run ``steps`` through the feed with a progress bar; returns the feed's per-second counters."""
    spec = ({"kind": "burst", "count": int(steps[0].rate * steps[0].seconds), "within": steps[0].seconds}
            if scn.id == "burst" else
            {"kind": "constant", "rate": steps[0].rate, "duration": steps[0].seconds} if len(steps) == 1 else
            {"kind": "steps", "steps": [[s.rate, s.seconds] for s in steps]})
    schedule = schedule_from_spec(spec)
    total = sum(s.seconds for s in steps)
    task = ui.task(label, total)
    run = asyncio.create_task(feedrun.run(st.feed, schedule, trade=trade))
    start = time.monotonic()
    last_flush = start
    while not run.done():
        await asyncio.wait({run}, timeout=0.5)
        ui.update(task, min(total, time.monotonic() - start), _live(st))
        if time.monotonic() - last_flush > FLUSH_EVERY_S:
            doc["intervals"] = merge_intervals(t0_wall, st.puller.intervals)
            writer.upsert_scenario(doc)
            last_flush = time.monotonic()
    ui.update(task, total, _live(st))
    return run.result()


def step_window(start: float, end: float) -> tuple[int, int]:
    """The whole 1-s buckets inside [start, end): partial buckets at the edges would dilute a rate."""
    lo, hi = math.ceil(start), math.floor(end)
    return (lo, hi) if hi > lo else (math.floor(start), math.ceil(end))


async def run_scenario(scn: Scenario, st: Stack, ui: Ui, writer: ResultsWriter) -> dict[str, Any]:
    if scn.kind == "api":
        from harness.run.apiload import run_api_scenario

        return dict(await run_api_scenario(scn, st, ui, writer))
    t0_wall, t0_mono = time.time(), time.monotonic()
    doc = _scenario_doc(scn, t0_wall, scn.duration_s)
    st.prober.reset()
    feed_intervals: list[dict[str, Any]] = []
    steps_out: list[dict[str, Any]] = []
    if scn.stop_on_break:
        from harness.run.verdicts import latency_limits

        limits = latency_limits(st.slo)
        for i, step in enumerate(scn.steps):
            # Step boundaries are taken from the clock, not added up: judging a step on a window
            # that drifted into the pause between steps would read as "could not keep up".
            step_start = time.time() - t0_wall
            doc["annotations"].append({"t": round(step_start, 2), "label": f"step {i + 1}: {step.rate:g}/s"})
            step_feed = await _drive(st, ui, writer, scn, doc, [step], True, t0_wall,
                                     f"{scn.id} {step.rate:g}/s")
            step_end = time.time() - t0_wall
            feed_intervals += [{**fv, "start": fv["start"] + step_start, "end": fv["end"] + step_start}
                               for fv in step_feed]
            await asyncio.sleep(1.2)  # the step's last telemetry interval closes
            ivs = merge_intervals(t0_wall, st.puller.intervals, feed_intervals)
            lo, hi = step_window(step_start, step_end)
            outcome = judge_step(step.rate, lo, hi, [iv for iv in ivs if lo <= iv["start"] < hi], limits)
            steps_out.append(outcome.as_dict())
            if outcome.broken:
                doc["annotations"].append({"t": round(step_end, 2), "label": f"breaking point: {step.rate:g}/s "
                                                                             f"({outcome.broken})"})
                ui.log(f"stress: {step.rate:g}/s broke {outcome.broken}")
                break
        doc["duration_s"] = time.time() - t0_wall
    else:
        feed_intervals = await _drive(st, ui, writer, scn, doc, list(scn.steps), scn.kind == "trades", t0_wall,
                                      scn.id)
    await _wait_drained(st, ui, scn.drain_s)
    end_mono = time.monotonic()
    doc["intervals"] = merge_intervals(t0_wall, st.puller.intervals, feed_intervals, duration_s=doc["duration_s"])
    doc["resources"] = _resources(st, t0_mono, end_mono)
    doc["health"] = st.prober.statistics().as_dict()
    tot = totals(doc["intervals"])
    sent = tot.get("sent", tot.get("ws_sent", 0))
    doc["summary"] = {
        "target_rate": scn.total / scn.duration_s if scn.duration_s else None,
        "achieved_rate": sent / doc["duration_s"] if doc["duration_s"] else None,
        "dropped": tot.get("dropped", 0),
        "totals": tot,
        "drain_s": round(end_mono - t0_mono - doc["duration_s"], 2),
    }
    if scn.kind == "trades" and not steps_out:
        # Whether the latency rows held during this scenario (point estimates): the judge counts a
        # scenario's in-flight peak toward concurrent_operations only where they did.
        from harness.run.verdicts import latency_limits

        whole = judge_step(scn.total / max(scn.duration_s, 1e-9), 0.0, doc["duration_s"], doc["intervals"],
                           latency_limits(st.slo))
        doc["summary"]["latency_ok"] = whole.latency_ok
    if steps_out:
        doc["summary"]["steps"] = steps_out
        broken = [s for s in steps_out if s["broken"]]
        doc["summary"]["breaking_point"] = broken[0]["rate"] if broken else None
        doc["summary"]["first_broken"] = broken[0]["broken"] if broken else None
    return doc
