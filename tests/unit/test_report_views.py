"""Plot data: schedules' target rates, throughput per interval, per-interval percentiles."""

from __future__ import annotations

import numpy as np
import pytest

from harness.report import histograms as H
from harness.report.model import parse_results
from harness.report.views import (
    describe_schedule,
    log_bins,
    op_view,
    resource_panels,
    target_rate_at,
    throughput_view,
)
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
