"""Judging one step of the market-data stress (pure, sans-I/O): ticks dropped, the rate handled, the feed's pace.

The market-data stress (``websocket_stress``) looks for the highest tick rate the bot handles with
none dropped. Its steps are searched like the trading stress's (``harness.run.bisection``); each is
tagged, so it is judged on its own ticks, and each is judged here:

- **handled**: the bot's ``ticks_handled`` + ``ticks_conflated{kind=market}`` (the pair's actor looked
  at the tick, or at a newer tick of its pair that superseded it: ``bot.market.conflation``).
- **dropped**: ticks the feed had to drop (its queue full: the bot read too slowly) or could not
  deliver, plus ticks sent and never counted by the bot, after a bounded wait for the socket's
  buffers to drain. Counted over the whole step, exactly, by tag: a lost tick is lost whatever
  second it was due in, so the warm-up excuses no drop.
- A step is **broken** when any tick was dropped (``dropped``), or when the handled rate over the
  judged window (after the warm-up, within the schedule) is surely under 95% of the offered rate
  (``handled_rate``): the feed's queue and the kernel's buffers hide seconds of backlog, which a
  longer step would turn into drops. Both use the trading stress's rules (``judged_window``,
  ``surely_below``).
- A step is **generator-bound** when the feed itself fell behind in the judged window: fewer than
  99% of the schedule's ticks handed off, or its own scheduling lag p99 above
  ``GENERATOR_LAG_P99_MS``. The feed is Python on the same cores as the bot; such a step says
  nothing about the bot (not a break, even with drops: the machine was saturated) and no higher
  rate can be offered, so the search ends there and the ceiling is a lower bound ("≥ X,
  generator-bound"). The lag bound is not ``LagPolicy``'s 1 ms (the feed's "behind" elsewhere): at
  10k+ ticks/s on two shared cores the feed's lag is milliseconds even when it hands off every tick
  on time, and what decides a step is whether the rate was offered within the judge's tolerance.
- A step with fewer than ``MIN_INTERVALS`` whole seconds judged, or short of the rate but not
  surely, is **undecided** (run again, twice as long).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.load.feed import LAG_KEY
from harness.results.capacity import MarketStep
from harness.run.collect import HANDLED
from harness.run.stress import KEEP_UP, WARMUP_S, judged_window, surely_below
from harness.stats.histograms import merge_encoded

OFFER_FLOOR = 0.99  # the feed handed off at least this share of the schedule, or it fell behind
MIN_INTERVALS = 3  # whole seconds judged: fewer cannot tell a stall from a rate
# Ticks handed off this late shift at most 1% of the shortest judged window's ticks past its end:
# no more than the hand-off shortfall OFFER_FLOOR already tolerates.
GENERATOR_LAG_P99_MS = (1.0 - OFFER_FLOOR) * MIN_INTERVALS * 1000.0
_EPS = 1e-6


@dataclass(frozen=True)
class StepTotals:
    """A step's own ticks, exact by tag: what the feed did with them and what the bot made of them."""

    sent: int  # written to the socket
    feed_dropped: int  # the feed's queue was full
    undelivered: int  # no bot connected, or still queued when the feed gave up
    handled: int  # the bot's actors looked at them
    conflated: int  # superseded by a newer tick of their pair that was looked at

    @property
    def dropped(self) -> int:
        # A tick the bot never counted is lost as surely as one the feed could not send.
        return self.feed_dropped + self.undelivered + max(0, self.sent - self.handled - self.conflated)

    @classmethod
    def of(cls, feed_intervals: Sequence[Mapping[str, Any]], handled: int, conflated: int) -> StepTotals:
        def total(name: str) -> int:
            return sum(int(iv.get("counters", {}).get(name, 0)) for iv in feed_intervals)

        return cls(total("ws_sent"), total("ws_dropped"), total("ws_undelivered"), handled, conflated)


