"""TxSender against an in-memory node: every intent ends in exactly one recorded state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from bot.chain.accounts import from_mnemonic
from bot.chain.errors import InsufficientFunds, NonceConflict, TxReverted
from bot.chain.fee_oracle import FeeOracle
from bot.chain.ledger import TxState, outcome_error
from bot.chain.nonces import NonceManager
from bot.chain.receipts import ReceiptTracker
from bot.chain.sender import SenderConfig, TxSender
from bot.chain.signer import Signer
from bot.chain.tx import SignedTx, TxRequest, UnsignedTx
from bot.rpc.errors import RpcTimeout, TransportError
from tests.unit.chain_fakes import FakeNode, PoolTx

ACCOUNTS = from_mnemonic(count=2)
ME = ACCOUNTS[0].address
OTHER = ACCOUNTS[1].address
PAY = TxRequest(to=OTHER, value=1, label="pay")


@dataclass
class Stack:
    node: FakeNode
    sender: TxSender
    tracker: ReceiptTracker
    nonces: NonceManager
    latencies: list[tuple[str, int]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    miner: asyncio.Task[None] | None = None

    def start_mining(self, interval: float = 0.005) -> None:
        self.stop.clear()
        self.miner = asyncio.create_task(self.node.auto_mine(interval, self.stop))

    async def stop_mining(self) -> None:
        self.stop.set()
        if self.miner is not None:
            await self.miner


def _config(**kw: float) -> SenderConfig:
    base: dict[str, float] = dict(
        chain_id=31337,
        send_timeout=1.0,
        confirm_timeout=0.3,
        pending_grace=0.1,
        max_pending_wait=2.0,
        hole_fill_after=0.05,
    )
    base.update(kw)
    return SenderConfig(**base)  # type: ignore[arg-type]


async def _stack(node: FakeNode, signer: Signer | None = None, **kw: float) -> Stack:
    nonces = NonceManager(node)
    tracker = ReceiptTracker(node, poll_interval=0.005)
    tracker.start()
    stack = Stack(node=node, sender=None, tracker=tracker, nonces=nonces)  # type: ignore[arg-type]
    stack.sender = TxSender(
        node,
        signer or Signer(ACCOUNTS),
        nonces,
        tracker,
        FeeOracle(node, max_age=0.05),
        config=_config(**kw),
        on_latency=lambda op, us: stack.latencies.append((op, us)),
    )
    return stack


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    s = await _stack(FakeNode())
    try:
        yield s
    finally:
        await s.stop_mining()
        await s.sender.aclose()
        await s.tracker.aclose()


async def test_200_concurrent_submissions_from_one_account_mine_in_nonce_order(stack: Stack) -> None:
    stack.start_mining()
    recs = await asyncio.gather(*(stack.sender.execute(ME, PAY) for _ in range(200)))
    assert {r.state for r in recs} == {TxState.MINED_OK}
    assert sorted(r.nonce for r in recs if r.nonce is not None) == list(range(200))
    assert stack.node.nonces[ME.lower()] == 200
    assert all(len(raws) == 1 for raws in stack.node.raw_seen.values())
    assert [op for op, _ in stack.latencies] == ["tx_submission"] * 200
    st = stack.sender.statistics()
    assert (st.in_flight, st.opened, st.by_state) == (0, 200, {"mined_ok": 200})
    assert stack.tracker.statistics().receipts_matched == 200


async def test_reverted_swap_is_recorded_as_reverted_and_consumes_the_nonce(stack: Stack) -> None:
    stack.start_mining()
    rec = await stack.sender.execute(ME, TxRequest(to=OTHER, data=b"\xde\xad", gas=100_000, label="swap"))
    assert rec.state is TxState.REVERTED
    assert isinstance(outcome_error(rec), TxReverted)
    assert (await stack.sender.execute(ME, PAY)).nonce == rec.nonce + 1  # type: ignore[operator]


async def test_insufficient_funds_is_a_counted_rejection_and_the_nonce_is_reused(stack: Stack) -> None:
    stack.start_mining()
    stack.node.poor.add(ME.lower())
    rec = await stack.sender.execute(ME, PAY)
    assert (rec.state, rec.error_kind) == (TxState.REJECTED, "insufficient_funds")
    err = outcome_error(rec)
    assert isinstance(err, InsufficientFunds)
    assert "Insufficient funds" in str(err)
    assert stack.latencies == []  # never acknowledged, so no tx_submission sample
    stack.node.poor.clear()
    again = await stack.sender.execute(ME, PAY)
    assert (again.state, again.nonce) == (TxState.MINED_OK, rec.nonce)
    assert stack.sender.statistics().by_state == {"rejected": 1, "mined_ok": 1}


async def test_lost_response_is_retried_with_the_same_bytes_and_mined_once(stack: Stack) -> None:
    stack.node.fail("eth_sendRawTransaction", TransportError("connection reset"), after=True)
    # Mining starts after the submission: a receipt seen during the retry's backoff would (rightly)
    # end the intent before the retry this test is about.
    rec = await stack.sender.submit(ME, PAY)
    stack.start_mining()
    rec = await stack.sender.wait(rec)
    assert (rec.state, rec.attempts) == (TxState.MINED_OK, 2)
    assert len(stack.node.raw_seen[(ME.lower(), 0)]) == 1
    assert stack.node.nonces[ME.lower()] == 1
    assert len(stack.latencies) == 1


async def test_lost_answer_then_mined_before_the_retry_is_ours_not_a_conflict(stack: Stack) -> None:
    # anvil answers "nonce too low" to a resend of a mined tx; the sender must recognise its own.
    # The tracker is stopped: a receipt seen during the backoff would (rightly) end the intent
    # before the retry, and this test is about the refusal that the retry gets.
    await stack.tracker.aclose()
    stack.node.fail("eth_sendRawTransaction", TransportError("reset"), after=True)

    def mine_now(_: PoolTx) -> None:
        stack.node.mine()

    stack.node.on_accept = mine_now
    rec = await stack.sender.submit(ME, PAY)
    stack.node.on_accept = None
    assert (rec.state, rec.attempts) == (TxState.SUBMITTED, 2)
    stack.start_mining()
    rec = await stack.sender.wait(rec)
    assert rec.history == [TxState.CREATED, TxState.SIGNED, TxState.SUBMITTED, TxState.MINED_OK]
    assert "eth_getTransactionByHash" in stack.node.calls
    assert (await stack.sender.execute(ME, PAY)).nonce == 1


async def test_exhausted_transport_errors_end_failed_and_free_the_nonce(stack: Stack) -> None:
    stack.start_mining()
    stack.node.fail("eth_sendRawTransaction", RpcTimeout("read timeout"), times=4)
    rec = await stack.sender.submit(ME, PAY)
    assert rec.state is TxState.UNACKED
    rec = await stack.sender.wait(rec)
    assert (rec.state, rec.error_kind) == (TxState.FAILED, "failed")
    assert "never acknowledged" in (rec.reason or "")
    again = await stack.sender.execute(ME, PAY)
    assert (again.state, again.nonce) == (TxState.MINED_OK, 0)


async def test_transport_errors_then_success_is_unacked_until_mined(stack: Stack) -> None:
    # The node took the transaction but every response was lost: still mined_ok, not failed.
    stack.node.fail("eth_sendRawTransaction", TransportError("reset"), times=4, after=True)
    rec = await stack.sender.submit(ME, PAY)
    assert rec.state is TxState.UNACKED
    stack.start_mining()
    rec = await stack.sender.wait(rec)
    assert rec.state is TxState.MINED_OK
    assert rec.history == [TxState.CREATED, TxState.SIGNED, TxState.UNACKED, TxState.MINED_OK]


async def test_dropped_tx_is_recorded_and_its_hole_filled_so_later_txs_mine(stack: Stack) -> None:
    recs = [await stack.sender.submit(ME, PAY) for _ in range(3)]
    stack.node.drop(recs[0].hash or "")
    stack.start_mining()
    done = [await stack.sender.wait(r) for r in recs]
    assert [d.state for d in done] == [TxState.DROPPED, TxState.MINED_OK, TxState.MINED_OK]
    assert "not in the pool" in (done[0].reason or "")
    assert await stack.sender.drain(5.0)
    st = stack.sender.statistics()
    assert st.fillers >= 1
    fillers = [r for r in stack.sender.ledger.recent() if r.label == "nonce_filler"]
    assert [(f.state, f.nonce) for f in fillers] == [(TxState.MINED_OK, 0)]
    assert stack.node.nonces[ME.lower()] == 3


async def test_nonce_used_elsewhere_is_a_conflict_then_resynced(stack: Stack) -> None:
    stack.start_mining()
    assert (await stack.sender.execute(ME, PAY)).state is TxState.MINED_OK
    stack.node.external_tx(ME)
    stack.node.external_tx(ME)
    rec = await stack.sender.execute(ME, PAY)
    assert (rec.state, rec.nonce) == (TxState.REJECTED, 1)
    assert isinstance(outcome_error(rec), NonceConflict)
    assert await stack.sender.drain(2.0)
    nxt = await stack.sender.execute(ME, PAY)
    assert (nxt.state, nxt.nonce) == (TxState.MINED_OK, 3)
    assert stack.sender.statistics().resyncs == 1


async def test_cancelled_caller_does_not_lose_the_transaction(stack: Stack) -> None:
    task = asyncio.create_task(stack.sender.execute(ME, PAY))
    for _ in range(50):
        await asyncio.sleep(0)
        if stack.node.pool:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stack.start_mining()
    assert await stack.sender.drain(5.0)
    assert stack.sender.statistics().by_state == {"mined_ok": 1}


async def test_close_turns_live_records_into_failed(stack: Stack) -> None:
    rec = await stack.sender.submit(ME, PAY)
    await stack.sender.aclose()
    assert (rec.state, rec.reason) == (TxState.FAILED, "tracking cancelled")
    assert stack.sender.statistics().in_flight == 0
    with pytest.raises(RuntimeError, match="closed"):
        await stack.sender.submit(ME, PAY)


async def test_fee_source_failure_fails_before_any_nonce_is_used(stack: Stack) -> None:
    stack.start_mining()
    stack.node.fail("eth_getBlockByNumber", TransportError("refused"))
    rec = await stack.sender.execute(ME, PAY)
    assert (rec.state, rec.nonce, rec.error_kind) == (TxState.FAILED, None, "transport")
    assert (await stack.sender.execute(ME, PAY)).nonce == 0


class _ClockedSigner(Signer):
    def __init__(self, clock: list[int]) -> None:
        super().__init__(ACCOUNTS)
        self.clock = clock

    async def sign(self, sender: str, tx: UnsignedTx) -> SignedTx:
        self.clock[0] += 5_000_000  # 5 ms of signing
        return await super().sign(sender, tx)


async def test_tx_submission_spans_nonce_build_sign_and_ack() -> None:
    clock = [0]
    node = FakeNode()
    real_send = node.send_raw_transaction

    async def slow_send(raw: bytes, *, timeout: float | None = None) -> str:  # noqa: ASYNC109
        clock[0] += 2_000_000  # 2 ms until the node acknowledges
        return await real_send(raw, timeout=timeout)

    node.send_raw_transaction = slow_send  # type: ignore[method-assign]
    s = await _stack(node, signer=_ClockedSigner(clock))
    s.sender._clock = lambda: clock[0]
    try:
        s.start_mining()
        rec = await s.sender.execute(ME, PAY)
        assert rec.state is TxState.MINED_OK
        assert s.latencies == [("tx_submission", 7000)]
    finally:
        await s.stop_mining()
        await s.sender.aclose()
        await s.tracker.aclose()


async def test_in_flight_is_bounded_by_max_in_flight() -> None:
    node = FakeNode()
    s = await _stack(node, max_in_flight=5)
    try:
        tasks = [asyncio.create_task(s.sender.submit(ME, PAY)) for _ in range(12)]
        for _ in range(100):
            await asyncio.sleep(0)
        assert len(node.pool) == 5  # the rest wait for a slot, nothing is queued beyond it
        s.start_mining()
        recs = [await s.sender.wait(await t) for t in tasks]
        assert {r.state for r in recs} == {TxState.MINED_OK}
        assert "in_flight=0/5" in repr(s.sender)
    finally:
        await s.stop_mining()
        await s.sender.aclose()
        await s.tracker.aclose()


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"sender\.send_attempts"):
        SenderConfig(chain_id=1, send_attempts=0)
    with pytest.raises(ValueError, match=r"sender\.confirm_timeout"):
        SenderConfig(chain_id=1, confirm_timeout=0)


async def test_still_pending_at_max_wait_fails_but_a_late_inclusion_takes_the_nonce() -> None:
    node = FakeNode()
    s = await _stack(node, max_pending_wait=0.3, confirm_timeout=0.1, pending_grace=0.1)
    try:
        rec = await s.sender.execute(ME, PAY)  # nobody mines: it stays in the pool
        assert (rec.state, rec.error_kind) == (TxState.FAILED, "failed")
        assert "still pending" in (rec.reason or "")
        alloc = s.nonces.get(ME)
        assert alloc is not None and alloc.state_of(0) == "sent"
        s.start_mining()
        for _ in range(200):
            if alloc.state_of(0) == "taken":
                break
            await asyncio.sleep(0.01)
        assert alloc.state_of(0) == "taken"
        assert s.sender.statistics().by_state == {"failed": 1}  # still exactly one terminal state
    finally:
        await s.stop_mining()
        await s.sender.aclose()
        await s.tracker.aclose()


async def test_unexpected_exception_from_the_client_keeps_the_tx_tracked(stack: Stack) -> None:
    real = stack.node.send_raw_transaction

    async def broken(raw: bytes, *, timeout: float | None = None) -> str:  # noqa: ASYNC109
        await real(raw, timeout=timeout)
        raise KeyError("a bug in a client wrapper")

    stack.node.send_raw_transaction = broken  # type: ignore[method-assign]
    rec = await stack.sender.submit(ME, PAY)
    assert (rec.state, rec.error_kind) == (TxState.UNACKED, "internal")
    stack.start_mining()
    assert (await stack.sender.wait(rec)).state is TxState.MINED_OK


async def test_a_failing_latency_hook_does_not_strand_the_transaction() -> None:
    node = FakeNode()
    s = await _stack(node)

    def broken(op: str, micros: int) -> None:
        raise ZeroDivisionError("telemetry bug")

    s.sender._on_latency = broken
    try:
        s.start_mining()
        assert (await s.sender.execute(ME, PAY)).state is TxState.MINED_OK
    finally:
        await s.stop_mining()
        await s.sender.aclose()
        await s.tracker.aclose()
