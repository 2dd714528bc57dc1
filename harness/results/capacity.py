"""The market-data stress in ``results.json``: every step run and where the bot's capacity lies (typed).

A market-data stress scenario (``websocket_stress``) keeps its search under ``summary.capacity``;
the runner writes it with ``MarketCapacity.to_json()`` and the judge and the report read it back
with ``MarketCapacity.from_json()``, so what is written is what is read (a hypothesis test holds
``from_json(to_json(c)) == c``, and the document stays valid against the schema's ``market_capacity``).

Rates are messages (ticks) per second. ``rate`` is what a step's schedule offered; ``offered`` what
the feed actually handed off per second of its judged window; ``achieved`` what the bot handled per
second of it. A tick is *handled* when the pair's actor looked at it or at a newer tick of its pair
that superseded it (``bot.market.conflation``); it is *dropped* when the feed had to drop it, could
not deliver it, or sent it and the bot never counted it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

UNIT = "msg/s"


def _opt(v: Any) -> float | None:
    return None if v is None else float(v)


@dataclass(frozen=True)
class MarketStep:
    """One step of the market-data stress, as judged (``harness.run.wsstress.judge_market_step``)."""

    rate: float  # offered by the schedule (msg/s)
    start: float  # the judged window (seconds from the scenario start): after the warm-up
    end: float
    warmup_s: float
    offered: float  # the feed's hand-offs per second in the judged window
    achieved: float  # handled (looked at + conflated) per second in the judged window
    sent: int  # the step's ticks written to the socket (the whole step, exact by tag)
    handled: int  # of those, looked at by the pair's actor
    conflated: int  # of those, superseded by a newer tick of the pair that the actor looked at
    dropped: int  # dropped or undelivered by the feed, plus sent and never counted by the bot
    generator_lag_p99_ms: float  # the feed's own scheduling lag in the judged window
    generator_lag_max_ms: float
    generator_bound: bool  # the feed fell behind: the step says nothing about the bot
    broken: str | None  # "dropped" or "handled_rate", if the bot broke at this rate
    undecided: bool
    intervals: int  # whole seconds judged
    delivery_p99_ms: float | None = None  # tick's intended send -> the actor's look, ticks looked at
    tag: str = ""
    phase_after: str = ""
    settle_s: float | None = None  # the pause before the next step
    handled_wait_s: float | None = None  # after the schedule, until the bot had counted every tick sent
    bot_cpu_percent: float | None = None  # the bot's process tree over the judged window, % of one core
    generator_cpu_percent: float | None = None  # the harness process (the feed) over the step

    @property
    def outcome(self) -> str:
        """held | broken | generator-bound | undecided: how the step counted in the search."""
        if self.generator_bound:
            return "generator-bound"
        if self.broken:
            return "broken"
        return "undecided" if self.undecided else "held"

    @property
    def clean(self) -> bool:
        """Nothing dropped and nothing broken: its handled rate is a rate the bot sustained."""
        return self.dropped == 0 and not self.broken and not self.undecided

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> MarketStep:
        return cls(
            rate=float(d["rate"]), start=float(d["start"]), end=float(d["end"]), warmup_s=float(d["warmup_s"]),
            offered=float(d["offered"]), achieved=float(d["achieved"]), sent=int(d["sent"]),
            handled=int(d["handled"]), conflated=int(d["conflated"]), dropped=int(d["dropped"]),
            generator_lag_p99_ms=float(d["generator_lag_p99_ms"]),
            generator_lag_max_ms=float(d["generator_lag_max_ms"]), generator_bound=bool(d["generator_bound"]),
            broken=d["broken"], undecided=bool(d["undecided"]), intervals=int(d["intervals"]),
            delivery_p99_ms=_opt(d.get("delivery_p99_ms")), tag=str(d.get("tag", "")),
            phase_after=str(d.get("phase_after", "")), settle_s=_opt(d.get("settle_s")),
            handled_wait_s=_opt(d.get("handled_wait_s")), bot_cpu_percent=_opt(d.get("bot_cpu_percent")),
            generator_cpu_percent=_opt(d.get("generator_cpu_percent")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate, "start": self.start, "end": self.end, "warmup_s": self.warmup_s,
            "offered": self.offered, "achieved": self.achieved, "sent": self.sent, "handled": self.handled,
            "conflated": self.conflated, "dropped": self.dropped,
            "generator_lag_p99_ms": self.generator_lag_p99_ms, "generator_lag_max_ms": self.generator_lag_max_ms,
            "generator_bound": self.generator_bound, "broken": self.broken, "undecided": self.undecided,
            "intervals": self.intervals, "delivery_p99_ms": self.delivery_p99_ms, "tag": self.tag,
            "phase_after": self.phase_after, "settle_s": self.settle_s, "handled_wait_s": self.handled_wait_s,
            "bot_cpu_percent": self.bot_cpu_percent, "generator_cpu_percent": self.generator_cpu_percent,
        }


def _rate(x: float) -> str:
    return f"{x:,.0f}"


@dataclass(frozen=True)
class MarketCapacity:
    """The search (``harness.run.bisection.StressSearch``) and every step it ran, in the order run."""

    ladder: tuple[float, ...]
    resolution: float
    last_good: float | None  # the highest offered rate held: none dropped, kept up, generator on schedule
    breaking_point: float | None  # the lowest offered rate the bot broke at
    broken_by: str | None
    generator_bound_at: float | None  # the offered rate at which the feed fell behind (the search ended)
    resolved: bool
    stop_reason: str | None  # resolved | ladder_held | max_steps | generator_bound
    undecided_rates: tuple[float, ...] = ()
    steps: tuple[MarketStep, ...] = field(default_factory=tuple)

    @property
    def best_handled(self) -> float | None:
        """The highest handled rate measured in a step with none dropped and nothing broken."""
        rates = [s.achieved for s in self.steps if s.clean]
        return max(rates) if rates else None

    @property
    def top_step(self) -> MarketStep | None:
        """The step at the highest offered rate run (its bot CPU is the figure to quote beside the ceiling)."""
        return max(self.steps, key=lambda s: s.rate) if self.steps else None

    def describe(self) -> str:
        """The ceiling in one line: a bracket, or a lower bound and why it is only that."""
        best = self.best_handled
        if self.generator_bound_at is not None:
            floor = (f"≥ {_rate(best)} {UNIT} handled with none dropped" if best is not None
                     else "nothing measured")
            held = f" (held {_rate(self.last_good)} offered on schedule)" if self.last_good is not None else ""
            return (f"{floor}{held}, generator-bound (the feed fell behind at "
                    f"{_rate(self.generator_bound_at)} offered)")
        if self.breaking_point is not None:
            held = f"held {_rate(self.last_good)}" if self.last_good is not None else "no rate held"
            within = "" if self.resolved else ", not resolved to 10%"
            return (f"{held}, broke at {_rate(self.breaking_point)} {UNIT} offered "
                    f"({self.broken_by or '?'}{within})")
        if self.last_good is not None:
            return f"≥ {_rate(self.last_good)} {UNIT}: the whole ladder held"
        return f"no step decided ({self.stop_reason or 'not run'})"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> MarketCapacity:
        return cls(
            ladder=tuple(float(r) for r in d["ladder"]), resolution=float(d["resolution"]),
            last_good=_opt(d["last_good"]), breaking_point=_opt(d["breaking_point"]), broken_by=d["broken_by"],
            generator_bound_at=_opt(d["generator_bound_at"]), resolved=bool(d["resolved"]),
            stop_reason=d["stop_reason"], undecided_rates=tuple(float(r) for r in d.get("undecided_rates", ())),
            steps=tuple(MarketStep.from_json(s) for s in d["steps"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": UNIT, "ladder": list(self.ladder), "resolution": self.resolution, "last_good": self.last_good,
            "breaking_point": self.breaking_point, "broken_by": self.broken_by,
            "generator_bound_at": self.generator_bound_at, "resolved": self.resolved,
            "stop_reason": self.stop_reason, "undecided_rates": list(self.undecided_rates),
            "steps": [s.to_json() for s in self.steps],
        }
