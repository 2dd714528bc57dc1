"""The Python heap, watched: live blocks always, live bytes and the sites that grew when tracing is on.

``heap_blocks`` is ``sys.getallocatedblocks()``: every block the interpreter's object allocator holds,
pymalloc's small ones and the large ones it passes to malloc (10-35 µs a call here, read once a
second: free). It counts blocks, not bytes, so a leak of few large objects barely moves it.

``heap_bytes`` and the growth sites need ``tracemalloc`` (``debug.heap_trace_frames = N`` > 0, set by
``harness soak``). It is not free: measured on the bot's hot paths (harness/gate/cases.py) with one
frame, each call took 2.6-15x as long (decoding a JSON-RPC batch 95 -> 940 µs), and 2.3-5.5x again
on top of memray, so it is a soak/debug setting, never on by default. ``get_traced_memory()`` itself
costs ~5 µs.

Growth, not what is left: ``baseline()`` (the harness calls it when the soak's warm-up ends) takes a
snapshot and keeps only its totals per allocation site (innermost frame first, up to N frames);
``growth()`` takes another and returns the sites whose live bytes grew most since. Snapshots run in a
worker thread (the grouping is Python code over every live trace; the loop gets the GIL back every
switch interval) and at most one every ``min_interval_s``: a caller polling faster gets the last
result again. While a snapshot exists its own allocations are traced and counted too, so ``heap_bytes()``
and ``heap_blocks()`` hold their values from before the snapshot until it is gone, or every snapshot would
be a spike in the series.
"""

from __future__ import annotations

import asyncio
import ctypes
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_FRAMES = 16
DEFAULT_TOP = 20
MIN_INTERVAL_S = 5.0

Frames = tuple[tuple[str, int], ...]  # innermost first, as tracemalloc's raw traces hold them
SiteTotals = dict[Frames, tuple[int, int]]  # frames -> (bytes, blocks)

# tracemalloc's own bookkeeping and this module's snapshots are not the bot's growth.
_IGNORED = (tracemalloc.__file__, __file__)


class HeapWatchError(RuntimeError):
    """A request the watch cannot answer now (tracing off, no baseline yet); the message says why."""


@dataclass(frozen=True, slots=True)
class SiteGrowth:
    """One allocation site: its live bytes and blocks now, and how much they grew since the baseline."""

    file: str
    line: int
    stack: tuple[str, ...]  # the callers ("file:line"), innermost first; empty with one frame
    bytes_grown: int
    count_grown: int
    bytes_now: int
    count_now: int

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "stack": list(self.stack), "bytes_grown": self.bytes_grown,
                "count_grown": self.count_grown, "bytes_now": self.bytes_now, "count_now": self.count_now}


@dataclass(frozen=True, slots=True)
class HeapGrowth:
    """The sites that grew most between the baseline snapshot and the latest one (Unix times)."""

    baseline_at: float
    at: float
    frames: int
    traced_bytes_baseline: int
    traced_bytes_now: int
    sites: tuple[SiteGrowth, ...]
    sites_grown: int  # sites with any growth (``sites`` holds the top of them)
    snapshot_ms: float  # what taking and grouping the latest snapshot cost, in the worker thread
    seq: int  # the snapshot's number: a caller sees whether it is new

    @property
    def span_s(self) -> float:
        return self.at - self.baseline_at

    def to_json(self) -> dict[str, Any]:
        return {"baseline_at": self.baseline_at, "at": self.at, "span_s": round(self.span_s, 3),
                "frames": self.frames, "traced_bytes_baseline": self.traced_bytes_baseline,
                "traced_bytes_now": self.traced_bytes_now, "sites_grown": self.sites_grown,
                "snapshot_ms": round(self.snapshot_ms, 1), "seq": self.seq,
                "sites": [s.to_json() for s in self.sites]}


@dataclass(frozen=True, slots=True)
class HeapWatchStatistics:
    frames: int
    tracing: bool
    heap_blocks: int
    heap_bytes: int | None
    baseline_at: float | None
    snapshots: int
    last_snapshot_ms: float | None


