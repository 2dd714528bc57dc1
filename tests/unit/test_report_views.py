"""Plot data: schedules' target rates, throughput per interval, per-interval percentiles."""

from __future__ import annotations

import numpy as np
import pytest

from harness.report import histograms as H
from harness.report.views import (
    ceiling_context,
    describe_schedule,
    log_bins,
    op_keys,
    op_view,
    resource_panels,
    target_rate_at,
    throughput_view,
)
from harness.results import Interval, Scenario, parse_results
from tests.unit.report_data import results

T = np.array([0.5, 5.0, 10.5, 25.0])


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ({"kind": "constant", "rate": 100, "seconds": 60}, [100, 100, 100, 100]),
        ({"kind": "steps", "steps": [{"rate": 10, "seconds": 10}, {"rate": 20, "seconds": 10}]},
         [10, 10, 20, np.nan]),
        ({"kind": "steps", "steps": [[10, 10], [20, 10]]}, [10, 10, 20, np.nan]),
        ({"kind": "ramp", "start_rate": 0, "end_rate": 100, "duration": 20}, [2.5, 25, 52.5, np.nan]),
        ({"kind": "burst", "count": 1000, "within": 1.0}, [1000, 0, 0, 0]),
        ({"kind": "burst", "count": 1000, "seconds": 2.0}, [500, 0, 0, 0]),
    ],
)
def test_target_rate_follows_both_schedule_spellings(schedule: dict, expected: list[float]) -> None:  # type: ignore[type-arg]
    got = target_rate_at(schedule, T, None)
    assert got is not None
    np.testing.assert_allclose(got, expected)


def test_unknown_schedule_falls_back_to_summary_rate_or_none() -> None:
    assert target_rate_at({"kind": "custom"}, T, None) is None
    np.testing.assert_allclose(target_rate_at({"kind": "custom"}, T, 7.0), [7.0] * 4)  # type: ignore[arg-type]
    assert describe_schedule({"kind": "custom", "x": 1}) == "kind=custom, x=1"
    assert describe_schedule({"kind": "steps", "steps": [[100, 10], [200, 10]]}) == "steps 100 → 200/s, 10 s each"


def test_op_view_merges_intervals_and_tracks_p99_per_interval() -> None:
    run = parse_results(results())
    scn = run.scenario("stress")
    assert scn is not None
    view = op_view(scn, "tx_submission")
    assert view.count == sum(iv.counters["sent"] for iv in scn.intervals)
    assert view.t.size == len(scn.intervals)
    # The fixture's queueing explodes in the last step: its per-interval p99 must show it.
    assert view.p99[-5:].min() > 3 * view.p99[:10].max()
    assert view.service is not None and H.stat_ms(view.service, "p99") < view.stat("p99")


def test_throughput_and_resource_views() -> None:
    run = parse_results(results())
    scn = run.scenario("sustained")
    assert scn is not None
    tp = throughput_view(scn)
    assert list(tp.rates) == ["sent", "ok", "errors", "dropped"]
    assert tp.rates["sent"].sum() == sum(iv.counters["sent"] for iv in scn.intervals)
    assert tp.target is not None and np.all(tp.target == 100)
    panels = {p.key: p for p in resource_panels(scn, run.verdicts)}
    assert panels["rss_bytes"].maximum == 512 and panels["rss_bytes"].target == 256
    assert panels["cpu_percent"].values.size == len(scn.resources)


def test_log_bins_keep_every_count() -> None:
    run = parse_results(results())
    scn = run.scenario("burst")
    assert scn is not None
    view = op_view(scn, "trade_execution")
    assert view.corrected is not None
    edges, counts = log_bins(view.corrected)
    assert counts.sum() == view.count and np.all(np.diff(edges) > 0)


def _scenario_with(keys: dict[str, str]) -> Scenario:
    return Scenario("x", 0.0, 1.0, {"kind": "constant", "rate": 1}, (), (Interval(0.0, 1.0, keys, {}),), (), 0, 0, {})


@pytest.mark.parametrize(
    ("op", "present", "corrected", "service", "judges_service"),
    [
        ("tx_submission", ("tx_submission", "tx_submission.from_tick"), "tx_submission.from_tick", "tx_submission",
         True),
        ("tx_submission", ("tx_submission",), None, "tx_submission", True),  # no tick caused one (API orders)
        # Documents written before the bot's convention: bare corrected, .service beside it.
        ("price_fetch", ("price_fetch", "price_fetch.service"), "price_fetch", "price_fetch.service", False),
        ("trade_execution", ("trade_execution", "trade_execution.service"), "trade_execution",
         "trade_execution.service", False),
        ("api_request", ("api_request",), "api_request", None, False),
    ],
)
def test_op_keys_map_both_conventions(
    op: str, present: tuple[str, ...], corrected: str | None, service: str | None, judges_service: bool
) -> None:
    enc = results()["scenarios"][1]["intervals"][0]["histograms"]["trade_execution"]
    keys = op_keys(_scenario_with(dict.fromkeys(present, enc)), op)
    assert (keys.corrected, keys.service, keys.judged, keys.judges_service) == (corrected, service, op,
                                                                                 judges_service)
    tick = "from tick (corrected)" if op in ("tx_submission",) else "from intended start (corrected)"
    assert keys.corrected_label == tick


def test_op_view_of_a_tick_operation_has_both_histograms_and_the_from_tick_series() -> None:
    run = parse_results(results())
    scn = run.scenario("burst")
    assert scn is not None
    view = op_view(scn, "price_fetch")
    assert view.corrected is not None and view.service is not None
    assert view.count == view.service_count == sum(max(1, iv.counters["sent"]) for iv in scn.intervals)
    # The first interval's burst queues behind earlier ticks: from the tick it takes longer than its own time.
    assert view.stat("p99") > view.service_stat("p99") > 0
    assert view.p99[0] == pytest.approx(H.percentiles_ms(
        H.decode(scn.intervals[0].histograms["price_fetch.from_tick"]), [99.0])[0])


def test_ceiling_context_sets_rates_against_the_calibration() -> None:
    run = parse_results(results())
    cal = run.calibration
    assert cal is not None
    by = {(v.row, v.stat): v for v in run.verdicts}
    tps = by[("transactions_per_sec", "target")]
    share = 800.0 / cal.node_accept_per_s * 100
    assert ceiling_context(tps, cal) == f"800 tx/s = {share:.2g}% of this node's ceiling"
    ws = ceiling_context(by[("websocket_messages_per_sec", "target")], cal)
    assert ws is not None and ws.startswith("9,700 msg/s = ") and ws.endswith("per million CPU-reference iterations")
    assert ceiling_context(by[("concurrent_operations", "target")], cal) is None  # ops, not a rate
    assert ceiling_context(by[("memory_rss", "peak")], cal) is None
    assert ceiling_context(tps, None) == "machine not calibrated: an absolute figure only"
