"""``HttpTransport`` caps response bodies (``PoolLimits.max_response_bytes``, ``engine.rpc_max_response_bytes``):
a larger body, announced or chunked, is ``InvalidResponse`` and is not read to the end."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web

from bot.config import ConfigError, loads
from bot.rpc import HttpTransport, PoolLimits
from bot.rpc import config as rpc_config
from bot.rpc.errors import InvalidResponse

CAP = 4096


class BigNode:
    """Answers every call with a JSON-RPC result padded to ``size`` bytes, chunked or with a length."""

    def __init__(self) -> None:
        self.size = 100
        self.chunked = False
        self.streamed = 0  # body bytes the server managed to write
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        rid = orjson.loads(await request.read())["id"]
        head = b'{"jsonrpc":"2.0","id":%d,"result":"0x' % rid
        body = head + b"0" * max(0, self.size - len(head) - 2) + b'"}'
        if not self.chunked:
            self.streamed += len(body)
            return web.Response(body=body, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            for i in range(0, len(body), 1024):
                await resp.write(body[i : i + 1024])
                self.streamed += len(body[i : i + 1024])
            await resp.write_eof()
        except (ConnectionResetError, RuntimeError):
            pass  # the client hung up on an oversized body: expected
        return resp

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def big() -> AsyncIterator[BigNode]:
    node = BigNode()
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


@pytest.mark.parametrize("chunked", [False, True])
async def test_an_oversized_body_is_an_invalid_response(big: BigNode, chunked: bool) -> None:
    big.chunked = chunked
    async with HttpTransport(big.url, limits=PoolLimits(max_response_bytes=CAP)) as client:
        big.size = CAP  # exactly at the cap: fine
        assert len(await client.call("eth_call")) == CAP - len('{"jsonrpc":"2.0","id":1,"result":"') - 2
        big.size = 50 * CAP
        with pytest.raises(InvalidResponse, match=f"max_response_bytes {CAP}"):
            await client.call("eth_call")
        assert client.statistics().errors["invalid_response"] == 1
        big.size = 100
        assert await client.call("eth_call") == "0x" + "0" * (100 - len('{"jsonrpc":"2.0","id":3,"result":"0x') - 2)


def test_the_cap_is_configured_and_validated() -> None:
    base = 'deployment = "d.json"\n[endpoints]\nhttp = ["http://127.0.0.1:8545"]\n'
    assert loads(base).engine.rpc_max_response_bytes == rpc_config.DEFAULT_MAX_RESPONSE_BYTES == 16 * 2**20
    assert loads(base + "[engine]\nrpc_max_response_bytes = 65536\n").engine.rpc_max_response_bytes == 65536
    for bad in ("100", "0", '"big"', str(2**31)):
        with pytest.raises(ConfigError, match=r"engine\.rpc_max_response_bytes"):
            loads(base + f"[engine]\nrpc_max_response_bytes = {bad}\n")
    with pytest.raises(ValueError, match=r"PoolLimits\.max_response_bytes"):
        PoolLimits(max_response_bytes=10)
