"""Adapter between the scenario runner and the market-data feed (``harness.load.feed``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.load.feed import MarketFeed
from harness.load.schedules import Schedule


@dataclass(frozen=True)
class FeedRun:
    """Per-second counters and lag histograms (``start`` relative to the run start), and the feed's own
    scheduling lag over the run."""

    intervals: list[dict[str, Any]] = field(default_factory=list)
    lag_p99_ms: float = 0.0
    lag_max_ms: float = 0.0
    behind: bool = False  # the feed itself fell behind its schedule: blame the generator, not the bot

    def lag_summary(self) -> dict[str, Any]:
        return {"generator_lag_p99_ms": round(self.lag_p99_ms, 3), "generator_lag_max_ms": round(self.lag_max_ms, 3),
                "generator_behind": self.behind}


def combine(runs: list[FeedRun]) -> dict[str, Any]:
    """The lag summary of several feed runs (a stress test's steps): the worst of each."""
    if not runs:
        return FeedRun().lag_summary()
    return FeedRun([], max(r.lag_p99_ms for r in runs), max(r.lag_max_ms for r in runs),
                   any(r.behind for r in runs)).lag_summary()


async def run(feed: MarketFeed, schedule: Schedule, *, trade: bool, tag: str | None = None) -> FeedRun:
    """Send ``schedule``'s ticks, each tagged ``tag``.

    For trade scenarios the feed's ``ws_sent`` is the count of trade signals sent (``sent``), and
    ticks it could not deliver (no bot connected, or the bot read too slowly) are ``dropped``.
    """
    result = await (feed.run(trades=schedule, tag=tag) if trade else feed.run(market=schedule, tag=tag))
    out: list[dict[str, Any]] = []
    for iv in result.intervals:
        counters: dict[str, Any] = dict(iv.counters)
        if trade:
            counters["sent"] = counters.get("ws_sent", 0)
            counters["dropped"] = counters.get("ws_undelivered", 0) + counters.get("ws_dropped", 0)
        # The feed's scheduling lag per second rides along for the market-data stress's judge
        # (harness.run.wsstress); scenario intervals take the counters only.
        out.append({"start": float(iv.start), "end": float(iv.end), "counters": counters,
                    "histograms": dict(iv.histograms)})
    return FeedRun(out, result.lag_p99_ms, result.lag_max_ms, result.behind)
