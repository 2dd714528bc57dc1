"""The receipt tracker under a misbehaving node: garbage answers are counted and skipped, never the
end of its loop (fuzzed), and a degraded WebSocket makes it poll until the subscription is back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.chain.receipts import ReceiptTracker
from bot.rpc import WsOptions, WsSubscriber, shapes
from bot.rpc.errors import InvalidResponse, NodeError, RpcError
from tests.unit.chain_fakes import FakeNode
from tests.unit.rpc_fakes import FakeWsNode
from tests.unit.test_rpc_shapes import garbage, hexes, log_fields, quantities, shaped
from tests.waiting import until

# ScriptedNode implements the RpcClient protocol, whose methods take ``timeout``.
# ruff: noqa: ASYNC109

H1 = "0x" + "11" * 32  # watched; the node only ever sends garbage about it
H2 = "0x" + "22" * 32  # watched; mined in block 2 with a well-formed receipt
VALID = {"transactionHash": H2, "blockNumber": "0x2", "status": "0x1", "gasUsed": "0x5208",
         "effectiveGasPrice": "0x3b9aca00", "logs": []}


class ScriptedNode:
    """Answers receipts from a script: block number -> eth_getBlockReceipts answer, hash -> lookup answer."""

    def __init__(self, blocks: dict[int, Any], lookups: dict[str, Any]) -> None:
        self.blocks = blocks
        self.lookups = lookups

    async def call(self, method: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> Any:
        if method == "eth_getBlockReceipts":
            return self.blocks.get(int(params[0], 16))
        if method == "eth_getTransactionReceipt":
            return self.lookups.get(params[0])
        raise NodeError(-32601, f"{method} not scripted")

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], *,
                    timeout: float | None = None) -> list[Any | RpcError]:
        out: list[Any | RpcError] = []
        for method, params in calls:
            try:
                out.append(await self.call(method, params))
            except RpcError as exc:
                out.append(exc)
        return out

    async def send_raw_transaction(self, raw: bytes, *, timeout: float | None = None) -> str:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


garbage_receipts = shaped({
    "transactionHash": st.one_of(st.just(H1), hexes(32)), "blockNumber": quantities(2**64 - 1),
    "status": st.sampled_from(["0x0", "0x1"]), "gasUsed": quantities(), "effectiveGasPrice": quantities(),
    "logs": st.lists(shaped(log_fields), max_size=2),
})
block_answers = st.one_of(garbage, st.lists(st.one_of(garbage, garbage_receipts), max_size=6))


async def _feed_garbage_then_valid(block1: Any, extra: list[Any], lookup: Any) -> ReceiptTracker:
    node = ScriptedNode({1: block1, 2: [*extra, VALID]}, {H1: lookup})
    tracker = ReceiptTracker(node, poll_interval=0.001)
    first, second = tracker.watch(H1), tracker.watch(H2)
    tracker.use_subscription(True)
    runner = asyncio.create_task(tracker.run())
    try:
        tracker.on_head(1)
        # Block 1 first: a cursor that saw head 2 first would start there and never read block 1.
        await until(lambda: tracker.statistics().last_block == 1, what="block 1 processed")
        tracker.on_head(2)
        receipt = await asyncio.wait_for(second, 10.0)
        assert receipt == shapes.receipt(VALID)  # the valid one is processed...
        assert not runner.done()  # ...by a loop that is still running
        if first.done():  # only a receipt for H1 that happened to be well formed may resolve it
            assert first.result().tx_hash == H1
        return tracker
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(block1=block_answers, extra=st.lists(st.one_of(garbage, garbage_receipts), max_size=4),
       lookup=st.one_of(garbage, garbage_receipts))
def test_tracker_survives_garbage_and_processes_the_next_valid_receipt(block1: Any, extra: list[Any],
                                                                      lookup: Any) -> None:
    asyncio.run(_feed_garbage_then_valid(block1, extra, lookup))


async def test_garbage_is_counted_per_item() -> None:
    seen: list[str] = []
    bad_receipt = {**VALID, "transactionHash": H1, "gasUsed": "-0x1"}
    node = ScriptedNode({1: "not an array", 2: [bad_receipt, None, VALID]}, {H1: {"transactionHash": 5}})
    tracker = ReceiptTracker(node, poll_interval=0.001, on_invalid=seen.append)
    tracker.watch(H1)
    second = tracker.watch(H2)
    tracker.use_subscription(True)
    tracker.start()
    try:
        tracker.on_head(1)
        await until(lambda: tracker.statistics().last_block == 1, what="block 1 processed")
        tracker.on_head(2)
        await asyncio.wait_for(second, 10.0)
        # Block 1 was not an array (its waiters were looked up instead, and that answer was garbage too);
        # in block 2 the receipt for H1 and a null were garbage, the one for H2 was not.
        assert seen == ["block_receipts", "receipt", "receipt", "receipt"]
        st_ = tracker.statistics()
        assert st_.invalid == 4 and st_.watching == 1 and st_.last_block == 2
        node.lookups[H1] = bad_receipt
        with pytest.raises(InvalidResponse, match="gasUsed"):
            await tracker.lookup(H1)
    finally:
        await tracker.aclose()


async def test_a_degraded_subscription_falls_back_to_polling_and_back() -> None:
    ws_node = FakeWsNode()
    await ws_node.start()
    node = FakeNode()
    sub = WsSubscriber(ws_node.url, WsOptions(degraded_after=2, reconnect_base_delay=0.01,
                                              reconnect_max_delay=0.02, request_timeout=2.0, connect_timeout=2.0))
    sub.subscribe_new_heads()
    tracker = ReceiptTracker(node, poll_interval=0.005)
    sub.on_link(tracker.use_subscription)
    try:
        await sub.start()
        tracker.start()
        assert not tracker.statistics().polling  # the subscription is live: no polling
        await asyncio.sleep(0.05)
        assert "eth_blockNumber" not in node.calls
        await ws_node.stop()
        await until(lambda: tracker.statistics().polling, what="fallback to polling")
        assert tracker.statistics().fallbacks == 1 and sub.statistics().degraded
        # While the subscription is down, a receipt is still found: by polling.
        from tests.unit.test_chain_receipts import _mined_hash

        h = await _mined_hash(node)
        fut = tracker.watch(h)
        node.mine()
        assert (await asyncio.wait_for(fut, 10.0)).block_number == 1
        await ws_node.start()
        await until(lambda: not tracker.statistics().polling, what="back to the subscription")
        st_ = tracker.statistics()
        assert (st_.fallbacks, st_.resumed) == (1, 1)
        assert not sub.statistics().degraded and sub.statistics().degradations == 1
        polls = node.calls.count("eth_blockNumber")
        await asyncio.sleep(0.05)
        assert node.calls.count("eth_blockNumber") <= polls + 1  # polling stopped (one may be under way)
    finally:
        await tracker.aclose()
        await sub.aclose()
        await ws_node.stop()


async def test_a_crash_in_one_loop_ends_run_and_a_restart_resumes() -> None:
    node = FakeNode()
    tracker = ReceiptTracker(node, poll_interval=0.005)
    calls = 0
    real = tracker._fetch_block

    async def crash_once(block: int) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bug")
        return await real(block)

    tracker._fetch_block = crash_once  # type: ignore[method-assign]
    from tests.unit.test_chain_receipts import _mined_hash

    h = await _mined_hash(node)
    fut = tracker.watch(h)
    node.mine()
    tracker.use_subscription(True)
    tracker.on_head(1)
    with pytest.raises(RuntimeError, match="bug"):
        await asyncio.wait_for(tracker.run(), 10.0)
    runner = asyncio.create_task(tracker.run())  # what the supervisor does: the waiter and cursor survive
    try:
        assert (await asyncio.wait_for(fut, 10.0)).block_number == 1
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
