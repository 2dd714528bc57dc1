from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from harness.run.stress import MIN_SAMPLES, StepOutcome, StressSearch, judge_step
from harness.stats.histograms import encode, new_histogram

LIMITS = {"trade_execution": {"mean": 100.0, "p95": 200.0, "p99": 500.0}}


def _iv(lat_ms: Sequence[float], accepted: int, ok: int, errors: int = 0, sent: int = 0,
        more: Mapping[str, Sequence[float]] | None = None) -> dict[str, object]:
    """One interval: trade_execution samples (ms), counters, and optionally other rows' samples."""
    hists = {}
    for row, values in {"trade_execution": lat_ms, **(more or {})}.items():
        if values:
            h = new_histogram()
            for v in values:
                h.record_value(int(v * 1000))
            hists[row] = encode(h)
    return {"histograms": hists,
            "counters": {"tx_accepted": accepted, "ok": ok, "errors": errors, "sent": sent or accepted}}


def _timed(ivs: list[dict[str, object]], t0: float = 0.0) -> list[dict[str, object]]:
    """The intervals as a step's 1-s scenario buckets from ``t0`` (what merge_intervals gives)."""
    return [{**iv, "start": t0 + k, "end": t0 + k + 1.0} for k, iv in enumerate(ivs)]


# ------------------------------------------------------------------- judging (no warm-up, no floor)
# These are about the breaking rules themselves, so they switch the warm-up and the floor off.
def test_a_step_that_keeps_up_is_not_broken() -> None:
    out = judge_step(100, 0, 2, [_iv([20] * 100, 100, 100), _iv([30] * 100, 100, 100)], LIMITS,
                     warmup_s=0, min_samples=0)
    assert out.broken is None and out.latency_ok and out.achieved == 100 and not out.undecided


def test_latency_breaks_before_throughput_and_is_named() -> None:
    # every interval: 3% of trades at 600 ms, so p99 is clearly above 500 ms (p95 is not)
    ivs = [_iv([20] * 97 + [600] * 3, 50, 50) for _ in range(12)]
    out = judge_step(100, 0, 12, ivs, LIMITS, warmup_s=0)
    assert out.broken == "trade_execution.p99" and not out.latency_ok


def test_one_blip_does_not_end_the_stress_test() -> None:
    # a single 600 ms sample among 1200 puts the point p99 at 20 ms anyway; one among 150 would
    # put the point p99 above the limit, but its interval reaches down into the target
    ivs = [_iv([20] * 100, 100, 100) for _ in range(11)] + [_iv([20] * 49 + [600], 50, 50)]
    ivs_small = [_iv([20] * 149 + [600], 100, 100)]
    assert judge_step(100, 0, 12, ivs, LIMITS, warmup_s=0).broken is None
    small = judge_step(100, 0, 1.0, ivs_small, LIMITS, warmup_s=0, min_samples=0)
    assert small.broken is None and small.latency_ok


def test_falling_behind_the_offered_rate_breaks_throughput() -> None:
    out = judge_step(1000, 0, 1, [_iv([20] * 10, 800, 800)], LIMITS, warmup_s=0)
    assert out.broken == "transactions_per_sec"


def test_errors_break_the_error_rate() -> None:
    out = judge_step(100, 0, 1, [_iv([20] * 10, 100, 99, errors=1)], LIMITS, warmup_s=0)
    assert out.broken == "error_rate"


def test_step_windows_keep_only_whole_seconds_inside_the_step() -> None:
    from harness.run.scenario_exec import step_window

    assert step_window(9.2, 17.3) == (10, 17)  # the partial seconds 9 and 17 are left out
    assert step_window(3.0, 11.0) == (3, 11)
    assert step_window(4.2, 4.9) == (4, 5)  # a step shorter than a second still gets its bucket


def test_as_dict_keeps_the_judges_keys_and_adds_the_new_ones() -> None:
    d = judge_step(100, 10, 20, _timed([_iv([20] * 100, 100, 100)] * 10, 10), LIMITS).as_dict()
    assert {"rate", "start", "end", "achieved", "error_rate", "latency_ok", "broken"} <= d.keys()
    assert d["samples"] == 800 and d["undecided"] is False and d["warmup_s"] == 2.0


