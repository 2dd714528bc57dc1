"""Appending a running scenario's new measurements to ``checkpoint.jsonl`` (the shell of harness.results.journal).

Each call writes only what arrived since the previous one: bot intervals closed since (found by bisection
on their end time, never by scanning the whole list), resource samples since, the health counts' change,
the bot's backlog samples and the feed's counts since. So a checkpoint costs the same at hour 20 of a
soak as at minute 1. The newest scenario bucket is held back until a later bot interval shows it closed:
a bucket is written once, whole.
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
              "backlog": backlog, "feed": {"sent": d_sent, "dropped": d_dropped},
              "cost_ms": round((time.perf_counter() - t_start) * 1000, 3)}
    cur.probes, cur.ok = health.probes, health.ok
    journal.append(record)
