"""No client of a node follows a redirect: a local server answers 3xx towards another loopback
server that counts every request it gets, and that server must see none. Each client raises its
typed error naming the target's host only (the redirect's path and query may hold a key)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from bot.rpc import RedirectRefused, Timeouts, WsOptions, WsSubscriber
from bot.rpc.transport import HttpTransport
from bot.rpc.wscalls import WsCallTransport
from harness.errors import RedirectRefused as HarnessRedirectRefused
from harness.load.jsonrpc import JsonRpcDriver, RequestFailed
from harness.node.faultproxy import FaultProxy
from harness.node.jsonrpc import NodeRpc

TIMEOUTS = Timeouts(connect=2.0, read=2.0, total=4.0)


@dataclass
class Pair:
    """``url``: the redirecting server; ``target``: where it points (``host``), counting ``hits``."""

    url: str
    host: str
    hits: list[str]


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, int(runner.addresses[0][1])


@pytest.fixture(params=[302, 307])
async def redirect(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    hits: list[str] = []

    async def count(req: web.Request) -> web.StreamResponse:
        hits.append(f"{req.method} {req.path}")
        if req.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(req)
            await ws.close()
            return ws
        return web.json_response({"jsonrpc": "2.0", "id": 1, "result": "0x7a69"})

    target = web.Application()
    target.router.add_route("*", "/{tail:.*}", count)
    target_runner, target_port = await _serve(target)
    host = f"127.0.0.1:{target_port}"
    status: int = request.param

    async def bounce(req: web.Request) -> web.Response:
        location = f"http://u:KEY@{host}/KEY?apikey=KEY"
        return web.Response(status=status, headers={"Location": location})

    source = web.Application()
    source.router.add_route("*", "/{tail:.*}", bounce)
    source_runner, source_port = await _serve(source)
    try:
        yield Pair(f"http://127.0.0.1:{source_port}", host, hits)
    finally:
        await source_runner.cleanup()
        await target_runner.cleanup()


def _names_host_only(message: str, host: str) -> None:
    assert host in message and "KEY" not in message, message


async def test_http_transport(redirect: Pair) -> None:
    transport = HttpTransport(redirect.url, TIMEOUTS)
    try:
        with pytest.raises(RedirectRefused) as err:
            await transport.call("eth_chainId")
        with pytest.raises(RedirectRefused):
            await transport.batch([("eth_chainId", []), ("eth_blockNumber", [])])
        with pytest.raises(RedirectRefused):
            await transport.send_raw_transaction(b"\x02\x01")
    finally:
        await transport.aclose()
    _names_host_only(str(err.value), redirect.host)
    assert err.value.target_host == redirect.host and not err.value.retryable
    assert redirect.hits == []


async def test_ws_subscriber(redirect: Pair) -> None:
    sub = WsSubscriber(redirect.url.replace("http://", "ws://"), WsOptions(connect_timeout=2.0))
    sub.subscribe_new_heads()
    with pytest.raises(RedirectRefused) as err:
        await sub.start()  # stops at once: the same URL would redirect again
    await sub.aclose()
    _names_host_only(str(err.value), redirect.host)
    assert redirect.hits == []


async def test_ws_call_transport(redirect: Pair) -> None:
    transport = WsCallTransport(redirect.url, TIMEOUTS)
    try:
        with pytest.raises(RedirectRefused) as err:
            await transport.call("eth_chainId")
    finally:
        await transport.aclose()
    _names_host_only(str(err.value), redirect.host)
    assert redirect.hits == []


async def test_harness_node_rpc(redirect: Pair) -> None:
    async with NodeRpc(redirect.url, timeout=4.0) as rpc:
        with pytest.raises(HarnessRedirectRefused) as err:
            await rpc.call("eth_chainId")
    _names_host_only(str(err.value), redirect.host)
    assert redirect.hits == []


async def test_harness_load_driver(redirect: Pair) -> None:
    async with JsonRpcDriver(redirect.url, "eth_chainId", []) as driver:
        with pytest.raises(RequestFailed) as err:
            await driver.call()
    assert err.value.kind == "transport"
    _names_host_only(str(err.value), redirect.host)
    assert redirect.hits == []


async def test_fault_proxy_upstream(redirect: Pair) -> None:
    async with FaultProxy(redirect.url) as proxy, aiohttp.ClientSession() as session:
        async with session.post(proxy.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
                                allow_redirects=False) as r:
            assert r.status == 502
            _names_host_only(await r.text(), redirect.host)
        async with session.ws_connect(proxy.ws_url) as ws:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.CLOSE
            _names_host_only(str(msg.extra), redirect.host)
    assert redirect.hits == []
