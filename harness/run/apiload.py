"""The ``api`` scenario: Locust, in its own processes, against the bot's HTTP control API."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from harness.load.locust_runner import plan, run_locust
from harness.run.scenario_doc import live_line, new_scenario_doc, resources_between

if TYPE_CHECKING:
    from harness.results.writer import ResultsWriter
    from harness.run.progress import Ui
    from harness.run.scenarios import Scenario
    from harness.run.stack import Stack


async def run_api_scenario(scn: Scenario, st: Stack, ui: Ui, writer: ResultsWriter) -> dict[str, Any]:
    import asyncio

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
    # Locust keeps no HdrHistograms: its per-second counts, and its (2-digit) latency summary below.
    doc["intervals"] = [{"histograms": {}, **iv} for iv in result.intervals]
    doc["resources"] = resources_between(st, t0_mono, time.monotonic())
    doc["health"] = st.prober.statistics().as_dict()
    doc["summary"] = {"target_rate": step.rate, **result.summary_json(), "dropped": 0}
    for name in result.artifacts:
        writer.add_artifact("logs", st.run_dir / "locust" / name)
    return doc
