"""What the shards report, merged into what one bot would report (pure).

**Telemetry.** Each child closes an interval every ``telemetry.interval_s`` on its own clock phase, so
the children's intervals do not line up. ``IntervalAligner`` lays a grid of bins of that width from the
parent's start (``origin``) and puts each child interval into the bin holding its midpoint, which is how
the harness itself places intervals in a scenario's seconds. A bin becomes one merged interval: counters
summed, HdrHistograms added (exact: a merged histogram is the histogram of every shard's values), tag
slices merged the same way; ``start``/``end`` are the bin's bounds. A bin closes once every live shard has
reported an interval ending past the bin's middle (the child's next interval then has its midpoint beyond
the bin), and a run of empty bins closes as one interval. A shard that answers nothing holds a bin back at
most ``max_lag_s`` after its end (the bin is then *forced*); an interval arriving for a bin already
closed goes into the oldest open bin (*late*), so nothing is lost or counted twice, only placed up to a
bin later. Merged intervals are numbered from 0 and served with the single bot's ``since`` rule.

**Ledger.** Shards sign from disjoint accounts, so the per-account tallies are a union; record ids are
renumbered ``id * count + shard`` to stay unique integers, and each record says its ``shard``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

Interval = Mapping[str, Any]

# How a gauge combines across shards when it is not a sum: the worst loop lag, the tightest rate limit.
GAUGE_RULES: Mapping[str, Callable[[Iterable[float]], float]] = {"loop_lag_ms": max, "rpc_limit": min}


def decoded_sum(encoded: Iterable[str]) -> HdrHistogram | None:
    """Every histogram of ``encoded`` added into the first one decoded (None when there are none).

    A decoded histogram is freed as soon as it has been added: hdrh's ``HdrHistogram`` and its encoder
    refer to each other, so each one (17,408 counts, ~140 KB) otherwise waited for the cyclic collector.
    Summing the retained intervals at exit held ~18 MB of them at once: the bot's memray peak
    (docs/PERFORMANCE.md, "Memory budget at 100 pairs")."""
    total: HdrHistogram | None = None
    for enc in encoded:
        h = HdrHistogram.decode(enc)
        if total is None:
            total = h
            continue
        total.add(h)
        h.encoder = None  # h is not used again: cutting its half of the cycle frees it by refcount
    return total


def merge_encoded(encoded: Sequence[str]) -> str:
    """One encoded HdrHistogram holding every value of ``encoded`` (one of them is returned as it is)."""
    if len(encoded) == 1:
        return encoded[0]
    total = decoded_sum(encoded)
    if total is None:
        raise ValueError("merge_encoded: no histograms to merge")
    return str(total.encode().decode("ascii"))


def _merge_slices(slices: Iterable[Mapping[str, Any]]) -> tuple[dict[str, str], dict[str, int]]:
    hists: dict[str, list[str]] = {}
    counters: dict[str, int] = {}
    for sl in slices:
        for op, enc in (sl.get("histograms") or {}).items():
            hists.setdefault(op, []).append(enc)
        for key, n in (sl.get("counters") or {}).items():
            counters[key] = counters.get(key, 0) + int(n)
    return {op: merge_encoded(encs) for op, encs in hists.items()}, counters


def merge_interval_bodies(intervals: Sequence[Interval]) -> dict[str, Any]:
    """``histograms``, ``counters`` and ``tags`` of several intervals as one interval's."""
    hists, counters = _merge_slices(intervals)
    by_tag: dict[str, list[Mapping[str, Any]]] = {}
    for iv in intervals:
        for tag, sl in (iv.get("tags") or {}).items():
            by_tag.setdefault(tag, []).append(sl)
    out: dict[str, Any] = {"histograms": hists, "counters": counters}
    if by_tag:
        out["tags"] = {tag: dict(zip(("histograms", "counters"), _merge_slices(sls), strict=True))
                       for tag, sls in by_tag.items()}
    return out


