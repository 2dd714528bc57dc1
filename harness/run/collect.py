"""Turn the bot's telemetry intervals and the feed's send log into a scenario's interval series (pure).

The bot closes an interval every wall-clock second; the feed counts what it sent per second of
the scenario. Both are bucketed by whole seconds since the scenario start and merged, so each
scenario interval carries the latency histograms (as the bot encoded them: never re-averaged)
and the counters the SLO judge reads: ``sent``, ``ok``, ``errors``, ``dropped``, ``tx_accepted``,
``in_flight_max``, ``ws_sent``, ``ws_handled``, ``ws_conflated`` (market ticks superseded by a newer
one of their pair that the bot's actor looked at: handled by conflation, see ``bot.market.conflation``).

With ``own`` (a tag predicate), a scenario counts only what its own ticks caused: where the bot
split an interval by tag (``tags``), an operation or counter that appears under any tag is taken
from the scenario's own tags only; the rest of the window's tagged work is ``carry_over``,
reported beside the scenario and never judged. Untagged operations (the event loop's lag, the
in-flight peak) are taken whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hdrh.histogram import HdrHistogram

from bot.telemetry.gcclock import is_auxiliary_op
from harness.stats.histograms import encode, merge_encoded

TagFilter = Callable[[str], bool]


def tag_filter(tag: str) -> TagFilter:
    """A scenario's tag, or any of its steps' (``stress`` owns ``stress/3``)."""
    prefix = tag + "/"
    return lambda t: t == tag or t.startswith(prefix)


def own_view(iv: Mapping[str, Any], own: TagFilter | None) -> tuple[dict[str, str], dict[str, Any]]:
    """The interval's histograms and counters that count for a scenario owning tags ``own``."""
    hists: dict[str, str] = dict(iv.get("histograms", {}))
    counters: dict[str, Any] = dict(iv.get("counters", {}))
    tags: Mapping[str, Any] = iv.get("tags") or {}
    if own is None or not tags:
        return hists, counters
    tagged_ops = {op for sl in tags.values() for op in sl.get("histograms", {})}
    tagged_counters = {k for sl in tags.values() for k in sl.get("counters", {})}
    for op in tagged_ops:
        hists.pop(op, None)
    for k in tagged_counters:
        counters.pop(k, None)
    for tag, sl in tags.items():
        if not own(tag):
            continue
        for op, enc in sl.get("histograms", {}).items():
            have = hists.get(op)
            hists[op] = enc if have is None else encode(merge_encoded([have, enc], where=op))
        for k, n in sl.get("counters", {}).items():
            counters[k] = counters.get(k, 0) + n
    return hists, counters


def own_tagged(iv: Mapping[str, Any], own: TagFilter) -> tuple[dict[str, str], dict[str, Any]]:
    """Only what ``own``'s tagged ticks caused in the interval (its tag slices), nothing untagged."""
    return own_view({"tags": iv.get("tags") or {}}, own)


def carry_over(t0: float, end: float, bot_intervals: Iterable[Mapping[str, Any]], own: TagFilter) -> dict[str, Any]:
    """What other scenarios' ticks caused inside [t0, t0 + end): sample counts per operation, counters.

    An operation's ``.gc_overlap`` samples are a subset of its own: not counted a second time."""
    hists: dict[str, int] = {}
    counters: dict[str, int] = {}
    tags_seen: set[str] = set()
    for iv in bot_intervals:
        mid = (float(iv["start"]) + float(iv["end"])) / 2 - t0
        if not 0 <= mid < end:
            continue
        for tag, sl in (iv.get("tags") or {}).items():
            if own(tag):
                continue
            tags_seen.add(tag)
            for op, enc in sl.get("histograms", {}).items():
                if not is_auxiliary_op(op):
                    hists[op] = hists.get(op, 0) + int(HdrHistogram.decode(enc).get_total_count())
            for k, n in sl.get("counters", {}).items():
                counters[k] = counters.get(k, 0) + int(n)
    return {"tags": sorted(tags_seen), "histograms": hists, "counters": counters}

# Market ticks superseded by a newer one of their pair that the actor looked at (bot.market.conflation).
BOT_CONFLATED = "ticks_conflated{kind=market}"
# bot counter name -> scenario counter name (summed per interval)
BOT_COUNTERS: Mapping[str, str] = {
    "trades_ok": "ok",
    "trades_reverted": "errors",
    "trades_failed": "errors",
    "trades_rejected": "errors",
    "trades_dropped": "errors",
    "tx_accepted": "tx_accepted",
    "ticks_handled": "ws_handled",
    BOT_CONFLATED: "ws_conflated",
    "trades_skipped": "skipped",
}
MAX_COUNTERS = ("in_flight_max",)
# Bot counters kept under their own name: errors by kind, and the collector's (bot.telemetry.gcwatch).
PASSED_THROUGH = ("errors", "gc_")
# A market tick is handled when the actor looked at it or at a newer tick of its pair that superseded it.
BOT_HANDLED = ("ticks_handled", BOT_CONFLATED)
HANDLED = ("ws_handled", "ws_conflated")


def merge_intervals(
    t0: float,
    bot_intervals: Iterable[Mapping[str, Any]],
    feed_intervals: Iterable[Mapping[str, Any]] = (),
    duration_s: float | None = None,
    own: TagFilter | None = None,
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
            # An interval that opened before the scenario and closed inside it: its untagged
            # figures are mostly the pause before, but what this scenario's own ticks caused is
            # this scenario's. Dropping it lost the first ~0.3 s of a websocket scenario's ticks
            # (counted as dropped) whenever the bot's interval clock ran ahead of the start.
            if own is None or float(iv["end"]) <= t0:
                continue
            b = bucket(0)
            hists, counters = own_tagged(iv, own)
        else:
            b = bucket(math.floor(mid))
            hists, counters = own_view(iv, own)
        for op, enc in hists.items():
            have = b["histograms"].get(op)
            b["histograms"][op] = enc if have is None else encode(merge_encoded([have, enc], where=op))
        for name, value in counters.items():
            if name in MAX_COUNTERS:
                b["counters"][name] = max(b["counters"].get(name, 0), value)
                continue
            target = BOT_COUNTERS.get(name, name if name.startswith(PASSED_THROUGH) else None)
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
