"""The wall-clock stamp of a schedule's ticks, kept in step with the machine's wall clock (pure).

A tick carries the wall-clock time it was *intended* for (``harness.load.ticks``), because the bot
times a trade from it with its own ``time.time()`` (another process: only the wall clock is shared).
The feed paces by ``perf_counter`` and stamps ``wall0 + t``, with ``wall0`` read once at the start.
When the wall clock steps against the monotonic one, every later stamp is off by the step, for good:
in a 60-minute soak on this project's VM, the wall clock moved 16 s ahead of ``perf_counter`` in one
go at a moment of heavy load (a VM paused by its host keeps no monotonic time and has its wall
clock set forward after), and every later trade read 16-20 s slower than it was, with its service
time unchanged at 0.5 s. So the anchor is re-read once per batch, and moved when the two clocks
disagree by more than ``STEP_S``: ticks stay in the frame the bot measures in, and each step is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NS_PER_S = 1_000_000_000
# Far above any slewing NTP does (at most 0.5 ms a second) and any jitter between two clock reads; far
# below a step that would matter to a trade's latency target (100 ms mean is the tightest).
STEP_S = 0.05


@dataclass
class WallAnchor:
    """``wall0`` is the wall-clock time of the schedule's origin ``t0_ns`` (``perf_counter_ns``)."""

    wall0: float
    t0_ns: int
    step_s: float = STEP_S
    steps: list[tuple[float, float]] = field(default_factory=list)  # (schedule time s, step s)

    def check(self, now_ns: int, wall_now: float) -> float:
        """Re-anchor if the wall clock stepped; returns the step taken (0.0: none)."""
        elapsed = (now_ns - self.t0_ns) / NS_PER_S
        skew = wall_now - (self.wall0 + elapsed)
        if abs(skew) <= self.step_s:
            return 0.0
        self.wall0 += skew
        self.steps.append((round(elapsed, 3), round(skew, 3)))
        return skew

    def stamp(self, t: float) -> float:
        """The wall-clock time of schedule time ``t`` (seconds from the origin)."""
        return self.wall0 + t
