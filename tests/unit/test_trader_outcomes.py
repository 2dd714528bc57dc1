"""Each trade is counted once, by where it ended: a swap the node took is ``tx_accepted`` however
the bot learned it (an acknowledgement, or a lookup after the answer was lost)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from bot.chain.ledger import TxRecord, TxState
from bot.chain.sender import TxSender
from bot.rpc import EndpointPool, HttpTransport, Timeouts
from bot.strategy import StrategyParams
from bot.telemetry.recorder import Telemetry
from bot.trader import Trader
from tests.unit.rpc_fakes import FakeNode

# fake_node: the rate-limit tests' scripted node fixture (named "node"), shared rather than written again.
from tests.unit.test_trader_rate_limit import PAIR, fake_node, pool_answers  # noqa: F401


class _Sender:
    """Ends every submission at once in ``state``, as the lifecycle does when a send's answer was lost
    and the lookup found the transaction already mined (or refused, for the contrast)."""

    def __init__(self, state: TxState) -> None:
        self.state = state
        self.submitted = 0

    async def submit(self, sender: str, request: Any) -> TxRecord:
        self.submitted += 1
        return TxRecord(id=self.submitted, sender=sender, label=request.label, created_ns=0, state=self.state,
                        error_kind=None if self.state is TxState.MINED_OK else "nonce_too_low")

    async def wait(self, rec: TxRecord) -> TxRecord:
        return rec


@pytest.mark.parametrize(("state", "accepted", "outcome"), [
    (TxState.MINED_OK, 1, "trades_ok"),
    (TxState.REJECTED, 0, "trades_rejected"),
])
async def test_a_swap_found_mined_at_submission_counts_as_accepted_once(
        node: FakeNode, state: TxState, accepted: int, outcome: str) -> None:
    pool = EndpointPool([HttpTransport(node.url, Timeouts(connect=0.5, read=1.0, total=2.0), name="a")])
    tele = Telemetry()
    sender = _Sender(state)
    trader = Trader(pool.reads(), cast(TxSender, sender), tele, {PAIR.id: PAIR}, StrategyParams())
    try:
        node.script.append(pool_answers())
        await trader.trade(PAIR.id, {"price": 1.5}, None)  # 50% off the pool's price: a swap
        await trader.drain(5.0)
    finally:
        await pool.aclose()
    counters = tele.counter_totals()
    assert sender.submitted == 1, counters
    assert counters.get("tx_accepted", 0) == accepted
    assert counters.get(outcome) == 1
    assert sum(counters.get(k, 0) for k in ("trades_ok", "trades_rejected", "trades_failed")) == 1
    assert trader.slots.borrowed == 0  # the in-flight slot was given back either way
