"""TxSender over an ``EndpointPool``: each ambiguous send is checked with the endpoint that got the
bytes, and no failure inside tracking strands a record (the checked defects of issue 10).

Two endpoints share one in-memory chain (``FakeNode``) but not one mempool: "b" sees what is mined,
never what "a" holds pending, as two real nodes do before a transaction propagates.
"""

# ruff: noqa: ASYNC109
from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from bot.chain.accounts import from_mnemonic
from bot.chain.fee_oracle import FeeOracle
from bot.chain.fees import Fees
from bot.chain.ledger import TxState
from bot.chain.nonces import NonceManager
from bot.chain.receipts import ReceiptTracker
from bot.chain.sender import SenderConfig, TxSender
from bot.chain.signer import Signer
from bot.chain.tx import TxRequest, UnsignedTx, build
from bot.rpc.config import HealthPolicy, RetryPolicy
from bot.rpc.errors import NodeError, RpcError, RpcTimeout, TransportError
from bot.rpc.failover import EndpointPool
from bot.rpc.protocol import RpcClient
from tests.unit.chain_fakes import FakeNode
from tests.waiting import until as _until

ACCOUNTS = from_mnemonic(count=2)
ME, OTHER = ACCOUNTS[0].address, ACCOUNTS[1].address
PAY = TxRequest(to=OTHER, value=1, label="pay")


class Endpoint:
    """One node in front of the shared chain; subclasses decide what it does with sends and lookups."""

    def __init__(self, name: str, chain: FakeNode) -> None:
        self.name = name
        self.chain = chain
        self.down = False
        self.lookups = 0
        self.sends = 0

    async def call(self, method: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> Any:
        if self.down:
            raise RpcTimeout(f"{self.name}: read timeout")
        if method == "eth_getTransactionByHash":
            self.lookups += 1
            return await self.lookup(params[0])
        return await self.chain.call(method, params, timeout=timeout)

    async def lookup(self, tx_hash: str) -> Any:
        return await self.chain.call("eth_getTransactionByHash", [tx_hash])

    async def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout: float | None = None
    ) -> list[Any | RpcError]:
        return await self.chain.batch(calls, timeout=timeout)

    async def send_raw_transaction(self, raw: bytes, *, timeout: float | None = None) -> str:
        self.sends += 1
        return await self.chain.send_raw_transaction(raw, timeout=timeout)

    async def aclose(self) -> None:
        return None


class OtherMempool(Endpoint):
    """Knows mined transactions only: the pending ones went to another node."""

    async def lookup(self, tx_hash: str) -> Any:
        return await super().lookup(tx_hash) if tx_hash in self.chain.mined else None


@dataclass
class Stack:
    chain: FakeNode
    sender: TxSender
    tracker: ReceiptTracker
    nonces: NonceManager


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., Any]]:
    opened: list[Stack] = []

    async def build(rpc: RpcClient, chain: FakeNode, *, track: bool = True, **cfg: Any) -> Stack:
        nonces = NonceManager(rpc)
        tracker = ReceiptTracker(chain, poll_interval=0.005)
        if track:
            tracker.start()
        settings: dict[str, Any] = dict(
            chain_id=31337, send_timeout=0.5, send_attempts=2, confirm_timeout=0.2, pending_grace=0.1,
            max_pending_wait=10.0, lookup_attempts=2, hole_fill_after=0.05,
        )
        settings.update(cfg)
        sender = TxSender(rpc, Signer(ACCOUNTS), nonces, tracker, FeeOracle(rpc), config=SenderConfig(**settings))
        stack = Stack(chain, sender, tracker, nonces)
        opened.append(stack)
        return stack

    try:
        yield build
    finally:
        for s in opened:
            await s.sender.aclose()
            await s.tracker.aclose()


