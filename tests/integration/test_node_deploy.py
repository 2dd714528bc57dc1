"""A real deployment: pools have reserves, bots are funded and approved, swaps trade and revert on slippage."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from harness.errors import HarnessError
from harness.node.abi import contract
from harness.node.anvil import Anvil, AnvilOptions
from harness.node.deploy import deploy
from harness.node.deployplan import MAX_UINT256, Deployment, Pair
from harness.node.jsonrpc import NodeRpc, NodeRpcError
from harness.node.keys import DEV_ADDRESSES
from harness.node.mining import MiningMode
from tests.conftest import AnvilFactory, DeployedChain

pytestmark = pytest.mark.integration

POOL, TOKEN = contract("Pool"), contract("Token")
UNIT = 10**18


async def _view(rpc: NodeRpc, to: str, abi_name: str, fn: str, *args: Any) -> tuple[Any, ...]:
    abi = contract(abi_name)
    raw = await rpc.call("eth_call", [{"to": to, "data": abi.encode_call(fn, *args)}, "latest"])
    return abi.decode_result(fn, raw)


async def _swap(rpc: NodeRpc, sender: str, pair: Pair, amount_in: int, min_out: int) -> dict[str, Any]:
    zero_for_one = pair.token0 == pair.base  # sell base for quote
    data = POOL.encode_call("swap", amount_in, zero_for_one, min_out, sender)
    tx_hash = await rpc.call(
        "eth_sendTransaction", [{"from": sender, "to": pair.pool, "data": data, "gas": hex(300_000)}]
    )
    # Under automine the receipt can trail the hash by a moment.
    for _ in range(500):
        receipt: dict[str, Any] | None = await rpc.call("eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return receipt
        await asyncio.sleep(0.02)
    raise AssertionError(f"no receipt for {tx_hash} within 10 s")


async def test_deployment_json_matches_the_design(deployed: DeployedChain) -> None:
    data = json.loads(deployed.deployment_path.read_text())
    assert set(data) == {"chain_id", "quote_token", "pairs", "accounts", "block"}
    assert data["chain_id"] == 31337
    assert [p["id"] for p in data["pairs"]] == [f"T{i:03d}/USD" for i in range(5)]
    assert set(data["pairs"][0]) == {"id", "pool", "token0", "token1", "base", "quote"}
    assert data["accounts"] == list(DEV_ADDRESSES)
    assert Deployment.load(deployed.deployment_path) == deployed.deployment
    report = deployed.deployment.report
    # the Deployer, one createPairs, the USD mints, the approvals
    assert report is not None and report.transactions == 1 + 1 + 10 + 5 * 2 * 10


async def test_pools_have_reserves_and_bots_are_funded_and_approved(deployed: DeployedChain) -> None:
    d = deployed.deployment
    async with NodeRpc(deployed.anvil.url) as rpc:
        assert int(await rpc.call("eth_blockNumber"), 16) == d.block
        for pair in d.pairs:
            (token0,) = await _view(rpc, pair.pool, "Pool", "token0")
            assert token0.lower() == pair.token0.lower()
            assert {pair.token0, pair.token1} == {pair.base, pair.quote}
            r0, r1, _ = await _view(rpc, pair.pool, "Pool", "getReserves")
            assert r0 > 0 and r1 > 0
            for account in (DEV_ADDRESSES[0], DEV_ADDRESSES[9]):
                for tok in (pair.base, pair.quote):
                    assert (await _view(rpc, tok, "Token", "allowance", account, pair.pool))[0] == MAX_UINT256
                    assert (await _view(rpc, tok, "Token", "balanceOf", account))[0] > 0
        assert (await _view(rpc, d.quote_token, "Token", "symbol"))[0] == "USD"
        assert (await _view(rpc, d.pairs[3].base, "Token", "symbol"))[0] == "T003"
        # automine is back on after the deployment
        assert await rpc.call("anvil_getAutomine") is True


async def test_a_swap_moves_reserves_and_emits_swap_and_sync(deployed: DeployedChain) -> None:
    pair = deployed.deployment.pairs[0]
    trader = DEV_ADDRESSES[1]
    async with NodeRpc(deployed.anvil.url) as rpc:
        before = await _view(rpc, pair.pool, "Pool", "getReserves")
        receipt = await _swap(rpc, trader, pair, UNIT, 1)
        after = await _view(rpc, pair.pool, "Pool", "getReserves")
    assert receipt["status"] == "0x1"
    pool_logs = [e for e in receipt["logs"] if e["address"].lower() == pair.pool.lower()]
    events = dict(POOL.decode_event(e) for e in pool_logs)
    assert set(events) == {"Swap", "Sync"}
    base_is_0 = pair.token0 == pair.base
    base_in = events["Swap"]["amount0In"] if base_is_0 else events["Swap"]["amount1In"]
    quote_out = events["Swap"]["amount1Out"] if base_is_0 else events["Swap"]["amount0Out"]
    assert base_in == UNIT and quote_out > 0
    assert (events["Sync"]["reserve0"], events["Sync"]["reserve1"]) == after[:2]
    i_base, i_quote = (0, 1) if base_is_0 else (1, 0)
    assert after[i_base] == before[i_base] + UNIT
    assert after[i_quote] == before[i_quote] - quote_out
    # constant product with the 0.3% fee: the product never falls
    assert after[0] * after[1] >= before[0] * before[1]


async def test_a_swap_below_min_out_reverts_with_slippage(deployed: DeployedChain) -> None:
    pair = deployed.deployment.pairs[1]
    trader = DEV_ADDRESSES[2]
    async with NodeRpc(deployed.anvil.url) as rpc:
        before = await _view(rpc, pair.pool, "Pool", "getReserves")
        data = POOL.encode_call("swap", UNIT, pair.token0 == pair.base, 2**200, trader)
        with pytest.raises(NodeRpcError, match="slippage"):
            await rpc.call("eth_call", [{"from": trader, "to": pair.pool, "data": data}, "latest"])
        # Mined anyway (explicit gas, no estimate): the receipt shows the failure, nothing moved.
        receipt = await _swap(rpc, trader, pair, UNIT, 2**200)
        assert receipt["status"] == "0x0"
        assert receipt["logs"] == []
        assert await _view(rpc, pair.pool, "Pool", "getReserves") == before


@pytest.mark.parametrize("mining", ["manual", "interval:0.05s"])
async def test_deploy_works_in_every_mining_mode(anvil_factory: AnvilFactory, mining: str, tmp_path: Path) -> None:
    node = await anvil_factory(AnvilOptions(mining=MiningMode.parse(mining), quiet=True))
    other = "0x000000000000000000000000000000000000bEEF"  # not a dev account: impersonated
    d = await deploy(node.url, n_pairs=3, bot_accounts=[DEV_ADDRESSES[0], other], out_path=tmp_path / "d.json")
    async with NodeRpc(node.url) as rpc:
        for pair in d.pairs:
            assert (await _view(rpc, pair.base, "Token", "allowance", other, pair.pool))[0] == MAX_UINT256
        assert int(await rpc.call("eth_getBalance", [other, "latest"]), 16) > 9_999 * UNIT  # minus gas
        await rpc.call("evm_mine")  # the restored limit applies from the next block on
        gas_limit = int((await rpc.call("eth_getBlockByNumber", ["latest", False]))["gasLimit"], 16)
        assert gas_limit == 30_000_000


async def test_deploy_against_a_non_anvil_node_is_a_clear_error(tmp_path: Path) -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        body = await request.json()
        if body["method"] == "eth_chainId":
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": "0x1"})
        error = {"code": -32601, "message": "method not found"}
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "error": error})

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with pytest.raises(HarnessError, match="needs an anvil dev node"):
            await deploy(f"http://127.0.0.1:{port}", n_pairs=1)
    finally:
        await runner.cleanup()


async def test_deploy_100_pairs_completes(anvil: Anvil) -> None:
    d = await asyncio.wait_for(deploy(anvil.url, n_pairs=100), timeout=120)
    assert len({p.pool for p in d.pairs}) == 100
    assert d.report is not None and d.report.transactions == 1 + 17 + 10 + 100 * 2 * 10  # 17 createPairs of <= 6


async def test_deploy_500_pairs_on_default_gas_limit_and_leaves_a_calm_chain(anvil_factory: AnvilFactory) -> None:
    node = await anvil_factory(AnvilOptions(quiet=True))
    async with NodeRpc(node.url) as rpc:
        base_fee0 = int((await rpc.call("eth_getBlockByNumber", ["latest", False]))["baseFeePerGas"], 16)
        d = await asyncio.wait_for(deploy(node.url, n_pairs=500, bot_accounts=DEV_ADDRESSES[:4]), timeout=240)
        assert len({p.pool for p in d.pairs}) == 500
        last = d.pairs[-1]
        assert (await _view(rpc, last.quote, "Token", "allowance", DEV_ADDRESSES[3], last.pool))[0] == MAX_UINT256
        await rpc.call("evm_mine")
        block = await rpc.call("eth_getBlockByNumber", ["latest", False])
    assert int(block["gasLimit"], 16) == 30_000_000
    # the deployment's blocks did not leave the bot a base fee far above the start
    assert int(block["baseFeePerGas"], 16) <= 2 * base_fee0
