"""Garbage-collector pauses: every collection timed by a ``gc.callbacks`` hook, per generation.

The hook only appends: ``start`` notes ``perf_counter_ns()``, ``stop`` appends the pause (with its
generation packed into the low bits) to an ``array`` and adds the collected/uncollectable counts to
plain lists. Nothing is recorded into ``Telemetry`` from inside the hook, because a collection starts
at whatever allocation crosses the threshold, including one inside the recorder's own loops over its
dicts: a counter created there raised "dictionary changed size during iteration". Instead the recorder's
rotation calls ``drain()`` (a rotation hook) before it closes the interval, and the pauses land in the
interval in which they ended:

- histogram ``gc_pause`` (microseconds, every generation; untagged: no tick caused it), and the same pauses
  split by generation under ``gc_pause.gen0`` .. ``gc_pause.gen2`` (auxiliary histograms, not operations:
  ``bot.telemetry.gcclock.is_auxiliary_op``);
- counters ``gc_collections{generation=G}``, ``gc_pause_us{generation=G}`` (the total pause, so the share
  of wall time in GC is exact rather than read off histogram buckets), ``gc_cpu_us{generation=G}``,
  ``gc_collected{generation=G}`` and ``gc_uncollectable{generation=G}``.

A pause is wall time: what the event loop lost. On a shared machine it also holds the time the collector
waited for a core, so the thread's CPU time in collections (``time.thread_time_ns``) is kept beside it: the
collector's own cost, which a busy neighbour does not inflate. The hook costs four clock reads and an append
per collection (~1-2 µs against pauses of tens of µs and up).
``freeze_startup`` collects once and moves every surviving object into the permanent generation, so the
objects built at startup (modules, ABI tables, pools) are never scanned again.

At the stop of a pause of ``LONG_PAUSE_NS`` (1 ms) or more the hook also stores its end in the telemetry's
``gc_clock`` (``bot.telemetry.gcclock``), from which the recorder marks the latency samples that overlapped
it (``<op>.gc_overlap``). That store is immediate, not drained: a trade completing right after the pause
must see it. ``clock`` must therefore be ``time.perf_counter_ns`` (the default) for the overlap to hold.
"""

from __future__ import annotations

import gc
import logging
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.telemetry import gcclock
from bot.telemetry.gcclock import GC_PAUSE_GEN_OPS, LONG_PAUSE_NS
from bot.telemetry.recorder import Telemetry, counter_key

log = logging.getLogger("bot.gc")

GC_PAUSE_OP = gcclock.GC_PAUSE_OP  # named in gcclock for the recorder; its users import it from here
GENERATIONS = (0, 1, 2)
COLLECTIONS = tuple(counter_key("gc_collections", generation=str(g)) for g in GENERATIONS)
PAUSE_US = tuple(counter_key("gc_pause_us", generation=str(g)) for g in GENERATIONS)
CPU_US = tuple(counter_key("gc_cpu_us", generation=str(g)) for g in GENERATIONS)
COLLECTED = tuple(counter_key("gc_collected", generation=str(g)) for g in GENERATIONS)
UNCOLLECTABLE = tuple(counter_key("gc_uncollectable", generation=str(g)) for g in GENERATIONS)
# Pauses waiting for the next rotation. Hundreds per second at most; the bound only matters if rotations
# stopped (a crashed rotation task waiting for its restart), and then the excess is counted as dropped.
MAX_PENDING = 1 << 16
_GEN_BITS = 2


@dataclass(frozen=True, slots=True)
class GcStatistics:
    installed: bool
    collections: tuple[int, ...]  # per generation, since install
    pause_ns: tuple[int, ...]  # total pause per generation
    cpu_ns: tuple[int, ...]  # the collecting thread's CPU time per generation
    max_pause_ns: int
    collected: tuple[int, ...]
    uncollectable: tuple[int, ...]
    pending: int  # pauses timed and not yet handed to the telemetry
    dropped: int  # pauses lost because ``pending`` was full
    frozen: int  # objects this watch froze (``freeze``)


