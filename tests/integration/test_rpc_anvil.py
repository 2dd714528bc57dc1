"""The network layer against a real anvil: calls, batches, idempotent sends, newHeads, and a
WebSocket drop (through a local relay that is killed and restarted) that reconnects,
resubscribes and backfills without duplicates."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from eth_account import Account

from bot.rpc import EndpointPool, HttpTransport, NodeError, WsOptions, WsSubscriber
from bot.rpc.ws import Event
from harness.node.anvil import Anvil, AnvilOptions
from harness.node.keys import dev_accounts
from harness.node.mining import MiningMode
from tests.conftest import AnvilFactory

pytestmark = pytest.mark.integration

WS_OPTS = WsOptions(reconnect_base_delay=0.02, reconnect_max_delay=0.1, request_timeout=5.0)


def signed_transfer(nonce: int, value: int = 1) -> bytes:
    sender, receiver = dev_accounts(2)
    tx = {
        "type": 2,
        "chainId": 31337,
        "nonce": nonce,
        "to": receiver.address,
        "value": value,
        "gas": 21_000,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 10**9,
    }
    raw: bytes = Account.sign_transaction(tx, sender.private_key).raw_transaction
    return raw


async def test_calls_and_batches(anvil: Anvil) -> None:
    async with HttpTransport(anvil.url) as rpc:
        assert int(await rpc.call("eth_chainId"), 16) == 31337
        first = int(await rpc.call("eth_blockNumber"), 16)
        await rpc.call("evm_mine")
        out = await rpc.batch([("eth_blockNumber", []), ("eth_chainId", []), ("eth_no_such_method", [])])
        assert isinstance(out[0], str) and int(out[0], 16) == first + 1
        assert out[1] == "0x7a69"
        assert isinstance(out[2], NodeError)
        stats = rpc.statistics()
        assert stats.requests == 4 and stats.calls == 6 and stats.bytes_received > 0


async def test_resending_the_same_bytes_returns_the_same_hash(anvil_factory: AnvilFactory) -> None:
    node = await anvil_factory(AnvilOptions(mining=MiningMode.manual()))
    raw = signed_transfer(nonce=0)
    async with HttpTransport(node.url) as rpc:
        tx_hash = await rpc.send_raw_transaction(raw)
        assert await rpc.send_raw_transaction(raw) == tx_hash  # anvil: "already known"-style reply
        assert rpc.statistics().already_known == 1
        await rpc.call("evm_mine")
        receipt = await rpc.call("eth_getTransactionReceipt", [tx_hash])
        assert receipt["transactionHash"] == tx_hash and receipt["status"] == "0x1"
    async with EndpointPool([HttpTransport(node.url)]) as pool:
        # Mined now: the same bytes are a definite "nonce too low", not retried, not hidden.
        with pytest.raises(NodeError, match="nonce"):
            await pool.send_raw_transaction(raw)
        assert pool.statistics().failed == 1


async def take_events(sub: WsSubscriber, n: int, within: float = 10.0) -> list[Event]:
    async with asyncio.timeout(within):
        return [await sub.get() for _ in range(n)]


def numbers(events: list[Event]) -> list[int]:
    return [int(e.data["number"], 16) for e in events]


async def test_new_heads_subscription(anvil: Anvil) -> None:
    async with HttpTransport(anvil.url) as rpc:
        sub = WsSubscriber(anvil.ws_url, WS_OPTS)
        sub.subscribe_new_heads()
        await sub.start()
        try:
            start = int(await rpc.call("eth_blockNumber"), 16)
            for _ in range(3):
                await rpc.call("evm_mine")
            events = await take_events(sub, 3)
            assert numbers(events) == [start + 1, start + 2, start + 3]
            assert await sub.request("eth_chainId") == "0x7a69"
        finally:
            await sub.aclose()


class WsRelay:
    """A WebSocket relay on 127.0.0.1 in front of anvil; ``stop()`` cuts every connection."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.0, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        client = web.WebSocketResponse()
        await client.prepare(request)
        self._sockets.add(client)
        assert self._session is not None
        async with self._session.ws_connect(self.upstream) as upstream:

            async def pump_up() -> None:
                async for msg in client:
                    await upstream.send_str(msg.data)

            async def pump_down() -> None:
                async for msg in upstream:
                    await client.send_str(msg.data)

            tasks = [asyncio.create_task(pump_up()), asyncio.create_task(pump_down())]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        self._sockets.discard(client)
        await client.close()
        return client


