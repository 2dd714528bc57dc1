"""What the live dashboard shows, as frozen data (built in ``harness.run.dashboard``, drawn in ``_dashrender``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The stats a live window can check against an SLO target cheaply (a mean needs the whole series).
CHECKED_STATS = ("p95", "p99")


@dataclass(frozen=True)
class StepProgress:
    """The scenario or step running now: ``done_s`` of ``total_s`` seconds."""

    label: str
    done_s: float
    total_s: float

    @property
    def left_s(self) -> float:
        return max(0.0, self.total_s - self.done_s)

    @property
    def fraction(self) -> float:
        return min(1.0, self.done_s / self.total_s) if self.total_s > 0 else 1.0


@dataclass(frozen=True)
class OpFigures:
    """One operation's latency percentiles over the dashboard's span, in ms; ``limits`` are SLO targets (stat, ms)."""

    op: str
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    limits: tuple[tuple[str, float], ...] = ()

    def value(self, stat: str) -> float | None:
        return {"p50": self.p50_ms, "p95": self.p95_ms, "p99": self.p99_ms}.get(stat)

    @property
    def over(self) -> tuple[str, ...]:
        """The checked stats above their target in this window (a hint, not a verdict: no CI)."""
        out = []
        for stat, limit in self.limits:
            v = self.value(stat)
            if self.count and stat in CHECKED_STATS and v is not None and v > limit:
                out.append(stat)
        return tuple(out)


@dataclass(frozen=True)
class LagFigures:
    """The load generator's own lag (actual minus intended send time) over the window, in ms."""

    source: str  # "feed" (the market-data feed of run/soak) or "generator" (harness load)
    p99_ms: float
    max_ms: float
    behind: bool  # beyond harness.load.recorder.LagPolicy: the generator, not the target, was the bottleneck
    samples: int = 0


@dataclass(frozen=True)
class VerdictLine:
    """One decided row of the SLO tables, as judged by harness.slo.judge when its scenario finished."""

    row: str
    stat: str
    scenario: str
    verdict: str  # pass | fail | inconclusive
    value: float | None
    unit: str
    op: str
    threshold: float | None

    @staticmethod
    def from_json(v: Mapping[str, Any]) -> VerdictLine:
        thr = v.get("threshold") or {}
        value = v.get("value")
        return VerdictLine(str(v.get("row")), str(v.get("stat")), str(v.get("scenario")), str(v.get("verdict")),
                           float(value) if isinstance(value, int | float) else None, str(v.get("unit") or ""),
                           str(thr.get("op", "")), float(thr["value"]) if "value" in thr else None)

    @property
    def target(self) -> str:
        return f"{self.op} {self.threshold:g} {self.unit}".strip() if self.threshold is not None else ""

    @property
    def shown_value(self) -> str:
        return "-" if self.value is None else f"{self.value:.4g} {self.unit}".strip()


@dataclass(frozen=True)
class Figures:
    """What one source measured: rates and latency over ``window_s``, the backlog, resources and the generator's lag."""

    window_s: float
    rates: tuple[tuple[str, float], ...]  # (label, per second), in display order
    ops: tuple[OpFigures, ...]
    ops_span: str  # what the percentiles cover, e.g. "last 10 s" or "so far"
    in_flight: float | None = None
    in_flight_peak: float | None = None
    queued: float | None = None
    errors: int | None = None
    dropped: int | None = None
    counts_span: str = ""  # what errors/dropped count over
    resource: str = "bot"  # whose RSS and CPU
    rss_mb: float | None = None
    cpu_percent: float | None = None
    lag: LagFigures | None = None


@dataclass(frozen=True)
class VerdictTally:
    passed: int = 0
    failed: int = 0
    inconclusive: int = 0


@dataclass(frozen=True)
class DashboardSnapshot:
    """Everything one frame of the dashboard shows; drawn by ``render`` and ``plain_line``."""

    title: str
    step: StepProgress | None
    figures: Figures
    verdicts: tuple[VerdictLine, ...] = ()
    judged: tuple[str, ...] = ()  # the scenarios whose rows ``verdicts`` holds
    note: str = ""  # e.g. why verdicts are not shown yet

    @property
    def tally(self) -> VerdictTally:
        kinds = [v.verdict for v in self.verdicts]
        return VerdictTally(kinds.count("pass"), kinds.count("fail"), kinds.count("inconclusive"))
