"""Pure restart policy for crashed actors (no clocks of its own: the caller passes ``now``).

An actor "crashes" only on ``FatalActorError`` (or a non-``Exception`` ``BaseException`` other
than cancellation): ordinary handler errors are counted and the actor carries on. After a crash
the supervisor restarts the actor, keeping its mailbox, with exponential backoff. If it crashes
more than ``max_restarts`` times within ``window_s`` seconds it is given up on (state FAILED),
and the engine reports itself unhealthy: a crash loop must be visible, not hidden by restarts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class FatalActorError(Exception):
    """Raised by a handler when the pair's state can no longer be trusted: the actor restarts."""


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    max_restarts: int = 5
    window_s: float = 60.0
    backoff_s: float = 0.05
    backoff_max_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {self.max_restarts}")
        if self.window_s <= 0 or self.backoff_s < 0 or self.backoff_max_s < self.backoff_s:
            raise ValueError("restart policy: need window_s > 0 and 0 <= backoff_s <= backoff_max_s")

    def decide(self, crash_times: Sequence[float], now: float) -> float | None:
        """Delay before the next restart, or ``None`` to give up. ``crash_times`` includes this crash."""
        recent = sum(1 for t in crash_times if now - t <= self.window_s)
        if recent > self.max_restarts:
            return None
        return float(min(self.backoff_max_s, self.backoff_s * 2.0 ** max(0, recent - 1)))

    def prune(self, crash_times: Sequence[float], now: float) -> list[float]:
        """Keep only the crashes that still matter, so the history stays bounded."""
        return [t for t in crash_times if now - t <= self.window_s]