@dataclass(frozen=True)
class FeedPace:
    """The feed's own pace over whole seconds of a step: ticks handed off, and its scheduling lag."""

    handed_off: int
    seconds: int
    lag_p99_ms: float
    lag_max_ms: float

    @property
    def rate(self) -> float:
        return self.handed_off / self.seconds if self.seconds else 0.0


def feed_pace(feed_intervals: Sequence[Mapping[str, Any]], lo: float, hi: float) -> FeedPace:
    """The feed's intervals lying within [lo, hi) (its scheduling-lag histogram holds one sample per
    tick handed off, in the second it was handed off)."""
    inside = [iv for iv in feed_intervals if float(iv["start"]) >= lo - _EPS and float(iv["end"]) <= hi + _EPS]
    encoded = [e for iv in inside if (e := iv.get("histograms", {}).get(LAG_KEY))]
    h = merge_encoded(encoded, where=LAG_KEY)
    n = int(h.get_total_count())
    p99 = h.get_value_at_percentile(99) / 1000.0 if n else 0.0
    return FeedPace(n, len(inside), p99, h.get_max_value() / 1000.0 if n else 0.0)


def _p99_ms(judged: Sequence[Mapping[str, Any]], op: str) -> float | None:
    encoded = [e for iv in judged if (e := iv.get("histograms", {}).get(op))]
    if not encoded:
        return None
    return float(merge_encoded(encoded, where=op).get_value_at_percentile(99)) / 1000.0


def judge_market_step(
    rate: float,
    start: float,
    end: float,
    intervals: Sequence[Mapping[str, Any]],
    feed_intervals: Sequence[Mapping[str, Any]],
    totals: StepTotals,
    *,
    schedule_end: float,
    warmup_s: float = WARMUP_S,
    lag_p99_limit_ms: float = GENERATOR_LAG_P99_MS,
    delivery_op: str = "tick_delivery",
) -> MarketStep:
    """``intervals``: the step's scenario intervals in [start, end) (whole seconds, ``end`` at most the
    schedule's end); ``feed_intervals``: the feed's own, with its lag histograms, in scenario seconds;
    ``totals``: the step's ticks over the whole step. See the module docstring for the rules."""
    if warmup_s < 0:
        raise ValueError(f"judge_market_step: warmup_s={warmup_s} must be >= 0")
    judged, judged_start = judged_window(intervals, start, warmup_s)
    window_s = end - judged_start
    pace = feed_pace(feed_intervals, judged_start, min(end, schedule_end))
    handled_w = sum(float(iv["counters"].get(k, 0)) for iv in judged for k in HANDLED)
    achieved = handled_w / window_s if window_s > _EPS else 0.0
    bound = bool(pace.seconds) and (pace.lag_p99_ms > lag_p99_limit_ms or pace.rate < OFFER_FLOOR * rate)
    broken: str | None = None
    short = achieved < KEEP_UP * rate
    enough = len(judged) >= MIN_INTERVALS and window_s > _EPS
    if totals.dropped > 0:
        broken = "dropped"
    elif enough and short and surely_below(judged, KEEP_UP * rate, counters=HANDLED):
        broken = "handled_rate"
    undecided = not bound and broken is None and (not enough or short)
    return MarketStep(
        rate=rate, start=judged_start, end=end, warmup_s=judged_start - start, offered=round(pace.rate, 2),
        achieved=round(achieved, 2), sent=totals.sent, handled=totals.handled, conflated=totals.conflated,
        dropped=totals.dropped, generator_lag_p99_ms=round(pace.lag_p99_ms, 3),
        generator_lag_max_ms=round(pace.lag_max_ms, 3), generator_bound=bound, broken=broken, undecided=undecided,
        intervals=len(judged), delivery_p99_ms=_p99_ms(judged, delivery_op),
    )


def cpu_percent(cpu_s: float, seconds: float) -> float | None:
    """CPU seconds over a wall-clock span as % of one core (None for an empty span)."""
    return round(cpu_s / seconds * 100.0, 1) if seconds > 0 and math.isfinite(cpu_s) else None
