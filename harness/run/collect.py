"""Turn the bot's telemetry intervals and the feed's send log into a scenario's interval series (pure).

The bot closes an interval every wall-clock second; the feed counts what it sent per second of
the scenario. Both are bucketed by whole seconds since the scenario start and merged, so each
scenario interval carries the latency histograms (as the bot encoded them: never re-averaged)
and the counters the SLO judge reads: ``sent``, ``ok``, ``errors``, ``dropped``, ``tx_accepted``,
``in_flight_max``, ``ws_sent``, ``ws_handled``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from harness.stats.histograms import encode, merge_encoded

# bot counter name -> scenario counter name (summed per interval)
BOT_COUNTERS: Mapping[str, str] = {
    "trades_ok": "ok",
    "trades_reverted": "errors",
    "trades_failed": "errors",
    "trades_rejected": "errors",
    "trades_dropped": "errors",
    "tx_accepted": "tx_accepted",
    "ticks_handled": "ws_handled",
    "trades_skipped": "skipped",
}
MAX_COUNTERS = ("in_flight_max",)


def merge_intervals(
    t0: float,
    bot_intervals: Iterable[Mapping[str, Any]],
    feed_intervals: Iterable[Mapping[str, Any]] = (),
    duration_s: float | None = None,
) -> list[dict[str, Any]]:
    """Scenario intervals, one per second since ``t0`` (wall clock), ordered by start.

    ``bot_intervals`` are /stats intervals (wall-clock ``start``/``end``); ``feed_intervals``
    carry ``start`` in seconds since the scenario start and counters such as ``ws_sent``/``sent``/
    ``dropped``. Bot intervals before ``t0`` are ignored; after ``duration_s`` (drain time) they
    are kept: a trade that completes late still belongs to the scenario.
    """
    buckets: dict[int, dict[str, Any]] = {}

    def bucket(k: int) -> dict[str, Any]:
        if k not in buckets:
            buckets[k] = {"start": float(k), "end": float(k + 1), "histograms": {}, "counters": {}}
        return buckets[k]

    for iv in bot_intervals:
        mid = (float(iv["start"]) + float(iv["end"])) / 2 - t0
        if mid < 0:
            continue
        b = bucket(math.floor(mid))
        for op, enc in iv.get("histograms", {}).items():
            have = b["histograms"].get(op)
            b["histograms"][op] = enc if have is None else encode(merge_encoded([have, enc], where=op))
        for name, value in iv.get("counters", {}).items():
            if name in MAX_COUNTERS:
                b["counters"][name] = max(b["counters"].get(name, 0), value)
                continue
            target = BOT_COUNTERS.get(name, name if name.startswith("errors") else None)
            if target is not None:
                b["counters"][target] = b["counters"].get(target, 0) + value
    for fv in feed_intervals:
        b = bucket(math.floor(float(fv["start"])))
        for name, value in fv.get("counters", fv).items():
            if name in {"start", "end"} or not isinstance(value, int | float):
                continue
            b["counters"][name] = b["counters"].get(name, 0) + value
    if duration_s is not None:
        for k in range(math.ceil(duration_s)):
            bucket(k)
    return [buckets[k] for k in sorted(buckets)]


def totals(intervals: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for iv in intervals:
        for name, value in iv["counters"].items():
            out[name] = max(out.get(name, 0), value) if name in MAX_COUNTERS else out.get(name, 0) + value
    return out
