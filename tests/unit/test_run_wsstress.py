"""The market-data stress: judging a step (drops, handled rate, the feed's own pace) and the search that
stops where the feed generator falls behind."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.load.feed import LAG_KEY
from harness.results.capacity import MarketStep
from harness.run.bisection import StressSearch
from harness.run.scenarios import profile
from harness.run.wsstress import StepTotals, feed_pace, judge_market_step
from harness.stats.histograms import encode, new_histogram

RATE = 50_000.0


def _lag(n: int, us: int) -> str:
    h = new_histogram()
    if n:
        h.record_value(us, n)
    return encode(h)


def _step(handled: Sequence[float], *, conflated: float = 0.0, sent: float | None = None,
          feed_lag_us: int = 600, handed_off: Sequence[int] | None = None,
          t0: float = 10.0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A step's scenario intervals (whole seconds from ``t0``) and the feed's own (offset by 0.3 s, as a
    step starts between seconds), with ``handled[k]`` ticks looked at in second k."""
    ivs, feed = [], []
    for k, h in enumerate(handled):
        c = {"ws_handled": round(h * (1 - conflated)), "ws_conflated": round(h * conflated),
             "ws_sent": int(RATE if sent is None else sent)}
        ivs.append({"start": t0 + k, "end": t0 + k + 1.0, "histograms": {}, "counters": c})
        n = int(RATE) if handed_off is None else handed_off[k]
        feed.append({"start": t0 - 0.3 + k, "end": t0 + 0.7 + k, "counters": {"ws_sent": n},
                     "histograms": {LAG_KEY: _lag(n, feed_lag_us)}})
    return ivs, feed


def _judge(ivs: list[dict[str, Any]], feed: list[dict[str, Any]], totals: StepTotals | None = None,
           rate: float = RATE) -> MarketStep:
    n = len(ivs)
    tot = totals or StepTotals(sent=int(rate) * n, feed_dropped=0, undelivered=0, handled=int(rate) * n, conflated=0)
    return judge_market_step(rate, 10.0, 10.0 + n, ivs, feed, tot, schedule_end=10.0 + n - 0.3)


def test_a_step_handled_in_full_with_the_feed_on_pace_holds() -> None:
    out = _judge(*_step([RATE] * 10, conflated=0.8, feed_lag_us=9_000))  # milliseconds of lag, every tick on time
    assert (out.broken, out.undecided, out.generator_bound, out.outcome) == (None, False, False, "held")
    assert out.warmup_s == 2.0 and out.intervals == 8  # the first two seconds are not judged
    assert out.achieved == RATE and out.offered == RATE and out.generator_lag_p99_ms == pytest.approx(9.0, rel=0.01)


def test_conflated_ticks_count_toward_the_handled_rate() -> None:
    out = _judge(*_step([RATE] * 10, conflated=0.95))
    assert out.achieved == pytest.approx(RATE, rel=1e-3) and out.outcome == "held"


@pytest.mark.parametrize("totals", [
    StepTotals(sent=500_000, feed_dropped=1, undelivered=0, handled=400_000, conflated=100_000),
    StepTotals(sent=500_000, feed_dropped=0, undelivered=3, handled=400_000, conflated=100_000),
    StepTotals(sent=500_000, feed_dropped=0, undelivered=0, handled=400_000, conflated=99_999),
])
def test_a_single_tick_lost_breaks_the_step_whatever_second_it_was_due_in(totals: StepTotals) -> None:
    out = _judge(*_step([RATE] * 10), totals)
    assert out.broken == "dropped" and out.dropped == totals.dropped > 0 and out.outcome == "broken"


def test_a_backlog_growing_in_the_buffers_breaks_on_the_handled_rate() -> None:
    # Nothing dropped yet (the feed's queue and the kernel hold seconds of ticks), but the bot handles 80%.
    out = _judge(*_step([RATE] * 2 + [0.8 * RATE] * 8))
    assert out.broken == "handled_rate"


def test_slow_handling_in_the_warm_up_alone_is_not_judged() -> None:
    out = _judge(*_step([0.2 * RATE, 0.5 * RATE] + [RATE] * 8))
    assert out.broken is None and not out.undecided


def test_one_stall_short_of_the_rate_is_undecided_not_broken() -> None:
    out = _judge(*_step([RATE] * 9 + [0.3 * RATE]))
    assert out.broken is None and out.undecided and out.outcome == "undecided"


def test_too_few_judged_seconds_are_undecided() -> None:
    out = _judge(*_step([RATE] * 4))
    assert out.intervals == 2 and out.undecided and out.broken is None


@pytest.mark.parametrize("lag_us, handed_off", [(40_000, None), (600, [int(0.9 * RATE)] * 10)])
def test_a_feed_that_fell_behind_makes_the_step_generator_bound_even_with_drops(
        lag_us: int, handed_off: list[int] | None) -> None:
    totals = StepTotals(sent=450_000, feed_dropped=10, undelivered=0, handled=450_000, conflated=0)
    out = _judge(*_step([0.9 * RATE] * 10, feed_lag_us=lag_us, handed_off=handed_off), totals)
    assert out.generator_bound and out.outcome == "generator-bound"
    assert out.broken == "dropped"  # recorded for the reader, but the search does not count it as the bot's


def test_the_feed_pace_counts_only_its_whole_seconds_within_the_window() -> None:
    _, feed = _step([RATE] * 10, handed_off=[int(RATE)] * 9 + [7])
    pace = feed_pace(feed, 12.0, 18.7)  # the feed's seconds 12.7-18.7; its short last one lies outside
    assert pace.seconds == 6 and pace.rate == RATE


