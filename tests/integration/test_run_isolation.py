"""Scenario isolation on a real stack: an earlier scenario's backlog is carry-over, not the next one's data.

Mining is paused while the burst is submitted and resumed only once the next scenario runs, so
the burst's trades are certain to complete inside it (whatever the machine's speed): exactly the
leak the tags exist to stop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from harness.node.jsonrpc import NodeRpc
from harness.results.writer import ResultsWriter
from harness.run.options import RunOptions
from harness.run.progress import Ui
from harness.run.scenario_exec import run_scenario
from harness.run.scenarios import Scenario, Step
from harness.run.settle import settle
from harness.run.stack import stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _body(tmp_path: Path) -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
    opts = RunOptions(pairs=5, out=tmp_path, progress=False, calibrate=False)
    ui = Ui(enabled=False)
    async with stack(opts, tmp_path, ui) as st:
        writer = ResultsWriter(tmp_path, "isolation", "custom", {})
        await st.feed.wait_for_client(60)
        async with NodeRpc(st.node_url) as rpc:
            await rpc.call("evm_setIntervalMining", [0])
            await rpc.call("evm_setAutomine", [False])
            burst = await run_scenario(Scenario("burst", "trades", (Step(100.0, 1.0),), drain_s=0.0), st, ui, writer)
            sustained_task = asyncio.create_task(
                run_scenario(Scenario("sustained", "trades", (Step(20.0, 4.0),), drain_s=30.0), st, ui, writer))
            while not st.feed.statistics().running:  # the next scenario has begun
                await asyncio.sleep(0.05)
            await rpc.call("evm_setIntervalMining", [1])
            sustained = await asyncio.wait_for(sustained_task, 120)
        quiet = await settle(st, timeout_s=60)
        return burst, sustained, quiet.summary()


def test_a_backlog_that_completes_in_the_next_scenario_is_carry_over(tmp_path: Path) -> None:
    burst, sustained, quiet = asyncio.run(_body(tmp_path))
    carried = sustained["summary"]["carry_over"]  # type: ignore[index]
    assert carried["tags"] == ["burst"], carried
    assert carried["counters"].get("trades_ok", 0) > 0, carried  # the burst's swaps were mined in sustained
    own_ok = sum(iv["counters"].get("ok", 0) for iv in sustained["intervals"])  # type: ignore[index,union-attr]
    sent = sum(iv["counters"].get("sent", 0) for iv in sustained["intervals"])  # type: ignore[index,union-attr]
    assert sent == 80 and own_ok <= sent, (own_ok, sent)  # none of the burst's confirmations counted as its own
    burst_ok = sum(iv["counters"].get("ok", 0) for iv in burst["intervals"])  # type: ignore[index,union-attr]
    assert burst_ok == 0  # nothing of the burst was mined while the burst ran
    assert quiet["quiescence"]["timed_out"] is False, quiet
