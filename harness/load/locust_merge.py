"""The master's exact merge of its workers' HdrHistogram reports, and the file it writes (pure).

HdrHistograms add exactly (bucket counts add), so the merge of every report equals what one
process recording every sample would hold: ``merge_reports`` is a sum per wall-clock second, per
endpoint and in total, plus each worker's own request count. The master writes the result once,
when Locust quits (``write_run``); the harness reads it back (``read_run``).

File format (JSON, ``"format": "tb-locust-hdr/1"``)::

    {"format", "unit": "us", "op": "api_request.service", "started_at", "stopped_at", "first_start", "last_end",
     "intervals": [{"start", "end", "counters": {"api_requests", "api_failures"}, "histograms": {op: b64}}],
     "total": b64 | null, "by_name": {"GET /health": b64}, "workers": {id: {"requests", "failures",
     "reports", "final"}}}

Interval ``start``/``end`` are unix seconds here; ``relative_intervals`` turns them into seconds
from a scenario's start, the way ``results.json`` holds them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from hdrh.histogram import HdrHistogram

from harness.errors import HarnessError
from harness.load.locust_hdr import FAILURES, OP, REQUESTS, WorkerReport
from harness.load.recorder import new_histogram

FORMAT = "tb-locust-hdr/1"


@dataclass(frozen=True)
class WorkerCounts:
    requests: int
    failures: int
    reports: int
    final: bool  # its last report said it had stopped: every sample it took is in the merge


@dataclass(frozen=True)
class HdrRun:
    """Every worker's reports merged: per-second intervals, the total, per endpoint, per worker."""

    intervals: tuple[dict[str, Any], ...] = ()
    total: str | None = None
    by_name: Mapping[str, str] = field(default_factory=dict)
    workers: Mapping[str, WorkerCounts] = field(default_factory=dict)
    started_at: float | None = None  # unix time the master started the load
    stopped_at: float | None = None  # ... and asked the users to stop
    first_start: float | None = None  # unix time the earliest request started (any worker's clock)
    last_end: float | None = None  # ... and the latest completed

    @property
    def requests(self) -> int:
        return sum(int(iv["counters"][REQUESTS]) for iv in self.intervals)

    @property
    def failures(self) -> int:
        return sum(int(iv["counters"][FAILURES]) for iv in self.intervals)

    @property
    def complete(self) -> bool:
        """Every worker's final report arrived (else samples taken after its last report are missing)."""
        return bool(self.workers) and all(w.final for w in self.workers.values())

    @property
    def duration_s(self) -> float | None:
        """The load window the master set: from its start to its graceful stop."""
        if self.started_at is None or self.stopped_at is None or self.stopped_at <= self.started_at:
            return None
        return self.stopped_at - self.started_at

    @property
    def span_s(self) -> float | None:
        """From the first request's start to the last one's end: what a rate of the requests themselves
        divides by (Locust's own rate does the same), leaving out the workers' start-up in the window."""
        if self.first_start is None or self.last_end is None or self.last_end <= self.first_start:
            return None
        return self.last_end - self.first_start

    def __repr__(self) -> str:
        return (f"HdrRun({len(self.intervals)} s, {self.requests} requests, {self.failures} failures, "
                f"{len(self.workers)} workers, complete={self.complete})")

    def histogram(self) -> HdrHistogram:
        return decode(self.total)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "unit": "us", "op": OP, "started_at": self.started_at,
                "stopped_at": self.stopped_at, "first_start": self.first_start, "last_end": self.last_end,
                "intervals": list(self.intervals), "total": self.total,
                "by_name": dict(self.by_name), "workers": {k: vars(w) for k, w in self.workers.items()}}

    @classmethod
    def from_json(cls, doc: Any) -> HdrRun:
        if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
            raise HarnessError(f"Locust's HdrHistogram file is not {FORMAT!r}")
        try:
            intervals = tuple(_interval(iv) for iv in doc["intervals"])
            workers = {str(k): WorkerCounts(int(w["requests"]), int(w["failures"]), int(w["reports"]),
                                            bool(w["final"])) for k, w in doc["workers"].items()}
            by_name = {str(k): str(v) for k, v in doc["by_name"].items()}
            total = doc["total"]
            if total is not None and not isinstance(total, str):
                raise TypeError("total is not a histogram string")
            started, stopped, first, last = (None if doc[k] is None else float(doc[k]) for k in
                                             ("started_at", "stopped_at", "first_start", "last_end"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise HarnessError(f"Locust's HdrHistogram file is malformed ({exc!r})") from None
        return cls(intervals, total, by_name, workers, started, stopped, first, last)


def _interval(iv: Mapping[str, Any]) -> dict[str, Any]:
    counters = {REQUESTS: int(iv["counters"][REQUESTS]), FAILURES: int(iv["counters"][FAILURES])}
    hists = {str(k): str(v) for k, v in iv["histograms"].items()}
    return {"start": float(iv["start"]), "end": float(iv["end"]), "counters": counters, "histograms": hists}


def decode(enc: str | None) -> HdrHistogram:
    """An encoded histogram (None: empty) as an ``HdrHistogram`` of the harness's range."""
    h = new_histogram()
    if enc:
        h.decode_and_add(enc)
    return h


def _encode(h: HdrHistogram) -> str | None:
    if h.get_total_count() == 0:
        return None
    enc = h.encode()
    return enc.decode() if isinstance(enc, bytes) else str(enc)


def merge_reports(reports: Iterable[tuple[str, WorkerReport]], *, started_at: float | None = None,
                  stopped_at: float | None = None) -> HdrRun:
    """Sum ``(worker id, report)`` pairs, in any order, into one ``HdrRun`` (exact: counts add)."""
    per_sec: dict[int, HdrHistogram] = {}
    counts: dict[int, list[int]] = {}
    by_name: dict[str, HdrHistogram] = {}
    total = new_histogram()
    workers: dict[str, list[int]] = {}  # id -> [requests, failures, reports, final]
    firsts: list[float] = []
    lasts: list[float] = []
    for wid, rep in reports:
        if rep.first_start is not None:
            firsts.append(rep.first_start)
        if rep.last_end is not None:
            lasts.append(rep.last_end)
        w = workers.setdefault(wid, [0, 0, 0, 0])
        w[2] += 1
        w[3] = max(w[3], int(rep.final))
        for sec, d in rep.seconds.items():
            c = counts.setdefault(sec, [0, 0])
            c[0] += d.requests
            c[1] += d.failures
            w[0] += d.requests
            w[1] += d.failures
            if d.histogram:
                h = per_sec.setdefault(sec, new_histogram())
                h.decode_and_add(d.histogram)
        for name, enc in rep.by_name.items():
            by_name.setdefault(name, new_histogram()).decode_and_add(enc)
    intervals: list[dict[str, Any]] = []
    if counts:
        for sec in range(min(counts), max(counts) + 1):
            c = counts.get(sec, [0, 0])
            sec_enc = _encode(per_sec[sec]) if sec in per_sec else None
            if sec in per_sec:
                total.add(per_sec[sec])
            intervals.append({"start": float(sec), "end": float(sec + 1),
                              "counters": {REQUESTS: c[0], FAILURES: c[1]},
                              "histograms": {OP: sec_enc} if sec_enc else {}})
    return HdrRun(tuple(intervals), _encode(total), {n: e for n, h in by_name.items() if (e := _encode(h))},
                  {k: WorkerCounts(v[0], v[1], v[2], bool(v[3])) for k, v in workers.items()}, started_at, stopped_at,
                  min(firsts, default=None), max(lasts, default=None))


def relative_intervals(run: HdrRun, t0: float | None) -> list[dict[str, Any]]:
    """The run's intervals timed from ``floor(t0)`` (default: its first second); seconds before it are left out."""
    if not run.intervals:
        return []
    base = math.floor(t0) if t0 is not None else int(run.intervals[0]["start"])
    return [{**iv, "start": iv["start"] - base, "end": iv["end"] - base} for iv in run.intervals
            if iv["start"] >= base]


def latency_ms(enc: str | None, percentiles: Sequence[float] = (50.0, 95.0, 99.0, 99.9)) -> dict[str, float]:
    """``count``, ``mean_ms``, ``pXX_ms`` and ``max_ms`` of an encoded histogram (zeros when empty)."""
    h = decode(enc)
    n = h.get_total_count()
    out: dict[str, float] = {"count": float(n), "mean_ms": h.get_mean_value() / 1000.0 if n else 0.0}
    for p in percentiles:
        out[f"p{p:g}_ms".replace(".", "_")] = h.get_value_at_percentile(p) / 1000.0 if n else 0.0
    out["max_ms"] = h.get_max_value() / 1000.0 if n else 0.0
    return out


def write_run(path: Path, run: HdrRun) -> None:
    """Atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(run.to_json()))
    os.replace(tmp, path)


def read_run(path: Path) -> HdrRun:
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise HarnessError(f"Locust wrote no HdrHistogram file at {path} (did the locustfile's hooks load?)") from None
    except orjson.JSONDecodeError as exc:
        raise HarnessError(f"Locust's HdrHistogram file {path} is not JSON ({exc})") from None
    return HdrRun.from_json(doc)