class GcWatch:
    """Times every collection; ``install()`` hooks it into ``gc.callbacks`` and the recorder's rotation."""

    def __init__(self, telemetry: Telemetry, *, clock: Callable[[], int] = time.perf_counter_ns,
                 cpu_clock: Callable[[], int] = time.thread_time_ns) -> None:
        self._t = telemetry
        self._gc_clock = telemetry.gc_clock
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._t0 = 0
        self._c0 = 0
        self._pending = array("q")
        self._collections = [0, 0, 0]
        self._pause_ns = [0, 0, 0]
        self._cpu_ns = [0, 0, 0]
        self._drained_cpu_us = [0, 0, 0]
        self._max_ns = 0
        self._collected = [0, 0, 0]
        self._uncollectable = [0, 0, 0]
        self._drained_collected = [0, 0, 0]
        self._drained_uncollectable = [0, 0, 0]
        self._dropped = 0
        self._installed = False
        self._threshold_before: tuple[int, ...] | None = None
        self._frozen = False
        self._frozen_count = 0

    def __repr__(self) -> str:
        return (f"<GcWatch installed={self._installed} collections={self._collections} "
                f"max_pause_us={self._max_ns // 1000} pending={len(self._pending)}>")

    def install(self, threshold: tuple[int, int, int] | None = None) -> None:
        """Start timing collections; ``threshold``: ``gc.set_threshold`` for as long as it is installed."""
        if self._installed:
            return
        if threshold is not None:
            self._threshold_before = gc.get_threshold()
            gc.set_threshold(*threshold)
        gc.callbacks.append(self._callback)
        self._t.add_rotation_hook(self.drain)
        # Not gc.get_freeze_count() per read: it walks the whole permanent generation (83k objects, a
        # profile's 3% of the bot's samples when /health read gauges 40 times a second).
        self._t.gauge_provider("gc_frozen_objects", lambda: float(self._frozen_count))
        self._installed = True

    def freeze(self) -> int:
        """``freeze_startup()``, undone by ``uninstall``; returns the objects frozen."""
        self._frozen = True
        self._frozen_count = freeze_startup()
        return self._frozen_count

    def uninstall(self) -> None:
        """Unhook, handing what is pending to the open interval (call it before the recorder's last rotation),
        and undo ``freeze`` and the threshold: the process may go on (a test) without the bot."""
        if not self._installed:
            return
        gc.callbacks.remove(self._callback)
        self.drain()
        self._t.remove_rotation_hook(self.drain)
        self._installed = False
        if self._frozen:
            gc.unfreeze()
            self._frozen, self._frozen_count = False, 0
        if self._threshold_before is not None:
            gc.set_threshold(*self._threshold_before)
            self._threshold_before = None

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside the collector, which does not re-enter while it runs: plain appends are safe.
        if phase == "start":
            self._c0 = self._cpu_clock()
            self._t0 = self._clock()
            return
        end = self._clock()
        ns = end - self._t0
        cpu = self._cpu_clock() - self._c0
        if ns >= LONG_PAUSE_NS:
            self._gc_clock.long_end_ns = end
        g = info["generation"]
        self._collections[g] += 1
        self._pause_ns[g] += ns
        self._cpu_ns[g] += cpu
        self._max_ns = max(self._max_ns, ns)
        self._collected[g] += info["collected"]
        self._uncollectable[g] += info["uncollectable"]
        if len(self._pending) < MAX_PENDING:
            self._pending.append((ns << _GEN_BITS) | g)
        else:
            self._dropped += 1

    def drain(self) -> None:
        """Record the pauses timed since the last drain into the telemetry's open interval."""
        # One swap: a collection triggered while this runs appends to the new array, never lost.
        pending, self._pending = self._pending, array("q")
        counts = [0, 0, 0]
        total_ns = [0, 0, 0]
        mask = (1 << _GEN_BITS) - 1
        for packed in pending:
            g, ns = packed & mask, packed >> _GEN_BITS
            counts[g] += 1
            total_ns[g] += ns
            self._t.record_untagged(GC_PAUSE_OP, ns // 1000)
            self._t.record_untagged(GC_PAUSE_GEN_OPS[g], ns // 1000)
        for g in GENERATIONS:
            if counts[g]:
                self._t.count_untagged(COLLECTIONS[g], counts[g])
                self._t.count_untagged(PAUSE_US[g], total_ns[g] // 1000)
            self._hand_over(g, self._collected, self._drained_collected, COLLECTED)
            self._hand_over(g, self._uncollectable, self._drained_uncollectable, UNCOLLECTABLE)
            self._hand_over(g, self._cpu_ns, self._drained_cpu_us, CPU_US, scale=1000)

    def _hand_over(self, g: int, totals: list[int], drained: list[int], keys: tuple[str, ...], scale: int = 1,
                   ) -> None:
        """Count what ``totals[g]`` (cumulative, in 1/``scale`` of the counter's unit) grew by since the last drain."""
        now = totals[g] // scale
        if now != drained[g]:
            self._t.count_untagged(keys[g], now - drained[g])
            drained[g] = now

    def statistics(self) -> GcStatistics:
        return GcStatistics(
            installed=self._installed, collections=tuple(self._collections), pause_ns=tuple(self._pause_ns),
            cpu_ns=tuple(self._cpu_ns),
            max_pause_ns=self._max_ns, collected=tuple(self._collected),
            uncollectable=tuple(self._uncollectable), pending=len(self._pending), dropped=self._dropped,
            frozen=self._frozen_count,
        )


def freeze_startup() -> int:
    """Collect once, then move every surviving object to the permanent generation; returns how many.

    The collection first, so that startup's garbage is freed rather than frozen for the process's life."""
    t0 = time.perf_counter_ns()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("gc.freeze: %d startup objects frozen (%.1f ms)", frozen, (time.perf_counter_ns() - t0) / 1e6)
    return frozen