# ------------------------------------------------------------------------------------------ warm-up
def _settling(warm: int, rest: int, t0: float = 0.0) -> list[dict[str, object]]:
    """``warm`` seconds of transient (slow trades, a backlog: 40 of 100/s accepted), then steady 100/s at 20 ms."""
    return _timed([_iv([900] * 100, 40, 100) for _ in range(warm)] + [_iv([20] * 100, 100, 100)] * rest, t0)


def test_the_warm_up_is_not_judged() -> None:
    ivs = _settling(2, 8, t0=30.0)
    out = judge_step(100, 30, 40, ivs, LIMITS)
    assert out.broken is None and out.latency_ok and not out.undecided
    assert (out.start, out.end, out.warmup_s) == (32.0, 40, 2.0)  # the judged window: what the judges read
    assert out.achieved == 100 and out.samples == 800
    # judged from the step's first second, the settling would not let the step hold
    settling = judge_step(100, 30, 40, ivs, LIMITS, warmup_s=0)
    assert settling.broken is not None or settling.undecided


def test_one_stall_in_a_step_is_undecided_but_a_saturated_bot_breaks() -> None:
    stall = _timed([_iv([20] * 100, 100, 100)] * 4 + [_iv([20] * 100, 40, 100)] + [_iv([20] * 100, 100, 100)] * 5)
    out = judge_step(100, 0, 10, stall, LIMITS, warmup_s=0)
    assert out.achieved == 94 and out.broken is None and out.undecided  # re-run, not the breaking point
    saturated = _timed([_iv([20] * 100, 90 + (k % 3), 100) for k in range(10)])
    assert judge_step(100, 0, 10, saturated, LIMITS, warmup_s=0).broken == "transactions_per_sec"


def test_a_longer_transient_than_the_warm_up_is_judged() -> None:
    out = judge_step(100, 0, 10, _settling(4, 6), LIMITS)
    assert out.broken is not None and out.broken.startswith("trade_execution")


def test_errors_and_drops_in_the_warm_up_do_not_count() -> None:
    ivs = _timed([_iv([20] * 100, 100, 90, errors=10, sent=100)] + [_iv([20] * 100, 100, 100)] * 9)
    out = judge_step(100, 0, 10, ivs, LIMITS)
    assert out.broken is None and out.error_rate == 0.0
    late = _timed([_iv([20] * 100, 100, 100)] * 9 + [_iv([20] * 100, 100, 90, errors=10)])
    assert judge_step(100, 0, 10, late, LIMITS).broken == "error_rate"


def test_a_fractional_warm_up_judges_from_the_next_whole_interval() -> None:
    # warm-up 2.5 s: the interval starting at 2 is partly warm-up, so it is left out, and the
    # rate is over the 7 s from 3 to 10 (not 7.5 s, which would read as falling behind)
    out = judge_step(100, 0, 10, _settling(3, 7), LIMITS, warmup_s=2.5)
    assert out.start == 3.0 and out.warmup_s == 3.0 and out.achieved == 100 and out.broken is None


def test_a_step_no_longer_than_its_warm_up_is_undecided() -> None:
    out = judge_step(100, 0, 2, _settling(2, 0), LIMITS)
    assert out.undecided and out.broken is None and not out.latency_ok and out.samples == 0


def test_warm_up_needs_interval_starts_but_a_whole_scenario_does_not() -> None:
    ivs = [_iv([20] * 100, 100, 100)] * 10
    with pytest.raises(ValueError, match="start"):
        judge_step(100, 0, 10, ivs, LIMITS)
    whole = judge_step(100, 0, 10, ivs, LIMITS, warmup_s=0)  # the runner's whole-scenario call
    assert whole.start == 0 and whole.warmup_s == 0 and whole.samples == 1000 and whole.broken is None


