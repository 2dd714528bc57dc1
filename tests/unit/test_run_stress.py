from __future__ import annotations

from hdrh.histogram import HdrHistogram

from harness.run.stress import judge_step

LIMITS = {"trade_execution": {"mean": 100.0, "p95": 200.0, "p99": 500.0}}


def _iv(lat_ms: list[float], accepted: int, ok: int, errors: int = 0, sent: int = 0) -> dict[str, object]:
    h = HdrHistogram(1, 60_000_000, 3)
    for v in lat_ms:
        h.record_value(int(v * 1000))
    return {"histograms": {"trade_execution": h.encode()},
            "counters": {"tx_accepted": accepted, "ok": ok, "errors": errors, "sent": sent or accepted}}


def test_a_step_that_keeps_up_is_not_broken() -> None:
    out = judge_step(100, 0, 2, [_iv([20] * 100, 100, 100), _iv([30] * 100, 100, 100)], LIMITS)
    assert out.broken is None and out.latency_ok and out.achieved == 100


def test_latency_breaks_before_throughput_and_is_named() -> None:
    # every interval: 3% of trades at 600 ms, so p99 is clearly above 500 ms (p95 is not)
    ivs = [_iv([20] * 97 + [600] * 3, 50, 50) for _ in range(12)]
    out = judge_step(100, 0, 12, ivs, LIMITS)
    assert out.broken == "trade_execution.p99" and not out.latency_ok


def test_one_blip_does_not_end_the_stress_test() -> None:
    # a single 600 ms sample among 1200 puts the point p99 at 20 ms anyway; one among 150 would
    # put the point p99 above the limit, but its interval reaches down into the target
    ivs = [_iv([20] * 100, 100, 100) for _ in range(11)] + [_iv([20] * 49 + [600], 50, 50)]
    ivs_small = [_iv([20] * 149 + [600], 100, 100)]
    assert judge_step(100, 0, 12, ivs, LIMITS).broken is None
    small = judge_step(100, 0, 1.0, ivs_small, LIMITS)
    assert small.broken is None and small.latency_ok


def test_falling_behind_the_offered_rate_breaks_throughput() -> None:
    out = judge_step(1000, 0, 1, [_iv([20] * 10, 800, 800)], LIMITS)
    assert out.broken == "transactions_per_sec"


def test_errors_break_the_error_rate() -> None:
    out = judge_step(100, 0, 1, [_iv([20] * 10, 100, 99, errors=1)], LIMITS)
    assert out.broken == "error_rate"


def test_step_windows_keep_only_whole_seconds_inside_the_step() -> None:
    from harness.run.scenario_exec import step_window

    assert step_window(9.2, 17.3) == (10, 17)  # the partial seconds 9 and 17 are left out
    assert step_window(3.0, 11.0) == (3, 11)
    assert step_window(4.2, 4.9) == (4, 5)  # a step shorter than a second still gets its bucket