def group_sites(stats: Iterable[tuple[Frames, int, int]], ignored: tuple[str, ...] = _IGNORED) -> SiteTotals:
    """(bytes, blocks) per allocation site from (frames innermost first, bytes, blocks) triples, summed
    per site; sites whose innermost frame is in an ``ignored`` file are left out."""
    out: SiteTotals = {}
    skip = frozenset(ignored)
    for frames, size, count in stats:
        if not frames or frames[0][0] in skip:
            continue
        have = out.get(frames)
        out[frames] = (size, count) if have is None else (have[0] + size, have[1] + count)
    return out


def diff_sites(base: Mapping[Frames, tuple[int, int]], now: Mapping[Frames, tuple[int, int]],
               top: int = DEFAULT_TOP) -> tuple[list[SiteGrowth], int]:
    """The ``top`` sites by bytes grown from ``base`` to ``now`` (ties: more blocks first, then by name),
    and how many sites grew at all. A site absent from ``base`` grew from zero; one that shrank is left out."""
    grown: list[SiteGrowth] = []
    for frames, (size, count) in now.items():
        b_size, b_count = base.get(frames, (0, 0))
        if size - b_size <= 0:
            continue
        grown.append(SiteGrowth(frames[0][0], frames[0][1], tuple(f"{f}:{n}" for f, n in frames[1:]),
                                size - b_size, count - b_count, size, count))
    grown.sort(key=lambda s: (-s.bytes_grown, -s.count_grown, s.file, s.line, s.stack))
    return grown[:max(0, top)], len(grown)


def _by_traceback(raw: Sequence[tuple[Any, int, Frames, Any]]) -> Iterator[tuple[Frames, int, int]]:
    """(frames, bytes, blocks) per traceback of tracemalloc's raw traces (domain, size, frames, n).

    Vectorised: a Python loop over the traces is itself traced, and ran at ~7 µs a trace (1.5 s for 200k);
    grouping by the traceback tuples' identity (tracemalloc hands out one tuple per distinct traceback; a
    duplicate is merged again by ``group_sites``) takes ~2 µs."""
    n = len(raw)
    if n == 0:
        return
    ids = np.fromiter((id(r[2]) for r in raw), dtype=np.int64, count=n)
    sizes = np.fromiter((r[1] for r in raw), dtype=np.int64, count=n)
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    size_sums = np.bincount(inverse, weights=sizes, minlength=len(uniq))
    counts = np.bincount(inverse, minlength=len(uniq))
    for i, at in enumerate(first.tolist()):
        yield raw[at][2], int(size_sums[i]), int(counts[i])


def _snapshot() -> tuple[SiteTotals, int, float]:
    """Group a fresh snapshot by site: (totals, traced bytes at the start, milliseconds it took)."""
    t = time.perf_counter()
    traced = tracemalloc.get_traced_memory()[0]
    # The raw tuples (CPython's layout, innermost frame first): the public Trace objects cost ~5 µs each.
    raw = tracemalloc.take_snapshot().traces._traces  # type: ignore[attr-defined]
    totals = group_sites(_by_traceback(raw))
    del raw
    _trim()
    return totals, traced, (time.perf_counter() - t) * 1000


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        fn: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return fn


_MALLOC_TRIM = _malloc_trim()


