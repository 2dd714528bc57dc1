"""The fault proxy in front of a real anvil: JSON-RPC and eth_subscribe pass through; faults reach the client;
a send whose reply was lost after forwarding is mined all the same."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest
from eth_account import Account

from bot.rpc.codec import tx_hash
from harness.node.anvil import Anvil
from harness.node.faultplan import FaultPlan
from harness.node.faultproxy import FaultProxy
from harness.node.jsonrpc import NodeRpc, NodeRpcError
from harness.node.keys import dev_accounts

pytestmark = pytest.mark.integration


async def test_http_and_websocket_subscriptions_pass_through(anvil: Anvil) -> None:
    async with FaultProxy(anvil.url) as proxy:
        async with NodeRpc(proxy.url) as rpc:
            assert int(await rpc.call("eth_chainId"), 16) == 31337
            assert len(await rpc.batch([("eth_blockNumber", []), ("eth_accounts", [])])) == 2
        async with aiohttp.ClientSession() as session, session.ws_connect(proxy.ws_url) as ws:
            await ws.send_str(
                orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}).decode()
            )
            sub = orjson.loads((await ws.receive(timeout=10)).data)
            assert sub["id"] == 1 and isinstance(sub["result"], str)
            async with NodeRpc(anvil.url) as direct:
                await direct.call("evm_mine")
            head = orjson.loads((await ws.receive(timeout=10)).data)
            assert head["method"] == "eth_subscription"
            assert head["params"]["subscription"] == sub["result"]
            assert int(head["params"]["result"]["number"], 16) == 1
        stats = proxy.statistics()
    assert stats.forwarded == 2 and stats.ws_messages_to_node == 1 and stats.ws_messages_to_client == 2


async def test_injected_rpc_errors_reach_the_client(anvil: Anvil) -> None:
    async with FaultProxy(anvil.url, FaultPlan(rpc_error_rate=1.0)) as proxy, NodeRpc(proxy.url) as rpc:
        with pytest.raises(NodeRpcError, match="injected fault"):
            await rpc.call("eth_blockNumber")
        proxy.set_plan(FaultPlan())
        assert int(await rpc.call("eth_blockNumber"), 16) == 0


async def test_a_send_lost_after_forwarding_lands_on_chain_unseen(anvil: Anvil) -> None:
    sender, receiver = dev_accounts(2)
    tx = {"type": 2, "chainId": 31337, "nonce": 0, "to": receiver.address, "value": 12345, "gas": 21_000,
          "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
    raw: bytes = Account.sign_transaction(tx, sender.private_key).raw_transaction
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": ["0x" + raw.hex()]}
    async with FaultProxy(anvil.url, FaultPlan(loss_rate=1.0)) as proxy, aiohttp.ClientSession() as session:
        with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
            async with session.post(proxy.url, json=body) as resp:
                await resp.read()  # never reached: the client gets no answer at all
        [entry] = [e for e in proxy.log if e.kind == "loss"]
        assert entry.tx_hash == tx_hash(raw) and entry.method == "eth_sendRawTransaction"
    async with NodeRpc(anvil.url) as direct:  # automine: the node mined what the client never heard about
        receipt = None
        async with asyncio.timeout(30):
            while receipt is None:
                receipt = await direct.call("eth_getTransactionReceipt", [tx_hash(raw)])
                if receipt is None:
                    await asyncio.sleep(0.05)
        assert receipt["status"] == "0x1" and int(await direct.call("eth_getTransactionCount",
                                                                    [sender.address, "latest"]), 16) == 1
