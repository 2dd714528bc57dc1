"""``harness run --profile-bot``: a py-spy profile of the bot during each scenario, linked from the run's page.

One profile per scenario rather than one for the run: scenarios load the bot in different ways (a burst,
a steady rate, a stress search, API requests), a flame graph of all of them at once says which of them
dominated the run's seconds and little else, and a chain reset or ``--fresh-bot`` gives a scenario a new
bot process that a run-long attach would lose. py-spy attaches to the scenario's bot after its quiescence
wait and stops (SIGINT: it writes what it sampled) when the scenario's collection is done, drain included;
the folder is ``<run>/profiles/<scenario>/`` (``harness.run.profiling``) and the scenario's summary gets
``profile`` (page, files, samples, the top functions by self and total time). Sampling is 100 Hz,
nonblocking, Python frames: the bot is never stopped, but py-spy takes CPU on the same cores, so a profiled
run's figures are not those of an unprofiled one (the page says so). The chaos scenarios, each with its own
bot, are not profiled. A refusal to attach is reported once, on the profile's page and in the log, and no
later scenario tries again; the run itself goes on.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from harness.probes.pyspy import SpyOptions, SpyRecording, pyspy_version
from harness.results.writer import ResultsWriter
from harness.run.options import RunOptions
from harness.run.profiling import RAW, render_profile
from harness.run.progress import Ui
from harness.run.scenarios import Scenario
from harness.run.stack import Stack

FORMATS = ("flamegraph", "speedscope")
SPY = SpyOptions()
_refused: set[Path] = set()  # runs in which py-spy was refused once: no use asking again


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text) or "scenario"


def _conditions(writer: ResultsWriter, st: Stack, scn: Scenario) -> dict[str, Any]:
    run_conditions = dict(writer.run.conditions)
    return {
        "run_id": writer.run.run_id, "scenario": scn.id, "schedule": scn.schedule_dict(),
        "rate": scn.total / scn.duration_s if scn.duration_s else None, "seconds": scn.duration_s,
        "mode": "attach", "sampling": SPY.as_dict(), "py_spy": pyspy_version(), "bot_pid": st.bot.pid,
        "calibration": run_conditions.get("calibration"),
        **{k: run_conditions[k] for k in ("machine", "node", "network_profile", "bot", "git_commit")
           if k in run_conditions},
    }


@contextlib.asynccontextmanager
async def scenario_profile(opts: RunOptions, st: Stack, scn: Scenario, writer: ResultsWriter,
                           ui: Ui) -> AsyncIterator[dict[str, Any]]:
    """Around one scenario: yields a dict that holds ``{"profile": summary}`` once the block is left."""
    out: dict[str, Any] = {}
    run_dir = st.run_dir
    if not opts.profile_bot or scn.chaos is not None or run_dir in _refused:
        yield out
        return
    folder = run_dir / "profiles" / _slug(scn.id)
    folder.mkdir(parents=True, exist_ok=True)
    recording = SpyRecording(folder / RAW, SPY)
    recording.start(st.bot.pid)
    try:
        yield out
    finally:
        result = await recording.stop()
        record = render_profile(folder, result, FORMATS, _conditions(writer, st, scn),
                                f"{scn.id} · run {writer.run.run_id}", run_page=run_dir / "index.html")
        out["profile"] = record.summary(run_dir)
        writer.add_artifact("profiles", record.page)
        if "flamegraph" in record.files:
            writer.add_artifact("profiles", folder / record.files["flamegraph"])
        if record.failure is not None:
            ui.log(f"profile of {scn.id}: {record.failure}")
            if result.failure is not None and result.failure.kind == "ptrace":
                _refused.add(run_dir)
        else:
            ui.log(f"profile of {scn.id}: {record.table.samples:,} samples, {record.page}")
