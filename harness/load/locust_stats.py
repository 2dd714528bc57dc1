"""What Locust itself wrote: its ``--json-file`` (final per-endpoint stats) and ``--csv`` history (pure).

Locust keeps response times in rounded buckets (times above 100 ms to 2 significant digits), so its
percentiles are approximate to that precision; they are shown beside the harness's HdrHistograms
(``harness.load.locust_merge``), never instead of them. The JSON's per-second counts
(``num_reqs_per_sec``) are complete; the CSV stats history is a once-per-second snapshot that misses
the last second of a run, so it is parsed (``parse_stats_history``) as a cross-check only.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from harness.errors import HarnessError


@dataclass(frozen=True)
class LatencySummary:
    requests: int
    failures: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def _percentile(times: Mapping[float, int], q: float) -> float:
    n = sum(times.values())
    if n == 0:
        return 0.0
    rank = max(1, math.ceil(q * n))
    seen = 0
    for value in sorted(times):
        seen += times[value]
        if seen >= rank:
            return float(value)
    return float(max(times))


def _summary(entries: Sequence[Mapping[str, Any]]) -> LatencySummary:
    times: Counter[float] = Counter()
    reqs = fails = 0
    total_ms = 0.0
    max_ms = 0.0
    for e in entries:
        reqs += int(e["num_requests"])
        fails += int(e["num_failures"])
        total_ms += float(e["total_response_time"])
        max_ms = max(max_ms, float(e.get("max_response_time") or 0.0))
        for k, v in e.get("response_times", {}).items():
            times[float(k)] += int(v)
    return LatencySummary(reqs, fails, total_ms / reqs if reqs else 0.0, _percentile(times, 0.50),
                          _percentile(times, 0.95), _percentile(times, 0.99), max_ms)


def _entries(text: str | bytes) -> list[dict[str, Any]]:
    try:
        entries = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise HarnessError(f"Locust's JSON stats are not JSON ({exc})") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "num_requests" in e for e in entries):
        raise HarnessError("Locust's JSON stats are not a list of per-endpoint stats")
    return entries


def parse_final_json(text: str | bytes, *, t0: float | None = None) -> tuple[list[dict[str, Any]], LatencySummary,
                                                                          dict[str, LatencySummary]]:
    """Intervals (seconds since ``t0``, default the first second seen) and latency summaries."""
    entries = _entries(text)
    reqs: Counter[int] = Counter()
    fails: Counter[int] = Counter()
    for e in entries:
        for sec, n in e.get("num_reqs_per_sec", {}).items():
            reqs[int(float(sec))] += int(n)
        for sec, n in e.get("num_fail_per_sec", {}).items():
            fails[int(float(sec))] += int(n)
    intervals: list[dict[str, Any]] = []
    if reqs or fails:
        first = min(reqs.keys() | fails.keys())
        last = max(reqs.keys() | fails.keys())
        base = math.floor(t0) if t0 is not None else first
        for sec in range(min(first, base), last + 1):
            if sec < base:
                continue
            intervals.append({"start": float(sec - base), "end": float(sec - base + 1),
                              "counters": {"api_requests": reqs.get(sec, 0), "api_failures": fails.get(sec, 0)}})
    by_endpoint = {f"{e.get('method') or ''} {e.get('name')}".strip(): _summary([e]) for e in entries}
    return intervals, _summary(entries), by_endpoint


def parse_stats_history(text: str) -> list[tuple[int, int, int]]:
    """``(unix_second, requests, failures)`` per snapshot of the Aggregated row, as deltas."""
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r.get("Name") == "Aggregated"]
    out: list[tuple[int, int, int]] = []
    prev_r = prev_f = 0
    for r in rows:
        try:
            ts, tr, tf = int(r["Timestamp"]), int(r["Total Request Count"]), int(r["Total Failure Count"])
        except (KeyError, TypeError, ValueError) as exc:
            raise HarnessError(f"Locust stats history row is malformed ({exc!r}): {r}") from None
        out.append((ts, tr - prev_r, tf - prev_f))
        prev_r, prev_f = tr, tf
    return out




def locust_rate(text: str | bytes) -> float | None:
    """Locust's own headline rate: all requests over its span from the first start to the last request
    (its ``total_rps``); None without requests."""
    entries = _entries(text)
    starts = [float(e["start_time"]) for e in entries if e.get("start_time")]
    lasts = [float(e["last_request_timestamp"]) for e in entries if e.get("last_request_timestamp")]
    reqs = sum(int(e["num_requests"]) for e in entries)
    if not starts or not lasts or max(lasts) <= min(starts):
        return None
    return reqs / (max(lasts) - min(starts))
