"""The market-data stress on a real stack, kept short: one low rate, a few seconds of ticks through the bot's actors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from harness.results import MarketCapacity
from harness.results.writer import ResultsWriter
from harness.run.options import RunOptions
from harness.run.progress import Ui
from harness.run.scenario_exec import run_scenario
from harness.run.scenarios import Scenario, Step
from harness.run.stack import stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _body(tmp_path: Path) -> dict[str, Any]:
    opts = RunOptions(pairs=5, out=tmp_path, progress=False, calibrate=False)
    ui = Ui(enabled=False)
    async with stack(opts, tmp_path, ui) as st:
        writer = ResultsWriter(tmp_path, "wsstress", "custom", {})
        await st.feed.wait_for_client(60)
        # 7 s: after the 2-s warm-up and the last half second (the bot's interval straddling the
        # schedule's end), the three whole seconds a step needs to be judged.
        scn = Scenario("websocket_stress", "market_data", (Step(300.0, 7.0),), drain_s=10.0, stop_on_break=True)
        doc = await run_scenario(scn, st, ui, writer)
        writer.upsert_scenario(doc)
        return doc


def test_every_tick_of_a_step_reaches_a_pairs_actor_or_is_conflated_and_the_search_is_recorded(
        tmp_path: Path) -> None:
    doc = asyncio.run(_body(tmp_path))
    cap = MarketCapacity.from_json(doc["summary"]["capacity"])
    assert cap.steps and all(s.rate == 300.0 for s in cap.steps)
    for s in cap.steps:
        assert s.sent > 0 and s.dropped == 0 and s.handled > 0, s
        assert s.handled + s.conflated == s.sent, s  # each tick ended in exactly one counter
        assert s.tag.startswith("websocket_stress/") and s.bot_cpu_percent is not None, s
    # Nothing can break at 300/s; a feed slowed by a busy machine may end the search, never the bot.
    assert cap.breaking_point is None and cap.stop_reason in ("ladder_held", "generator_bound"), cap
    assert doc["summary"]["dropped"] == 0
    assert any("tick_delivery" in iv["histograms"] for iv in doc["intervals"])
