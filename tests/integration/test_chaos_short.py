"""The five chaos scenarios in their short forms against a real anvil, as ``harness run --chaos all`` runs them,
then a supervised task killed through the bot's API.

One stack for all of it (anvil, deployment, feed, the run's bot); ``run_chaos`` gives each scenario its own
bot behind two fault proxies on a reverted chain. The report is not rendered (the verdicts are judged from
the same document): the rendering is the run verb's, tested elsewhere. Every wait is on a condition with a
deadline; nothing here asserts how fast the machine is, only what the bot did.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness.results.chaos import ChaosResults
from harness.results.writer import ResultsWriter
from harness.run.chaos import GRACE_S, run_chaos
from harness.run.conditions import conditions
from harness.run.options import RunOptions
from harness.run.progress import Ui
from harness.run.scenarios import profile, with_chaos
from harness.run.stack import stack
from harness.slo.chaos_rows import CHAOS_ROWS
from harness.slo.judge import judge_run
from harness.slo.spec import load_default
from tests.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def _bound(row: str) -> float:
    [thr] = next(r for r in load_default().rows if r.id == row).thresholds
    return thr.value


async def _kill_receipts(api_url: str, token: str) -> list[str]:
    """Kill the run's bot's receipts task; returns the /health reasons seen while it was down."""
    auth = {"Authorization": f"Bearer {token}"}
    seen: list[str] = []
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{api_url}/tasks/nosuch/kill", headers=auth) as r:
            assert r.status == 404
        async with s.post(f"{api_url}/tasks/receipts/kill", headers=auth) as r:
            assert r.status == 200, await r.text()
        state = {"down": False, "up_again": False}

        async def poll() -> None:
            while not state["up_again"]:
                async with s.get(f"{api_url}/health") as r:
                    body = await r.json()
                if r.status == 503:
                    state["down"] = True
                    seen.extend(body.get("reasons", []))
                elif state["down"]:
                    state["up_again"] = True
                await asyncio.sleep(0.01)

        poller = asyncio.create_task(poll())
        try:
            await until(lambda: state["up_again"] or poller.done(), 60, "/health down naming the task, then up")
        finally:
            poller.cancel()
        async with s.get(f"{api_url}/metrics") as r:
            metrics = await r.text()
    restarts = re.search(r'bot_task_restarts_total\{task="receipts"\} (\d+)', metrics)
    assert restarts is not None and float(restarts.group(1)) >= 1, "the restart was not counted"
    return seen


async def test_the_short_chaos_scenarios_lose_and_double_nothing_and_recover(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    opts = RunOptions(profile="custom", pairs=4, out=tmp_path, calibrate=False, progress=False)
    scenarios = list(with_chaos(profile("quick"), None, "all").scenarios)
    ui = Ui(enabled=False)
    async with stack(opts, run_dir, ui) as st:
        writer = ResultsWriter(run_dir, "chaos-test", "custom", conditions(st.node_info, st.bot_settings))
        assert st.chain is not None
        await st.chain.take()
        await run_chaos(scenarios, st, ui, writer, settle_timeout_s=60.0)
        reasons = await _kill_receipts(st.api_url, st.token)  # on the run's bot, back after the chaos
    assert any("receipts" in why for why in reasons), reasons

    doc: dict[str, Any] = writer.doc
    chaos = ChaosResults.from_json(doc["chaos"])
    assert [s.name for s in chaos.scenarios] == ["outage", "ratelimit", "wsdrop", "slownode", "ambiguous"]
    for e in chaos.scenarios:
        assert e.error is None, e
        led = e.ledger
        assert led is not None and led.reconciled, (e.id, led)
        c = led.counts
        assert (c.lost, c.doubled, c.unexplained, c.not_terminal) == (0, 0, 0, 0), (e.id, c)
        assert e.trades_ok > 0 and c.mined_confirmed > 0, (e.id, e.trades_ok, c)

    f = chaos.get("outage").failover  # type: ignore[union-attr]
    # every outage (each on the endpoint then carrying the traffic) was followed by a failover, within the bound
    assert f is not None and f.unobserved == 0 and f.n == len(f.times_ms) >= 5, f
    assert f.p99_ms is not None and f.p99_ms < _bound("failover_time"), f

    r = chaos.get("ratelimit").retry_after  # type: ignore[union-attr]
    assert r is not None and r.limited >= 1 and r.early == 0, r
    assert r.ok_via_other > 0 and r.trades_ok > 0, r  # trades went on through B
    assert r.log_limited == r.limited  # the proxy's log tells the same story as its watch
    # It came back to A after its own cap, not after the header's 30 s.
    assert all(r.cap_s - GRACE_S <= x < r.retry_after_s for x in r.returns_s), r

    w = chaos.get("wsdrop").resubscribe  # type: ignore[union-attr]
    assert w is not None and w.dropped >= 1 and w.connects >= w.dropped and w.backfilled > 0, w

    s = chaos.get("slownode").slow  # type: ignore[union-attr]
    assert s is not None and s.share_other is not None and s.share_other >= 0.5, s

    a = chaos.get("ambiguous").ambiguous  # type: ignore[union-attr]
    assert a is not None and a.sends_lost >= 1, a  # the node got those sends; the bot never heard back

    writer.set_verdicts(judge_run(doc, load_default(), n_boot=200))
    writer.finish("complete")  # also checks the document against the JSON Schema
    verdicts = {(v.row, v.scenario): v.verdict for v in writer.run.verdicts if v.row in CHAOS_ROWS}
    for row in ("failover_time", "retry_after_honoured", "ws_resubscribed"):
        assert [v for (r_, _), v in verdicts.items() if r_ == row] == ["pass"], (row, verdicts)
    assert verdicts[("slow_endpoint_avoided", "chaos_slownode")] != "fail", verdicts
    assert {v for (r_, _), v in verdicts.items() if r_ == "no_trade_lost_or_doubled"} == {"pass"}, verdicts
    assert (run_dir / "chaos-outage-A.jsonl").exists() and (run_dir / "bot-chaos-ratelimit.toml").exists()