def _trim() -> None:
    """Give the snapshot's freed memory back to the system. A snapshot copies every live trace (and
    tracemalloc traces the copy, in malloc'd entries): glibc kept 13-93 MB of it as free heap after the
    first snapshot of 300k blocks, RSS the leak statistic would read as growth. ``malloc_trim(0)`` returns
    it (every arena). What it cannot return is a pymalloc arena the bot's own objects pin: ~1 MB per
    snapshot (harness.run.heapgrowth keeps snapshots few for that)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class HeapWatch:
    """See the module docstring. ``frames`` 0: blocks only (nothing is traced)."""

    def __init__(self, frames: int = 0, *, min_interval_s: float = MIN_INTERVAL_S,
                 clock: Callable[[], float] = time.time) -> None:
        if not 0 <= frames <= MAX_FRAMES:
            raise ValueError(f"heap trace frames must be 0-{MAX_FRAMES}, got {frames}")
        self.frames = frames
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._owns = False
        self._base: SiteTotals | None = None
        self._base_at: float | None = None
        self._base_traced = 0
        self._last: HeapGrowth | None = None
        self._held: tuple[int, int] | None = None  # (heap bytes, blocks) from before the live snapshot
        self._lock = asyncio.Lock()
        self._snapshots = 0
        self._last_ms: float | None = None

    def __repr__(self) -> str:
        state = "tracing" if self.tracing else "blocks only"
        return f"<HeapWatch {state} frames={self.frames} snapshots={self._snapshots}>"

    @property
    def tracing(self) -> bool:
        return self.frames > 0 and tracemalloc.is_tracing()

    def start(self) -> None:
        if self.frames > 0 and not tracemalloc.is_tracing():
            tracemalloc.start(self.frames)
            self._owns = True

    def stop(self) -> None:
        if self._owns and tracemalloc.is_tracing():
            tracemalloc.stop()
        self._owns = False

    # -- the levels, read once a second -------------------------------------------------------------

    def heap_blocks(self) -> float:
        return float(self._held[1] if self._held is not None else sys.getallocatedblocks())

    def heap_bytes(self) -> float | None:
        if not self.tracing:
            return None
        if self._held is not None:
            return float(self._held[0])
        return float(tracemalloc.get_traced_memory()[0])

    # -- snapshots --------------------------------------------------------------------------------------

    async def _take(self) -> tuple[SiteTotals, int, float]:
        if not self.tracing:
            raise HeapWatchError("heap tracing is off: set debug.heap_trace_frames (harness soak does) to see "
                                 "allocation sites")
        self._held = (tracemalloc.get_traced_memory()[0], sys.getallocatedblocks())
        try:
            totals, traced, ms = await asyncio.to_thread(_snapshot)
        finally:
            self._held = None
        self._snapshots += 1
        self._last_ms = ms
        return totals, traced, ms

    async def baseline(self) -> dict[str, Any]:
        """Snapshot now as the point growth is measured from (replacing any earlier baseline)."""
        async with self._lock:
            totals, traced, ms = await self._take()
            self._base, self._base_at, self._base_traced, self._last = totals, self._clock(), traced, None
        return {"baseline_at": self._base_at, "traced_bytes": traced, "sites": len(totals),
                "snapshot_ms": round(ms, 1)}

    async def growth(self, top: int = DEFAULT_TOP) -> HeapGrowth:
        """The sites that grew most since the baseline; the last result again if it is fresher than
        ``min_interval_s`` (a snapshot costs tens to hundreds of ms of CPU)."""
        async with self._lock:
            last = self._last
            if last is not None and self._clock() - last.at < self.min_interval_s and len(last.sites) >= min(
                    top, last.sites_grown):
                return last
            if self._base is None or self._base_at is None:
                raise HeapWatchError("no baseline yet: POST /debug/heap/baseline once warm-up is over")
            totals, traced, ms = await self._take()
            sites, n = diff_sites(self._base, totals, top)
            self._last = HeapGrowth(self._base_at, self._clock(), self.frames, self._base_traced, traced,
                                    tuple(sites), n, ms, self._snapshots)
            return self._last

    def statistics(self) -> HeapWatchStatistics:
        hb = self.heap_bytes()
        return HeapWatchStatistics(self.frames, self.tracing, int(self.heap_blocks()),
                                   None if hb is None else int(hb), self._base_at, self._snapshots, self._last_ms)


def register_heap_levels(telemetry: Any, watch: HeapWatch) -> None:
    """``heap_blocks`` (and ``heap_bytes`` when tracing) as gauges and as levels of every closed interval
    (``bot.telemetry.recorder``: the harness's checkpoints keep them beside RSS)."""
    telemetry.gauge_provider("heap_blocks", watch.heap_blocks)
    telemetry.level_provider("heap_blocks", watch.heap_blocks)
    if watch.frames > 0:
        def traced() -> float:
            v = watch.heap_bytes()
            return -1.0 if v is None else v  # -1: tracing was stopped (a level is a number)

        telemetry.gauge_provider("heap_bytes", traced)
        telemetry.level_provider("heap_bytes", traced)
