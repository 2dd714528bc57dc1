"""Figures that travel between machines better than raw rates (pure): the bot's CPU per trade.

``cpu_per_trade`` divides the bot's CPU (its process tree, as the resource sampler read it from
/proc: the same utime + stime counters ``getrusage`` reports) by the trades it completed, second
by second over a window, and gives the ratio of sums with a batch-means CI. A machine twice as
slow doubles the figure, so it is quoted beside the run's CPU reference; its ratio to that
reference (reference-loop iterations per trade, shown on the page) moves far less.

A trade's CPU lands slightly before its completion (receipts arrive tens of ms after the send),
which is negligible over a window of tens of seconds; the window starts after a warm-up so the
first second's connection setup and JIT-free Python warm-up do not count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from harness.stats.intervals import per_unit_ci

WARMUP_S = 2.0
MIN_WINDOW_S = 4  # fewer whole seconds than this give no useful batch-means interval
COMPLETED = ("ok",)  # trades that reached a receipt; reverted and failed trades are too few to move it


def cpu_seconds_per_second(resources: Sequence[Mapping[str, Any]], seconds: int) -> list[float]:
    """CPU seconds the bot spent in each whole second [k, k+1) of the scenario.

    Each sample holds the CPU % over the time since the previous one; its CPU is spread over that
    span and cut at second boundaries. The first sample has no previous one and only closes a span.
    """
    out = [0.0] * max(0, seconds)
    prev_t: float | None = None
    for r in resources:
        t = float(r["t"])
        if prev_t is not None and t > prev_t:
            cpu = float(r["cpu_percent"]) / 100.0 * (t - prev_t)
            rate = cpu / (t - prev_t)
            k = max(0, math.floor(prev_t))
            while k < seconds and k < t:
                lo, hi = max(prev_t, float(k)), min(t, float(k + 1))
                if hi > lo:
                    out[k] += rate * (hi - lo)
                k += 1
        prev_t = t
    return out


def _covered(resources: Sequence[Mapping[str, Any]], lo: int, hi: int) -> list[int]:
    """The whole seconds in [lo, hi) the sampler covered: one it did not (it starts with the bot, so
    only a gap would do this) holds no CPU, and would read as an idle second."""
    covered_from, covered_to = float(resources[0]["t"]), float(resources[-1]["t"])
    return [k for k in range(lo, hi) if covered_from <= k and k + 1 <= covered_to]


def cpu_percent_between(resources: Sequence[Mapping[str, Any]], start: float, end: float) -> float | None:
    """The bot's mean CPU, % of one core, over the whole seconds of [start, end) the sampler covered."""
    lo, hi = math.ceil(start), math.floor(end)
    if hi <= lo or len(resources) < 2:
        return None
    cpu = cpu_seconds_per_second(resources, hi)
    ks = _covered(resources, lo, hi)
    return round(sum(cpu[k] for k in ks) / len(ks) * 100.0, 1) if ks else None


def cpu_per_trade(
    intervals: Sequence[Mapping[str, Any]],
    resources: Sequence[Mapping[str, Any]],
    start: float,
    end: float,
    *,
    warmup_s: float = WARMUP_S,
    confidence: float = 0.95,
) -> dict[str, Any] | None:
    """µs of bot CPU per completed trade over the whole seconds of [start + warmup, end); None when
    the window is too short or holds no completed trade or no resource sample."""
    lo, hi = math.ceil(start + warmup_s), math.floor(end)
    if hi - lo < MIN_WINDOW_S or len(resources) < 2:
        return None
    cpu = cpu_seconds_per_second(resources, hi)
    trades = [0.0] * hi
    for iv in intervals:
        k = math.floor(float(iv["start"]))
        if lo <= k < hi:
            trades[k] += sum(float(iv["counters"].get(name, 0)) for name in COMPLETED)
    ks = _covered(resources, lo, hi)
    if len(ks) < MIN_WINDOW_S:
        return None
    est = per_unit_ci([cpu[k] * 1e6 for k in ks], [trades[k] for k in ks], confidence=confidence)
    if math.isnan(est.value):
        return None
    total_trades = sum(trades[k] for k in ks)
    total_cpu = sum(cpu[k] for k in ks)
    out: dict[str, Any] = {
        "value_us": round(est.value, 1),
        "ci_us": [round(est.lo, 1), round(est.hi, 1)] if est.has_ci else None,
        "confidence": confidence,
        "window": [lo, hi],
        "trades": int(total_trades),
        "cpu_s": round(total_cpu, 3),
        "trades_per_s": round(total_trades / len(ks), 2),
        "cpu_percent": round(total_cpu / len(ks) * 100.0, 1),
        "note": est.note,
    }
    return out