def _pool(*endpoints: Endpoint) -> EndpointPool:
    ticks = itertools.count()
    return EndpointPool(
        list(endpoints),
        RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05),
        # A deterministic ranking: every answer takes one 1 ms tick, the score follows the last
        # answer only (alpha 1), and a failure drops an endpoint behind every one that answered.
        HealthPolicy(alpha=1.0, failure_threshold=100),
        clock=lambda: next(ticks) / 1000,
    )


async def test_a_lost_send_is_looked_up_where_it_went_not_at_the_best_endpoint(make: Callable[..., Any]) -> None:
    # "a" takes the transaction, loses the answer and then every read; "b" never holds it pending.
    # The old sender asked the pool (that is, "b"), heard "unknown", freed the nonce and called the
    # intent failed, though "a" still held it and mined it later.
    chain = FakeNode()
    a, b = Endpoint("a", chain), OtherMempool("b", chain)

    async def accept_then_vanish(raw: bytes, *, timeout: float | None = None) -> str:
        a.sends += 1
        await chain.send_raw_transaction(raw)
        a.down = True
        raise RpcTimeout("a: read timeout after the node took it")

    async def refuse_to_answer(raw: bytes, *, timeout: float | None = None) -> str:
        b.sends += 1
        raise RpcTimeout("b: read timeout")

    a.send_raw_transaction = accept_then_vanish  # type: ignore[method-assign]
    b.send_raw_transaction = refuse_to_answer  # type: ignore[method-assign]
    s: Stack = await make(_pool(a, b), chain)
    rec = await s.sender.submit(ME, PAY)
    assert rec.state is TxState.UNACKED
    await _until(lambda: b.lookups >= 1)  # "b" was asked and does not know it...
    await asyncio.sleep(0)
    alloc = s.nonces.get(ME)
    assert alloc is not None and alloc.state_of(0) == "sent"  # ...which frees nothing: "a" may hold it
    assert rec.state is TxState.UNACKED
    a.down = False
    chain.mine()
    done = await asyncio.wait_for(s.sender.wait(rec), 10)
    assert done.state is TxState.MINED_OK
    assert alloc.state_of(0) == "taken" and chain.nonces[ME.lower()] == 1
    assert len(chain.raw_seen[(ME.lower(), 0)]) == 1


async def test_a_refusal_while_the_first_copy_is_in_transit_is_not_final(make: Callable[..., Any]) -> None:
    # "a" times out with the bytes still on their way; "b" (a lagging node) refuses the retry, and
    # the first copy arrives meanwhile. The old pool asked "b" whether it knew the hash, heard
    # "unknown" and reported the refusal: ledger "rejected" (nonce freed) for a mined transaction.
    chain = FakeNode()
    a, b = Endpoint("a", chain), OtherMempool("b", chain)
    in_transit: list[bytes] = []

    async def slow(raw: bytes, *, timeout: float | None = None) -> str:
        a.sends += 1
        in_transit.append(raw)
        raise RpcTimeout("a: read timeout (request still in transit)")

    async def lagging(raw: bytes, *, timeout: float | None = None) -> str:
        b.sends += 1
        while in_transit:  # the first copy lands while b answers
            await chain.send_raw_transaction(in_transit.pop())
        raise NodeError(-32003, "Insufficient funds for gas * price + value")

    a.send_raw_transaction = slow  # type: ignore[method-assign]
    b.send_raw_transaction = lagging  # type: ignore[method-assign]
    pool = _pool(a, b)
    s: Stack = await make(pool, chain)
    await pool.call("eth_blockNumber")
    assert pool.endpoint_names() == ("a", "b")  # "a" has answered well: it is tried first
    rec = await s.sender.submit(ME, PAY)
    assert rec.state is TxState.SUBMITTED
    assert a.lookups >= 1  # the endpoint that got the first copy was asked
    chain.mine()
    done = await asyncio.wait_for(s.sender.wait(rec), 10)
    assert done.state is TxState.MINED_OK
    assert s.sender.statistics().by_state == {"mined_ok": 1}
    assert chain.nonces[ME.lower()] == 1


