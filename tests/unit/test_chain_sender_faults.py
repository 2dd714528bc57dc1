"""Property: under any script of node faults, every intent ends in exactly one true state.

A hypothesis-generated script decides, send by send, whether the node answers normally, fails
before accepting (transport error), accepts and then loses the answer, refuses (insufficient
funds), or accepts and later evicts the transaction. After the sender drains, the ledger must
agree with the chain: nothing mined is recorded as failed, nothing recorded as mined is missing,
no nonce gap is left, and no intent was ever sent with two different signatures.
"""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.chain.accounts import from_mnemonic
from bot.chain.fee_oracle import FeeOracle
from bot.chain.ledger import TERMINAL, TxState
from bot.chain.nonces import NonceManager
from bot.chain.receipts import ReceiptTracker
from bot.chain.sender import SenderConfig, TxSender
from bot.chain.signer import Signer
from bot.chain.tx import TxRequest, tx_hash
from bot.rpc.errors import NodeError, RpcTimeout, TransportError
from tests.unit.chain_fakes import FakeNode

ACCOUNTS = from_mnemonic(count=2)
ME, OTHER = ACCOUNTS[0].address, ACCOUNTS[1].address
ACTIONS = ("ok", "before", "after", "timeout", "reject", "evict")


class ScriptedNode(FakeNode):
    def __init__(self, script: list[str]) -> None:
        super().__init__()
        self.script = list(script)
        self.sent_hashes: set[str] = set()

    async def send_raw_transaction(self, raw: bytes, *, timeout: float | None = None) -> str:  # noqa: ASYNC109
        action = self.script.pop(0) if self.script else "ok"
        self.sent_hashes.add(tx_hash(raw))
        if action == "before":
            raise TransportError("connection refused (scripted)")
        if action == "timeout":
            raise RpcTimeout("read timeout (scripted)")
        if action == "reject":
            raise NodeError(-32003, "Insufficient funds for gas * price + value")
        h = await super().send_raw_transaction(raw, timeout=timeout)
        if action == "after":
            raise TransportError("reset after acceptance (scripted)")
        if action == "evict":
            asyncio.get_running_loop().call_later(0.001, self.drop, h)
        return h


async def _run(script: list[str], intents: int, lookup_failures: int = 0) -> None:
    node = ScriptedNode(script)
    node.fail("eth_getTransactionByHash", TransportError("refused (scripted)"), times=lookup_failures)
    tracker = ReceiptTracker(node, poll_interval=0.003)
    tracker.start()
    sender = TxSender(
        node,
        Signer(ACCOUNTS),
        NonceManager(node),
        tracker,
        FeeOracle(node),
        config=SenderConfig(
            chain_id=31337,
            send_attempts=3,
            confirm_timeout=0.15,
            pending_grace=0.05,
            max_pending_wait=5.0,
            hole_fill_after=0.02,
        ),
    )
    stop = asyncio.Event()
    miner = asyncio.create_task(node.auto_mine(0.01, stop))
    try:
        recs = await asyncio.gather(*(sender.execute(ME, TxRequest(to=OTHER, value=1)) for _ in range(intents)))
        assert await sender.drain(10.0)
    finally:
        stop.set()
        await miner
        await sender.aclose()
        await tracker.aclose()

    everything = sender.ledger.recent()
    assert {r.state for r in recs} <= TERMINAL
    st = sender.statistics()
    assert st.in_flight == 0 and sum(st.by_state.values()) == st.opened == len(everything)
    mined_hashes = set(node.mined)
    ours = {r.hash for r in everything if r.hash}
    assert node.sent_hashes <= ours  # every signature the node saw belongs to one record
    # Two intents may sign identical bytes (same nonce and content after a definite rejection),
    # but no transaction may be counted as mined twice.
    mined_recs = [r.hash for r in everything if r.state in (TxState.MINED_OK, TxState.REVERTED)]
    assert len(mined_recs) == len(set(mined_recs))
    # Each mined transaction is attributed to exactly one record in a mined state; a record in
    # any other state was never executed (unless an identical later intent is the mined one).
    assert set(mined_recs) == mined_hashes
    assert node.nonces.get(ME.lower(), 0) == len(mined_hashes)  # contiguous: no gap, no duplicate
    assert len(mined_hashes) == st.by_state.get("mined_ok", 0)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=st.lists(st.sampled_from(ACTIONS), max_size=30),
    intents=st.integers(1, 12),
    lookup_failures=st.integers(0, 8),
)
def test_ledger_agrees_with_the_chain_under_scripted_faults(
    script: list[str], intents: int, lookup_failures: int
) -> None:
    asyncio.run(_run(script, intents, lookup_failures))
