"""Debug settings that change what the bot does on purpose: a planted memory leak (``[debug]``).

``debug.leak_bytes_per_trade = N`` keeps N bytes alive for every confirmed trade, for the rest of
the process's life. It exists so the harness's leak detector can be proven on a real soak (a
detector only ever shown synthetic series proves nothing about the bot); it is 0, off, by default.
The bytes are written, not just reserved: ``bytes(N)`` may come from calloc's untouched zero pages,
which never become resident, and an RSS detector would rightly see nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LeakStatistics:
    bytes_per_trade: int
    trades: int
    held_bytes: int


class PlantedLeak:
    """Keeps ``bytes_per_trade`` bytes per ``keep()``; never releases them (that is the point)."""

    def __init__(self, bytes_per_trade: int) -> None:
        if bytes_per_trade <= 0:
            raise ValueError(f"bytes_per_trade must be > 0, got {bytes_per_trade}")
        self.bytes_per_trade = bytes_per_trade
        self._kept: list[bytes] = []

    def __repr__(self) -> str:
        return f"<PlantedLeak {self.bytes_per_trade} B/trade, {len(self._kept)} kept>"

    def keep(self) -> None:
        # b"\xa5" * n fills every page (memset), so the bytes are resident, as a real leak's would be.
        self._kept.append(b"\xa5" * self.bytes_per_trade)

    def statistics(self) -> LeakStatistics:
        n = len(self._kept)
        return LeakStatistics(self.bytes_per_trade, n, n * self.bytes_per_trade)


# -- debug.burn_us_per_trade and debug.delay_price_fetch_ms: planted slowdowns for `harness gate`'s proofs --
#
# The end-to-end gate must be shown to catch a slower bot, not only a slower benchmark: its proof runs
# one revision against itself with N µs of CPU added to every trade on one side (and, separately, a
# millisecond added to every price read). Both are 0, off, by default.


def burn_cpu(us: int) -> None:
    """Spend ``us`` microseconds of this thread's CPU time, on the event loop, as a slower trade path would.

    The thread's CPU clock, not the wall clock, decides when to stop: on a busy machine a wall-clock
    spin would spend less CPU whenever the thread is preempted, and the planted share would shrink
    with the load. The clock is read every few hundred additions (reading it is a system call).
    """
    end = time.thread_time_ns() + us * 1000
    x = 0
    while time.thread_time_ns() < end:
        for i in range(200):
            x += i
