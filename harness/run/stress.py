"""Deciding, step by step, whether a stress step broke a target (pure).

A step is broken when the bot could not keep up (accepted under 95% of the offered rate, or the
feed had to drop), when errors reach 0.1%, or when a latency statistic fails its SLO threshold
*with confidence*: the lower end of its 95% interval is above the limit. A point estimate alone
would let one scheduler hiccup on a shared machine end the stress test at its first step; a
step whose latency is merely uncertain goes on to the next rate. The first target that broke
is named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.stats.histograms import series_from_encoded
from harness.stats.intervals import latency_cis, stat_key

KEEP_UP = 0.95
MAX_ERROR_RATE = 0.001


@dataclass(frozen=True)
class StepOutcome:
    rate: float
    start: float
    end: float
    achieved: float
    error_rate: float
    latency_ok: bool
    broken: str | None  # the first target broken at this step, if any

    def as_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "start": self.start, "end": self.end, "achieved": round(self.achieved, 2),
                "error_rate": self.error_rate, "latency_ok": self.latency_ok, "broken": self.broken}


def judge_step(
    rate: float,
    start: float,
    end: float,
    intervals: Sequence[Mapping[str, Any]],
    latency_limits_ms: Mapping[str, Mapping[str, float]],
) -> StepOutcome:
    """``intervals``: the step's scenario intervals; ``latency_limits_ms``: row -> {"mean"|"p95"|"p99": ms}."""
    secs = max(end - start, 1e-9)
    sent = sum(iv["counters"].get("sent", 0) for iv in intervals)
    dropped = sum(iv["counters"].get("dropped", 0) for iv in intervals)
    accepted = sum(iv["counters"].get("tx_accepted", 0) for iv in intervals)
    ok = sum(iv["counters"].get("ok", 0) for iv in intervals)
    errors = sum(iv["counters"].get("errors", 0) for iv in intervals)
    achieved = accepted / secs
    error_rate = errors / (ok + errors) if ok + errors else 0.0
    broken: str | None = None
    latency_ok = True
    for row, limits in latency_limits_ms.items():
        encoded = [iv.get("histograms", {}).get(row) for iv in intervals]
        if not any(encoded):
            continue
        pcts = sorted({float(s.lstrip("p")) for s in limits if s != "mean"})
        cis = latency_cis(series_from_encoded(encoded, where=row), pcts, n_boot=200)
        for stat, limit in limits.items():
            est = cis["mean"] if stat == "mean" else cis[stat_key(float(stat.lstrip("p")))]
            lower_ms = (est.lo if est.has_ci else est.value) / 1000.0
            if lower_ms >= limit:
                latency_ok = False
                broken = broken or f"{row}.{stat}"
    if broken is None and error_rate >= MAX_ERROR_RATE:
        broken = "error_rate"
    if broken is None and (achieved < KEEP_UP * rate or (sent and dropped / (sent + dropped) > 0.001)):
        broken = "transactions_per_sec"
    return StepOutcome(rate, start, end, achieved, error_rate, latency_ok, broken)
