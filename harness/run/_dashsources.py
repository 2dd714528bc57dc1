"""Where the live dashboard's figures come from: the run's stack, or ``harness load``'s generator.

A source is called on the event loop (a few times a second) and returns ``Figures``. It keeps the
last ``KEEP`` closed intervals decoded (by the bot's ``seq``, or a series' index), so a refresh with
no newly closed second decodes nothing, and one with a new second decodes only that second's few
histograms (~0.4 ms each).
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import psutil

from harness.errors import ConfigError
from harness.load.recorder import IntervalSeries
from harness.run._dashmodel import Figures
from harness.run._dashwindow import Closed, decode_bot_interval, dense, from_series
from harness.run.dashboard import FEED_LAG_KEY, GENERATOR_LAG_KEY, RUN_OPS, WINDOW_S, load_figures, run_figures
from harness.stats.histograms import COUNTS_LEN, IntArray

if TYPE_CHECKING:
    from harness.load.generator import OpenLoopGenerator
    from harness.run.stack import Stack

KEEP = 30  # closed intervals kept decoded: the window's ten and room for a late refresh


class _SeriesTail:
    """The closed intervals of one live ``IntervalSeries``, each copied once; starts over with a new series."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self.closed: deque[Closed] = deque(maxlen=KEEP)
        self._series: IntervalSeries | None = None
        self._done = -1

    def take(self, series: IntervalSeries, running: bool) -> list[Closed]:
        """Intervals closed since the last call (all of them once the series stopped recording)."""
        if series is not self._series:
            self._series, self._done = series, -1
            self.closed.clear()
        upto = series.last_index + (0 if running else 1)
        new = [from_series(i, *series.peek(i), self.keys, series.interval_ns / 1e9)
               for i in range(max(self._done + 1, upto - KEEP), upto)]
        self._done = max(self._done, upto - 1)
        self.closed.extend(new)
        return new


class RunSource:
    """``run``/``soak``: the bot's telemetry, its last resource sample, and the market-data feed's series."""

    def __init__(self, st: Stack, limits: Mapping[str, Mapping[str, float]] | None = None,
                 window_s: float = WINDOW_S) -> None:
        self._st = st
        self._limits = dict(limits or {})
        self._window_s = window_s
        self._bot: deque[Closed] = deque(maxlen=KEEP)
        self._puller: object = None
        self._feed = _SeriesTail((FEED_LAG_KEY,))

    def __repr__(self) -> str:
        return f"<RunSource bot_intervals={len(self._bot)} feed_intervals={len(self._feed.closed)}>"

    def _take_bot(self, intervals: Sequence[Mapping[str, Any]]) -> None:
        last = self._bot[-1].key if self._bot else -1
        new: list[Mapping[str, Any]] = []
        for iv in reversed(intervals):  # the puller keeps every interval: read back only to the last seen
            if int(iv.get("seq", -1)) <= last or len(new) >= KEEP:
                break
            new.append(iv)
        for iv in reversed(new):
            try:
                self._bot.append(decode_bot_interval(iv, RUN_OPS))
            except (ConfigError, KeyError, TypeError, ValueError):
                continue  # a malformed interval costs its own second of the view, nothing more

    def __call__(self) -> Figures:
        st = self._st
        try:  # a bot session being replaced (--fresh-bot, a chain reset) has no probes yet
            puller, sampler = st.puller, st.sampler
        except AttributeError:
            puller, sampler = None, None
        if puller is not self._puller:
            self._puller = puller
            self._bot.clear()  # a new bot counts its intervals from 0 again
        gauges: Mapping[str, Any] = {}
        rss, cpu = None, None
        if puller is not None:
            self._take_bot(puller.intervals)
            gauges = puller.gauges
        if sampler is not None and sampler.series.samples:
            sample = sampler.series.samples[-1]
            rss, cpu = sample.rss_bytes, sample.cpu_percent
        running = st.feed.statistics().running
        self._feed.take(st.feed.series, running)
        return run_figures(list(self._bot), gauges=gauges, rss_bytes=rss, cpu_percent=cpu,
                           feed=list(self._feed.closed), feed_running=running, limits=self._limits,
                           window_s=self._window_s)


class LoadSource:
    """``harness load``: the open-loop generator's series and counters, and this process's RSS and CPU
    (the generator's own: near a full core, it is the bottleneck)."""

    def __init__(self, gen: OpenLoopGenerator, window_s: float = WINDOW_S) -> None:
        self._gen = gen
        self._op = gen.name
        self._window_s = window_s
        self._tail = _SeriesTail((self._op, f"{self._op}.service", GENERATOR_LAG_KEY))
        self._so_far: dict[str, IntArray] = {k: np.zeros(COUNTS_LEN, dtype=np.int64) for k in self._tail.keys[:2]}
        self._proc = psutil.Process()
        self._cpu_at = (time.monotonic(), time.process_time())
        self._cpu: float | None = None

    def __repr__(self) -> str:
        return f"<LoadSource {self._op!r} closed={len(self._tail.closed)}>"

    def _cpu_percent(self) -> float | None:
        now = (time.monotonic(), time.process_time())
        wall, cpu = now[0] - self._cpu_at[0], now[1] - self._cpu_at[1]
        if wall >= 1.0:  # over at least a second, or a refresh's own few ms would swing it
            self._cpu_at, self._cpu = now, 100.0 * cpu / wall
        return self._cpu

    def __call__(self) -> Figures:
        stats = self._gen.statistics()
        for c in self._tail.take(self._gen.series, stats.running):
            for key, total in self._so_far.items():
                if key in c.hists:
                    dense((c.hists[key],), into=total)
        rss = None
        with contextlib.suppress(psutil.Error):
            rss = int(self._proc.memory_info().rss)
        return load_figures(list(self._tail.closed), self._so_far, self._op, in_flight=stats.in_flight,
                            errors=stats.errors, dropped=stats.dropped, rss_bytes=rss,
                            cpu_percent=self._cpu_percent(), window_s=self._window_s)