# ------------------------------------------------------------------------------------- sample floor
def test_the_floor_is_where_a_p99_interval_stops_being_the_sample_maximum() -> None:
    def ranks(n: int) -> tuple[int, int]:  # as quantile_order_stat_ci picks them
        return max(1, int(sps.binom.ppf(0.025, n, 0.99))), min(n, int(sps.binom.ppf(0.975, n, 0.99)) + 1)

    def power(n: int, tail: float) -> float:  # P(broken) when `tail` of the trades exceed the limit
        lo_rank, _ = ranks(n)
        return float(sps.binom.sf(n - lo_rank, n, tail))

    assert ranks(MIN_SAMPLES)[1] < MIN_SAMPLES and power(MIN_SAMPLES, 0.03) >= 0.94
    assert ranks(550)[1] == 550  # below the floor the interval's top is the largest sample
    assert power(500, 0.03) < 0.9 and power(50, 0.03) < 0.2


def test_a_step_under_the_floor_is_neither_good_nor_broken() -> None:
    fine = judge_step(100, 0, 5, _timed([_iv([20] * 10, 100, 100)] * 5), LIMITS, warmup_s=0)
    assert fine.undecided and fine.broken is None and not fine.latency_ok and fine.samples == 50
    # 3 slow trades out of 50 put the order-statistic interval of the p99 above 500 ms: with no
    # floor that one hiccup would be the breaking point
    slow = _timed([_iv([20] * 10, 100, 100)] * 4 + [_iv([20] * 7 + [900] * 3, 100, 100)])
    assert judge_step(100, 0, 5, slow, LIMITS, warmup_s=0, min_samples=0).broken == "trade_execution.p99"
    out = judge_step(100, 0, 5, slow, LIMITS, warmup_s=0)
    assert out.undecided and out.broken is None


def test_the_floor_counts_the_judged_window_only() -> None:
    ivs = _timed([_iv([20] * 100, 100, 100)] * 8)  # 800 samples, 600 after the warm-up
    assert not judge_step(100, 0, 8, ivs, LIMITS).undecided
    assert judge_step(100, 0, 8, ivs, LIMITS, warmup_s=3).undecided  # 500 left


def test_counters_still_break_an_under_sampled_step() -> None:
    # a bot that stopped accepting completes few trades: that is a break, not "not enough data"
    stalled = _timed([_iv([20] * 5, 10, 5)] * 8)
    out = judge_step(1000, 0, 8, stalled, LIMITS)
    assert out.broken == "transactions_per_sec" and not out.undecided and out.samples == 30
    erring = _timed([_iv([20] * 5, 100, 5, errors=1)] * 8)
    assert judge_step(100, 0, 8, erring, LIMITS).broken == "error_rate"


def test_the_row_with_fewest_samples_decides_and_absent_rows_are_skipped() -> None:
    limits = {**LIMITS, "price_fetch": {"p99": 50.0}, "balance_check": {"p99": 25.0}}
    ivs = _timed([_iv([20] * 100, 100, 100, more={"price_fetch": [5] * 30})] * 10)
    out = judge_step(100, 0, 10, ivs, limits)
    assert out.samples == 240 and out.undecided  # price_fetch: 8 x 30; balance_check: never recorded
    # a row that meets the floor still breaks the step while another row is short
    slow = _timed([_iv([20] * 97 + [900] * 3, 100, 100, more={"price_fetch": [5] * 30})] * 10)
    out = judge_step(100, 0, 10, slow, limits)
    assert out.broken == "trade_execution.p99" and not out.undecided


def test_no_latency_rows_leaves_nothing_undecided() -> None:
    out = judge_step(100, 0, 10, _timed([_iv([], 100, 100)] * 10), {})
    assert not out.undecided and out.broken is None and out.latency_ok and out.samples == 0


# ------------------------------------------------------------------------------------------- search
def _outcome(rate: float, broken: bool, undecided: bool = False) -> StepOutcome:
    return StepOutcome(rate, 2.0, 10.0, rate, 0.0, not broken and not undecided,
                       "transactions_per_sec" if broken else None, 0 if undecided else 5000, undecided, 2.0)


Oracle = Callable[[float, bool], StepOutcome]


