"""harness.slo.judge end to end on synthetic runs whose true values are planted (harness.slo.synth)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from harness.slo.judge import judge_run
from harness.slo.spec import SloSpec, load_default, loads
from harness.slo.synth import Synth, synth_results

SCHEMA = Path(__file__).resolve().parents[2] / "harness" / "results" / "results.schema.json"
N_BOOT = 300


@cache
def _spec() -> SloSpec:
    return load_default()


def _judge(s: Synth, **kw: Any) -> list[dict[str, Any]]:
    return judge_run(synth_results(s), _spec(), n_boot=N_BOOT, **kw)


def _pick(verdicts: list[dict[str, Any]], row: str, stat: str | None = None) -> list[dict[str, Any]]:
    return [v for v in verdicts if v["row"] == row and (stat is None or v["stat"] == stat)]


@cache
def _healthy() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    doc = synth_results(Synth(seed=1, sustained_s=60))
    return doc, judge_run(doc, _spec(), n_boot=N_BOOT)


def test_every_row_always_appears_once_per_threshold() -> None:
    _, verdicts = _healthy()
    for row in _spec().rows:
        got = _pick(verdicts, row.id)
        assert len(got) >= len(row.thresholds), row.id
        assert {(v["threshold"]["op"], v["threshold"]["value"], v["threshold"]["level"]) for v in got} == {
            (t.op, t.value, t.level) for t in row.thresholds}


def test_verdicts_match_the_results_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    if not SCHEMA.exists():
        pytest.skip("results.schema.json not present")
    doc, verdicts = _healthy()
    doc = dict(doc, verdicts=verdicts)
    jsonschema.validate(json.loads(json.dumps(doc, allow_nan=False)), json.loads(SCHEMA.read_text()))


def test_healthy_run_passes_latency_and_resources() -> None:
    _, verdicts = _healthy()
    for v in verdicts:
        if v["table"] in ("latency", "resources"):
            assert v["verdict"] == "pass", v
            assert v["ci"][0] <= v["value"] <= v["ci"][1]
    tx = _pick(verdicts, "tx_submission", "p95")[0]
    assert tx["unit"] == "ms" and tx["scenario"] == "sustained" and "service time" in tx["note"]


def test_slow_operation_fails_its_latency_rows() -> None:
    # Every trade_execution statistic lies well beyond its threshold's run-to-run spread (25%).
    lat = {"tx_submission": (8.0, 0.5), "price_fetch": (1.5, 0.4), "balance_check": (0.8, 0.4),
           "trade_execution": (500.0, 0.3)}
    verdicts = _judge(Synth(seed=2, sustained_s=30, latency=lat, scenarios=("sustained",)))
    assert {v["verdict"] for v in _pick(verdicts, "trade_execution")} == {"fail"}
    assert all(v["margin"] < 0 for v in _pick(verdicts, "trade_execution"))
    assert {v["verdict"] for v in _pick(verdicts, "tx_submission")} == {"pass"}


def test_a_latency_within_the_run_to_run_spread_of_its_threshold_is_inconclusive() -> None:
    # trade_execution's mean target is 100 ms: 112 ms fails within the run (narrow CI), but the next
    # run of the same build may read 90 ms (the A/A proof's 25%), so one run cannot decide it.
    near = _judge(Synth(seed=4, sustained_s=30, latency={"trade_execution": (112.0, 0.2)}, scenarios=("sustained",)))
    mean = _pick(near, "trade_execution", "mean")[0]
    assert mean["ci"][0] > 100.0, mean  # the within-run CI alone would say fail
    assert mean["verdict"] == "inconclusive" and "run-to-run spread" in mean["note"], mean
    far = _judge(Synth(seed=4, sustained_s=30, latency={"trade_execution": (140.0, 0.2)}, scenarios=("sustained",)))
    assert _pick(far, "trade_execution", "mean")[0]["verdict"] == "fail"


def test_stress_breaking_point_sets_transactions_per_sec() -> None:
    verdicts = _judge(Synth(seed=3, scenarios=("stress",), stress_capacity=900.0))
    target, minimum = _pick(verdicts, "transactions_per_sec")
    assert (target["stat"], minimum["stat"]) == ("target", "minimum")
    assert target["value"] == pytest.approx(800.0, rel=0.03)  # the 800/s step was the best that held
    assert "1600/s" in target["note"]
    # 800/s is within the run-to-run spread of a stress search (x/÷ 1.80) of both 1000 and 500:
    # one run cannot decide either, however tight the step's own CI.
    assert (target["verdict"], minimum["verdict"]) == ("inconclusive", "inconclusive")
    assert "run-to-run spread" in target["note"] and target["ci"][0] < 500 and target["ci"][1] > 1000
    low = _judge(Synth(seed=3, scenarios=("stress",), stress_capacity=250.0))
    assert [v["verdict"] for v in _pick(low, "transactions_per_sec")] == ["fail", "fail"]
    high = _judge(Synth(seed=3, scenarios=("stress",), stress_capacity=5000.0, stress_rates=(400, 800, 1700, 3400)))
    assert [v["verdict"] for v in _pick(high, "transactions_per_sec")] == ["pass", "pass"]


def test_a_search_that_stopped_at_its_floor_is_judged_not_crashed() -> None:
    """A cross-region run broke at every rate down to the floor: no lower end to quote. The row said
    "could not judge: unsupported format string passed to NoneType" before."""
    doc = synth_results(Synth(seed=3, scenarios=("stress",), stress_capacity=5.0))
    stress = next(s for s in doc["scenarios"] if s["id"] == "stress")
    stress["summary"]["search"] = {"ladder": [100.0, 200.0], "resolution": 0.1, "last_good": None,
                                   "breaking_point": 12.0, "broken_by": "tx_submission.mean",
                                   "bracket": [None, 12.0], "resolved": False, "steps_run": 3,
                                   "phase": "done", "stop_reason": "floor_broke", "undecided_rates": []}
    rows = _pick(judge_run(doc, _spec(), n_boot=N_BOOT), "transactions_per_sec")
    assert [v["verdict"] for v in rows] == ["fail", "fail"], rows
    assert "no rate held down to the search's floor, broke 12/s" in rows[0]["note"]


def test_concurrency_only_counts_steps_where_latency_held() -> None:
    verdicts = _judge(Synth(seed=4, scenarios=("stress", "burst"), stress_capacity=900.0,
                            in_flight_per_100tps=10.0))
    target = _pick(verdicts, "concurrent_operations", "target")[0]
    # held steps offered up to 800/s -> in_flight_max about 80..82; the broken 1600/s step (90) and
    # the burst (latency not held, 100) are excluded.
    assert 80 <= target["value"] <= 82
    # An observed peak varies between runs as a stress search does: 81 is not surely below 100.
    assert target["verdict"] == "inconclusive" and "run-to-run" in target["note"]
    assert _pick(verdicts, "concurrent_operations", "minimum")[0]["verdict"] == "inconclusive"
    low = _judge(Synth(seed=4, scenarios=("stress", "burst"), stress_capacity=900.0, in_flight_per_100tps=3.0))
    assert [v["verdict"] for v in _pick(low, "concurrent_operations")] == ["fail", "fail"]


def test_websocket_drop_fails_the_row_with_a_note() -> None:
    ok = _judge(Synth(seed=5, scenarios=("websocket",)))
    assert {v["verdict"] for v in _pick(ok, "websocket_messages_per_sec")} == {"pass"}
    dropped = _judge(Synth(seed=5, scenarios=("websocket",), ws_dropped=3))
    for v in _pick(dropped, "websocket_messages_per_sec"):
        assert v["verdict"] == "fail" and "3 messages sent were not handled" in v["note"]


def _capacity_scenario(bound: bool) -> dict[str, Any]:
    from harness.results.capacity import MarketCapacity, MarketStep

    step = MarketStep(rate=50_000.0, start=2.0, end=10.0, warmup_s=2.0, offered=49_900.0, achieved=49_800.0,
                      sent=500_000, handled=90_000, conflated=410_000, dropped=0, generator_lag_p99_ms=3.0,
                      generator_lag_max_ms=9.0, generator_bound=bound, broken=None, undecided=False, intervals=8,
                      bot_cpu_percent=71.0)
    cap = MarketCapacity((12_500.0, 25_000.0, 50_000.0), 0.1, 25_000.0, None, None, 50_000.0 if bound else None,
                         False, "generator_bound" if bound else "ladder_held", steps=(step,))
    return {"id": "websocket_stress", "started_at": 0.0, "duration_s": 30.0, "schedule": {"kind": "steps"},
            "annotations": [], "intervals": [], "resources": [], "health": {"probes": 0, "ok": 0},
            "summary": {"capacity": cap.to_json()}}


def test_conflated_ticks_are_handled_and_the_capacity_search_is_told_beside_the_row() -> None:
    doc = synth_results(Synth(seed=5, scenarios=("websocket",)))
    for iv in doc["scenarios"][0]["intervals"]:  # the actors looked at a quarter; the rest were superseded
        c = iv["counters"]
        c["ws_conflated"] = c["ws_handled"] - c["ws_handled"] // 4
        c["ws_handled"] //= 4
    doc["scenarios"].append(_capacity_scenario(bound=True))
    ws = _pick(judge_run(doc, _spec(), n_boot=N_BOOT), "websocket_messages_per_sec")
    assert ws and {v["verdict"] for v in ws} == {"pass"} and ws[0]["scenario"] == "websocket"
    assert "conflated" in ws[0]["note"] and "0 dropped" in ws[0]["note"]
    floor = "≥ 49,800 msg/s handled with none dropped (held 25,000 offered on schedule), generator-bound"
    assert floor in ws[0]["note"]
    assert "bot CPU 71% of a core at 50,000/s offered" in ws[0]["note"]


def test_the_capacity_search_alone_leaves_the_row_unjudged_but_tells_its_ceiling() -> None:
    doc = synth_results(Synth(seed=5, scenarios=("sustained",), sustained_s=20))
    doc["scenarios"].append(_capacity_scenario(bound=False))
    ws = _pick(judge_run(doc, _spec(), n_boot=N_BOOT), "websocket_messages_per_sec")
    assert ws and all(v["verdict"] == "inconclusive" for v in ws)
    assert "scenario websocket missing" in ws[0]["note"] and "the whole ladder held" in ws[0]["note"]


def test_api_failures_fail_the_error_ratio_and_the_rate() -> None:
    verdicts = _judge(Synth(seed=6, scenarios=("api",), api_failure_prob=0.01))
    assert _pick(verdicts, "api_calls_per_sec", "error_rate")[0]["verdict"] == "fail"
    assert _pick(verdicts, "api_calls_per_sec", "target")[0]["verdict"] == "fail"
    clean = _judge(Synth(seed=6, scenarios=("api",)))
    assert {v["verdict"] for v in _pick(clean, "api_calls_per_sec")} == {"pass"}


def test_error_rate_and_uptime() -> None:
    bad = _judge(Synth(seed=7, sustained_s=30, scenarios=("sustained",), error_prob=0.01, health_fail_prob=0.2))
    assert _pick(bad, "error_rate")[0]["verdict"] == "fail"
    assert _pick(bad, "uptime")[0]["verdict"] == "fail"
    short = _judge(Synth(seed=7, sustained_s=30, scenarios=("sustained",)))
    up = _pick(short, "uptime")[0]
    # 30 of 30 probes cannot show >= 99.9%: inconclusive, with the time it would take
    assert up["verdict"] == "inconclusive" and up["more_time_s"] > 0


def test_missing_scenarios_are_inconclusive_and_say_so() -> None:
    verdicts = _judge(Synth(seed=8, sustained_s=20, scenarios=("sustained",)))
    ws = _pick(verdicts, "websocket_messages_per_sec")
    assert ws and all(v["verdict"] == "inconclusive" for v in ws)
    assert "not measured in this run (scenario websocket missing)" in ws[0]["note"]
    assert _pick(verdicts, "regression")[0]["note"].startswith("no baseline")
    assert len(verdicts) == sum(len(r.thresholds) for r in _spec().rows)


def test_memory_leak_planted_and_flat() -> None:
    leak = _judge(Synth(seed=9, scenarios=("soak",), leak_mb_per_h=60.0))
    v = _pick(leak, "memory_leak")[0]
    assert v["scenario"] == "soak" and v["verdict"] == "fail"
    assert v["ci"][0] <= 60e6 <= v["ci"][1]
    flat = _pick(_judge(Synth(seed=9, scenarios=("soak",))), "memory_leak")[0]
    assert flat["verdict"] == "pass" and flat["ci"][1] < 1e6
    assert "sensitivity achieved" in flat["note"]


def test_regression_against_a_baseline() -> None:
    base = synth_results(Synth(seed=10, scenarios=("sustained",), sustained_s=40))
    slow = judge_run(synth_results(Synth(seed=11, slowdown=1.40, scenarios=("sustained",), sustained_s=40)),
                     _spec(), baseline=base, n_boot=N_BOOT)
    reg = {v["stat"]: v for v in _pick(slow, "regression")}
    assert len(reg) == 4 and all(v["value"] == pytest.approx(1.40, abs=0.06) for v in reg.values())
    # Called where 40% clears the run-to-run spread plus its 1 ms floor (means of 9 and 34 ms); not
    # on price_fetch (1.6 ms) or balance_check (0.9 ms), where 40% is less than the floor itself.
    assert {s for s, v in reg.items() if v["verdict"] == "fail"} == {"tx_submission.mean_ratio",
                                                                   "trade_execution.mean_ratio"}
    assert "1 ms" in reg["balance_check.mean_ratio"]["note"]
    # A 10% slowdown between two single runs is inside their run-to-run spread: not called a regression
    mild = _pick(judge_run(synth_results(Synth(seed=11, slowdown=1.10, scenarios=("sustained",), sustained_s=40)),
                           _spec(), baseline=base, n_boot=N_BOOT), "regression")
    assert all(v["verdict"] != "fail" for v in mild) and "run-to-run" in mild[0]["note"]
    same = judge_run(synth_results(Synth(seed=12, scenarios=("sustained",), sustained_s=40)), _spec(),
                     baseline=base, n_boot=N_BOOT)
    assert all(v["verdict"] != "fail" for v in _pick(same, "regression"))


def test_a_corrupt_histogram_costs_only_its_own_row() -> None:
    doc = synth_results(Synth(seed=13, sustained_s=15, scenarios=("sustained",)))
    doc["scenarios"][0]["intervals"][3]["histograms"]["price_fetch"] = "AAAAnotahistogram"
    verdicts = judge_run(doc, _spec(), n_boot=N_BOOT)
    pf = _pick(verdicts, "price_fetch")
    assert all(v["verdict"] == "inconclusive" for v in pf)
    assert "interval 3" in pf[0]["note"] and "price_fetch" in pf[0]["note"]
    assert {v["verdict"] for v in _pick(verdicts, "tx_submission")} == {"pass"}


def test_user_spec_with_a_custom_row_and_different_threshold() -> None:
    spec = loads("""
