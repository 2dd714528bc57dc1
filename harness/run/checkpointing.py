"""Appending a running scenario's new measurements to ``checkpoint.jsonl`` (the shell of harness.results.journal).

Each call writes only what arrived since the previous one: bot intervals closed since (found by bisection
on their end time, never by scanning the whole list), resource samples since, the health counts' change,
the bot's backlog samples and the feed's counts since. So a checkpoint costs the same at hour 20 of a
soak as at minute 1. The newest scenario bucket is held back until a later bot interval shows it closed:
a bucket is written once, whole.

The bot's heap levels ride on its intervals (``levels``: heap_bytes, heap_blocks; harness.run.heapseries)
and go into each record as ``heap``; when the bot traces its heap, the latest table of allocation sites
that grew since the warm-up (harness.run.heapgrowth) goes in as ``heap_growth`` whenever it is new.
``finish_heap`` puts both into the scenario's document at its end.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.results.journal import CheckpointJournal
from harness.run.collect import merge_intervals, tag_filter
from harness.run.heapgrowth import GrowthPoller, tracing_frames, warmup_of
from harness.run.heapseries import attach_heap, heap_samples

if TYPE_CHECKING:
    from harness.run.scenarios import Scenario
    from harness.run.stack import Stack

BACKLOG_KEY = "x_backlog"  # the scenario doc's running list of [t, in_flight, queued] (popped at its end)


@dataclass
class Cursor:
    """How far the journal got for one scenario."""

    t0_wall: float
    t0_mono: float
    bot_end: float = -math.inf  # wall end of the last bot interval already in a written bucket
    res_mono: float = -math.inf  # monotonic time of the last resource sample written
    probes: int = 0
    ok: int = 0
    backlog_n: int = 0
    sent: int = 0
    dropped: int = 0
    growth: GrowthPoller | None = None  # the bot's heap growth sites, when it traces its heap


def bucket_of(t0: float, iv: Mapping[str, Any]) -> int:
    """The scenario second an interval is merged into (``collect.merge_intervals``' rule)."""
    mid = (float(iv["start"]) + float(iv["end"])) / 2 - t0
    return 0 if mid < 0 else math.floor(mid)


def closed_since(t0: float, intervals: Sequence[Mapping[str, Any]], after_end: float,
                 ) -> list[Mapping[str, Any]]:
    """Bot intervals ending after ``after_end`` whose scenario bucket is closed (a later bucket has begun);
    ``intervals`` are in the order the bot closed them, so their ends ascend."""
    i = bisect.bisect_right(intervals, after_end, key=lambda iv: float(iv["end"]))
    new = [iv for iv in intervals[i:] if float(iv["end"]) > t0]
    if not new:
        return []
    newest = bucket_of(t0, new[-1])
    return [iv for iv in new if bucket_of(t0, iv) < newest]


def begin(journal: CheckpointJournal, scn: Scenario, doc: Mapping[str, Any], t0_wall: float) -> Cursor:
    """The scenario's header, once; returns its cursor (kept in ``journal.cursors``)."""
    cur = journal.cursors.get(scn.id)
    if isinstance(cur, Cursor) and cur.t0_wall == t0_wall:
        return cur
    cur = Cursor(t0_wall, time.monotonic() - (time.time() - t0_wall))
    journal.cursors[scn.id] = cur
    header = {k: v for k, v in doc.items() if k not in {"intervals", "resources", "health", "summary", BACKLOG_KEY}}
    journal.append({"kind": "scenario", "id": scn.id, "started_at": t0_wall, "planned_s": scn.duration_s,
                    "doc": header})
    return cur


def append_checkpoint(st: Stack, journal: CheckpointJournal, scn: Scenario, doc: Mapping[str, Any],
                      t0_wall: float) -> None:
    """One ``checkpoint`` record: what is new since the last one."""
    t_start = time.perf_counter()
    cur = begin(journal, scn, doc, t0_wall)
    ivs = closed_since(t0_wall, st.puller.intervals, cur.bot_end)
    merged = merge_intervals(t0_wall, ivs, own=tag_filter(scn.id)) if ivs else []
    if ivs:
        cur.bot_end = float(ivs[-1]["end"])
    heap = heap_samples(t0_wall, ivs)
    growth = _poll_growth(st, cur, scn, t0_wall)
    samples = st.sampler.series.samples
    origin = st.sampler.series.origin
    j = bisect.bisect_right(samples, max(cur.res_mono, cur.t0_mono) - origin, key=lambda s: s.t)
    resources = []
    for s in samples[j:]:
        d = s.as_dict()
        d["t"] = round(origin + s.t - cur.t0_mono, 3)
        resources.append(d)
    if j < len(samples):
        cur.res_mono = origin + samples[-1].t
    health = st.prober.statistics()
    held = doc.get(BACKLOG_KEY)
    backlog = held[cur.backlog_n:] if isinstance(held, list) else []  # a slice: only the new samples
    cur.backlog_n += len(backlog)
    feed = st.feed.statistics()
    dropped = feed.ws_undelivered + feed.ws_dropped
    # The feed's counts restart with each schedule it runs (a stress step): a fall is a new run.
    d_sent = feed.ws_sent - cur.sent if feed.ws_sent >= cur.sent else feed.ws_sent
    d_dropped = dropped - cur.dropped if dropped >= cur.dropped else dropped
    cur.sent, cur.dropped = feed.ws_sent, dropped
    record = {"kind": "checkpoint", "scenario": scn.id, "t": round(time.time() - t0_wall, 3), "intervals": merged,
              "resources": resources,
              "health": {"probes": health.probes - cur.probes, "ok": health.ok - cur.ok},
              "backlog": backlog, "feed": {"sent": d_sent, "dropped": d_dropped}}
    if heap:
        record["heap"] = heap
    if growth is not None:
        record["heap_growth"] = growth
    record["cost_ms"] = round((time.perf_counter() - t_start) * 1000, 3)
    cur.probes, cur.ok = health.probes, health.ok
    journal.append(record)


def _poll_growth(st: Stack, cur: Cursor, scn: Scenario, t0_wall: float) -> dict[str, Any] | None:
    """Start the growth request that is due (never waits); the newest table not yet journalled, if any."""
    if cur.growth is None:
        if not tracing_frames(st.bot_settings):
            return None
        cur.growth = GrowthPoller(st.api_url, st.token, t0_wall, warmup_s=warmup_of(scn.duration_s),
                                  planned_s=scn.duration_s)
    cur.growth.poll(time.time() - t0_wall)
    return cur.growth.take_new()


async def finish_heap(st: Stack, journal: CheckpointJournal, scn: Scenario, doc: dict[str, Any],
                      t0_wall: float) -> None:
    """At the scenario's end: its heap levels onto its resource samples, and the last growth table
    (``summary.heap_growth``) when the bot traces its heap and a baseline was taken after the warm-up."""
    attach_heap(doc.get("resources", []), heap_samples(t0_wall, st.puller.intervals))
    cur = journal.cursors.get(scn.id)
    poller = cur.growth if isinstance(cur, Cursor) else None
    if poller is None:
        return
    try:
        growth = await poller.final(time.time() - t0_wall)
    finally:
        await poller.aclose()
    # Each snapshot stalled the bot's loop for a moment: the page's events say when.
    doc.setdefault("annotations", []).extend({"t": t, "label": what} for t, what in poller.events)
    summary = doc.setdefault("summary", {})
    if growth is not None:
        summary["heap_growth"] = growth
    elif poller.error is not None:
        summary["heap_growth"] = {"error": poller.error}