def _drive(search: StressSearch, oracle: Oracle) -> list[tuple[float, float, StepOutcome]]:
    """Run the search to its end; (rate, seconds factor, outcome) per step. Checks the bracket invariants."""
    steps: list[tuple[float, float, StepOutcome]] = []
    for _ in range(1000):
        rate = search.next_rate()
        if rate is None:
            break
        factor = search.next_seconds_factor
        assert rate == round(rate) or rate in search.summary()["ladder"]
        good = [o.rate for _, _, o in steps if not o.broken and not o.undecided]
        broken = [o.rate for _, _, o in steps if o.broken]
        rerun = bool(steps) and steps[-1][2].undecided and steps[-1][0] == rate
        assert factor == (2.0 if rerun else 1.0)
        assert all(rate < b for b in broken), f"{rate} offered above a broken {min(broken)}"
        assert all(rate > g for g in good), f"{rate} offered below a good {max(good)}"
        assert rerun or rate not in [r for r, _, _ in steps], f"{rate} repeated without being undecided"
        out = oracle(rate, rerun)
        search.record(out)
        steps.append((rate, factor, out))
    assert search.next_rate() is None and search.phase == "done"
    return steps


def _ladders(low: int) -> st.SearchStrategy[list[float]]:
    return st.lists(st.integers(low, 5000), min_size=1, max_size=14, unique=True).map(
        lambda xs: [float(x) for x in sorted(xs)])


@settings(max_examples=400, deadline=None)
@given(ladder=_ladders(10), where=st.floats(0.0, 1.2), max_steps=st.integers(1, 40),
       first_run_undecided=st.frozensets(st.integers(0, 6), max_size=3), resolution=st.sampled_from([0.05, 0.1, 0.25]))
def test_the_search_brackets_a_monotone_breaking_point(ladder: list[float], where: float, max_steps: int,
                                                       first_run_undecided: frozenset[int], resolution: float) -> None:
    # B anywhere from the ladder's bottom to a little above its top; some rates come back
    # undecided the first time they run (their re-run, twice as long, decides)
    b = ladder[0] + where * (ladder[-1] - ladder[0]) if len(ladder) > 1 else ladder[0] * (0.5 + where)
    b = max(b, ladder[0])

    def oracle(rate: float, rerun: bool) -> StepOutcome:
        if not rerun and int(rate) % 7 in first_run_undecided:
            return _outcome(rate, False, undecided=True)
        return _outcome(rate, rate >= b)

    search = StressSearch(ladder, resolution=resolution, max_steps=max_steps)
    _drive(search, oracle)
    s = search.summary()
    lo, hi = search.last_good, search.breaking_point
    assert search.steps_run <= max_steps and s["steps_run"] == search.steps_run
    assert s["bracket"] == [lo, hi]
    # a re-run always decides here, so a rate stays undecided only when there was no budget to re-run it
    assert s["undecided_rates"] == [] or (s["stop_reason"] == "max_steps" and len(s["undecided_rates"]) == 1)
    assert lo is None or lo < b
    assert hi is None or b <= hi
    if s["stop_reason"] == "ladder_held":
        assert b > ladder[-1] and lo == ladder[-1] and hi is None and not s["resolved"]
    if s["resolved"]:
        assert lo is not None and hi is not None and s["stop_reason"] == "resolved"
        # within the resolution, or no whole rate left strictly between the two
        assert hi <= lo * (1 + resolution) or math.floor(lo) + 1 > math.ceil(hi) - 1
    else:
        assert s["stop_reason"] in {"ladder_held", "max_steps"}
    if max_steps >= 2 * (len(ladder) + 10):  # ample: ramp + one quarter step + bisection, each maybe twice
        assert s["stop_reason"] != "max_steps"
        assert s["resolved"] or s["stop_reason"] == "ladder_held"


@settings(max_examples=300, deadline=None)
@given(ladder=_ladders(80), where=st.floats(0.0, 1.0))
def test_a_resolved_breaking_point_is_within_ten_percent_of_last_good(ladder: list[float], where: float) -> None:
    # rates of 80/s and up (a quarter is 20/s or more): there is always a whole rate inside a
    # bracket wider than 10%, so the ratio alone stops the search
    b = ladder[0] + where * (ladder[-1] - ladder[0])
    search = StressSearch(ladder, max_steps=60)
    _drive(search, lambda rate, _rerun: _outcome(rate, rate >= b))
    lo, hi = search.last_good, search.breaking_point
    if b > ladder[-1]:
        return
    assert search.resolved and lo is not None and hi is not None
    assert lo < b <= hi <= lo * 1.1


