"""Per-interval latency histograms, counters and gauges: what ``/stats`` and ``/metrics`` serve.

Recording is the hot path (thousands of calls per second), so it is O(1) and allocation-free:
``record(op, micros)`` is a dict lookup plus ``HdrHistogram.record_value`` into the *current*
interval's histogram for that operation. Once a second ``rotate()`` closes the interval: each
non-empty histogram is encoded (HdrHistogram's compressed base64, a few KB at most), the encoded
interval is kept in a ring of the last ``keep`` (600) intervals, and the live histogram is reset
and reused. Closed intervals are kept *encoded* because a live ``HdrHistogram(1, 60_000_000, 3)``
holds ~140 KB of counts: 600 seconds of eight live histograms would be most of a gigabyte.

For Prometheus the recorder also keeps cumulative bucket counts per operation as numpy arrays
over the histograms' own ``counts`` buffers (one vector add per rotation, no per-sample cost).

Counter keys are plain names (``ticks_handled``, ``trades_confirmed``) or a name with labels in
braces (``errors{kind=timeout}``); within an interval they count events of that interval only.
Gauges are either set (``set_gauge``) or read at snapshot time from a provider callable.

Not thread-safe by design: call it from the event loop's thread (the signer's worker threads
report back through the loop).

Tags: the harness marks each tick with the scenario (or stress step) that sent it. ``Trader`` sets
``TAG`` (a context variable) for the handling of a tagged tick, and every ``record``/``count`` made
in that context -- in tasks it spawns too, since asyncio copies the context -- is also kept under
the tag. A closed interval then carries ``tags: {tag: {"histograms", "counters"}}`` beside the
totals, so the harness can judge a scenario on the operations its own ticks caused and report
what earlier scenarios left behind as carry-over instead of blaming it on the current one.

Collector overlap: a sample of a judged latency operation (``GC_OVERLAP_OPERATIONS``) that overlapped a
collection pausing 1 ms or more is also recorded under ``<op>.gc_overlap`` (``bot.telemetry.gcclock``:
the collector's hook keeps the end of the last long pause in ``gc_clock``), so the harness can say how
many of the slowest samples a collector pause sat inside.
"""

from __future__ import annotations

import asyncio
import ctypes
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

from bot.telemetry.gcclock import GC_PAUSE_OP, GcClock, is_auxiliary_op, overlap_op

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_FIGURES = 3

SLO_OPERATIONS = ("tx_submission", "price_fetch", "balance_check", "trade_execution")
DEFAULT_OPERATIONS = (
    *SLO_OPERATIONS,
    *(f"{op}.from_tick" for op in SLO_OPERATIONS if op != "trade_execution"),
    "event_loop_lag",
)
# The operations whose samples are checked against the collector's last long pause: the keys the SLO's
# latency rows judge. Not their ``.from_tick``/``.service`` companions, and never a pause or the loop's lag.
GC_OVERLAP_OPERATIONS = SLO_OPERATIONS
MAX_OPERATIONS = 64  # operations beyond the declared ones are created on first use, up to this many
MAX_LIVE_TAGS = 16  # tags with live histograms at once; a scenario's tag retires once it is idle
TAG_IDLE_INTERVALS = 30  # intervals without a sample before a tag's live histograms are freed

# The tag of the tick whose handling is running now (None: not caused by a tagged tick).
TAG: ContextVar[str | None] = ContextVar("telemetry_tag", default=None)

_KEY_RE = re.compile(r"^[a-z_][a-z0-9_]*(\{[a-z_][a-z0-9_]*=[^{},=]+(,[a-z_][a-z0-9_]*=[^{},=]+)*\})?$")


def counter_key(name: str, **labels: str) -> str:
    """``counter_key("errors", kind="timeout") == "errors{kind=timeout}"`` (labels sorted by name)."""
    inner = ",".join(f"{k}={labels[k]}" for k in sorted(labels))
    key = f"{name}{{{inner}}}" if labels else name
    if not _KEY_RE.match(key):
        raise ValueError(f"bad counter key {key!r}: use a lowercase name and label values without {{}},=")
    return key


def parse_counter_key(key: str) -> tuple[str, dict[str, str]]:
    """Inverse of ``counter_key``."""
    if "{" not in key:
        return key, {}
    name, _, rest = key.partition("{")
    labels = dict(part.split("=", 1) for part in rest.rstrip("}").split(","))
    return name, labels


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


