"""Finding a breaking point: ramp a ladder of rates to the first broken step, then bisect (pure, sans-I/O).

Shared by the trading stress (``harness.run.stress``: a step judged on latency, errors and the accepted
rate) and the market-data stress (``harness.run.wsstress``: a step judged on ticks dropped and the
handled rate). Each judges a step into an outcome with ``rate``, ``broken`` and ``undecided``;
:class:`StressSearch` only reads those, and chooses the next rate.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, Generic, Literal, Protocol, TypeVar

MIN_RATE = 1.0  # per second: bisected rates are whole numbers, and nothing below one is offered


class Judged(Protocol):
    """What the search needs of a judged step."""

    @property
    def rate(self) -> float: ...

    @property
    def broken(self) -> str | None: ...  # the first target broken at this step, if any

    @property
    def undecided(self) -> bool: ...  # too little evidence to call it good or broken


Outcome = TypeVar("Outcome", bound=Judged)
Phase = Literal["ramp", "bisect", "done"]
StopReason = Literal["resolved", "ladder_held", "max_steps", "generator_bound", "floor_broke"]


class StressSearch(Generic[Outcome]):
    """Where the breaking point lies, narrowed step by step (pure: the runner runs the steps).

    - **ramp**: the ladder's rates in order, until the first broken step.
    - **bisect**: the bracket (last good, lowest broken] is split at its *geometric* midpoint,
      rounded to a whole rate, until ``hi <= lo * (1 + resolution)``. The stopping rule is a
      ratio, and the geometric midpoint halves the bracket's log-ratio every step, so the number
      of steps is the fewest for a relative resolution whatever the bracket's height; an
      arithmetic midpoint would spend its first steps on the top of a wide bracket (800..1600
      splits at 1200, leaving 1.5x below and 1.33x above, against 1131: 1.41x on both sides).
      The search also ends when no whole rate lies strictly inside the bracket: the breaking
      point is then known exactly on the grid of rates that can be offered.
    - If the very first ladder rate breaks, there is no good rate to bisect from: the search
      offers a quarter of the lowest broken rate (at least ``MIN_RATE``), again and again, until
      one holds, and then bisects. A guessed lower bound (0 or ladder[0]/4) that was never run
      could end the search on a bracket whose lower end is not known good; a quarter is one
      step down into territory the ladder's author did not expect, and then ~4 bisections to 10%.
      The descent stops at ``floor`` (default an eighth of the ladder's first rate): a step must
      hold enough samples to be judged, so it lasts ~1/rate; a quick run on a saturated machine
      once bisected 100, 25, 6, 2, 1/s, 6 then 12 minutes a step. A broken floor ends the search
      (``floor_broke``): the system breaks at any rate worth measuring.
    - An **undecided** step is run once more at the same rate, ``next_seconds_factor`` (2.0)
      times as long, for the samples it lacked. If it is undecided again it counts as *not
      broken* for bracketing (if the step budget leaves no room for the re-run, it counts for
      nothing and the search ends there): like a step whose
      latency is merely uncertain, it did not break anything with confidence, and undecided
      steps are the low, short ones where the bot is idling (a bot that cannot keep up breaks on
      its counters, which need no latency samples). Such rates are listed in ``summary()``
      under ``undecided_rates`` so a last_good that rests on one can be seen.
    - A **generator-bound** step (``record_bound``: the load generator could not offer the rate)
      ends the search without moving the bracket: it says nothing about the system under test,
      and no higher rate can be offered either. The highest rate known good is then a lower
      bound only (stop reason ``generator_bound``).

    - A **disturbed** broken step (``record(outcome, disturbed=True)``: the machine was busy with
      other processes, or the host stole CPU, while it ran) is run once more at the same rate,
      at most ``max_disturbed`` times per search. A break the machine may have caused must not
      move the bracket when a quiet re-run can decide it: a stress search alone once broke at
      154/s while another engineer's tests took the cores, and held 200/s minutes later. A step
      disturbed again on its re-run, or past the budget, counts as broken (the judge then calls
      the row inconclusive, naming the busy machine). Such rates are listed under
      ``disturbed_rates``.

    ``max_steps`` bounds every step run, re-runs included; hitting it ends the search with
    ``resolved`` False and the bracket as narrowed so far.
    """

    def __init__(self, ladder: Sequence[float], *, resolution: float = 0.10, max_steps: int = 14,
                 floor: float | None = None, max_disturbed: int = 2) -> None:
        rates = tuple(float(r) for r in ladder)
        if not rates:
            raise ValueError("StressSearch: the ladder is empty; give at least one rate")
        self._floor = max(MIN_RATE, float(round(rates[0] / 8))) if floor is None else float(floor)
        if not (math.isfinite(self._floor) and MIN_RATE <= self._floor <= rates[0]):
            raise ValueError(f"StressSearch: floor={floor} must lie in [{MIN_RATE:g}, the ladder's first rate]")
        if any(not math.isfinite(r) or r < MIN_RATE for r in rates):
            raise ValueError(f"StressSearch: ladder {list(rates)} has a rate under {MIN_RATE:g}/s or not finite")
        if any(b <= a for a, b in itertools.pairwise(rates)):
            raise ValueError(f"StressSearch: ladder {list(rates)} must be strictly increasing")
        if not (math.isfinite(resolution) and resolution > 0):
            raise ValueError(f"StressSearch: resolution={resolution} must be > 0 (0.10 reports within 10%)")
        if max_steps < 1:
            raise ValueError(f"StressSearch: max_steps={max_steps} must be at least 1")
        self._ladder = rates
        self._resolution = resolution
        self._max_steps = max_steps
        self._next_index = 0  # the ladder rate the ramp offers next
        self._lo: float | None = None  # highest rate not broken
        self._hi: Outcome | None = None  # the step at the lowest rate broken
        self._first_broken: Outcome | None = None
        self._bound: Outcome | None = None  # the step at which the load generator fell behind
        self._outcomes: list[Outcome] = []
        self._undecided_rates: list[float] = []
        self._disturbed_rates: list[float] = []
        self._max_disturbed = max(0, max_disturbed)
        self._disturbed_rerun = False
        self._rerun = False
        self._phase: Phase = "ramp"
        self._stop: StopReason | None = None
        self._pending: float | None = rates[0]

    # ------------------------------------------------------------------------------------ driving
    def next_rate(self) -> float | None:
        """The rate to run next (the same until it is recorded); None once the search is done."""
        return self._pending

    @property
    def next_seconds_factor(self) -> float:
        """How much longer than a normal step the next one should run: 2.0 when re-running an undecided step."""
        return 2.0 if self._rerun and self._pending is not None else 1.0

    def _take(self, outcome: Outcome) -> None:
        if self._pending is None:
            raise ValueError("StressSearch.record: the search is done; no step was asked for")
        if not math.isclose(outcome.rate, self._pending, rel_tol=1e-9, abs_tol=1e-9):
            raise ValueError(f"StressSearch.record: a step at {outcome.rate:g}/s, "
                             f"but {self._pending:g}/s was asked for")
        self._outcomes.append(outcome)

    def record(self, outcome: Outcome, *, disturbed: bool = False) -> None:
        """Take the judged step that ran at ``next_rate()``; ``disturbed``: the machine was busy meanwhile."""
        self._take(outcome)
        rerun_done = self._rerun
        self._rerun = False
        was_disturbed_rerun, self._disturbed_rerun = self._disturbed_rerun, False
        if (outcome.broken and disturbed and not was_disturbed_rerun
                and len(self._disturbed_rates) < self._max_disturbed and self.steps_run < self._max_steps):
            self._disturbed_rates.append(outcome.rate)
            self._disturbed_rerun = True  # the same rate again, same length; the bracket does not move
            return
        if outcome.broken:
            if self._hi is None or outcome.rate < self._hi.rate:
                self._hi = outcome
            self._first_broken = self._first_broken or outcome
        elif outcome.undecided and not rerun_done:
            if self.steps_run < self._max_steps:
                self._rerun = True  # the same rate again, longer; the phase does not move
                return
            # No budget for its re-run: the step tells nothing, so the bracket stays as it was.
            self._undecided_rates.append(outcome.rate)
        else:
            if outcome.undecided:
                self._undecided_rates.append(outcome.rate)
            self._lo = outcome.rate if self._lo is None else max(self._lo, outcome.rate)
            if self._hi is None:
                self._next_index += 1
        self._advance()

    def record_bound(self, outcome: Outcome) -> None:
        """Take a step at ``next_rate()`` that the load generator could not offer: the search ends."""
        self._take(outcome)
        self._rerun = False
        self._bound = outcome
        self._finish("generator_bound")

    def _advance(self) -> None:
        if self._hi is None:
            if self._next_index >= len(self._ladder):
                self._finish("ladder_held")
            elif self.steps_run >= self._max_steps:
                self._finish("max_steps")
            else:
                self._pending = self._ladder[self._next_index]
            return
        inside = self._inside()
        if inside is None and self._lo is None:
            self._finish("floor_broke")
        elif inside is None:
            self._finish("resolved")
        elif self.steps_run >= self._max_steps:
            self._finish("max_steps")
        else:
            self._phase = "bisect"
            self._pending = inside

    def _finish(self, reason: StopReason) -> None:
        self._phase, self._stop, self._pending = "done", reason, None

    def _inside(self) -> float | None:
        """The next whole rate strictly inside the bracket, or None when the bracket is narrow enough."""
        assert self._hi is not None
        hi, lo = self._hi.rate, self._lo
        if lo is None:
            below = max(self._floor, float(round(hi / 4)))
            return below if below < hi else None
        if hi <= lo * (1.0 + self._resolution):
            return None
        lowest, highest = math.floor(lo) + 1, math.ceil(hi) - 1  # whole rates strictly inside (lo, hi)
        if lowest > highest:
            return None
        return float(min(max(round(math.sqrt(lo * hi)), lowest), highest))

    # ------------------------------------------------------------------------------------ results
    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def stop_reason(self) -> StopReason | None:
        return self._stop

    @property
    def breaking_point(self) -> float | None:
        """The lowest rate known broken (once bisected: within ``resolution`` of last_good)."""
        return self._hi.rate if self._hi is not None else None

    @property
    def broken_by(self) -> str | None:
        """What broke at the breaking point."""
        return self._hi.broken if self._hi is not None else None

    @property
    def last_good(self) -> float | None:
        """The highest rate that did not break (the ladder's top when the whole ladder held)."""
        return self._lo

    @property
    def bound_at(self) -> float | None:
        """The rate at which the load generator fell behind (the search ended there), if it did."""
        return self._bound.rate if self._bound is not None else None

    @property
    def first_broken(self) -> Outcome | None:
        """The first step, in the order run, that broke (the ramp's; bisection may find lower ones)."""
        return self._first_broken

    @property
    def resolved(self) -> bool:
        """A breaking point is known and the bracket is within the resolution (or holds no whole rate);
        not when the floor broke (the breaking point lies somewhere below it)."""
        return self._hi is not None and self._lo is not None and self._inside() is None

    @property
    def steps_run(self) -> int:
        return len(self._outcomes)

    @property
    def outcomes(self) -> tuple[Outcome, ...]:
        return tuple(self._outcomes)

    @property
    def ladder(self) -> tuple[float, ...]:
        return self._ladder

    @property
    def resolution(self) -> float:
        return self._resolution

    @property
    def undecided_rates(self) -> tuple[float, ...]:
        return tuple(self._undecided_rates)

    @property
    def disturbed_rates(self) -> tuple[float, ...]:
        """Rates whose break came on a busy machine and were run again."""
        return tuple(self._disturbed_rates)

    def summary(self) -> dict[str, Any]:
        return {
            "ladder": list(self._ladder),
            "resolution": self._resolution,
            "last_good": self.last_good,
            "breaking_point": self.breaking_point,
            "broken_by": self.broken_by,
            "bracket": [self.last_good, self.breaking_point],
            "resolved": self.resolved,
            "steps_run": self.steps_run,
            "phase": self._phase,
            # resolved | ladder_held | max_steps | generator_bound (null while running): tells a held
            # ladder from a cut-off search
            "stop_reason": self._stop,
            "undecided_rates": list(self._undecided_rates),
            "disturbed_rates": list(self._disturbed_rates),
        }