@pytest.mark.parametrize("b", [100, 150, 200, 399, 600, 777, 1000, 1250, 1600])
def test_the_quick_ladder_resolves_within_the_default_budget(b: float) -> None:
    search = StressSearch([100, 200, 400, 600, 800, 1000, 1300, 1600])
    _drive(search, lambda rate, _rerun: _outcome(rate, rate >= b))
    assert search.resolved and search.steps_run <= 14


def test_bisection_is_geometric_and_rates_are_whole() -> None:
    search = StressSearch([800, 1600])
    steps = _drive(search, lambda rate, _rerun: _outcome(rate, rate >= 1200))
    rates = [r for r, _, _ in steps]
    assert rates[:3] == [800, 1600, 1131]  # sqrt(800 * 1600) = 1131.4: 1.41x on either side
    assert all(r == int(r) for r in rates)
    assert search.summary() == {
        "ladder": [800.0, 1600.0], "resolution": 0.1, "last_good": 1131.0, "breaking_point": 1233.0,
        "broken_by": "transactions_per_sec", "bracket": [1131.0, 1233.0], "resolved": True,
        "steps_run": len(rates), "phase": "done", "stop_reason": "resolved", "undecided_rates": [],
            "disturbed_rates": []}
    assert rates == [800, 1600, 1131, 1345, 1233]  # 1233 <= 1131 * 1.1: within 10%
    first = search.first_broken
    assert first is not None and first.rate == 1600  # the ramp's break; bisection found 1233


def test_when_the_first_rate_breaks_the_search_steps_down_by_quarters() -> None:
    search = StressSearch([100, 200, 400])
    steps = _drive(search, lambda rate, _rerun: _outcome(rate, rate >= 20))
    rates = [r for r, _, _ in steps]
    assert rates[:3] == [100, 25, 12]  # 25 broke as well; 12 (the floor, 100/8) holds, then bisect (12, 25]
    assert search.phase == "done" and search.resolved
    lo, hi = search.last_good, search.breaking_point
    assert lo is not None and hi == 20 and lo < 20  # 19 held, 20 broke: exact on whole rates


def test_a_bot_that_breaks_at_one_per_second_ends_the_search() -> None:
    search = StressSearch([4])
    steps = _drive(search, lambda rate, _rerun: _outcome(rate, True))
    assert [r for r, _, _ in steps] == [4, 1]
    assert search.breaking_point == 1 and search.last_good is None
    assert search.stop_reason == "floor_broke" and not search.resolved  # somewhere below 1/s: not measured


def test_the_descent_stops_at_the_floor() -> None:
    """A quick run on a saturated machine once bisected 100, 25, 6, 2, 1/s, each low step minutes long
    (a step lasts until it holds enough samples). Below an eighth of the ladder's start it stops."""
    search = StressSearch([100, 200])
    steps = _drive(search, lambda rate, _rerun: _outcome(rate, True))
    assert [r for r, _, _ in steps] == [100, 25, 12]
    assert search.stop_reason == "floor_broke" and search.last_good is None and search.breaking_point == 12
    assert not search.resolved
    explicit = StressSearch([100, 200], floor=30)
    assert [r for r, _, _ in _drive(explicit, lambda rate, _rerun: _outcome(rate, True))] == [100, 30]
    with pytest.raises(ValueError, match="floor"):
        StressSearch([100], floor=200)


def test_a_ladder_that_holds_has_no_breaking_point() -> None:
    search = StressSearch([100, 200, 300])
    _drive(search, lambda rate, _rerun: _outcome(rate, False))
    s = search.summary()
    assert (s["breaking_point"], s["last_good"], s["resolved"], s["stop_reason"]) == (None, 300, False, "ladder_held")
    assert search.first_broken is None and s["broken_by"] is None and s["bracket"] == [300, None]


def test_an_undecided_step_runs_again_twice_as_long() -> None:
    search = StressSearch([100, 200, 400])
    assert search.next_rate() == 100 and search.next_seconds_factor == 1.0
    search.record(_outcome(100, False, undecided=True))
    assert search.next_rate() == 100 and search.next_seconds_factor == 2.0 and search.phase == "ramp"
    search.record(_outcome(100, False))
    assert search.next_rate() == 200 and search.next_seconds_factor == 1.0
    assert search.summary()["undecided_rates"] == []


