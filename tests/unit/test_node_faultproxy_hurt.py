"""The faults that hurt, against a local node that counts what reached it: loss after forwarding, outages,
slow / truncated / oversized bodies, wrong shapes, WebSocket garbage frames."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from bot.rpc.codec import tx_hash
from harness.node.faultplan import FaultPlan
from harness.node.faultproxy import FaultProxy
from tests.unit.fault_upstream import BLOCK, RECEIPT, Upstream, answer, call, upstream_fixture, wait_for

RAW = bytes.fromhex("02f86b827a6980843b9aca00847735940082520894") + bytes(range(40))
DISCONNECTED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError)


@pytest.fixture
async def node() -> AsyncIterator[Upstream]:
    async for n in upstream_fixture():
        yield n


def _session() -> aiohttp.ClientSession:
    # one connection per request: a closed connection must not poison the next request
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def _post(session: aiohttp.ClientSession, url: str, doc: object) -> tuple[int, bytes] | str:
    try:
        async with session.post(url, json=doc) as resp:
            return resp.status, await resp.read()
    except DISCONNECTED:
        return "disconnected"


async def test_loss_forwards_the_send_then_drops_the_reply(node: Upstream) -> None:
    async with FaultProxy(node.url, FaultPlan(loss_rate=1.0)) as proxy, _session() as session:
        got = await _post(session, proxy.url, call("eth_sendRawTransaction", ["0x" + RAW.hex()], 7))
        assert got == "disconnected"
        assert node.methods() == ["eth_sendRawTransaction"]  # the node has the transaction
        [entry] = list(proxy.log)
        assert (entry.kind, entry.method, entry.request_id, entry.tx_hash) == (
            "loss", "eth_sendRawTransaction", 7, tx_hash(RAW))
        stats = proxy.statistics()
        assert (stats.loss, stats.forwarded, stats.drops) == (1, 1, 0)


async def test_loss_reaches_the_node_every_time_drop_never_does(node: Upstream) -> None:
    n = 60
    async with FaultProxy(node.url, FaultPlan(loss_rate=0.5, seed=3)) as proxy, _session() as session:
        outcomes = await asyncio.gather(*(_post(session, proxy.url, call("eth_blockNumber", [], i)) for i in range(n)))
        lost = sum(o == "disconnected" for o in outcomes)
        assert len(node.hits) == n  # every request reached the node, lost or not
        assert lost == proxy.statistics().loss and 0 < lost < n
        proxy.set_plan(FaultPlan(drop_rate=1.0))
        assert await _post(session, proxy.url, call("eth_blockNumber", [], 99)) == "disconnected"
        assert len(node.hits) == n  # a drop happens before forwarding


async def test_slow_body_trickles_out_after_the_headers(node: Upstream) -> None:
    params = ["x" * 200]
    async with FaultProxy(node.url, FaultPlan(slow_rate=1.0, slow_ms=300)) as proxy, _session() as session:
        loop = asyncio.get_running_loop()
        async with session.post(proxy.url, json=call("echo", params)) as resp:
            headers_at = loop.time()
            pieces = [chunk async for chunk in resp.content.iter_any()]
            done_at = loop.time()
        assert orjson.loads(b"".join(pieces))["result"] == params
        assert len(pieces) > 1
        assert done_at - headers_at >= 0.25  # a lower bound only: the body took at least its planned time
        assert proxy.statistics().slow == 1 and node.methods() == ["echo"]


async def test_truncated_body_is_cut_mid_body(node: Upstream) -> None:
    async with FaultProxy(node.url, FaultPlan(truncate_rate=1.0)) as proxy, _session() as session:
        async with session.post(proxy.url, json=call("eth_getTransactionReceipt", ["0x01"])) as resp:
            assert resp.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
        assert proxy.statistics().truncated == 1 and node.methods() == ["eth_getTransactionReceipt"]
        assert next(iter(proxy.log)).detail.startswith("upstream answered HTTP 200")


async def test_oversized_body_is_valid_json_padded_past_the_size(node: Upstream) -> None:
    size = 2_000_000
    async with FaultProxy(node.url, FaultPlan(oversize_rate=1.0, oversize_bytes=size)) as proxy, _session() as s:
        got = await _post(s, proxy.url, call("eth_getBlockByNumber", ["latest", False]))
        assert not isinstance(got, str)
        status, body = got
        assert (status, len(body)) == (200, size)
        assert orjson.loads(body)["result"] == BLOCK
        # a client with a body cap hangs up early; the proxy carries on
        async with s.post(proxy.url, json=call("eth_blockNumber", [])) as resp:
            await resp.content.read(1024)
        proxy.set_plan(FaultPlan())
        assert await _post(s, proxy.url, call("eth_blockNumber", [], 2)) == (
            200, orjson.dumps({"jsonrpc": "2.0", "id": 2, "result": "0x10"}))
        assert proxy.statistics().oversized == 2


@pytest.mark.parametrize("method", ["eth_getTransactionReceipt", "eth_getBlockByNumber", "eth_blockNumber",
                                    "eth_sendRawTransaction", "eth_call", "echo"])
async def test_wrong_shape_is_valid_json_with_the_same_id(node: Upstream, method: str) -> None:
    params = ["0x" + RAW.hex()] if method == "eth_sendRawTransaction" else ["0x01"]
    async with FaultProxy(node.url, FaultPlan(shape_rate=1.0, seed=2)) as proxy, _session() as session:
        for i in range(8):
            got = await _post(session, proxy.url, call(method, params, i))
            assert not isinstance(got, str)
            reply = orjson.loads(got[1])
            assert reply["id"] == i and "error" not in reply
            assert reply["result"] != answer(method, params) or type(reply["result"]) is not type(
                answer(method, params))
        kinds = {e.kind for e in proxy.log}
        assert kinds == {"shape"} and all(e.detail.startswith(f"{method}: ") for e in proxy.log)
        assert len(node.hits) == 8


async def test_wrong_shape_in_a_batch_spoils_one_call_and_keeps_every_id(node: Upstream) -> None:
    batch = [call("eth_getTransactionReceipt", ["0x01"], 1), call("eth_blockNumber", [], 2)]
    async with FaultProxy(node.url, FaultPlan(shape_rate=1.0)) as proxy, _session() as session:
        got = await _post(session, proxy.url, batch)
        assert not isinstance(got, str)
        replies = orjson.loads(got[1])
        assert [r["id"] for r in replies] == [1, 2]
        clean = [RECEIPT, "0x10"]
        assert sum(r["result"] != c for r, c in zip(replies, clean, strict=True)) == 1
        assert next(iter(proxy.log)).method == "batch[2]:eth_getTransactionReceipt,eth_blockNumber"


async def test_websocket_garbage_frames_come_before_the_real_ones(node: Upstream) -> None:
    async with FaultProxy(node.url, FaultPlan(ws_garbage_rate=1.0, seed=1)) as proxy, \
            aiohttp.ClientSession() as session, session.ws_connect(proxy.ws_url) as ws:
        real = []
        garbage = 0
        await ws.send_str("burst")
        while len(real) < 5:
            msg = await ws.receive(timeout=5)
            if msg.type == aiohttp.WSMsgType.BINARY:
                garbage += 1
                continue
            assert msg.type == aiohttp.WSMsgType.TEXT
            if msg.data.startswith("push:"):
                real.append(msg.data)
            else:
                with pytest.raises(orjson.JSONDecodeError):
                    orjson.loads(msg.data)
                garbage += 1
        assert real == [f"push:{i}" for i in range(5)] and garbage == 5
        await ws.send_str("up")  # toward the node no garbage is injected: the node echoes our text
        while (msg := await ws.receive(timeout=5)).data != "echo:up":
            pass
        assert proxy.statistics().ws_garbage == 6


async def test_delayed_frames_keep_their_order(node: Upstream) -> None:
    async with FaultProxy(node.url, FaultPlan(latency_ms=40, jitter_ms=30, seed=4)) as proxy, \
            aiohttp.ClientSession() as session, session.ws_connect(proxy.ws_url) as ws:
        for _ in range(3):
            await ws.send_str("burst")
        got = [(await ws.receive(timeout=5)).data for _ in range(15)]
        assert got == [f"push:{i}" for i in range(5)] * 3


async def test_scheduled_outage_window_refuses_then_recovers(node: Upstream) -> None:
    plan = FaultPlan(outages=((0.5, 1.5),))
    async with FaultProxy(node.url, plan) as proxy, _session() as session:
        outcomes: list[object] = []

        async def probe() -> object:
            out = await _post(session, proxy.url, call("eth_blockNumber", []))
            outcomes.append(out)
            return out

        async def refused_then_served() -> bool:
            await probe()
            return "disconnected" in outcomes and outcomes[-1] != "disconnected"

        deadline = asyncio.get_running_loop().time() + 15
        while not await refused_then_served():
            assert asyncio.get_running_loop().time() < deadline, "no outage seen and ended"
            await asyncio.sleep(0.02)
        refused = [e for e in proxy.log if e.kind == "outage"]
        assert refused and all(0.5 <= e.t < 1.5 for e in refused)
        await wait_for(lambda: {"outage_start", "outage_end"} <= {e.kind for e in proxy.log}, "edges logged")
        start = next(e for e in proxy.log if e.kind == "outage_start")
        assert start.t >= 0.5
        assert proxy.statistics().outages == len(refused) == outcomes.count("disconnected")
        assert len(node.hits) == len(outcomes) - len(refused)  # refused requests never reached the node


async def test_periodic_outages_follow_the_clock(node: Upstream) -> None:
    async with FaultProxy(node.url, FaultPlan(outage_every=(0.3, 0.1))) as proxy:
        await wait_for(lambda: sum(e.kind == "outage_start" for e in proxy.log) >= 2, "two outages", within_s=15)
        starts = [e.t for e in proxy.log if e.kind == "outage_start"]
        assert starts[0] >= 0.3 and starts[1] >= 0.6


async def test_an_outage_drops_websockets_and_refuses_handshakes(node: Upstream) -> None:
    async with FaultProxy(node.url) as proxy, aiohttp.ClientSession() as session:
        async with session.ws_connect(proxy.ws_url) as ws:
            await ws.send_str("x")
            assert (await ws.receive(timeout=5)).data == "echo:x"
            proxy.start_outage()
            msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        with pytest.raises((aiohttp.WSServerHandshakeError, *DISCONNECTED)):
            await session.ws_connect(proxy.ws_url)
        proxy.stop_outage()
        async with session.ws_connect(proxy.ws_url) as ws:
            await ws.send_str("y")
            assert (await ws.receive(timeout=5)).data == "echo:y"
        kinds = [e.kind for e in proxy.log]
        assert kinds[:3] == ["outage_start", "ws_drop", "outage"] and "outage_end" in kinds
