"""The chain-reset rule and the node's per-scenario summary (pure), and a revert checked by its height."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from harness.run.chainstate import (
    MAX_BLOCKS_SINCE_SNAPSHOT,
    ChainSnapshot,
    ResetDecision,
    decide,
    node_summary,
)


def test_only_our_own_chain_grown_past_the_limit_is_reverted() -> None:
    base: dict[str, Any] = dict(own_node=True, enabled=True, blocks_since_snapshot=MAX_BLOCKS_SINCE_SNAPSHOT + 1,
                                one_bot=False)
    assert decide(**base).reset is True
    assert "reverted 201 blocks" in decide(**base).reason
    assert "never reverted" in decide(**{**base, "own_node": False}).reason
    assert decide(**{**base, "enabled": False}).reason == "--keep-chain"
    near = decide(**{**base, "blocks_since_snapshot": MAX_BLOCKS_SINCE_SNAPSHOT})
    assert near.reset is False and "+200 blocks" in near.reason  # at the limit: still the chain as deployed
    assert decide(**{**base, "blocks_since_snapshot": None}).reason == "no snapshot to revert to"
    assert "memray" in decide(**{**base, "one_bot": True}).reason
    assert decide(**{**base, "blocks_since_snapshot": 1, "limit": 0}).reset is True  # --chain-reset-blocks 0


@given(own=st.booleans(), enabled=st.booleans(), since=st.none() | st.integers(0, 10_000), one_bot=st.booleans(),
       limit=st.integers(0, 5_000))
def test_a_reset_needs_every_condition(own: bool, enabled: bool, since: int | None, one_bot: bool,
                                       limit: int) -> None:
    d = decide(own_node=own, enabled=enabled, blocks_since_snapshot=since, one_bot=one_bot, limit=limit)
    assert d.reset == (own and enabled and since is not None and since > limit and not one_bot)
    assert d.reason


def test_node_summary_reports_growth_and_the_decision() -> None:
    mb = 2**20
    out = node_summary([(0.0, 100 * mb, 10.0), (1.0, 300 * mb, 30.0), (2.0, 250 * mb, 20.0)], 40, 95,
                       ResetDecision(True, "reverted"), snapshot_block=38)
    assert out == {"reset": True, "reset_reason": "reverted", "block_start": 40, "block_end": 95,
                   "blocks_since_snapshot": 2, "rss_mb_start": 100.0, "rss_mb_end": 250.0, "rss_mb_max": 300.0,
                   "cpu_percent_mean": 20.0, "samples": 3}
    bare = node_summary([], None, None, ResetDecision(False, "a user's node is never reverted"))
    assert "rss_mb_max" not in bare and "blocks_since_snapshot" not in bare and bare["reset"] is False


class _Node:
    """A JSON-RPC node whose ``evm_revert`` answers true but takes effect only from attempt ``takes_on``."""

    def __init__(self, takes_on: int | None) -> None:
        self.height, self.snap_height, self.reverts, self.takes_on, self.snapshots = 500, 0, 0, takes_on, 0
        self.reverted_to: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        method = body["method"]
        result: object
        if method == "evm_snapshot":
            self.snap_height = self.height
            self.snapshots += 1
            result = hex(self.snapshots)
        elif method == "evm_revert":
            self.reverts += 1
            self.reverted_to.append(body["params"][0])
            if self.takes_on is not None and self.reverts >= self.takes_on:
                self.height = self.snap_height
            result = True
        else:
            result = hex(self.height)
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})


@pytest.mark.parametrize(("takes_on", "failed", "reverts"), [(1, 0, 1), (2, 0, 2), (None, 1, 2)])
async def test_a_revert_that_did_not_take_is_retried_then_counted(takes_on: int | None, failed: int,
                                                                   reverts: int) -> None:
    node = _Node(takes_on)
    app = web.Application()
    app.router.add_post("/", node.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        snap = ChainSnapshot(f"http://127.0.0.1:{port}")
        node.height = 100
        await snap.take()
        node.height = 900  # the chain grew by 800 blocks
        block = await snap.revert()
        assert (snap.failed, node.reverts) == (failed, reverts)
        assert node.reverted_to == ["0x2", "0x1"][:reverts]  # the newer snapshot first, then the spare
        assert block == (900 if failed else 100)
        assert snap.snapshot_block == block  # the next revert comes back to where this one left the chain
    finally:
        await runner.cleanup()