class _UnreadableReceipt(FakeNode):
    """The client raises a plain ValueError on receipts (a decoding bug), not an RpcError."""

    async def call(self, method: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> Any:
        if method == "eth_getTransactionReceipt":
            raise ValueError("malformed receipt: KeyError('gasUsed')")
        return await super().call(method, params, timeout=timeout)


class _GarbageLookup(FakeNode):
    async def call(self, method: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> Any:
        if method == "eth_getTransactionByHash":
            return ["not", "a", "transaction"]
        return await super().call(method, params, timeout=timeout)


async def test_a_receipt_that_raises_value_error_does_not_strand_the_record(make: Callable[..., Any]) -> None:
    # The old tracking task died on the ValueError: record live forever, slot never freed.
    node = _UnreadableReceipt()
    node.on_accept = lambda _tx: node.mine()
    s: Stack = await make(node, node, track=False, max_in_flight=1, max_pending_wait=0.4)
    rec = await s.sender.submit(ME, PAY)
    done = await asyncio.wait_for(s.sender.wait(rec), 10)
    assert (done.state, done.error_kind) == (TxState.FAILED, "failed")
    assert "mined" in (done.reason or "")
    assert s.sender.statistics().in_flight == 0
    alloc = s.nonces.get(ME)
    assert alloc is not None and alloc.state_of(0) == "taken"  # mined: the nonce is never reused
    nxt = await asyncio.wait_for(s.sender.submit(ME, PAY), 10)  # the only slot was freed
    assert nxt.nonce == 1


async def test_a_garbage_lookup_answer_does_not_strand_the_record(make: Callable[..., Any]) -> None:
    # The old lookup called .get() on whatever came back; the AttributeError killed tracking.
    node = _GarbageLookup()
    s: Stack = await make(node, node, track=False, max_in_flight=1, max_pending_wait=0.4)
    rec = await s.sender.submit(ME, PAY)
    done = await asyncio.wait_for(s.sender.wait(rec), 10)
    assert done.state is TxState.FAILED and "outcome unknown" in (done.reason or "")
    assert s.sender.statistics().in_flight == 0
    alloc = s.nonces.get(ME)
    assert alloc is not None and alloc.state_of(0) == "sent"  # may still land: held, never reused
    await asyncio.wait_for(s.sender.submit(ME, PAY), 10)


async def test_the_pool_names_its_endpoints_and_pins_calls_to_one() -> None:
    chain = FakeNode()
    a, b, twin = Endpoint("a", chain), Endpoint("b", chain), Endpoint("a", chain)
    pool = EndpointPool([a, b, twin], health_policy=HealthPolicy(failure_threshold=100))
    assert sorted(pool.endpoint_names()) == ["a", "a#2", "b"]
    assert await pool.call_on("b", "eth_getTransactionByHash", ["0x" + "00" * 32]) is None
    assert (a.lookups, b.lookups, twin.lookups) == (0, 1, 0)
    signed = await Signer(ACCOUNTS).sign(ME, _unsigned())
    assert await pool.send_raw_transaction_on("a#2", signed.raw) == signed.hash
    assert (a.sends, twin.sends) == (0, 1)
    b.down = True
    with pytest.raises(RpcTimeout):
        await pool.call_on("b", "eth_blockNumber")  # one attempt: no failover to another endpoint
    health = {e.name: e for e in pool.statistics().endpoints}
    assert (health["b"].failures, health["a"].failures) == (1, 0)  # recorded for the ranking
    with pytest.raises(ValueError, match="no endpoint named"):
        await pool.call_on("nope", "eth_blockNumber")
    a.down = True
    with pytest.raises(TransportError):
        await pool.call_on("a", "eth_blockNumber")


def _unsigned() -> UnsignedTx:
    return build(31337, 0, PAY, Fees(max_fee_per_gas=3 * 10**9, max_priority_fee_per_gas=10**9))