def clear(hist: HdrHistogram) -> None:
    """``hist.reset()`` as one memset: hdrh's own reset zeroes its 17,408 counts one by one in Python
    (1.3 ms a histogram, measured), which stalled the loop for tens of ms at every rotation."""
    ctypes.memset(hist.counts, 0, ctypes.sizeof(hist.counts))
    hist.total_count = 0
    hist.min_value = sys.maxsize
    hist.max_value = 0
    hist.start_time_stamp_msec = sys.maxsize
    hist.end_time_stamp_msec = 0


@dataclass(frozen=True, slots=True)
class TagSlice:
    """What one tag's operations recorded within an interval (a subset of the interval's totals)."""

    histograms: Mapping[str, str]
    counters: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"histograms": dict(self.histograms), "counters": dict(self.counters)}


@dataclass(frozen=True, slots=True)
class ClosedInterval:
    seq: int
    start: float  # Unix seconds
    end: float
    histograms: Mapping[str, str]  # op -> HdrHistogram compressed base64
    counters: Mapping[str, int]
    tags: Mapping[str, TagSlice] = field(default_factory=dict)
    levels: Mapping[str, float] = field(default_factory=dict)  # level_provider readings at ``end``

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq,
            "start": self.start,
            "end": self.end,
            "histograms": dict(self.histograms),
            "counters": dict(self.counters),
        }
        if self.tags:
            out["tags"] = {tag: sl.to_json() for tag, sl in self.tags.items()}
        if self.levels:
            out["levels"] = dict(self.levels)
        return out


@dataclass(frozen=True, slots=True)
class TelemetryStatistics:
    seq: int  # the open interval's sequence number
    kept: int  # closed intervals retained
    keep: int  # retention limit
    evicted_total: int  # closed intervals pushed out of the ring (a puller that fell behind lost them)
    samples_total: int
    out_of_range_total: int  # samples clamped into [0, 60 s]
    operations: tuple[str, ...]
    live_tags: tuple[str, ...] = ()
    tags_refused_total: int = 0  # records not split by tag because MAX_LIVE_TAGS were live


class _Op:
    """One operation's live histogram plus exact running sum and count (for Prometheus)."""

    __slots__ = ("count", "cumulative", "hist", "name", "overlap", "sum_us", "view")

    def __init__(self, name: str, overlap: str | None = None) -> None:
        self.name = name
        self.overlap = overlap  # ``<name>.gc_overlap`` for an operation checked against the collector
        self.hist = new_histogram()
        self.view: npt.NDArray[np.uint64] = np.ctypeslib.as_array(self.hist.counts)
        self.cumulative: npt.NDArray[np.uint64] = np.zeros_like(self.view)
        self.sum_us = 0
        self.count = 0


class _Tagged:
    """One tag's live histograms and counters for the open interval."""

    __slots__ = ("counters", "hists", "idle")

    def __init__(self) -> None:
        self.hists: dict[str, HdrHistogram] = {}
        self.counters: dict[str, int] = {}
        self.idle = 0  # closed intervals in a row with nothing recorded

    def close(self, encoded: dict[str, str]) -> Iterator[None]:
        """Encode and clear each non-empty histogram into ``encoded``, yielding after each one.

        Over a copy: a trade completing in a yield may record an operation this tag has not seen
        yet (that sample goes to the next interval). Iterating the live dict raised, and the
        rotation task died with it."""
        for op, h in list(self.hists.items()):
            if h.get_total_count():
                encoded[op] = h.encode().decode("ascii")
                clear(h)
                yield

    def slice(self, encoded: dict[str, str], counters: dict[str, int]) -> TagSlice | None:
        if not encoded and not counters:
            self.idle += 1
            return None
        self.idle = 0
        return TagSlice(encoded, counters)