def merge_gauges(gauges: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Shards' gauges as one bot's: summed, except those ``GAUGE_RULES`` name."""
    values: dict[str, list[float]] = {}
    for g in gauges:
        for name, v in g.items():
            values.setdefault(name, []).append(float(v))
    return {name: GAUGE_RULES.get(name, sum)(vs) for name, vs in values.items()}


@dataclass(frozen=True, slots=True)
class AlignerStatistics:
    seq: int  # the open merged interval's number
    kept: int
    open_bins: int
    received: int  # child intervals taken in
    late: int  # ... that arrived for a closed bin and went into the oldest open one
    forced: int  # bins closed without every live shard's interval, after max_lag_s


class IntervalAligner:
    """Child intervals in, merged intervals out; see the module docstring."""

    def __init__(self, shards: int, *, origin: float, width: float, keep: int = 600,
                 max_lag_s: float | None = None) -> None:
        if shards < 1 or width <= 0 or keep < 1:
            raise ValueError("IntervalAligner: shards >= 1, width > 0 and keep >= 1")
        self.origin = origin
        self.width = width
        self.max_lag_s = max(5.0, 5 * width) if max_lag_s is None else max_lag_s
        self._progress = [origin] * shards  # the latest end each shard reported (its start until then)
        self._bins: dict[int, list[Interval]] = {}
        self._next = 0  # the oldest open bin
        self._seq = 0  # the next merged interval's number
        self._closed: deque[dict[str, Any]] = deque(maxlen=keep)
        self._received = 0
        self._late = 0
        self._forced = 0

    def __repr__(self) -> str:
        return (f"<IntervalAligner seq={self._seq} kept={len(self._closed)} open={len(self._bins)} "
                f"late={self._late} forced={self._forced}>")

    def _bin_end(self, k: int) -> float:
        return self.origin + (k + 1) * self.width

    def add(self, shard: int, intervals: Iterable[Interval]) -> None:
        """A shard's newly closed intervals, in its order."""
        for iv in intervals:
            start, end = float(iv["start"]), float(iv["end"])
            # Before the origin: the shard's start-up, before the parent began merging; it goes into the first bin.
            k = max(0, math.floor(((start + end) / 2 - self.origin) / self.width))
            if k < self._next:
                self._late += 1
                k = self._next
            self._bins.setdefault(k, []).append(iv)
            self._progress[shard] = max(self._progress[shard], end)
            self._received += 1

    def _closable_until(self, now: float, live: Collection[int]) -> tuple[int, int]:
        """(first bin not complete, first bin that may not close yet). Bin k is complete once every live
        shard (and at least one shard) reported past its middle, overdue ``max_lag_s`` after its end."""
        bound = min([self._progress[s] for s in live] + [max(self._progress)])
        complete = math.floor((bound - self.origin) / self.width - 0.5) + 1
        overdue = math.floor((now - self.max_lag_s - self.origin) / self.width - 1) + 1
        return complete, max(complete, overdue)

    def close_ready(self, now: float, live: Collection[int]) -> list[dict[str, Any]]:
        """Close every bin that is complete (or overdue); ``live``: the shards that may still report.
        A run of empty bins closes as one interval, so a clock step cannot make millions of them."""
        out: list[dict[str, Any]] = []
        complete, limit = self._closable_until(now, live)
        while self._next < limit:
            k = self._next
            stop = k + 1 if k in self._bins else min([b for b in self._bins if b > k] + [limit])
            self._forced += max(0, stop - max(k, complete))
            body = merge_interval_bodies(self._bins.pop(k, []))
            closed = {"seq": self._seq, "start": self.origin + k * self.width, "end": self._bin_end(stop - 1), **body}
            self._closed.append(closed)
            out.append(closed)
            self._seq += 1
            self._next = stop
        return out

    def payload(self, since: int | None, now: float, gauges: Mapping[str, float]) -> dict[str, Any]:
        """The ``GET /stats?since=SEQ`` body of docs/DESIGN.md, for the merged intervals."""
        ivs = [iv for iv in self._closed if since is None or iv["seq"] > since]
        return {"seq": self._seq, "now": now, "intervals": ivs, "gauges": dict(gauges)}

    def statistics(self) -> AlignerStatistics:
        return AlignerStatistics(seq=self._seq, kept=len(self._closed), open_bins=len(self._bins),
                                 received=self._received, late=self._late, forced=self._forced)


# -- ledger ----------------------------------------------------------------------------------------------

LEDGER_SUMS = ("keep_recent", "opened", "in_flight", "evicted")


def merge_ledgers(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The shards' ``GET /ledger`` documents (in shard order) as one (``bot.chain.ledger_view``'s shape)."""
    count = len(docs)
    out: dict[str, Any] = {"version": 1, **dict.fromkeys(LEDGER_SUMS, 0), "accounts": {}}
    records: list[dict[str, Any]] | None = None
    owner: dict[str, int] = {}
    for i, doc in enumerate(docs):
        if doc.get("version") != 1:
            raise ValueError(f"shard {i}: ledger version {doc.get('version')!r}; this parent merges version 1")
        for key in LEDGER_SUMS:
            out[key] += int(doc.get(key) or 0)
        for addr, tally in (doc.get("accounts") or {}).items():
            if addr in owner:  # the plan makes this impossible; a merged tally would hide doubled nonces
                raise ValueError(f"account {addr} is reported by shards {owner[addr]} and {i}")
            owner[addr] = i
            out["accounts"][addr] = tally
        if "records" in doc:
            records = [] if records is None else records
            records.extend({**r, "id": int(r["id"]) * count + i, "shard": i} for r in doc["records"])
    if records is not None:
        out["records"] = records
    return out


def merge_drains(answers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The shards' ``POST /ledger/drain`` answers as one: drained only when every shard is."""
    return {"drained": all(bool(a.get("drained")) for a in answers),
            "in_flight": sum(int(a.get("in_flight") or 0) for a in answers),
            "waited_s": max((float(a.get("waited_s") or 0.0) for a in answers), default=0.0),
            "shards": [dict(a) for a in answers]}
