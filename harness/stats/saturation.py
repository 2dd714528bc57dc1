"""Did the bot keep up with the offered rate? Judged from its backlog over time (pure).

A bot that keeps up holds a steady backlog (in flight + queued in its mailboxes: about the rate times
the time a trade takes, Little's law). A bot that cannot keep up accumulates the difference between
the offered and the handled rate, so its backlog grows for as long as the load lasts, until a cap
stops it (``engine.max_in_flight``; the mailboxes then fill and drop). Memory grows with that backlog,
so a soak of a saturated bot measures the backlog, not a leak: the ``memory_leak`` row is then
inconclusive with this reason (``harness.slo.judge``).

The rule, on samples taken while the schedule ran, after a warm-up:
- **cap**: in flight reached 95% of its cap;
- **queue**: the median backlog of the last third of the samples holds more than ``MAX_WAIT_S`` of
  the offered rate: trades wait in line for seconds (a bounded mailbox fills early and then holds
  its level while it drops: 400/s offered to 5 pairs here kept ~1,250 queued from the first seconds);
- **growth**: that median exceeds the first third's by more than a second's worth of offered trades
  (at least ``MIN_GROWTH``). A steady backlog moves by a few trades with each 50 ms block; a second
  of trades is far outside that and well inside what a saturated bot piles up in one minute (the
  issue's slow-machine soak held 1,024 in flight).
A bot that keeps up holds about rate x 50-100 ms (60/s here: 0-3 in flight and queued).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MIN_GROWTH = 10.0
MAX_WAIT_S = 2.0  # twenty times the trade_execution mean target (100 ms)
CAP_SHARE = 0.95
MIN_SAMPLES = 6


@dataclass(frozen=True)
class Saturation:
    saturated: bool
    reason: str
    backlog_early: float | None  # median in flight + queued, first third of the window
    backlog_late: float | None  # ... last third
    in_flight_peak: float
    in_flight_cap: int | None
    samples: int

    def to_json(self) -> dict[str, Any]:
        return {"saturated": self.saturated, "reason": self.reason, "backlog_early": self.backlog_early,
                "backlog_late": self.backlog_late, "in_flight_peak": self.in_flight_peak,
                "in_flight_cap": self.in_flight_cap, "samples": self.samples}


def judge_saturation(samples: Sequence[tuple[float, float, float]], *, rate: float, duration_s: float,
                     in_flight_cap: int | None = None, warmup_s: float = 5.0) -> Saturation:
    """``samples``: (seconds from the scenario start, in flight, queued), as the bot reported them."""
    window = sorted((s for s in samples if warmup_s <= s[0] <= duration_s), key=lambda s: s[0])
    peak = max((s[1] for s in window), default=0.0)
    if len(window) < MIN_SAMPLES:
        return Saturation(False, f"{len(window)} backlog samples after a {warmup_s:g} s warm-up: too few to tell",
                          None, None, peak, in_flight_cap, len(window))
    third = len(window) // 3
    early = statistics.median(s[1] + s[2] for s in window[:third])
    late = statistics.median(s[1] + s[2] for s in window[-third:])
    allowance = max(MIN_GROWTH, rate * 1.0)
    if in_flight_cap and peak >= CAP_SHARE * in_flight_cap:
        return Saturation(True, f"in flight reached {peak:,.0f} of its cap of {in_flight_cap:,}", early, late, peak,
                          in_flight_cap, len(window))
    if late - early > allowance:
        return Saturation(True, f"its backlog (in flight + queued) grew from {early:,.0f} to {late:,.0f}, more than "
                          f"{allowance:,.0f} (a second of the offered {rate:g}/s)", early, late, peak, in_flight_cap,
                          len(window))
    if late > max(MIN_GROWTH, rate * MAX_WAIT_S):
        return Saturation(True, f"its backlog (in flight + queued) held {late:,.0f} trades, more than {MAX_WAIT_S:g} s "
                          f"of the offered {rate:g}/s", early, late, peak, in_flight_cap, len(window))
    return Saturation(False, f"backlog steady: {early:,.0f} then {late:,.0f} (in flight + queued)", early, late, peak,
                      in_flight_cap, len(window))


def in_flight_cap(bot_settings: Any) -> int | None:
    """``engine.max_in_flight`` from the bot's recorded settings (None if not recorded)."""
    engine = bot_settings.get("engine") if isinstance(bot_settings, dict) else None
    cap = engine.get("max_in_flight") if isinstance(engine, dict) else None
    return cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else None
