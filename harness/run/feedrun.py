"""Adapter between the scenario runner and the market-data feed (``harness.load.feed``)."""

from __future__ import annotations

from typing import Any

from harness.load.feed import MarketFeed
from harness.load.schedules import Schedule


async def run(feed: MarketFeed, schedule: Schedule, *, trade: bool) -> list[dict[str, Any]]:
    """Send ``schedule``'s ticks; returns per-second counters with ``start`` relative to the run start.

    For trade scenarios the feed's ``ws_sent`` is the count of trade signals sent (``sent``), and
    ticks it could not deliver (no bot connected, or the bot read too slowly) are ``dropped``.
    """
    result = await (feed.run(trades=schedule) if trade else feed.run(market=schedule))
    out: list[dict[str, Any]] = []
    for iv in result.intervals:
        counters: dict[str, Any] = dict(iv.counters)
        if trade:
            counters["sent"] = counters.get("ws_sent", 0)
            counters["dropped"] = counters.get("ws_undelivered", 0) + counters.get("ws_dropped", 0)
        out.append({"start": float(iv.start), "end": float(iv.end), "counters": counters})
    return out