def test_undecided_twice_counts_as_not_broken_and_is_listed() -> None:
    search = StressSearch([100, 200, 400])
    steps = _drive(search, lambda rate, rerun: _outcome(rate, rate >= 300, undecided=rate == 200))
    assert [r for r, _, _ in steps][:4] == [100, 200, 200, 400]
    s = search.summary()
    assert s["undecided_rates"] == [200] and search.last_good is not None and search.last_good >= 200
    assert s["resolved"]


def test_an_undecided_step_is_not_rerun_past_the_budget() -> None:
    search = StressSearch([100, 200], max_steps=2)
    search.record(_outcome(100, False))
    search.record(_outcome(200, False, undecided=True))
    s = search.summary()
    assert search.next_rate() is None and s["undecided_rates"] == [200] and s["stop_reason"] == "max_steps"
    assert search.last_good == 100  # one undecided run is no evidence either way


def test_hitting_max_steps_leaves_the_bracket_unresolved() -> None:
    search = StressSearch([100, 1600], max_steps=3)
    _drive(search, lambda rate, _rerun: _outcome(rate, rate >= 1000))
    s = search.summary()
    assert s["steps_run"] == 3 and not s["resolved"] and s["stop_reason"] == "max_steps"
    assert s["bracket"] == [400, 1600]  # 100 held, 1600 broke, sqrt(100 * 1600) = 400 held


def test_the_runner_must_run_what_was_asked() -> None:
    search = StressSearch([100])
    with pytest.raises(ValueError, match="asked for"):
        search.record(_outcome(150, False))
    search.record(_outcome(100, False))
    with pytest.raises(ValueError, match="done"):
        search.record(_outcome(100, False))


@pytest.mark.parametrize("kwargs", [{"ladder": []}, {"ladder": [200, 100]}, {"ladder": [100, 100]},
                                    {"ladder": [0.5, 100]}, {"ladder": [100], "resolution": 0},
                                    {"ladder": [100], "max_steps": 0}])
def test_a_bad_search_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        StressSearch(**kwargs)  # type: ignore[arg-type]


def test_a_break_on_a_busy_machine_is_run_again_and_a_quiet_hold_moves_the_bracket() -> None:
    search = StressSearch([100.0, 200.0, 400.0])
    search.record(_outcome(100.0, broken=False))
    search.record(_outcome(200.0, broken=True), disturbed=True)
    assert search.next_rate() == 200.0 and search.next_seconds_factor == 1.0  # again, same length
    assert search.breaking_point is None and search.disturbed_rates == (200.0,)
    search.record(_outcome(200.0, broken=False))  # quiet this time: it held
    assert search.last_good == 200.0 and search.next_rate() == 400.0


def test_a_break_disturbed_again_counts_and_the_budget_bounds_the_reruns() -> None:
    search = StressSearch([100.0, 200.0, 400.0], max_disturbed=1)
    search.record(_outcome(100.0, broken=False))
    search.record(_outcome(200.0, broken=True), disturbed=True)
    search.record(_outcome(200.0, broken=True), disturbed=True)  # busy on its re-run too: it counts
    assert search.breaking_point == 200.0
    rate = search.next_rate()
    assert rate is not None and 100.0 < rate < 200.0
    search.record(_outcome(rate, broken=True), disturbed=True)  # the budget is spent: it counts at once
    assert search.breaking_point == rate and search.disturbed_rates == (200.0,)
    assert search.summary()["disturbed_rates"] == [200.0]


@given(st.lists(st.booleans(), min_size=1, max_size=40), st.integers(1, 20))
@settings(max_examples=100, deadline=None)
def test_disturbed_reruns_never_exceed_the_step_budget(busy: list[bool], max_steps: int) -> None:
    search = StressSearch([100.0, 200.0, 400.0, 800.0], max_steps=max_steps)
    for k in range(200):
        rate = search.next_rate()
        if rate is None:
            break
        search.record(_outcome(rate, broken=rate >= 300.0), disturbed=busy[k % len(busy)])
    assert search.next_rate() is None and search.steps_run <= max_steps
    assert len(search.disturbed_rates) <= 2
