"""A scenario's part of results.json, and the live line shown while it runs (shared by every kind)."""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

from hdrh.histogram import HdrHistogram

from harness.run.collect import BOT_CONFLATED

if TYPE_CHECKING:
    from harness.run.scenarios import Scenario
    from harness.run.stack import Stack


@functools.lru_cache(maxsize=4)
def _p99_ms(encoded: str) -> float:
    # Callers ask every half second and a second closes once: decode (and read) each histogram once.
    return float(HdrHistogram.decode(encoded).get_value_at_percentile(99)) / 1000


def live_line(st: Stack) -> str:
    """What the bot reported for its last closed second: accepted, confirmed, ticks handled, trade p99, RSS, CPU
    (beside the progress bar of ``demo`` and ``profile``; ``run`` and ``soak`` show the dashboard instead)."""
    if not st.puller.intervals:
        return ""
    iv = st.puller.intervals[-1]
    c = iv.get("counters", {})
    parts = [f"tx/s {c.get('tx_accepted', 0):>4}", f"ok {c.get('trades_ok', 0):>4}"]
    conflated = c.get(BOT_CONFLATED, 0)
    ticks = c.get("ticks_handled", 0) + conflated
    if ticks:
        parts.append(f"ticks/s {ticks:>6} ({conflated / ticks:.0%} conflated)")
    enc = iv.get("histograms", {}).get("trade_execution")
    if enc:
        parts.append(f"trade p99 {_p99_ms(enc):.0f} ms")
    samples = st.sampler.series.samples
    if samples:
        parts.append(f"rss {samples[-1].rss_bytes / 2**20:.0f} MB cpu {samples[-1].cpu_percent:.0f}%")
    return "  ".join(parts)


def new_scenario_doc(scn: Scenario, t0_wall: float, duration: float) -> dict[str, Any]:
    return {"id": scn.id, "description": scn.description, "kind": scn.kind, "started_at": t0_wall,
            "duration_s": duration, "schedule": scn.schedule_dict(), "annotations": [], "intervals": [],
            "resources": [], "health": {"probes": 0, "ok": 0}, "summary": {}}


def resources_between(st: Stack, since_mono: float, until_mono: float) -> list[dict[str, Any]]:
    """The bot's resource samples in [since, until] (monotonic), timed from ``since``."""
    origin = st.sampler.series.origin
    out = []
    for s in st.sampler.series.samples:
        t_abs = origin + s.t
        if since_mono <= t_abs <= until_mono:
            d = s.as_dict()
            d["t"] = round(t_abs - since_mono, 3)
            out.append(d)
    return out


def step_window(start: float, end: float) -> tuple[int, int]:
    """The whole 1-s buckets inside [start, end): partial buckets at the edges would dilute a rate."""
    lo, hi = math.ceil(start), math.floor(end)
    return (lo, hi) if hi > lo else (math.floor(start), math.ceil(end))
