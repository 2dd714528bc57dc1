"""TxSender, PriceReader and BalanceReader against a real anvil (interval mining, 0.05 s).

Interval mining because automine stalls under a burst from one sender (machine-facts.md).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.chain import abi
from bot.chain.accounts import Account, from_mnemonic
from bot.chain.fee_oracle import FeeOracle
from bot.chain.heads import head_numbers
from bot.chain.ledger import TxState
from bot.chain.nonces import NonceManager
from bot.chain.receipts import ReceiptTracker
from bot.chain.sender import SenderConfig, TxSender
from bot.chain.signer import Signer
from bot.chain.tx import TxRequest
from bot.market.balances import BalanceReader
from bot.market.prices import Pair, PriceReader, swap_outcome
from bot.rpc import HttpTransport, WsSubscriber
from bot.rpc.errors import RpcError, TransportError
from bot.rpc.protocol import RpcClient
from harness.node.anvil import AnvilOptions
from harness.node.deploy import deploy
from harness.node.mining import MiningMode
from tests.conftest import AnvilFactory

pytestmark = pytest.mark.integration

ACCOUNTS = from_mnemonic(count=2)
ME, OTHER = ACCOUNTS[0].address, ACCOUNTS[1].address
INTERVAL = MiningMode.interval(0.05)


@dataclass
class Chain:
    url: str
    rpc: RpcClient
    sender: TxSender
    tracker: ReceiptTracker
    latencies: list[tuple[str, int]]


@pytest.fixture
async def chain_factory(anvil_factory: AnvilFactory) -> AsyncIterator[Any]:
    opened: list[tuple[TxSender, ReceiptTracker, HttpTransport]] = []
    subscribers: list[WsSubscriber] = []

    async def make(
        accounts: Sequence[Account] = ACCOUNTS,
        wrap: Any = None,
        ws: bool = False,
        mining: MiningMode = INTERVAL,
        **cfg: Any,
    ) -> Chain:
        node = await anvil_factory(AnvilOptions(mining=mining, quiet=True))
        transport = HttpTransport(node.url)
        rpc: RpcClient = wrap(transport) if wrap else transport
        tracker = ReceiptTracker(rpc, poll_interval=0.02)
        oracle = FeeOracle(rpc)
        if ws:
            sub = WsSubscriber(node.ws_url, backfill_client=transport)
            sub.subscribe_new_heads()
            await sub.start()
            subscribers.append(sub)
            tracker.start(head_numbers(sub, oracle))
        else:
            tracker.start()
        latencies: list[tuple[str, int]] = []
        settings: dict[str, Any] = {"confirm_timeout": 10.0, "pending_grace": 2.0, "max_pending_wait": 30.0, **cfg}
        config = SenderConfig(chain_id=31337, **settings)
        sender = TxSender(
            rpc,
            Signer(accounts),
            NonceManager(rpc),
            tracker,
            oracle,
            config=config,
            on_latency=lambda op, us: latencies.append((op, us)),
        )
        opened.append((sender, tracker, transport))
        return Chain(node.url, rpc, sender, tracker, latencies)

    try:
        yield make
    finally:
        for sender, tracker, transport in opened:
            await sender.aclose()
            await tracker.aclose()
            await transport.aclose()
        for sub in subscribers:
            await sub.aclose()


async def _assert_nonces_exact(rpc: RpcClient, hashes: Sequence[str], expected: range) -> None:
    txs = await rpc.batch([("eth_getTransactionByHash", [h]) for h in hashes])
    nonces = sorted(int(t["nonce"], 16) for t in txs if isinstance(t, dict))
    assert nonces == list(expected)
    assert int(await rpc.call("eth_getTransactionCount", [ME, "latest"]), 16) == expected.stop


async def test_200_concurrent_submissions_from_one_account(chain_factory: Any) -> None:
    c: Chain = await chain_factory()
    pay = TxRequest(to=OTHER, value=1)
    recs = await asyncio.wait_for(asyncio.gather(*(c.sender.execute(ME, pay) for _ in range(200))), 60)
    assert {r.state for r in recs} == {TxState.MINED_OK}
    await _assert_nonces_exact(c.rpc, [r.hash for r in recs if r.hash], range(200))
    assert len(c.latencies) == 200 and {op for op, _ in c.latencies} == {"tx_submission"}
    assert c.sender.statistics().by_state == {"mined_ok": 200}
    assert c.tracker.statistics().receipts_matched == 200


async def test_receipts_driven_by_new_heads_over_websocket(chain_factory: Any) -> None:
    c: Chain = await chain_factory(ws=True)
    pay = TxRequest(to=OTHER, value=1)
    recs = await asyncio.wait_for(asyncio.gather(*(c.sender.execute(ME, pay) for _ in range(30))), 30)
    assert {r.state for r in recs} == {TxState.MINED_OK}
    st = c.tracker.statistics()
    assert not st.polling and st.receipts_matched == 30 and st.direct_lookups == 0
    assert st.blocks_fetched >= 1


async def test_dropped_txs_are_recorded_and_their_nonces_reused(chain_factory: Any) -> None:
    # anvil_dropTransaction also drops the dependent (higher-nonce) transactions of the sender:
    # all three must end "dropped", and their nonces must be free again with no gap.
    c: Chain = await chain_factory(mining=MiningMode.manual(), confirm_timeout=0.3, pending_grace=0.2)
    pay = TxRequest(to=OTHER, value=1)
    recs = [await c.sender.submit(ME, pay) for _ in range(3)]
    await c.rpc.call("anvil_dropTransaction", [recs[0].hash])
    done = [await asyncio.wait_for(c.sender.wait(r), 20) for r in recs]
    assert [d.state for d in done] == [TxState.DROPPED] * 3
    assert all("not in the pool" in (d.reason or "") for d in done)
    await c.rpc.call("evm_setIntervalMining", [1])
    again = await asyncio.wait_for(c.sender.execute(ME, pay), 20)
    assert (again.state, again.nonce) == (TxState.MINED_OK, 0)


async def test_a_rejected_nonce_between_sent_ones_is_filled(chain_factory: Any) -> None:
    c: Chain = await chain_factory(hole_fill_after=0.1)
    pay, too_much = TxRequest(to=OTHER, value=1), TxRequest(to=OTHER, value=10**30)
    recs = await asyncio.wait_for(asyncio.gather(*(c.sender.execute(ME, r) for r in (pay, too_much, pay, pay))), 30)
    assert [r.state for r in recs] == [TxState.MINED_OK, TxState.REJECTED, TxState.MINED_OK, TxState.MINED_OK]
    assert await c.sender.drain(10.0)
    st = c.sender.statistics()
    mined = st.by_state["mined_ok"]
    assert mined == 3 + st.fillers  # every filler was mined too, and nothing else was sent
    assert int(await c.rpc.call("eth_getTransactionCount", [ME, "latest"]), 16) == mined  # no gap left


async def test_insufficient_balance_is_a_clear_counted_rejection(chain_factory: Any) -> None:
    pauper = Account.from_key(secrets.token_bytes(32))
    c: Chain = await chain_factory(accounts=[*ACCOUNTS, pauper])
    rec = await c.sender.execute(pauper.address, TxRequest(to=OTHER, value=10**18))
    assert (rec.state, rec.error_kind) == (TxState.REJECTED, "insufficient_funds")
    assert "insufficient funds" in (rec.reason or "").lower()
    assert c.sender.statistics().by_state == {"rejected": 1}
    # The nonce was never consumed: the next transaction from a funded account is unaffected.
    assert (await c.sender.execute(ME, TxRequest(to=OTHER, value=1))).state is TxState.MINED_OK


class _Flaky:
    """Every ``every``-th send is forwarded and then its response 'lost'; every ``every``-th+1
    fails before reaching the node: both must end with each intent mined exactly once."""

    def __init__(self, inner: HttpTransport, every: int = 7) -> None:
        self.inner = inner
        self.every = every
        self.sends = 0
        self.lost_after = 0
        self.lost_before = 0

    async def call(self, method: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        return await self.inner.call(method, params, timeout=timeout)

    async def batch(
        self,
        calls: Sequence[tuple[str, Sequence[Any]]],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> list[Any | RpcError]:
        return await self.inner.batch(calls, timeout=timeout)

    async def send_raw_transaction(self, raw: bytes, *, timeout: float | None = None) -> str:  # noqa: ASYNC109
        self.sends += 1
        if self.sends % self.every == 1:
            self.lost_before += 1
            raise TransportError("connection refused (injected)")
        h = await self.inner.send_raw_transaction(raw, timeout=timeout)
        if self.sends % self.every == 0:
            self.lost_after += 1
            raise TransportError("connection reset after the node accepted it (injected)")
        return h

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_node_errors_mid_flight_never_lose_or_duplicate_a_tx(chain_factory: Any) -> None:
    flaky: list[_Flaky] = []

    def wrap(t: HttpTransport) -> _Flaky:
        flaky.append(_Flaky(t))
        return flaky[0]

    c: Chain = await chain_factory(wrap=wrap)
    pay = TxRequest(to=OTHER, value=1)
    recs = await asyncio.wait_for(asyncio.gather(*(c.sender.execute(ME, pay) for _ in range(60))), 60)
    assert flaky[0].lost_after > 0 and flaky[0].lost_before > 0
    assert {r.state for r in recs} == {TxState.MINED_OK}
    # every send the node (or the injected fault) saw is accounted to exactly one intent's attempts;
    # "60 + lost" would assume each intent ends on a successful send, but under load an intent can
    # exhaust its attempts on injected faults and still be found mined (its lost_after copy landed)
    assert sum(r.attempts for r in recs) == flaky[0].sends
    assert flaky[0].sends >= 60 + flaky[0].lost_before
    await _assert_nonces_exact(c.rpc, [r.hash for r in recs if r.hash], range(60))


@pytest.fixture
async def market(chain_factory: Any, tmp_path: Path) -> tuple[Chain, Pair]:
    c: Chain = await chain_factory()
    dep = await deploy(c.url, n_pairs=1, bot_accounts=[ME, OTHER], out_path=tmp_path / "deployment.json")
    p = dep.pairs[0]
    return c, Pair(p.id, p.pool, p.token0, p.token1, p.base, p.quote)


async def test_swaps_match_pool_math_and_a_slippage_revert_is_recorded(market: tuple[Chain, Pair]) -> None:
    c, pair = market
    samples: list[tuple[str, int]] = []
    prices = PriceReader(c.rpc, on_latency=lambda op, us: samples.append((op, us)))
    balances = BalanceReader(c.rpc, on_latency=lambda op, us: samples.append((op, us)))
    before = await prices.price(pair)
    r = await prices.reserves(pair.pool)
    zero_for_one = pair.base_is_token0  # sell base for quote
    amount_in = before.reserve_base // 1000
    expected, reason = swap_outcome(r, amount_in, zero_for_one, 0)
    assert reason is None and expected > 0
    quote0 = await balances.get(ME, pair.quote)

    swap = TxRequest(to=pair.pool, data=abi.encode_swap(amount_in, zero_for_one, expected, ME), gas=200_000)
    ok = await c.sender.execute(ME, swap)
    assert ok.state is TxState.MINED_OK
    assert await balances.get(ME, pair.quote) - quote0 == expected  # exact integer math, as Pool.sol

    r2 = await prices.reserves(pair.pool)
    _, why = swap_outcome(r2, amount_in, zero_for_one, 10**40)
    assert why == "slippage"
    bad = TxRequest(to=pair.pool, data=abi.encode_swap(amount_in, zero_for_one, 10**40, ME), gas=200_000)
    rec = await c.sender.execute(ME, bad)
    assert (rec.state, rec.error_kind) == (TxState.REVERTED, "reverted")
    assert (await prices.reserves(pair.pool)) == r2  # a revert changes nothing
    assert c.sender.statistics().by_state == {"mined_ok": 1, "reverted": 1}
    assert int(await c.rpc.call("eth_getBalance", [ME, "latest"]), 16) == await balances.get(ME)
    assert {op for op, _ in samples} == {"price_fetch", "balance_check"}
