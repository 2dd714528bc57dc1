"""The bot's heap levels as a series beside RSS (pure).

The bot reads ``heap_blocks`` (``sys.getallocatedblocks()``) and, when tracing, ``heap_bytes``
(tracemalloc's traced bytes) as each telemetry interval closes and sends them in that interval's
``levels`` (``bot.heapwatch``). Here they become ``[t, heap_bytes, heap_blocks]`` samples (t: seconds
since the scenario start, from the interval's wall-clock end), and each sample is put on the resource
sample nearest in time as ``x_heap_bytes`` / ``x_heap_blocks`` (the schema's place for them), where
the ``memory_leak`` judge reads the heap series beside ``rss_bytes``. The resource samples come every
0.5 s and the levels every second, so each level lands on its own sample, at most 0.25 s from its time.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any

HEAP_BYTES = "x_heap_bytes"
HEAP_BLOCKS = "x_heap_blocks"
MAX_GAP_S = 0.75  # a level farther than this from every resource sample is left out (a sampler gap)

HeapSample = tuple[float, float | None, float | None]  # t, heap bytes (None: not traced), heap blocks


def _level(levels: Mapping[str, Any], key: str) -> float | None:
    v = levels.get(key)
    # -1: the bot stopped tracing (a level must be a number); a bool is not a level
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 else None


def heap_samples(t0_wall: float, bot_intervals: Iterable[Mapping[str, Any]]) -> list[HeapSample]:
    """The heap levels of the bot intervals that closed after ``t0_wall``, timed from it."""
    out: list[HeapSample] = []
    for iv in bot_intervals:
        levels = iv.get("levels")
        end = iv.get("end")
        if not isinstance(levels, Mapping) or not isinstance(end, int | float) or end <= t0_wall:
            continue
        b, n = _level(levels, "heap_bytes"), _level(levels, "heap_blocks")
        if b is not None or n is not None:
            out.append((round(float(end) - t0_wall, 3), b, n))
    return out


def attach_heap(resources: Sequence[MutableMapping[str, Any]], samples: Iterable[Sequence[Any]]) -> int:
    """Put each heap sample on the nearest resource sample (by ``t``) within ``MAX_GAP_S`` that has none yet;
    returns how many found a place. ``resources`` must be in time order (as every writer keeps them)."""
    times = [float(r.get("t", 0.0)) for r in resources]
    placed = 0
    for s in samples:
        if len(s) != 3 or not isinstance(s[0], int | float):
            continue
        t, b, n = float(s[0]), s[1], s[2]
        i = bisect.bisect_left(times, t)
        near = sorted((j for j in (i - 1, i, i + 1) if 0 <= j < len(times) and abs(times[j] - t) <= MAX_GAP_S),
                      key=lambda j: abs(times[j] - t))
        for j in near:
            r = resources[j]
            if HEAP_BYTES in r or HEAP_BLOCKS in r:
                continue
            if isinstance(b, int | float):
                r[HEAP_BYTES] = int(b)
            if isinstance(n, int | float):
                r[HEAP_BLOCKS] = int(n)
            placed += 1
            break
    return placed
