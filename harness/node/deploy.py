"""Deploy the market (quote token, N base tokens and pools) onto an anvil and fund the bot.

No local signing: the deployer is an impersonated address and the bot accounts are anvil dev
accounts (or impersonated), so every transaction goes through ``eth_sendTransaction`` in
JSON-RPC batches, with explicit nonces. Phases, each mined before the next needs its addresses:
  1. the ``Deployer`` contract (it creates the quote token ``USD``);
  2. ``createPairs`` in chunks (tokens, pools, liquidity, base tokens for the bot);
  3. quote tokens for the bot, then max approvals of every pool from every bot account, in
     waves of about 2,000 transactions.
While it runs, automine is off (a burst under automine can stall anvil, machine-facts.md) and
the block gas limit is huge, so each wave is one ``evm_mine`` block; both are restored after,
and the base fee is reset. This works whatever mining mode anvil was started with.

Verification is by cheap, complete checks instead of one receipt per transaction (anvil serves
10k receipts of a big block in seconds): every sender's nonce reached its last transaction
(nothing dropped), every pair's ``PairCreated`` event and every ``Approval`` event is in the
logs (a reverted transaction emits none), every pool has reserves, and every bot holds its USD.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from harness.errors import HarnessError
from harness.node.abi import contract
from harness.node.deployplan import (
    MAX_UINT256,
    MINT_GAS,
    Deployment,
    DeployReport,
    Pair,
    PairSpec,
    approval_txs,
    chunks,
    create_pairs_call,
    normalize_accounts,
    pair_specs,
    tx,
)
from harness.node.jsonrpc import NodeRpc, NodeRpcError
from harness.node.keys import DEV_ADDRESSES

log = logging.getLogger(__name__)

DEPLOYER_ADDRESS = to_checksum_address(keccak(b"tradebench deployer")[-20:])
_DEPLOYER_BALANCE = 10**30
# The base fee barely moves with one huge block per wave; the headroom only guards against a
# chain whose blocks are full anyway (a too-low fee cap makes anvil drop transactions for good).
_FEE_HEADROOM = 100
_MIN_FEE = 10**9
_PHASE_GAS_LIMIT = 2**40
# anvil's pool insertion and block building grow faster than linearly with the pool size:
# 10k approvals in one block took 90 s, in waves of 2k about 1-2 s each.
_WAVE_TXS = 2000


class _Chain:
    """One deployment's RPC session: submits waves and mines them, counting what it did."""

    def __init__(self, rpc: NodeRpc, deadline: float) -> None:
        self.rpc = rpc
        self.deadline = deadline
        self.transactions = 0
        self.blocks = 0

    async def max_fee(self) -> int:
        block = await self.rpc.call("eth_getBlockByNumber", ["latest", False])
        return max(_MIN_FEE, int(block.get("baseFeePerGas", "0x0"), 16) * _FEE_HEADROOM)

    async def send(self, txs: Sequence[dict[str, Any]], *, resend: bool = False) -> list[str]:
        results = await self.rpc.batch([("eth_sendTransaction", [t]) for t in txs])
        bad = [
            (t, r)
            for t, r in zip(txs, results, strict=True)
            if isinstance(r, NodeRpcError) and not (resend and "already" in r.message)
        ]
        if bad:
            t, r = bad[0]
            raise HarnessError(
                f"deployment: {len(bad)} of {len(txs)} transactions refused; first from {t['from']}: {r}"
            )
        return [str(r) for r in results]

    async def requeue(self, txs: Sequence[dict[str, Any]]) -> int:
        """Empty the pool and resend those of ``txs`` that are not mined yet; returns how many.

        Under interval mining, a block mined while a sender's batch is being inserted can leave
        the sender's next nonce in anvil's *queued* set for good although it is executable
        (anvil 1.7.1, 0.05 s blocks); neither dropping nor resending that one transaction
        helps, a fresh pool does. Only called when the pool is stuck, and only our own chain.
        """
        senders = sorted({t["from"] for t in txs})
        mined = await self.rpc.batch_ok([("eth_getTransactionCount", [a, "latest"]) for a in senders])
        next_nonce = {a: int(n, 16) for a, n in zip(senders, mined, strict=True)}
        todo = [t for t in txs if int(t["nonce"], 16) >= next_nonce[t["from"]]]
        if todo:
            await self.rpc.call("anvil_dropAllTransactions")
            await self.send(sorted(todo, key=lambda t: (t["from"], int(t["nonce"], 16))), resend=True)
        return len(todo)

    async def submit(self, txs: Sequence[dict[str, Any]]) -> tuple[int, int, list[str]]:
        """Send, mine until the pool is empty, check nothing was dropped; (first, last block, hashes)."""
        first_block = int(await self.rpc.call("eth_blockNumber"), 16) + 1
        hashes = await self.send(txs)
        stuck = repairs = 0
        last_pending = -1
        while True:
            if time.monotonic() > self.deadline:
                raise HarnessError(f"deployment: transactions still pending at the deadline ({last_pending} left)")
            status = await self.rpc.call("txpool_status")
            pending = int(status["pending"], 16) + int(status["queued"], 16)
            if pending == 0:
                break
            stuck = stuck + 1 if pending == last_pending else 0
            last_pending = pending
            if stuck >= 3:
                if repairs >= 5 or not await self.requeue(txs):
                    raise HarnessError(f"deployment: {pending} transactions stay in the pool although blocks are mined")
                repairs += 1
                stuck = 0
            await self.rpc.call("evm_mine")
            self.blocks += 1
        last_block = int(await self.rpc.call("eth_blockNumber"), 16)
        await self._check_nonces(txs)
        self.transactions += len(txs)
        return first_block, last_block, hashes

    async def _check_nonces(self, txs: Sequence[dict[str, Any]]) -> None:
        want: dict[str, int] = {}
        for t in txs:
            want[t["from"]] = max(want.get(t["from"], 0), int(t["nonce"], 16) + 1)
        senders = list(want)
        got = await self.rpc.batch_ok([("eth_getTransactionCount", [a, "latest"]) for a in senders])
        for sender, n in zip(senders, got, strict=True):
            if int(n, 16) < want[sender]:
                raise HarnessError(
                    f"deployment: {want[sender] - int(n, 16)} transactions from {sender} were not mined "
                    "(dropped by the node)"
                )

    async def logs(self, first: int, last: int, topic: str, address: str | None = None) -> list[dict[str, Any]]:
        flt: dict[str, Any] = {"fromBlock": hex(first), "toBlock": hex(last), "topics": [topic]}
        if address is not None:
            flt["address"] = address
        result: list[dict[str, Any]] = await self.rpc.call("eth_getLogs", [flt])
        return result


