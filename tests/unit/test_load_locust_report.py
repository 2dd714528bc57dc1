"""The run page shows an api scenario's HdrHistograms beside Locust's own figures, and says it is closed-loop."""

from __future__ import annotations

from pathlib import Path

from harness.load.locust_hdr import OP, SecondRecorder
from harness.load.locust_merge import merge_reports, relative_intervals
from harness.load.locust_runner import CLOSED_LOOP_NOTE, LatencySummary, LocustResult, plan
from harness.report import write_run_report
from harness.slo.judge import judge_run
from harness.slo.spec import load_spec
from tests.unit.report_data import results

T0 = 1_700_000_000.0


def _api_result() -> LocustResult:
    workers = []
    for w in range(2):
        rec = SecondRecorder()
        for i in range(600):
            rec.record(("GET /health", "GET /status")[i % 2], 1.0 + (i % 50) * 0.1 + w, i % 100 == 0, T0 + i / 100)
        workers.append((f"w{w}", rec.drain(final=True)))
    ours = merge_reports(workers, started_at=T0, stopped_at=T0 + 6.0)
    locust = LatencySummary(ours.requests, ours.failures, 3.4, 3.0, 6.0, 6.0, 7.0)
    return LocustResult(plan("http://127.0.0.1:8600", 200, 6, workers=2), relative_intervals(ours, T0), ours,
                        locust, {"GET /health": locust}, 199.0, ours.requests / 6.0, ["locust.log"])


def test_api_scenario_shows_ours_beside_locusts_and_the_closed_loop_note(tmp_path: Path) -> None:
    res = _api_result()
    doc = results()
    doc["scenarios"] = [{  # the api scenario alone: plots of the others would only cost time
        "id": "api", "started_at": T0, "duration_s": 6.0, "schedule": {"kind": "constant", "rate": 200, "seconds": 6},
        "annotations": [], "intervals": res.intervals, "resources": [], "health": {"probes": 0, "ok": 0},
        "summary": {**res.summary_json(), "dropped": 0}}]
    doc["verdicts"] = judge_run(doc, load_spec(None))
    html = write_run_report(doc, tmp_path / doc["run_id"]).read_text(encoding="utf-8")

    table = html[html.index('<table class="locust-table" data-scenario="api">'):]
    table = table[:table.index("</table>")]
    assert "ours: HdrHistogram, µs, merged exactly over 2 process(es)" in table
    assert "Locust&#39;s own: rounded buckets" in table or "Locust's own: rounded buckets" in table
    assert f"<td class=\"num\">{res.ours.requests}</td>" in table and "199/s" in table
    assert CLOSED_LOOP_NOTE.split(":")[0] in html.replace("&#39;", "'")
    # The latency section shows the service time (from the actual start) and says why nothing is corrected.
    block = html[html.index('data-op="api_request" data-scenario="api"'):]
    block = block[:block.index("</table>")]
    assert f"<code>{OP}</code>" in block and "a closed-loop load has no intended start" in block
    assert "api_calls_per_sec" in {v["row"] for v in doc["verdicts"] if v["scenario"] == "api"}
