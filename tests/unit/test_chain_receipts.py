"""Receipt tracking (head cursor, block receipts, polling fallback), ledger rules, fee oracle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.chain.errors import InsufficientFunds, NonceConflict, TxRejected
from bot.chain.fee_oracle import FeeOracle
from bot.chain.ledger import Ledger, LedgerError, NonceEffect, Reject, Retry, TxState, classify_send_error
from bot.chain.receipts import HeadCursor, Receipt, ReceiptTracker
from bot.rpc.errors import InvalidResponse, NodeError, RateLimited, RpcTimeout, TransportError
from tests.unit.chain_fakes import FakeNode


@given(heads=st.lists(st.integers(0, 500), min_size=1, max_size=40), catchup=st.integers(1, 20))
def test_cursor_fetches_each_block_once_in_order_within_catchup(heads: list[int], catchup: int) -> None:
    cur = HeadCursor(max_catchup=catchup)
    fetched: list[int] = []
    for head in heads:
        blocks, skipped = cur.advance(head)
        assert len(blocks) <= catchup
        if blocks:
            assert blocks[-1] == head
        assert skipped == (len(blocks) == catchup and cur.last is not None and blocks[0] > cur.last + 1)
        for b in blocks:
            cur.done(b)
        fetched.extend(blocks)
    assert fetched == sorted(set(fetched))  # never twice, never backwards
    assert cur.last == max(heads)
    assert len(fetched) + cur.skipped == max(heads) - heads[0] + 1


def test_receipt_parsing() -> None:
    h = "0x" + "AB" * 32
    obj = {"transactionHash": h, "blockNumber": "0x5", "status": "0x0", "gasUsed": "0x10"}
    r = Receipt.from_json({**obj, "effectiveGasPrice": "0x2"})
    assert (r.tx_hash, r.block_number, r.status, r.gas_used) == (h.lower(), 5, 0, 16)
    # Garbage from the node is an RpcError naming the field, which every caller already handles.
    with pytest.raises(InvalidResponse, match=r"receipt\.transactionHash"):
        Receipt.from_json({"transactionHash": "0x1"})


async def _heads(values: list[int], fail: bool) -> AsyncIterator[int]:
    for v in values:
        await asyncio.sleep(0.01)
        yield v
    if fail:
        raise TransportError("subscription closed")
    await asyncio.sleep(60)  # a live subscription with no new heads; cancelled by aclose()


async def _mined_hash(node: FakeNode) -> str:
    from bot.chain.accounts import from_mnemonic
    from bot.chain.tx import UnsignedTx

    acc = from_mnemonic(count=1)[0]
    tx = UnsignedTx(31337, 0, 1, 2 * 10**9, 21_000, b"\x11" * 20, 1, b"")
    return await node.send_raw_transaction(acc.sign(tx).raw)


@pytest.mark.parametrize("source", ["heads", "polling", "heads-then-polling"])
async def test_tracker_resolves_waiters_from_block_receipts(source: str) -> None:
    node = FakeNode()
    tracker = ReceiptTracker(node, poll_interval=0.005)
    h = await _mined_hash(node)
    fut = tracker.watch(h)
    node.mine()  # block 1
    heads = None
    if source == "heads":
        heads = _heads([1], fail=False)
    elif source == "heads-then-polling":
        heads = _heads([], fail=True)
    tracker.start(heads)
    try:
        receipt = await asyncio.wait_for(fut, 2.0)
        assert (receipt.tx_hash, receipt.block_number, receipt.status) == (h, 1, 1)
        st = tracker.statistics()
        assert st.watching == 0 and st.receipts_matched == 1
        assert st.direct_lookups == 0
        assert st.polling == (source != "heads")
        assert "eth_getTransactionReceipt" not in node.calls
    finally:
        await tracker.aclose()


async def test_long_gap_falls_back_to_direct_lookups() -> None:
    node = FakeNode()
    tracker = ReceiptTracker(node, poll_interval=0.005, max_catchup=2)
    tracker.on_head(0)
    h = await _mined_hash(node)
    fut = tracker.watch(h)
    node.mine()  # our tx in block 1
    for _ in range(5):
        node.mine()
    tracker.start(_heads([6], fail=False))
    try:
        receipt = await asyncio.wait_for(fut, 2.0)
        assert receipt.block_number == 1
        st = tracker.statistics()
        assert st.blocks_skipped > 0 and st.direct_lookups >= 1
    finally:
        await tracker.aclose()


async def test_failed_block_fetch_is_retried_not_skipped() -> None:
    node = FakeNode()
    tracker = ReceiptTracker(node, poll_interval=0.005)
    tracker.on_head(0)
    h = await _mined_hash(node)
    fut = tracker.watch(h)
    node.mine()
    node.fail("eth_getBlockReceipts", RpcTimeout("slow"), times=2)
    tracker.start(_heads([1], fail=False))
    try:
        assert (await asyncio.wait_for(fut, 2.0)).block_number == 1
        assert tracker.statistics().fetch_errors >= 2
    finally:
        await tracker.aclose()


async def test_watch_is_bounded_and_close_cancels_waiters() -> None:
    tracker = ReceiptTracker(FakeNode(), max_watching=2)
    a = tracker.watch("0x01")
    assert tracker.watch("0x01") is a
    tracker.watch("0x02")
    with pytest.raises(RuntimeError, match="max_watching"):
        tracker.watch("0x03")
    await tracker.aclose()
    assert a.cancelled()


def test_ledger_allows_exactly_one_terminal_state() -> None:
    ledger = Ledger(keep_recent=2)
    rec = ledger.open("0xa", "pay", 0)
    ledger.transition(rec, TxState.SIGNED, 1)
    ledger.transition(rec, TxState.SUBMITTED, 2)
    ledger.transition(rec, TxState.MINED_OK, 3)
    with pytest.raises(LedgerError, match="mined_ok -> dropped"):
        ledger.transition(rec, TxState.DROPPED, 4)
    other = ledger.open("0xa", "pay", 0)
    with pytest.raises(LedgerError, match="created -> submitted"):
        ledger.transition(other, TxState.SUBMITTED, 1)
    st = ledger.statistics()
    assert (st.opened, st.in_flight, st.by_state) == (2, 1, {"mined_ok": 1, "created": 1})
    assert rec.acked_ns == 2 and rec.settled_ns == 3
    for _ in range(3):
        r = ledger.open("0xa", "x", 0)
        ledger.transition(r, TxState.FAILED, 1)
    assert len(ledger.recent()) == 2  # the ring is bounded; the counts are not
    assert ledger.statistics().by_state["failed"] == 3


@pytest.mark.parametrize(
    ("message", "error", "effect"),
    [
        ("nonce too low", NonceConflict, NonceEffect.TAKEN),
        ("replacement transaction underpriced", NonceConflict, NonceEffect.TAKEN),
        ("Insufficient funds for gas * price + value", InsufficientFunds, NonceEffect.FREE),
        ("max fee per gas less than block base fee", TxRejected, NonceEffect.FREE),
    ],
)
def test_node_refusals_are_definite(message: str, error: type[TxRejected], effect: NonceEffect) -> None:
    d = classify_send_error(NodeError(-32003, message), 1)
    assert isinstance(d, Reject)
    assert type(d.error) is error and d.nonce is effect


def test_transport_errors_retry_with_bounded_backoff() -> None:
    delays = [classify_send_error(TransportError("x"), a) for a in range(1, 10)]
    assert all(isinstance(d, Retry) for d in delays)
    values = [d.delay for d in delays if isinstance(d, Retry)]
    assert values == sorted(values) and values[-1] == 1.0
    rl = classify_send_error(RateLimited(retry_after=0.3), 1)
    assert isinstance(rl, Retry) and rl.delay == 0.3


async def test_fee_oracle_shares_one_fetch_and_survives_a_blip() -> None:
    node = FakeNode(base_fee=7 * 10**9)
    oracle = FeeOracle(node, max_age=10.0, stale_limit=60.0)
    fees = await asyncio.gather(*(oracle.fees() for _ in range(20)))
    assert node.calls.count("eth_getBlockByNumber") == 1
    assert fees[0].max_fee_per_gas == 2 * 7 * 10**9 + 10**9
    oracle.on_head()  # invalidate
    node.fail("eth_getBlockByNumber", TransportError("blip"))
    assert (await oracle.fees()) == fees[0]  # last known value, within stale_limit
    assert oracle.statistics().refresh_errors == 1
    oracle.on_head(base_fee=10**9)
    assert (await oracle.fees()).max_fee_per_gas == 3 * 10**9


async def test_fee_oracle_raises_without_any_known_value() -> None:
    node = FakeNode()
    node.fail("eth_getBlockByNumber", TransportError("down"))
    with pytest.raises(TransportError):
        await FeeOracle(node).fees()


async def test_head_numbers_feeds_base_fees_and_skips_other_events() -> None:
    from dataclasses import dataclass as _dc
    from typing import Any

    from bot.chain.heads import head_numbers

    @_dc
    class Ev:
        kind: str
        data: Any

    async def events() -> AsyncIterator[Ev]:
        for e in (
            Ev("logs", {"number": "0x9"}),
            Ev("newHeads", {"number": "0x5", "baseFeePerGas": "0x3b9aca00"}),
            Ev("newHeads", {"hash": "0x1"}),
            Ev("newHeads", {"number": "0x6"}),
        ):
            yield e

    node = FakeNode(base_fee=5)
    oracle = FeeOracle(node, max_age=60.0)
    got = []
    async for n in head_numbers(events(), oracle):
        got.append(n)
        if n == 5:
            assert oracle.statistics().base_fee == 10**9
    assert got == [5, 6]
    assert (await oracle.fees()).max_fee_per_gas == 2 * 5 + 10**9  # head 6 had no fee: refetched


async def test_node_without_block_receipts_falls_back_to_per_tx_lookups() -> None:
    node = FakeNode()
    node.fail("eth_getBlockReceipts", NodeError(-32601, "the method eth_getBlockReceipts does not exist"))
    tracker = ReceiptTracker(node, poll_interval=0.005)
    h = await _mined_hash(node)
    fut = tracker.watch(h)
    node.mine()
    tracker.start(_heads([1], fail=False))
    try:
        assert (await asyncio.wait_for(fut, 2.0)).block_number == 1
        st = tracker.statistics()
        assert not st.block_receipts and st.direct_lookups == 1 and st.fetch_errors == 0
    finally:
        await tracker.aclose()
