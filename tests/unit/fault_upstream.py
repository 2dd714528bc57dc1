"""A small JSON-RPC node for the fault proxy's tests: it counts what reached it and answers like anvil.

``Upstream.hits`` lists every call the node received (method, id, params), so a test can prove that a
request the client never got an answer for did reach the node. WebSocket: ``echo:<text>`` for a text,
``push:0..4`` for ``burst``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bot.rpc.codec import tx_hash

RECEIPT = {"transactionHash": "0x" + "ab" * 32, "blockNumber": "0x5", "status": "0x1", "gasUsed": "0x5208",
           "logs": [], "from": "0x" + "11" * 20, "to": "0x" + "22" * 20}
BLOCK = {"number": "0x5", "timestamp": "0x6553f100", "baseFeePerGas": "0x3b9aca00", "transactions": [],
         "hash": "0x" + "cd" * 32}


def answer(method: str, params: list[Any]) -> Any:
    if method == "eth_sendRawTransaction":
        return tx_hash(bytes.fromhex(str(params[0]).removeprefix("0x")))
    return {"eth_getTransactionReceipt": RECEIPT, "eth_getBlockByNumber": BLOCK, "eth_blockNumber": "0x10",
            "eth_call": "0x" + "00" * 31 + "01", "eth_chainId": "0x7a69"}.get(method, params)


@dataclass
class Upstream:
    url: str = ""
    hits: list[tuple[str, Any, Any]] = field(default_factory=list)

    def methods(self) -> list[str]:
        return [m for m, _, _ in self.hits]


async def start_upstream() -> tuple[Upstream, Callable[[], Any]]:
    node = Upstream()

    async def rpc(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    if msg.data == "burst":
                        for i in range(5):
                            await ws.send_str(f"push:{i}")
                    else:
                        await ws.send_str(f"echo:{msg.data}")
            return ws
        body = orjson.loads(await request.read())
        calls = body if isinstance(body, list) else [body]
        for c in calls:
            node.hits.append((c["method"], c.get("id"), c.get("params")))
        replies = [{"jsonrpc": "2.0", "id": c["id"], "result": answer(c["method"], c.get("params", []))}
                   for c in calls]
        return web.Response(body=orjson.dumps(replies if isinstance(body, list) else replies[0]),
                            content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/", rpc)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    node.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    return node, runner.cleanup


async def upstream_fixture() -> AsyncIterator[Upstream]:
    node, cleanup = await start_upstream()
    try:
        yield node
    finally:
        await cleanup()


async def wait_for(cond: Callable[[], bool], what: str, within_s: float = 10.0, every_s: float = 0.01) -> None:
    """Polls ``cond`` until it holds, failing with ``what`` after ``within_s`` (a deadline, never a fixed sleep)."""
    try:
        async with asyncio.timeout(within_s):
            while not cond():
                await asyncio.sleep(every_s)
    except TimeoutError:
        raise AssertionError(f"{what} (waited {within_s:g} s)") from None


def call(method: str, params: list[Any], i: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": i, "method": method, "params": params}
