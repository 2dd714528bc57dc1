"""The ``api`` scenario: Locust, in its own processes, against the bot's HTTP control API.

The intervals carry our HdrHistograms (``api_request.service``, recorded in every Locust process and
merged exactly on the master) and the counters ``api_requests``/``api_failures`` the
``api_calls_per_sec`` row judges. The summary holds ours and Locust's own figures side by side, with
the plain statement that Locust's load is closed-loop (``CLOSED_LOOP_NOTE``).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from harness.load.locust_merge import relative_intervals
from harness.load.locust_runner import plan, run_locust
from harness.run.scenario_doc import live_line, new_scenario_doc, resources_between

if TYPE_CHECKING:
    from harness.results.writer import ResultsWriter
    from harness.run.progress import Ui
    from harness.run.scenarios import Scenario
    from harness.run.stack import Stack


async def run_api_scenario(scn: Scenario, st: Stack, ui: Ui, writer: ResultsWriter) -> dict[str, Any]:
    step = scn.steps[0]
    t0_wall, t0_mono = time.time(), time.monotonic()
    doc = new_scenario_doc(scn, t0_wall, step.seconds)
    st.prober.reset()
    task = ui.task(f"api (Locust, {step.rate:g} req/s)", step.seconds)
    run = asyncio.create_task(run_locust(plan(st.api_url, step.rate, step.seconds, workers=st.locust_workers),
                                         st.run_dir / "locust", t0=t0_wall))
    start = time.monotonic()
    while not run.done():
        await asyncio.wait({run}, timeout=0.5)
        ui.update(task, min(step.seconds, time.monotonic() - start), live_line(st))
    result = run.result()
    # The scenario is the load itself: Locust's start-up (seconds for three processes on a busy machine)
    # would otherwise push the load past the schedule's window, and the judge reads that window.
    load_t0 = result.ours.started_at or t0_wall
    doc["started_at"] = load_t0
    doc["intervals"] = relative_intervals(result.ours, load_t0)
    doc["resources"] = resources_between(st, t0_mono + max(0.0, load_t0 - t0_wall), time.monotonic())
    doc["health"] = st.prober.statistics().as_dict()
    doc["summary"] = {**result.summary_json(), "target_rate": step.rate, "dropped": 0}
    if not result.ours.complete:
        ui.log("api: a Locust worker's final HdrHistogram report did not arrive; its last samples are missing")
    if not result.counts_agree:
        ui.log(f"api: our count ({result.ours.requests}) and Locust's ({result.total.requests}) differ")
    for name in result.artifacts:
        writer.add_artifact("logs", st.run_dir / "locust" / name)
    return doc