[[row]]
id = "trade_execution"
table = "latency"
definition = "strict"
unit = "ms"
source = "sustained"
thresholds = [ { expr = "p(50) < 5" }, { expr = "med < 500", level = "maximum" } ]
""")
    verdicts = judge_run(synth_results(Synth(seed=14, sustained_s=15, scenarios=("sustained",))), spec, n_boot=N_BOOT)
    assert [(v["stat"], v["verdict"]) for v in verdicts] == [("p50", "fail"), ("p50", "pass")]


def test_an_interrupted_or_empty_run_still_lists_every_row() -> None:
    empty_sustained = {"id": "sustained", "duration_s": 0, "intervals": [], "resources": [],
                       "health": {"probes": 0, "ok": 0}, "summary": {}}
    stress_without_steps = {"id": "stress", "intervals": [], "summary": {}}
    n_rows = sum(len(r.thresholds) for r in _spec().rows)
    for doc in ({}, {"scenarios": [empty_sustained, stress_without_steps]}):
        verdicts = judge_run(doc, _spec(), n_boot=N_BOOT)
        assert len(verdicts) == n_rows
        assert {v["verdict"] for v in verdicts} == {"inconclusive"}
        assert all(v["note"] for v in verdicts)
    tps = _pick(judge_run({"scenarios": [stress_without_steps]}, _spec()), "transactions_per_sec")[0]
    assert "summary.steps" in tps["note"]


def _calibrated(doc: dict[str, Any], node: float) -> dict[str, Any]:
    cal = {"cpu_ref_per_s": 2e6, "cpu_ref_spread": 0.02, "sign_per_s": 5000.0, "sign_spread": 0.03,
           "node_accept_per_s": node, "node_accept_spread": 0.05, "node_mined": True, "seconds": 3.0}
    doc.setdefault("conditions", {})["calibration"] = cal
    return doc


def test_a_slowdown_measured_on_a_different_machine_is_not_called_a_regression() -> None:
    base = _calibrated(synth_results(Synth(seed=10, scenarios=("sustained",), sustained_s=40)), 6000.0)
    slow = _calibrated(synth_results(Synth(seed=11, slowdown=1.40, scenarios=("sustained",), sustained_s=40)),
                       2454.0)  # the slower box of machine-facts.md
    reg = _pick(judge_run(slow, _spec(), baseline=base, n_boot=N_BOOT), "regression")
    assert reg and all(v["verdict"] == "inconclusive" for v in reg)
    assert all("machine differs" in v["note"] and "node ceiling" in v["note"] for v in reg)
    # the same slowdown on a machine that calibrates alike is still caught
    same_box = _calibrated(synth_results(Synth(seed=11, slowdown=1.40, scenarios=("sustained",), sustained_s=40)),
                           6100.0)
    caught = {v["stat"] for v in _pick(judge_run(same_box, _spec(), baseline=base, n_boot=N_BOOT), "regression")
              if v["verdict"] == "fail"}
    assert caught == {"tx_submission.mean_ratio", "trade_execution.mean_ratio"}  # the ones above the 1 ms floor


def test_memory_leak_of_a_saturated_bot_is_inconclusive_with_the_reason() -> None:
    doc = synth_results(Synth(seed=9, scenarios=("soak",), leak_mb_per_h=60.0))
    soak = doc["scenarios"][0]
    soak["summary"]["saturation"] = {"saturated": True, "reason": "in flight reached 1,024 of its cap of 1,024"}
    v = _pick(judge_run(doc, _spec(), n_boot=N_BOOT), "memory_leak")[0]
    assert v["verdict"] == "inconclusive" and v["value"] is not None  # the slope is still shown
    assert "saturated (in flight reached 1,024" in v["note"] and "--rate" in v["note"]


def test_a_short_soak_calls_a_large_leak_from_the_per_trade_floor() -> None:
    doc = synth_results(Synth(seed=9, scenarios=("soak",), soak_s=60, rss_noise_mb=0.2, leak_mb_per_h=4700.0))
    soak = doc["scenarios"][0]
    soak["intervals"] = [{"start": float(k), "end": k + 1.0, "histograms": {}, "counters": {"ok": 10}}
                         for k in range(60)]
    v = _pick(judge_run(doc, _spec(), n_boot=N_BOOT), "memory_leak")[0]
    assert v["verdict"] == "fail" and "short-window floor" in v["note"]
    assert "smallest leak this window calls" in v["note"] and "bytes per trade at 10 trades/s" in v["note"]
    soak["intervals"] = []  # no trades counted: no floor to scale, so a short window gives no verdict
    assert _pick(judge_run(doc, _spec(), n_boot=N_BOOT), "memory_leak")[0]["verdict"] == "inconclusive"