class Telemetry:
    """The bot's metrics store. See the module docstring; ``payload()`` is the ``/stats`` body."""

    def __init__(
        self,
        *,
        operations: Iterable[str] = DEFAULT_OPERATIONS,
        keep: int = 600,
        interval_s: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
        gc_overlap: Iterable[str] = GC_OVERLAP_OPERATIONS,
    ) -> None:
        if keep < 1 or interval_s <= 0:
            raise ValueError("telemetry: keep must be >= 1 and interval_s > 0")
        self._overlap = frozenset(gc_overlap)
        if bad := sorted(op for op in self._overlap if op == GC_PAUSE_OP or is_auxiliary_op(op)):
            raise ValueError(f"telemetry: gc_overlap {bad} are the collector's own histograms, not operations")
        # Set by bot.telemetry.gcwatch's hook; read by ``record`` for the operations in ``gc_overlap``.
        self.gc_clock = GcClock()
        self._wall = wall_clock
        self.interval_s = interval_s
        self._ops: dict[str, _Op] = {name: self._new_op(name) for name in operations}
        self._closed: deque[ClosedInterval] = deque(maxlen=keep)
        self._keep = keep
        self._seq = 0
        self._start = wall_clock()
        self._counters: dict[str, int] = {}
        self._totals: dict[str, int] = {}
        self._gauges: dict[str, float] = {}
        self._providers: dict[str, Callable[[], float]] = {}
        self._levels: dict[str, Callable[[], float]] = {}
        self._evicted = 0
        self._out_of_range = 0
        self._samples = 0
        self._tagged: dict[str, _Tagged] = {}
        self._tags_refused = 0
        self._task: asyncio.Task[None] | None = None
        self._rotation_hooks: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return (
            f"<Telemetry seq={self._seq} kept={len(self._closed)}/{self._keep} ops={len(self._ops)}"
            f" samples={self._samples}>"
        )

    # -- hot path ---------------------------------------------------------------------------------

    def record(self, op: str, micros: int) -> None:
        """Record one latency sample (integer microseconds) for ``op`` in the current interval.

        For an operation in ``gc_overlap``, a sample that began before the end of the collector's last
        long pause (``gc_clock``) is recorded under ``<op>.gc_overlap`` too. That costs those operations one
        ``time.perf_counter_ns()`` and one compare per record once a long pause has happened (none before);
        every other operation one attribute read. ``micros`` may be wall-clock time
        (``record_since_scheduled``) while "now" is ``perf_counter``: only the duration is compared."""
        slot = self._ops.get(op)
        if slot is None:
            slot = self._add_op(op)
        # 0 is a real value (a loop-lag sample, a sub-microsecond op) and HdrHistogram stores it; only
        # negative values (wall-clock skew against a tick's scheduled time) and > 60 s are clamped.
        if micros > HIGHEST_US or micros < 0:
            self._out_of_range += 1
            micros = HIGHEST_US if micros > HIGHEST_US else 0
        slot.hist.record_value(micros)
        slot.sum_us += micros
        slot.count += 1
        self._samples += 1
        tag = TAG.get()
        if tag is not None:
            tagged = self._tag(tag)
            if tagged is not None:
                h = tagged.hists.get(op)
                if h is None:
                    h = tagged.hists[op] = new_histogram()
                h.record_value(micros)
        if slot.overlap is not None:
            end = self.gc_clock.long_end_ns
            if end and end > time.perf_counter_ns() - micros * 1000:
                self.record(slot.overlap, micros)  # same tag; an overlap slot has no overlap of its own

    def record_untagged(self, op: str, micros: int) -> None:
        """``record`` kept out of every tag's slice: for work no tick caused (a GC pause)."""
        token = TAG.set(None)
        try:
            self.record(op, micros)
        finally:
            TAG.reset(token)

    def record_since_ns(self, op: str, start_ns: int) -> int:
        """Record the time since ``start_ns`` (``time.perf_counter_ns()``); returns it in microseconds."""
        micros = (time.perf_counter_ns() - start_ns) // 1000
        self.record(op, micros)
        return micros

    def record_since_scheduled(self, op: str, scheduled: float) -> int:
        """Record from a tick's scheduled Unix time to now (cross-process, so wall clock by design)."""
        micros = int((self._wall() - scheduled) * 1_000_000)
        self.record(op, micros)
        return micros

    def count(self, key: str, n: int = 1, *, tag: str | None = None) -> None:
        """Count ``n`` events; ``tag`` defaults to the running context's ``TAG``."""
        self._counters[key] = self._counters.get(key, 0) + n
        if tag is None:
            tag = TAG.get()
        if tag is not None:
            tagged = self._tag(tag)
            if tagged is not None:
                tagged.counters[key] = tagged.counters.get(key, 0) + n

    def count_untagged(self, key: str, n: int = 1) -> None:
        """Count into the totals only: for levels such as a peak, which are not any one tag's."""
        self._counters[key] = self._counters.get(key, 0) + n

    def _tag(self, tag: str) -> _Tagged | None:
        tagged = self._tagged.get(tag)
        if tagged is None:
            if len(self._tagged) >= MAX_LIVE_TAGS:
                # Totals still count it; only the per-tag split is lost, and that is counted.
                self._tags_refused += 1
                return None
            tagged = self._tagged[tag] = _Tagged()
        return tagged

    def error(self, kind: str) -> None:
        self.count(_error_key(kind))

    def set_gauge(self, name: str, value: float) -> None:
        self._gauges[name] = value

    def gauge_provider(self, name: str, provider: Callable[[], float]) -> None:
        """Read ``provider()`` whenever gauges are snapshotted (e.g. a limiter's borrowed count)."""
        self._providers[name] = provider

    def add_rotation_hook(self, hook: Callable[[], None]) -> None:
        """``hook()`` runs at the start of every rotation, before the interval closes: a source that buffers
        its samples elsewhere (``bot.telemetry.gcwatch``) records them then, into the closing interval."""
        self._rotation_hooks.append(hook)

    def remove_rotation_hook(self, hook: Callable[[], None]) -> None:
        if hook in self._rotation_hooks:
            self._rotation_hooks.remove(hook)

    def _run_rotation_hooks(self) -> None:
        for hook in tuple(self._rotation_hooks):
            try:
                hook()
            except Exception:  # a broken hook must not stop intervals from closing
                self.count_untagged("rotation_hook_failures")

    def level_provider(self, name: str, provider: Callable[[], float]) -> None:
        """Read ``provider()`` as each interval closes; the value travels in that interval's ``levels``
        (a level such as the heap's size, kept per second where a gauge would keep only the latest)."""
        self._levels[name] = provider

    def _read_levels(self) -> dict[str, float]:
        out = {}
        for name, provider in self._levels.items():
            try:
                out[name] = float(provider())
            except Exception:  # a broken level costs its reading, never the rotation
                continue
        return out

    def _add_op(self, op: str) -> _Op:
        if len(self._ops) >= MAX_OPERATIONS:
            raise ValueError(f"telemetry: too many operations ({MAX_OPERATIONS}); is {op!r} a per-item name?")
        slot = self._ops[op] = self._new_op(op)
        return slot

    def _new_op(self, op: str) -> _Op:
        return _Op(op, overlap_op(op) if op in self._overlap else None)

    # -- intervals --------------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        return self._seq

    def rotate(self) -> ClosedInterval:
        """Close the current interval (whatever its length) and open the next one, all at once."""
        return _finish(self._rotation())

    def _rotation(self) -> Generator[None, None, ClosedInterval]:
        """The rotation as steps: one histogram encoded per step, so the async rotation can let the
        loop run between them (encoding is ~0.5 ms a histogram; 20 at once was a 10 ms stall).

        Counters switch at once, at ``end``. A histogram is closed when its step runs, so a sample
        recorded during the rotation's few milliseconds lands in the closing interval if its
        operation has not been encoded yet and in the next one if it has: never lost, never twice.
        """
        self._run_rotation_hooks()
        end = self._wall()
        levels = self._read_levels() if self._levels else {}
        counters = self._counters
        self._counters = {}
        tag_counters = {tag: t.counters for tag, t in self._tagged.items()}
        for t in self._tagged.values():
            t.counters = {}
        encoded: dict[str, str] = {}
        for name, slot in list(self._ops.items()):
            if slot.hist.get_total_count():
                encoded[name] = slot.hist.encode().decode("ascii")
                slot.cumulative += slot.view
                clear(slot.hist)
                yield
        for key, n in counters.items():
            self._totals[key] = self._totals.get(key, 0) + n
        tags: dict[str, TagSlice] = {}
        for tag, tagged in list(self._tagged.items()):
            tag_encoded: dict[str, str] = {}
            yield from tagged.close(tag_encoded)
            sl = tagged.slice(tag_encoded, tag_counters.get(tag, {}))
            if sl is not None:
                tags[tag] = sl
            elif tagged.idle >= TAG_IDLE_INTERVALS and not tagged.counters:
                del self._tagged[tag]  # its live histograms are ~140 KB each
        closed = ClosedInterval(self._seq, self._start, end, encoded, counters, tags, levels)
        if len(self._closed) == self._keep:
            self._evicted += 1
        self._closed.append(closed)
        self._seq += 1
        self._start = end
        return closed

    async def rotate_async(self) -> ClosedInterval:
        """``rotate()`` with the loop let run between histograms. Cancelled midway, it finishes the
        rotation synchronously first: a half-closed interval would lose the samples already cleared."""
        steps = self._rotation()
        while True:
            try:
                next(steps)
            except StopIteration as done:
                closed: ClosedInterval = done.value
                return closed
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                _finish(steps)
                raise

    def intervals_since(self, since: int | None = None) -> list[ClosedInterval]:
        """Closed intervals with ``seq > since`` (all retained ones when ``since`` is None)."""
        if since is None:
            return list(self._closed)
        return [iv for iv in self._closed if iv.seq > since]

    def gauges(self) -> dict[str, float]:
        out = dict(self._gauges)
        for name, provider in self._providers.items():
            out[name] = provider()
        return out

    def payload(self, since: int | None = None) -> dict[str, Any]:
        """The ``GET /stats?since=SEQ`` body, exactly as docs/DESIGN.md "Telemetry payload" specifies."""
        return {
            "seq": self._seq,
            "now": self._wall(),
            "intervals": [iv.to_json() for iv in self.intervals_since(since)],
            "gauges": self.gauges(),
        }

    # -- cumulative views (Prometheus) ---------------------------------------------------------------

    def operations(self) -> list[str]:
        return list(self._ops)

    def cumulative_counts(self, op: str) -> tuple[npt.NDArray[np.uint64], int, int]:
        """``(counts, count, sum_us)`` since start, including the open interval."""
        slot = self._ops[op]
        return slot.cumulative + slot.view, slot.count, slot.sum_us

    def bucket_index(self, micros: int) -> int:
        """Index in ``cumulative_counts`` of the histogram bucket holding ``micros``."""
        any_slot = next(iter(self._ops.values()), None)
        hist = any_slot.hist if any_slot is not None else new_histogram()
        return int(hist._counts_index_for(max(0, min(HIGHEST_US, micros))))

    def counter_totals(self) -> dict[str, int]:
        """Every counter since start, including the open interval."""
        out = dict(self._totals)
        for key, n in self._counters.items():
            out[key] = out.get(key, 0) + n
        return out

    def statistics(self) -> TelemetryStatistics:
        return TelemetryStatistics(
            seq=self._seq,
            kept=len(self._closed),
            keep=self._keep,
            evicted_total=self._evicted,
            samples_total=self._samples,
            out_of_range_total=self._out_of_range,
            operations=tuple(self._ops),
            live_tags=tuple(self._tagged),
            tags_refused_total=self._tags_refused,
        )

    # -- the rotation task ----------------------------------------------------------------------------

    async def run(self, *, max_intervals: int | None = None) -> None:
        """Rotate every ``interval_s`` (on a monotonic schedule, so lag does not accumulate)."""
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self.interval_s
        done = 0
        while max_intervals is None or done < max_intervals:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            await self.rotate_async()
            done += 1
            next_at += self.interval_s
            if next_at < loop.time():  # stalled for more than an interval: do not replay missed ticks
                next_at = loop.time() + self.interval_s

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="telemetry-rotation")
        return self._task

    async def stop(self) -> None:
        """Stop rotating and close the open interval, so its samples are not lost."""
        if self._task is not None:
            self._task.cancel()
            # asyncio.wait does not re-raise the task's CancelledError, so our own cancellation stays visible.
            await asyncio.wait([self._task])
            self._task = None
        self.rotate()


def _finish(steps: Generator[None, None, ClosedInterval]) -> ClosedInterval:
    """Run a rotation's remaining steps at once; returns the interval it closed."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            closed: ClosedInterval = done.value
            return closed


_error_keys: dict[str, str] = {}


def _error_key(kind: str) -> str:
    key = _error_keys.get(kind)
    if key is None:
        safe = re.sub(r"[{},=\s]", "_", kind) or "unknown"
        key = _error_keys[kind] = f"errors{{kind={safe}}}"
    return key