async def deploy(
    rpc_url: str,
    n_pairs: int = 100,
    bot_accounts: Sequence[str] = DEV_ADDRESSES,
    *,
    out_path: Path | None = None,
    seed: int = 1,
    pairs_per_tx: int = 6,
    fund_eth: int = 10_000,
    fund_quote: int = 10**7,
    timeout_s: float = 300.0,
) -> Deployment:
    """Create the market and fund ``bot_accounts``; writes ``out_path`` (deployment.json) if given.

    ``fund_eth`` (ETH) and ``fund_quote`` (USD) are whole units per account; accounts that
    already hold more ETH keep it. The returned ``Deployment.report`` says how it went.
    """
    started = time.monotonic()
    accounts = normalize_accounts(bot_accounts)
    if not accounts:
        raise HarnessError("deploy: bot_accounts is empty; give at least one address to fund")
    specs = pair_specs(n_pairs, seed=seed)
    async with NodeRpc(rpc_url, timeout=max(30.0, timeout_s)) as rpc:
        try:
            chain_id = int(await rpc.call("eth_chainId"), 16)
            was_automine = bool(await rpc.call("anvil_getAutomine"))
            unlocked = {to_checksum_address(a) for a in await rpc.call("eth_accounts")}
        except NodeRpcError as exc:
            raise HarnessError(f"deploy needs an anvil dev node at {rpc_url}: {exc}") from exc
        impersonated = [DEPLOYER_ADDRESS, *(a for a in accounts if a not in unlocked)]
        block0 = await rpc.call("eth_getBlockByNumber", ["latest", False])
        gas_limit0 = int(block0["gasLimit"], 16)
        await rpc.batch_ok(
            [("anvil_impersonateAccount", [a]) for a in impersonated]
            + [("anvil_setBalance", [DEPLOYER_ADDRESS, hex(_DEPLOYER_BALANCE)])]
        )
        if was_automine:
            await rpc.call("evm_setAutomine", [False])
        if gas_limit0 < _PHASE_GAS_LIMIT:
            await rpc.call("evm_setBlockGasLimit", [hex(_PHASE_GAS_LIMIT)])
        chain = _Chain(rpc, started + timeout_s)
        try:
            pairs = await _create_market(chain, specs, accounts, pairs_per_tx)
            await _fund_bots(chain, pairs, accounts, fund_eth, fund_quote)
        finally:
            if gas_limit0 < _PHASE_GAS_LIMIT:
                await rpc.call("evm_setBlockGasLimit", [hex(gas_limit0)])
            if was_automine:
                await rpc.call("evm_setAutomine", [True])
            await rpc.batch([("anvil_stopImpersonatingAccount", [a]) for a in impersonated])
        if block0.get("baseFeePerGas") is not None:
            await rpc.batch([("anvil_setNextBlockBaseFeePerGas", [block0["baseFeePerGas"]])])
        block = int(await rpc.call("eth_blockNumber"), 16)
        report = DeployReport(
            n_pairs,
            len(accounts),
            chain.transactions,
            chain.blocks,
            time.monotonic() - started,
            rpc.statistics().requests,
        )
    deployment = Deployment(chain_id, pairs[0].quote, tuple(pairs), tuple(accounts), block, report)
    log.info("deployed %d pairs for %d accounts: %s", n_pairs, len(accounts), report)
    if out_path is not None:
        deployment.write(out_path)
    return deployment


