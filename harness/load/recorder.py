"""Per-interval recording of an open-loop run, and the result it produces (pure, no I/O).

The generator (``harness.load.generator``) tells the recorder what happened and when, in
nanoseconds since the run's start; the recorder files each event into 1-second intervals:

- ``<op>``: latency from the *intended* start (coordinated-omission corrected), successful
  operations only, microseconds, ``HdrHistogram(1, 60_000_000, 3)``;
- ``<op>.service``: latency from the *actual* start (service time), successful operations only;
- ``load.generator_lag``: actual start minus intended start, for every started operation;
- counters ``sent``, ``ok``, ``errors``, ``errors{kind=...}``, ``dropped``.

Where a sample lands: a latency and its ok/error count land in the interval in which the
operation *completed* (the HdrHistogram interval-log convention, and the bot's telemetry's);
``sent`` and the lag land where it started; ``dropped`` where it was due. Errors are counted,
not timed: a fast "connection refused" would otherwise make the latency look better.

The result has the ``results.json`` shape (``scenarios[].intervals`` and ``summary``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

NS_PER_S = 1_000_000_000
LAG_KEY = "load.generator_lag"
HIST_LOWEST_US = 1
HIST_HIGHEST_US = 60_000_000
HIST_DIGITS = 3


def new_histogram() -> HdrHistogram:
    return HdrHistogram(HIST_LOWEST_US, HIST_HIGHEST_US, HIST_DIGITS)


def _us(ns: int) -> int:
    # Clamp into the histogram's range: a 0 µs lag is recorded as 1 µs, an hour as 60 s,
    # rather than raising inside the hot path and losing the sample.
    return min(max(ns // 1000, HIST_LOWEST_US), HIST_HIGHEST_US)


@dataclass(frozen=True)
class IntervalRecord:
    """One closed interval: ``start``/``end`` in seconds from the scenario start."""

    start: float
    end: float
    histograms: dict[str, str]
    counters: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "histograms": dict(self.histograms),
            "counters": dict(self.counters),
        }


@dataclass(frozen=True)
class LagPolicy:
    """When the generator itself is declared the bottleneck: its lag p99 or max above a bound."""

    p99_ms: float = 1.0
    max_ms: float = 50.0

    def behind(self, p99_ms: float, max_ms: float) -> bool:
        return p99_ms > self.p99_ms or max_ms > self.max_ms


@dataclass(frozen=True)
class LoadSummary:
    target_rate: float
    achieved_rate: float
    completed_rate: float
    scheduled: int
    sent: int
    ok: int
    errors: int
    dropped: int
    errors_by_kind: dict[str, int]
    generator_lag_p99_ms: float
    generator_lag_max_ms: float
    generator_behind: bool
    duration_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "target_rate": self.target_rate,
            "achieved_rate": self.achieved_rate,
            "completed_rate": self.completed_rate,
            "scheduled": self.scheduled,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "errors_by_kind": dict(self.errors_by_kind),
            "dropped": self.dropped,
            "generator_lag_p99_ms": self.generator_lag_p99_ms,
            "generator_lag_max_ms": self.generator_lag_max_ms,
            "generator_behind": self.generator_behind,
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True)
class LoadResult:
    """What one open-loop run produced; ``intervals`` and ``summary`` go into ``results.json``."""

    op: str
    schedule: dict[str, Any]
    annotations: list[dict[str, Any]]
    intervals: list[IntervalRecord]
    summary: LoadSummary

    def merged(self, key: str) -> HdrHistogram:
        """All intervals' histogram ``key`` added together (empty if never recorded)."""
        total = new_histogram()
        for iv in self.intervals:
            enc = iv.histograms.get(key)
            if enc:
                total.add(HdrHistogram.decode(enc))
        return total

    def counter_total(self, name: str) -> int:
        return sum(iv.counters.get(name, 0) for iv in self.intervals)

    def to_scenario_json(self) -> dict[str, Any]:
        """The parts of a ``results.json`` scenario this run fills in."""
        return {
            "schedule": dict(self.schedule),
            "annotations": list(self.annotations),
            "intervals": [iv.to_json() for iv in self.intervals],
            "summary": self.summary.to_json(),
        }


@dataclass
class _Bucket:
    histograms: dict[str, HdrHistogram] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)

    def hist(self, key: str) -> HdrHistogram:
        h = self.histograms.get(key)
        if h is None:
            h = self.histograms[key] = new_histogram()
        return h