@pytest.fixture
async def relay(anvil: Anvil) -> AsyncIterator[WsRelay]:
    proxy = WsRelay(anvil.ws_url)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


async def test_ws_drop_reconnects_resubscribes_and_backfills(anvil: Anvil, relay: WsRelay) -> None:
    async with HttpTransport(anvil.url) as rpc:
        sub = WsSubscriber(relay.url, WS_OPTS)
        sub.subscribe_new_heads()
        await sub.start()
        try:
            start = int(await rpc.call("eth_blockNumber"), 16)
            await rpc.call("evm_mine")
            before = await take_events(sub, 1)
            await relay.stop()
            async with asyncio.timeout(5):
                while sub.statistics().connected:
                    await asyncio.sleep(0.01)
            for _ in range(3):
                await rpc.call("evm_mine")  # while the subscriber is blind
            await relay.start()
            async with asyncio.timeout(10):
                while sub.statistics().connects < 2:
                    await asyncio.sleep(0.01)
            await rpc.call("evm_mine")  # live again
            after = await take_events(sub, 4)
            assert numbers(before + after) == [start + i for i in range(1, 6)]
            assert [e.backfilled for e in after] == [True, True, True, False]
            await asyncio.sleep(0.2)
            stats = sub.statistics()
            assert stats.queue_depth == 0 and stats.backfilled == 3 and stats.reconnects >= 1
            assert stats.delivered == 5 and stats.dropped == 0
        finally:
            await sub.aclose()


TOPIC = "0x" + "7e" * 32
# Init code that emits LOG1(TOPIC) with empty data, then deploys empty code:
# PUSH32 TOPIC, PUSH1 0, PUSH1 0, LOG1, STOP. Each deployment is one block with one log.
EMIT_LOG = "0x7f" + TOPIC[2:] + "60006000a100"


async def emit_log(rpc: HttpTransport) -> str:
    sender = dev_accounts(1)[0].address
    tx_hash: str = await rpc.call("eth_sendTransaction", [{"from": sender, "data": EMIT_LOG, "gas": "0x186a0"}])
    return tx_hash


async def test_ws_drop_backfills_logs_with_the_filter(anvil: Anvil, relay: WsRelay) -> None:
    async with HttpTransport(anvil.url) as rpc:
        sub = WsSubscriber(relay.url, WS_OPTS)
        sub.subscribe_logs(topics=[TOPIC])
        await sub.start()
        try:
            sent = [await emit_log(rpc)]
            await rpc.call("evm_mine")  # a block without matching logs must not confuse the cursor
            before = await take_events(sub, 1)
            await relay.stop()
            async with asyncio.timeout(5):
                while sub.statistics().connected:
                    await asyncio.sleep(0.01)
            sent += [await emit_log(rpc) for _ in range(3)]
            await relay.start()
            async with asyncio.timeout(10):
                while sub.statistics().connects < 2:
                    await asyncio.sleep(0.01)
            sent.append(await emit_log(rpc))
            after = await take_events(sub, 4)
            logs = [e.data for e in before + after]
            assert [log["transactionHash"] for log in logs] == sent
            assert all(log["topics"] == [TOPIC] for log in logs)
            assert [e.backfilled for e in after] == [True, True, True, False]
            await asyncio.sleep(0.2)
            stats = sub.statistics()
            assert stats.delivered == 5 and stats.queue_depth == 0 and stats.dropped == 0
        finally:
            await sub.aclose()