async def _create_market(
    chain: _Chain, specs: Sequence[PairSpec], accounts: Sequence[str], pairs_per_tx: int
) -> list[Pair]:
    """Phases 1 and 2: the Deployer (and USD), then every pair; returns the pairs in spec order."""
    rpc, deployer = chain.rpc, contract("Deployer")
    nonce = int(await rpc.call("eth_getTransactionCount", [DEPLOYER_ADDRESS, "pending"]), 16)
    fee = await chain.max_fee()
    create = tx(DEPLOYER_ADDRESS, None, deployer.encode_deploy("USD"), nonce=nonce, gas=3_000_000, max_fee=fee)
    _, _, (create_hash,) = await chain.submit([create])
    nonce += 1
    receipt = await rpc.call("eth_getTransactionReceipt", [create_hash])
    if receipt is None or receipt["status"] != "0x1" or not receipt.get("contractAddress"):
        raise HarnessError(f"deployment: the Deployer contract was not created (receipt {receipt})")
    factory = to_checksum_address(receipt["contractAddress"])
    quote_raw = await rpc.call("eth_call", [{"to": factory, "data": deployer.encode_call("quote")}, "latest"])
    quote = to_checksum_address(deployer.decode_result("quote", quote_raw)[0])

    calls = [create_pairs_call(chunk, accounts) for chunk in chunks(specs, pairs_per_tx)]
    # Chunks differ only in symbols and amounts: estimate the first and last, reserve the larger.
    sample = [calls[0], calls[-1]]
    estimates = await rpc.batch_ok(
        [("eth_estimateGas", [{"from": DEPLOYER_ADDRESS, "to": factory, "data": c}]) for c in sample]
    )
    gas = int(max(int(g, 16) for g in estimates) * 1.3)
    fee = await chain.max_fee()
    txs = [tx(DEPLOYER_ADDRESS, factory, c, nonce=nonce + i, gas=gas, max_fee=fee) for i, c in enumerate(calls)]
    first, last, _ = await chain.submit(txs)

    created: dict[int, tuple[str, str]] = {}
    for entry in await chain.logs(first, last, deployer.events["PairCreated"].topic, factory):
        _, args = deployer.decode_event(entry)
        created[int(args["index"])] = (to_checksum_address(args["base"]), to_checksum_address(args["pool"]))
    missing = sorted({s.index for s in specs} - created.keys())
    if missing:
        raise HarnessError(
            f"deployment: {len(missing)} pairs were not created (a createPairs reverted?): {missing[:5]}"
        )
    pairs = []
    for s in specs:
        base, pool = created[s.index]
        # Pool sorts its tokens by address, like Uniswap V2.
        t0, t1 = (base, quote) if int(base, 16) < int(quote, 16) else (quote, base)
        pairs.append(Pair(id=s.pair_id, pool=pool, token0=t0, token1=t1, base=base, quote=quote))
    await _check_pools(rpc, pairs)
    return pairs


