"""The fault proxy in front of a real anvil: JSON-RPC and eth_subscribe pass through; faults reach the client."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from harness.node.anvil import Anvil
from harness.node.faultplan import FaultPlan
from harness.node.faultproxy import FaultProxy
from harness.node.jsonrpc import NodeRpc, NodeRpcError

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