class IntervalSeries:
    """Counters and microsecond histograms bucketed by ``t_ns // interval_ns`` (ns since a start)."""

    def __init__(self, *, interval_ns: int = NS_PER_S, counters: tuple[str, ...] = ()) -> None:
        if interval_ns <= 0:
            raise ValueError(f"interval_ns must be > 0, got {interval_ns}")
        self.interval_ns = interval_ns
        self._zero = dict.fromkeys(counters, 0)
        self._buckets: dict[int, _Bucket] = {}

    def bucket(self, t_ns: int) -> _Bucket:
        idx = max(0, t_ns) // self.interval_ns
        b = self._buckets.get(idx)
        if b is None:
            b = self._buckets[idx] = _Bucket()
        return b

    def count(self, t_ns: int, name: str, n: int = 1) -> None:
        self.bucket(t_ns).counters[name] += n

    def record_us(self, t_ns: int, key: str, value_ns: int) -> None:
        self.bucket(t_ns).hist(key).record_value(_us(value_ns))

    def record_many_us(self, t_ns: int, key: str, values_ns: Iterable[int]) -> None:
        """Samples that all land in the interval of ``t_ns`` (the lookups done once, not per sample)."""
        record = self.bucket(t_ns).hist(key).record_value
        for v in values_ns:
            record(_us(v))

    @property
    def last_index(self) -> int:
        """The newest interval anything was filed in (-1: none yet). Those before it are closed: only a
        drop (a counter, filed where it was due) can still land there."""
        return max(self._buckets, default=-1)

    def peek(self, index: int) -> tuple[Mapping[str, HdrHistogram], Mapping[str, int]]:
        """Interval ``index``'s histograms and counters as recorded so far: live objects for a reader on
        the recording loop (the live dashboard), to copy what it keeps and never change."""
        b = self._buckets.get(index)
        return ({}, {}) if b is None else (b.histograms, b.counters)

    def merged(self, key: str) -> HdrHistogram:
        """Histogram ``key`` over every interval so far."""
        total = new_histogram()
        for b in self._buckets.values():
            h = b.histograms.get(key)
            if h is not None:
                total.add(h)
        return total

    def intervals(self) -> list[IntervalRecord]:
        out: list[IntervalRecord] = []
        # Every interval up to the last event is listed, empty ones included: a gap in the
        # series would hide exactly the stall a reader is looking for.
        for idx in range(max(self._buckets, default=-1) + 1):
            b = self._buckets.get(idx, _Bucket())
            counters = dict(self._zero)
            counters.update(b.counters)
            out.append(
                IntervalRecord(
                    start=idx * self.interval_ns / NS_PER_S,
                    end=(idx + 1) * self.interval_ns / NS_PER_S,
                    histograms={k: h.encode().decode("ascii") for k, h in sorted(b.histograms.items())},
                    counters=counters,
                )
            )
        return out


class IntervalRecorder:
    """Files start/finish/drop events (ns since the run start) into 1-second intervals."""

    def __init__(self, op: str, *, interval_ns: int = NS_PER_S) -> None:
        if not op or op.endswith(".service"):
            raise ValueError(f"op name {op!r} must be non-empty and not end in '.service'")
        self.op = op
        self._service_key = f"{op}.service"
        self._series = IntervalSeries(interval_ns=interval_ns, counters=("sent", "ok", "errors", "dropped"))
        self._lag_total = new_histogram()
        self.sent = 0
        self.ok = 0
        self.errors = 0
        self.dropped = 0
        self.errors_by_kind: Counter[str] = Counter()
        self.last_start_ns = 0
        self.last_end_ns = 0

    @property
    def series(self) -> IntervalSeries:
        """The per-second series being recorded (read-only: ``IntervalSeries.peek``)."""
        return self._series

    def started(self, intended_ns: int, actual_ns: int) -> None:
        lag_us = _us(actual_ns - intended_ns)
        b = self._series.bucket(actual_ns)
        b.hist(LAG_KEY).record_value(lag_us)
        b.counters["sent"] += 1
        self._lag_total.record_value(lag_us)
        self.sent += 1
        self.last_start_ns = max(self.last_start_ns, actual_ns)

    def finished(self, intended_ns: int, actual_ns: int, end_ns: int, error_kind: str | None) -> None:
        b = self._series.bucket(end_ns)
        self.last_end_ns = max(self.last_end_ns, end_ns)
        if error_kind is None:
            b.hist(self.op).record_value(_us(end_ns - intended_ns))
            b.hist(self._service_key).record_value(_us(end_ns - actual_ns))
            b.counters["ok"] += 1
            self.ok += 1
        else:
            b.counters["errors"] += 1
            b.counters[f"errors{{kind={error_kind}}}"] += 1
            self.errors += 1
            self.errors_by_kind[error_kind] += 1

    def dropped_at(self, intended_ns: int) -> None:
        self._series.bucket(intended_ns).counters["dropped"] += 1
        self.dropped += 1

    @property
    def in_flight(self) -> int:
        return self.sent - self.ok - self.errors

    def lag_percentile_ms(self, pct: float) -> float:
        if self._lag_total.get_total_count() == 0:
            return 0.0
        return float(self._lag_total.get_value_at_percentile(pct)) / 1000.0

    def result(
        self,
        *,
        schedule: dict[str, Any],
        annotations: list[dict[str, Any]],
        scheduled: int,
        schedule_duration_s: float,
        lag_policy: LagPolicy = LagPolicy(),
    ) -> LoadResult:
        intervals = self._series.intervals()
        span_start = max(schedule_duration_s, self.last_start_ns / NS_PER_S)
        span_done = max(schedule_duration_s, self.last_end_ns / NS_PER_S)
        p99 = self.lag_percentile_ms(99.0)
        lag_max = float(self._lag_total.get_max_value()) / 1000.0 if self.sent else 0.0
        summary = LoadSummary(
            target_rate=float(scheduled / schedule_duration_s),
            achieved_rate=self.sent / span_start,
            completed_rate=self.ok / span_done,
            scheduled=scheduled,
            sent=self.sent,
            ok=self.ok,
            errors=self.errors,
            dropped=self.dropped,
            errors_by_kind=dict(self.errors_by_kind),
            generator_lag_p99_ms=p99,
            generator_lag_max_ms=lag_max,
            generator_behind=lag_policy.behind(p99, lag_max),
            duration_s=float(span_done),
        )
        return LoadResult(self.op, schedule, annotations, intervals, summary)