async def _fund_bots(
    chain: _Chain, pairs: Sequence[Pair], accounts: Sequence[str], fund_eth: int, fund_quote: int
) -> None:
    """Phase 3: ETH, USD, and max approvals of every pool for both its tokens from every account."""
    rpc, token = chain.rpc, contract("Token")
    quote = pairs[0].quote
    balances = await rpc.batch_ok([("eth_getBalance", [a, "latest"]) for a in accounts])
    want = fund_eth * 10**18
    top_up = [
        ("anvil_setBalance", [a, hex(want)]) for a, b in zip(accounts, balances, strict=True) if int(b, 16) < want
    ]
    if top_up:
        await rpc.batch_ok(top_up)

    nonce = int(await rpc.call("eth_getTransactionCount", [DEPLOYER_ADDRESS, "pending"]), 16)
    fee = await chain.max_fee()
    mints = [
        tx(
            DEPLOYER_ADDRESS,
            quote,
            token.encode_call("mint", a, fund_quote * 10**18),
            nonce=nonce + i,
            gas=MINT_GAS,
            max_fee=fee,
        )
        for i, a in enumerate(accounts)
    ]
    await chain.submit(mints)
    usd = await rpc.batch_ok(
        [("eth_call", [{"to": quote, "data": token.encode_call("balanceOf", a)}, "latest"]) for a in accounts]
    )
    for a, raw in zip(accounts, usd, strict=True):
        if token.decode_result("balanceOf", raw)[0] < fund_quote * 10**18:
            raise HarnessError(f"deployment: {a} did not receive its {fund_quote} USD")

    nonces = await rpc.batch_ok([("eth_getTransactionCount", [a, "pending"]) for a in accounts])
    next_nonce = {a: int(n, 16) for a, n in zip(accounts, nonces, strict=True)}
    per_wave = max(1, _WAVE_TXS // (2 * len(accounts)))
    approval_topic = token.events["Approval"].topic
    for start in range(0, len(pairs), per_wave):
        group = pairs[start : start + per_wave]
        txs: list[dict[str, Any]] = []
        for a in accounts:
            txs += approval_txs(a, next_nonce[a], group, fee)
            next_nonce[a] += 2 * len(group)
        first, last, _ = await chain.submit(txs)
        seen: Counter[tuple[str, str]] = Counter()
        for entry in await chain.logs(first, last, approval_topic):
            _, args = token.decode_event(entry)
            if args["value"] == MAX_UINT256:
                seen[(to_checksum_address(args["owner"]), to_checksum_address(args["spender"]))] += 1
        short = [(a, p.id) for a in accounts for p in group if seen[(a, p.pool)] < 2]
        if short:
            raise HarnessError(f"deployment: {len(short)} approvals missing (reverted?), first: {short[0]}")


async def _check_pools(rpc: NodeRpc, pairs: Sequence[Pair]) -> None:
    pool = contract("Pool")
    data = pool.encode_call("getReserves")
    results = await rpc.batch_ok([("eth_call", [{"to": p.pool, "data": data}, "latest"]) for p in pairs])
    for p, raw in zip(pairs, results, strict=True):
        r0, r1, _ = pool.decode_result("getReserves", raw)
        if r0 == 0 or r1 == 0:
            raise HarnessError(f"deployment: pool {p.id} at {p.pool} has no liquidity ({r0}, {r1})")
