"""Running a stress search on the stack: steps one after another, each judged by its kind, until the search ends.

The trading stress (``stress``) and the market-data stress (``websocket_stress``) share the loop.
Every step gets its own tag (``<scenario>/<n>``), so it is judged on what its own ticks caused; an
annotation; boundaries taken from the clock (judging a window that drifted into the pause between
steps would read as "could not keep up"); and a settle before the next step, so a broken step's
backlog has cleared before a lower rate is judged. What differs is the ``StepPlan``: whether the
ticks are trade signals, how long a step must run, how it is judged, and how the judged step moves
the search (``harness.run.bisection``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

from harness.probes.machine import busy_machine, clock_ticks_per_s, own_cpu_seconds, read_cpu_times
from harness.results.capacity import MarketCapacity, MarketStep
from harness.results.writer import ResultsWriter
from harness.run.bisection import Judged, StressSearch
from harness.run.collect import BOT_CONFLATED, merge_intervals, tag_filter
from harness.run.drive import checkpoint, counted_since, drive, wait_handled, wait_telemetry
from harness.run.feedrun import FeedRun
from harness.run.figures import cpu_percent_between
from harness.run.fresh import fresh_step
from harness.run.progress import Ui
from harness.run.scenario_doc import step_window
from harness.run.scenarios import Scenario, Step
from harness.run.settle import settle
from harness.run.stack import Stack
from harness.run.stress import MIN_SAMPLES, StepOutcome, judge_step
from harness.run.wsstress import StepTotals, cpu_percent, judge_market_step

STRESS_WARMUP_S = 2.0  # each step's first seconds: the bot and node adjust to the new rate
STEP_SETTLE_S = 30.0  # a broken step's backlog must clear before the next (lower) rate is judged
BOT_INTERVAL_S = 1.0  # the bot closes a telemetry interval every second (its default, which the harness keeps)

Outcome = TypeVar("Outcome", bound=Judged)


@dataclass(frozen=True)
class StepRun:
    """One step as it ran, for its plan to judge. Times are seconds from the scenario start."""

    n: int
    rate: float
    tag: str
    seconds: float  # the schedule's length
    start: float  # from the clock, before the feed started
    end: float  # from the clock, once the feed had sent (or given up on) every tick
    feed: FeedRun
    feed_intervals: list[dict[str, Any]]  # this step's, in scenario seconds
    cpu_s: float  # the harness process's CPU over the step: the feed generator's, mostly
    machine: Mapping[str, float]  # steal/busy/other shares of the machine's CPU over the step

    @property
    def busy(self) -> str | None:
        """Why this step's figures may be the machine's doing (steal, other processes), or None."""
        return busy_machine({"scenarios": [{"id": "step", "summary": {"machine": dict(self.machine)}}]}, ["step"])

    @property
    def schedule_end(self) -> float:
        return self.start + self.seconds


class StepPlan(Protocol[Outcome]):
    """How one kind of stress runs and judges a step."""

    @property
    def trade(self) -> bool: ...  # ticks are trade signals (else market data)

    @property
    def checkpoints(self) -> bool: ...  # results written while a step runs (else between steps)

    @property
    def fresh_chain(self) -> bool: ...  # each step after the first on a reverted chain, with a fresh bot

    def seconds(self, rate: float, base_s: float, factor: float) -> int: ...

    async def judge(self, step: StepRun) -> Outcome: ...

    def record(self, search: StressSearch[Outcome], outcome: Outcome, disturbed: bool) -> None: ...

    def describe(self, outcome: Outcome) -> str: ...


@dataclass(frozen=True)
class Ran(Generic[Outcome]):
    """A judged step with where the search stood after it."""

    outcome: Outcome
    step: StepRun
    phase_after: str
    settle_s: float | None  # the pause before the next step (None: it was the last)


async def run_search(st: Stack, ui: Ui, writer: ResultsWriter, scn: Scenario, doc: dict[str, Any],
                     t0_wall: float, plan: StepPlan[Outcome], search: StressSearch[Outcome]) -> list[Ran[Outcome]]:
    """Run steps until the search is done; annotates ``doc`` and leaves the feed's intervals in
    ``doc["x_feed_intervals"]`` for the caller."""
    base_seconds = scn.steps[0].seconds
    feed_intervals: list[dict[str, Any]] = []
    ran: list[Ran[Outcome]] = []
    while (rate := search.next_rate()) is not None:
        n = len(ran) + 1
        tag = f"{scn.id}/{n}"
        if ran and plan.fresh_chain:
            t_fresh = time.monotonic()
            block = await fresh_step(st, ui)
            if block is not None:
                ui.log(f"{scn.id}: chain reverted to block {block}, fresh bot (pid {st.bot.pid}) in "
                       f"{time.monotonic() - t_fresh:.1f} s")
        seconds = plan.seconds(rate, base_seconds, search.next_seconds_factor)
        step_start = time.time() - t0_wall
        doc["annotations"].append({"t": round(step_start, 2), "label": f"step {n}: {rate:g}/s"})
        cpu0, machine0, own0 = time.process_time(), read_cpu_times(), own_cpu_seconds()
        fr = await drive(st, ui, writer, scn, doc, [Step(rate, seconds)], plan.trade, t0_wall,
                         f"{scn.id} {rate:g}/s ({search.phase})", tag, checkpoints=plan.checkpoints)
        cpu_s = time.process_time() - cpu0
        machine1, own1 = read_cpu_times(), own_cpu_seconds()
        machine: dict[str, float] = {}
        if machine0 is not None and machine1 is not None:
            own_ticks = None if own0 is None or own1 is None else (own1 - own0) * clock_ticks_per_s()
            machine = machine1.since(machine0, own_ticks)
        step_end = time.time() - t0_wall
        shifted = [{**fv, "start": fv["start"] + step_start, "end": fv["end"] + step_start} for fv in fr.intervals]
        feed_intervals += shifted
        step = StepRun(n, rate, tag, seconds, step_start, step_end, fr, shifted, cpu_s, machine)
        outcome = await plan.judge(step)
        busy, reruns = step.busy, len(search.disturbed_rates)
        plan.record(search, outcome, busy is not None)
        again = len(search.disturbed_rates) > reruns
        ui.log(f"{scn.id}: {rate:g}/s {plan.describe(outcome)}"
               + ("" if busy is None else f"; {busy} meanwhile" + (": running it again" if again else "")))
        if not plan.checkpoints:
            checkpoint(st, writer, scn, doc, t0_wall)
        settle_s = None
        if search.next_rate() is not None:
            settle_s = round((await settle(st, timeout_s=STEP_SETTLE_S)).settle_s, 2)
        ran.append(Ran(outcome, step, search.phase, settle_s))
    if search.breaking_point is not None:
        doc["annotations"].append({"t": round(time.time() - t0_wall, 2),
                                   "label": f"breaking point: {search.breaking_point:g}/s ({search.broken_by})"})
    if search.bound_at is not None:
        doc["annotations"].append({"t": round(time.time() - t0_wall, 2),
                                   "label": f"generator-bound at {search.bound_at:g}/s: the feed fell behind"})
    doc["x_feed_intervals"] = feed_intervals
    return ran


# ------------------------------------------------------------------------------------------ trades
@dataclass(frozen=True)
class TradePlan:
    """Trade signals; a step is judged on latency, errors and the accepted rate (``harness.run.stress``)."""

    st: Stack
    t0_wall: float
    limits: Mapping[str, Mapping[str, float]]
    trade: bool = True
    checkpoints: bool = True
    fresh_chain: bool = True  # harness.run.fresh.fresh_step: the node slows as it absorbs swaps

    def seconds(self, rate: float, base_s: float, factor: float) -> int:
        # Long enough that the judged window can hold MIN_SAMPLES at this rate: a low rate in a
        # short step would only ever come back undecided.
        return math.ceil(max(base_s, STRESS_WARMUP_S + 1.25 * MIN_SAMPLES / rate) * factor)

    async def judge(self, step: StepRun) -> StepOutcome:
        await wait_telemetry(self.st, self.t0_wall + step.end + 1.0)
        ivs = merge_intervals(self.t0_wall, self.st.puller.intervals, step.feed_intervals, own=tag_filter(step.tag))
        lo, hi = step_window(step.start, step.end)
        return judge_step(step.rate, lo, hi, [iv for iv in ivs if lo <= iv["start"] < hi], self.limits,
                          warmup_s=STRESS_WARMUP_S)

    def record(self, search: StressSearch[StepOutcome], outcome: StepOutcome, disturbed: bool) -> None:
        search.record(outcome, disturbed=disturbed)

    def describe(self, outcome: StepOutcome) -> str:
        verdict = "undecided" if outcome.undecided else (f"broke {outcome.broken}" if outcome.broken else "held")
        return f"{verdict} ({outcome.achieved:.0f} tx/s accepted, {outcome.samples} samples)"


def trade_steps(ran: Sequence[Ran[StepOutcome]]) -> list[dict[str, Any]]:
    """``summary.steps`` of a trading stress."""
    out = []
    for r in ran:
        d = {**r.outcome.as_dict(), "tag": r.step.tag, "phase_after": r.phase_after}
        if r.step.machine:
            d["machine"] = dict(r.step.machine)
        if r.settle_s is not None:
            d["settle_s"] = r.settle_s
        out.append(d)
    return out


# ------------------------------------------------------------------------------------- market data
@dataclass(frozen=True)
class MarketPlan:
    """Market-data ticks; a step is judged on drops, the handled rate and the feed's pace (``harness.run.wsstress``)."""

    st: Stack
    t0_wall: float
    drain_s: float  # how long the bot may take to count the ticks still in socket buffers
    trade: bool = False
    fresh_chain: bool = False  # ticks move no chain state
    # The feed shares the harness's loop: at tens of thousands of ticks/s a checkpoint's stall is
    # in its lag, and could make a step generator-bound that was not.
    checkpoints: bool = False

    def seconds(self, rate: float, base_s: float, factor: float) -> int:
        return math.ceil(base_s * factor)

    async def judge(self, step: StepRun) -> MarketStep:
        sent = sum(int(iv["counters"].get("ws_sent", 0)) for iv in step.feed_intervals)
        waited = await wait_handled(self.st, self.t0_wall + step.start, tag_filter(step.tag), sent, self.drain_s)
        await wait_telemetry(self.st, self.t0_wall + step.end + 1.0)
        since, own = self.t0_wall + step.start, tag_filter(step.tag)
        totals = StepTotals.of(step.feed_intervals, counted_since(self.st, since, own, ("ticks_handled",)),
                               counted_since(self.st, since, own, (BOT_CONFLATED,)))
        ivs = merge_intervals(self.t0_wall, self.st.puller.intervals, step.feed_intervals, own=tag_filter(step.tag))
        # Judged within the schedule: after it the feed only flushes its queue, and a second with
        # nothing offered would read as the bot falling short. The bot's 1-s intervals are bucketed
        # by their midpoint, so the last bucket ending within the schedule is the one half a second
        # before its end (the next straddles it: 70% of a second's ticks read as a 4% shortfall).
        lo, hi = step_window(step.start, min(step.end, step.schedule_end) - BOT_INTERVAL_S / 2)
        outcome = judge_market_step(step.rate, lo, hi, [iv for iv in ivs if lo <= iv["start"] < hi],
                                    step.feed_intervals, totals, schedule_end=step.schedule_end,
                                    warmup_s=STRESS_WARMUP_S)
        return replace(outcome, tag=step.tag, handled_wait_s=round(waited, 2),
                       generator_cpu_percent=cpu_percent(step.cpu_s, step.end - step.start))

    def record(self, search: StressSearch[MarketStep], outcome: MarketStep, disturbed: bool) -> None:
        if outcome.generator_bound:
            search.record_bound(outcome)
        else:
            search.record(outcome, disturbed=disturbed)

    def describe(self, outcome: MarketStep) -> str:
        what = outcome.outcome + (f" ({outcome.broken})" if outcome.broken else "")
        return (f"{what}: handled {outcome.achieved:,.0f}/s of {outcome.offered:,.0f}/s offered, "
                f"{outcome.dropped:,} dropped, {outcome.conflated:,} of {outcome.sent:,} conflated, "
                f"feed lag p99 {outcome.generator_lag_p99_ms:.2f} ms")


def market_capacity(search: StressSearch[MarketStep], ran: Sequence[Ran[MarketStep]],
                    resources: Sequence[Mapping[str, Any]]) -> MarketCapacity:
    """``summary.capacity`` of a market-data stress, each step with the bot's CPU over its judged window."""
    steps = tuple(replace(r.outcome, phase_after=r.phase_after, settle_s=r.settle_s,
                          bot_cpu_percent=cpu_percent_between(resources, r.outcome.start, r.outcome.end))
                  for r in ran)
    return MarketCapacity(ladder=search.ladder, resolution=search.resolution, last_good=search.last_good,
                          breaking_point=search.breaking_point, broken_by=search.broken_by,
                          generator_bound_at=search.bound_at, resolved=search.resolved,
                          stop_reason=search.stop_reason, undecided_rates=search.undecided_rates, steps=steps)
