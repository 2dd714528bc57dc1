"""HttpTransport against scripted local servers: typed errors for every failure, batching,
keep-alive reuse, byte counting, and idempotent sends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web
from eth_hash.auto import keccak

from bot.rpc import BatchPolicy, HttpTransport, PoolLimits, Timeouts
from bot.rpc.errors import InvalidResponse, NodeError, RateLimited, RpcTimeout, TransportError
from tests.unit.rpc_fakes import FakeNode, drop, garbage, node_error, slow, status


@pytest.fixture
async def node() -> AsyncIterator[FakeNode]:
    fake = FakeNode()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def transport(node: FakeNode) -> AsyncIterator[HttpTransport]:
    client = HttpTransport(node.url, Timeouts(connect=1.0, read=1.0, total=2.0), PoolLimits(max_connections=8))
    try:
        yield client
    finally:
        await client.aclose()


async def test_call_returns_result_and_counts(transport: HttpTransport) -> None:
    assert await transport.call("eth_blockNumber") == "0x10"
    assert await transport.call("echo", [1, "a"]) == [1, "a"]
    stats = transport.statistics()
    assert (stats.requests, stats.calls, stats.in_flight) == (2, 2, 0)
    assert stats.bytes_sent > 0 and stats.bytes_received > 0
    assert dict(stats.errors) == {}


async def test_bytes_sent_match_what_the_server_parsed(node: FakeNode, transport: HttpTransport) -> None:
    await transport.call("echo", ["x" * 1000])
    await transport.batch([("eth_blockNumber", []), ("echo", [1])])
    await transport.call("eth_blockNumber")
    stats = transport.statistics()
    assert stats.bytes_sent == node.bytes_in
    # The echoed body alone is over 1000 bytes; status line and headers come on top.
    assert stats.bytes_received > 1100


async def test_bytes_count_the_path_and_extra_headers(node: FakeNode) -> None:
    async with HttpTransport(node.url + "/?key=abc", headers={"Authorization": "Bearer t"}) as client:
        await client.call("eth_blockNumber")
        assert client.statistics().bytes_sent == node.bytes_in


async def test_connections_are_reused(node: FakeNode, transport: HttpTransport) -> None:
    for _ in range(20):
        await transport.call("eth_blockNumber")
    # One sequential caller on keep-alive: all 20 requests on one TCP connection.
    assert len(node.peers) == 1


async def test_batch_returns_results_in_order_with_per_call_errors(transport: HttpTransport) -> None:
    out = await transport.batch([("echo", [1]), ("nope", []), ("eth_blockNumber", [])])
    assert out[0] == [1]
    assert isinstance(out[1], NodeError) and out[1].code == -32601
    assert out[2] == "0x10"
    stats = transport.statistics()
    assert (stats.requests, stats.batches, stats.calls) == (1, 1, 3)
    assert stats.errors["node"] == 1


async def test_empty_batch_sends_nothing(node: FakeNode, transport: HttpTransport) -> None:
    assert await transport.batch([]) == []
    assert node.requests == 0


@pytest.mark.parametrize("code", [500, 502, 503])
async def test_5xx_is_retryable_transport_error(node: FakeNode, transport: HttpTransport, code: int) -> None:
    node.script.append(status(code, b"upstream down"))
    with pytest.raises(TransportError) as info:
        await transport.call("eth_blockNumber")
    assert info.value.status == code and info.value.retryable
    assert transport.statistics().errors["transport"] == 1


async def test_404_is_not_retryable(node: FakeNode, transport: HttpTransport) -> None:
    node.script.append(status(404, b"not here"))
    with pytest.raises(TransportError) as info:
        await transport.call("eth_blockNumber")
    assert not info.value.retryable


async def test_4xx_with_a_json_rpc_body_is_read_as_the_node_error(node: FakeNode, transport: HttpTransport) -> None:
    async def behave(_r: web.Request, body: bytes) -> web.StreamResponse:
        rid = orjson.loads(body)["id"]
        err = {"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": "invalid params"}}
        return web.Response(status=400, body=orjson.dumps(err))

    node.script.append(behave)
    with pytest.raises(NodeError, match="invalid params"):
        await transport.call("eth_blockNumber")


async def test_429_is_rate_limited_with_retry_after(node: FakeNode, transport: HttpTransport) -> None:
    node.script.append(status(429, b"slow down", {"Retry-After": "7"}))
    with pytest.raises(RateLimited) as info:
        await transport.call("eth_blockNumber")
    assert info.value.retry_after == 7.0
    assert transport.statistics().errors["rate_limited"] == 1


async def test_node_rate_limit_code_is_rate_limited(node: FakeNode, transport: HttpTransport) -> None:
    node.script.append(node_error(-32005, "limit exceeded"))
    with pytest.raises(RateLimited):
        await transport.call("eth_blockNumber")


@pytest.mark.parametrize("body", [b"<html>oops</html>", b'{"jsonrpc":"2.0","id":999,"result":"0x1"}', b"[]"])
async def test_garbage_is_invalid_response(node: FakeNode, transport: HttpTransport, body: bytes) -> None:
    node.script.append(garbage(body))
    with pytest.raises(InvalidResponse):
        await transport.call("eth_blockNumber")
    assert transport.statistics().errors["invalid_response"] == 1


async def test_slow_answer_times_out_as_rpc_timeout(node: FakeNode, transport: HttpTransport) -> None:
    node.script.append(slow(5.0))
    with pytest.raises(RpcTimeout):
        await transport.call("eth_blockNumber", timeout=0.2)
    assert transport.statistics().errors["timeout"] == 1
    assert transport.statistics().in_flight == 0


async def test_dropped_connection_is_transport_error(node: FakeNode, transport: HttpTransport) -> None:
    node.script.append(drop())
    with pytest.raises(TransportError) as info:
        await transport.call("eth_blockNumber")
    assert type(info.value) is TransportError
    # The transport recovers on the next call with a fresh connection.
    assert await transport.call("eth_blockNumber") == "0x10"


async def test_refused_connection_is_transport_error() -> None:
    dead = FakeNode()
    await dead.start()
    url = dead.url
    await dead.stop()
    async with HttpTransport(url, Timeouts(connect=0.5, read=0.5, total=1.0)) as client:
        with pytest.raises(TransportError):
            await client.call("eth_blockNumber")


async def test_send_raw_transaction_returns_local_hash_and_already_known_is_success(
    node: FakeNode, transport: HttpTransport
) -> None:
    raw = b"\x02\xf8signed-bytes"
    expected = "0x" + keccak(raw).hex()
    assert await transport.send_raw_transaction(raw) == expected
    # Same bytes again: the node says "already known"; that is the same transaction, not an error.
    assert await transport.send_raw_transaction(raw) == expected
    stats = transport.statistics()
    assert stats.already_known == 1
    assert dict(stats.errors) == {}


async def test_send_with_a_different_hash_from_the_node_is_invalid(node: FakeNode, transport: HttpTransport) -> None:
    node.script.append(garbage(b'{"jsonrpc":"2.0","id":1,"result":"0xdeadbeef"}'))
    with pytest.raises(InvalidResponse, match="local keccak"):
        await transport.send_raw_transaction(b"\x01")


async def test_definite_send_rejection_is_raised(node: FakeNode, transport: HttpTransport) -> None:
    node.script.append(node_error(-32000, "nonce too low"))
    with pytest.raises(NodeError, match="nonce too low"):
        await transport.send_raw_transaction(b"\x01")


async def test_concurrent_calls_respect_the_pool_size(node: FakeNode) -> None:
    node.delay = 0.02
    unbatched = BatchPolicy(enabled=False)  # one request per call, so 40 requests compete for 4 sockets
    async with HttpTransport(node.url, limits=PoolLimits(max_connections=4), batching=unbatched) as client:
        results = await asyncio.gather(*(client.call("echo", [i]) for i in range(40)))
        assert results == [[i] for i in range(40)]
        stats = client.statistics()
        assert stats.max_in_flight == 40  # callers queue inside the transport ...
        # ... but never open more than the pool's size of sockets.
        assert 1 <= len(node.peers) <= 4


async def test_closed_transport_refuses_calls(transport: HttpTransport) -> None:
    await transport.aclose()
    with pytest.raises(TransportError, match="closed"):
        await transport.call("eth_blockNumber")
    assert "closed=True" in repr(transport)


def test_headers_the_transport_owns_are_refused() -> None:
    with pytest.raises(ValueError, match="accept-encoding"):
        HttpTransport("http://127.0.0.1:8545", headers={"accept-encoding": "gzip"})


def test_bad_url_names_the_field() -> None:
    with pytest.raises(ValueError, match="url"):
        HttpTransport("localhost:8545")
