"""The chain-reset rule and the node's per-scenario summary (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.run.chainstate import ResetDecision, decide, node_summary


def test_only_a_dirty_own_chain_before_a_trading_scenario_is_reverted() -> None:
    base = dict(kind="trades", own_node=True, enabled=True, dirty=True, one_bot=False)
    assert decide(**base).reset is True  # type: ignore[arg-type]
    assert "not a trading" in decide(**{**base, "kind": "market_data"}).reason  # type: ignore[arg-type]
    assert "never reverted" in decide(**{**base, "own_node": False}).reason  # type: ignore[arg-type]
    assert decide(**{**base, "enabled": False}).reason == "--keep-chain"  # type: ignore[arg-type]
    assert decide(**{**base, "dirty": False}).reason == "chain as deployed"  # type: ignore[arg-type]
    assert "memray" in decide(**{**base, "one_bot": True}).reason  # type: ignore[arg-type]


@given(kind=st.sampled_from(["trades", "market_data", "api"]), own=st.booleans(), enabled=st.booleans(),
       dirty=st.booleans(), one_bot=st.booleans())
def test_a_reset_needs_every_condition(kind: str, own: bool, enabled: bool, dirty: bool, one_bot: bool) -> None:
    d = decide(kind=kind, own_node=own, enabled=enabled, dirty=dirty, one_bot=one_bot)
    assert d.reset == (kind == "trades" and own and enabled and dirty and not one_bot)
    assert d.reason


def test_node_summary_reports_growth_and_the_decision() -> None:
    mb = 2**20
    out = node_summary([(0.0, 100 * mb, 10.0), (1.0, 300 * mb, 30.0), (2.0, 250 * mb, 20.0)], 40, 95,
                       ResetDecision(True, "reverted"))
    assert out == {"reset": True, "reset_reason": "reverted", "block_start": 40, "block_end": 95,
                   "rss_mb_start": 100.0, "rss_mb_end": 250.0, "rss_mb_max": 300.0, "cpu_percent_mean": 20.0,
                   "samples": 3}
    bare = node_summary([], None, None, ResetDecision(False, "a user's node is never reverted"))
    assert "rss_mb_max" not in bare and bare["reset"] is False  # no process to sample: nothing invented
