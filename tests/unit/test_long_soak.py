"""A long soak's node: slow blocks and no past states, and what the judge makes of the latency they cost."""

from __future__ import annotations

from pathlib import Path

from harness.run.options import LONG_SOAK_S, RunOptions, default_block_time, mining_for


def _opts(**kw: object) -> RunOptions:
    return RunOptions(**{"out": Path("reports"), **kw})  # type: ignore[arg-type]


def test_a_long_soak_mines_one_second_blocks_unless_told_otherwise() -> None:
    assert default_block_time(_opts(profile="soak", soak_seconds=LONG_SOAK_S + 1)) == 1.0
    assert default_block_time(_opts(profile="soak", soak_seconds=180.0)) == 0.05  # a 3-minute try: as a run
    assert default_block_time(_opts(profile="quick")) == 0.05
    assert str(mining_for(_opts(profile="soak", soak_seconds=3600.0))) == "interval:1s"
    assert str(mining_for(_opts(profile="soak", soak_seconds=3600.0, block_time=0.05))) == "interval:0.05s"


def _verdict(row: str) -> dict[str, object]:
    return {"row": row, "table": "latency", "scenario": "soak", "verdict": "fail", "value": 600.0,
            "threshold": {"op": "<", "value": 100.0}, "note": "mean"}


def test_a_trade_execution_fail_on_slow_blocks_is_the_nodes_block_time() -> None:
    from harness.slo.judge import _not_under_slow_blocks

    slow = {"conditions": {"node": {"mining": "interval:1s"}}}
    fast = {"conditions": {"node": {"mining": "interval:0.05s"}}}
    judged = _not_under_slow_blocks(_verdict("trade_execution"), slow)
    assert judged["verdict"] == "inconclusive" and "every 1 s" in judged["note"] and "mean" in judged["note"]
    assert _not_under_slow_blocks(_verdict("trade_execution"), fast)["verdict"] == "fail"
    assert _not_under_slow_blocks(_verdict("price_fetch"), slow)["verdict"] == "fail"  # no block in a read
    assert _not_under_slow_blocks(_verdict("trade_execution"), {"conditions": {"node": {"mining": "automine"}}}
                                  )["verdict"] == "fail"