def test_step_totals_add_the_feeds_losses_to_ticks_never_counted() -> None:
    feed = [{"counters": {"ws_sent": 90, "ws_dropped": 4, "ws_undelivered": 6}}]
    assert StepTotals.of(feed, handled=50, conflated=38).dropped == 4 + 6 + 2
    assert StepTotals.of(feed, handled=60, conflated=40).dropped == 10  # more counted than sent is not negative


@settings(max_examples=200, deadline=None)
@given(handled=st.lists(st.floats(0.0, 1.2), min_size=3, max_size=14), lost=st.integers(0, 3),
       slow_feed=st.booleans(), short_feed=st.booleans())
def test_a_step_is_held_only_with_none_dropped_at_the_rate_and_a_feed_on_pace(
        handled: list[float], lost: int, slow_feed: bool, short_feed: bool) -> None:
    n = len(handled)
    ivs, feed = _step([h * RATE for h in handled], feed_lag_us=40_000 if slow_feed else 900,
                      handed_off=[int(RATE * (0.9 if short_feed else 1.0))] * n)
    sent = int(RATE) * n
    out = _judge(ivs, feed, StepTotals(sent, 0, 0, sent - lost, 0))
    assert out.outcome in ("held", "broken", "generator-bound", "undecided")
    # Only the feed's own pace makes a step generator-bound, and it does whenever its judged seconds show it.
    judged_feed_seconds = feed_pace(feed, out.start, 10.0 + n - 0.3).seconds
    assert out.generator_bound == ((slow_feed or short_feed) and judged_feed_seconds > 0)
    if lost:
        assert out.broken == "dropped"  # recorded whatever else the step was
    if out.outcome == "held":
        assert out.dropped == 0 and out.achieved >= 0.95 * RATE and out.intervals >= 3


# ----------------------------------------------------------------------------- the search
def _outcome(rate: float, *, broken: bool = False, bound: bool = False) -> MarketStep:
    return MarketStep(rate=rate, start=2.0, end=10.0, warmup_s=2.0, offered=rate, achieved=rate, sent=1, handled=1,
                      conflated=0, dropped=int(broken), generator_lag_p99_ms=0.5, generator_lag_max_ms=1.0,
                      generator_bound=bound, broken="dropped" if broken else None, undecided=False, intervals=8)


@settings(max_examples=300, deadline=None)
@given(bot=st.floats(2_000, 400_000), gen=st.floats(2_000, 400_000), max_steps=st.integers(1, 15))
def test_the_search_ends_at_the_first_generator_bound_step_and_never_blames_the_bot(
        bot: float, gen: float, max_steps: int) -> None:
    # The bot drops from ``bot``/s up; the feed cannot offer ``gen``/s or more.
    ladder = (12_500.0, 25_000.0, 50_000.0, 100_000.0, 200_000.0)
    search = StressSearch[MarketStep](ladder, max_steps=max_steps)
    ran: list[MarketStep] = []
    while (rate := search.next_rate()) is not None:
        out = _outcome(rate, broken=rate >= bot, bound=rate >= gen)
        (search.record_bound if out.generator_bound else search.record)(out)
        ran.append(out)
    assert search.phase == "done" and search.steps_run == len(ran) <= max_steps
    bound = [o for o in ran if o.generator_bound]
    assert len(bound) <= 1 and (not bound or bound[0] is ran[-1])  # the search stops there
    if bound:
        assert search.stop_reason == "generator_bound" and search.bound_at == ran[-1].rate >= gen
    # a bound step moves no bracket: only steps the feed offered in full say where the bot breaks
    assert search.last_good is None or search.last_good < min(bot, gen)
    assert search.breaking_point is None or bot <= search.breaking_point < gen
    lo, hi = search.last_good, search.breaking_point
    if search.stop_reason == "resolved" and lo is not None:
        assert hi is not None and hi <= lo * 1.10 + 1  # within 10%, or no whole rate left between them


def test_a_generator_bound_step_after_the_bracket_opened_keeps_it() -> None:
    search = StressSearch[MarketStep]([10_000.0, 20_000.0, 40_000.0])
    search.record(_outcome(10_000.0))
    search.record(_outcome(20_000.0))
    search.record(_outcome(40_000.0, broken=True))
    rate = search.next_rate()
    assert rate is not None and 20_000 < rate < 40_000
    search.record_bound(_outcome(rate, bound=True))
    s = search.summary()
    assert (s["last_good"], s["breaking_point"], s["stop_reason"], s["resolved"]) == (20_000.0, 40_000.0,
                                                                                       "generator_bound", False)
    with pytest.raises(ValueError, match="done"):
        search.record(_outcome(rate))


# ----------------------------------------------------------------------------- the scenario
def test_websocket_stress_is_in_full_and_runs_on_request_in_quick() -> None:
    quick, full = profile("quick"), profile("full")
    assert "websocket_stress" not in [s.id for s in quick.scenarios]
    picked = quick.select("websocket_stress")
    assert [(s.id, s.kind, s.stop_on_break) for s in picked.scenarios] == [("websocket_stress", "market_data", True)]
    assert picked.name == "custom"
    ids = [s.id for s in full.scenarios]
    assert ids.index("websocket") < ids.index("websocket_stress")  # the existing scenario stays as it is
    assert [s.id for s in quick.select("websocket,stress").scenarios] == ["websocket", "stress"]
