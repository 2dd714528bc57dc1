"""EndpointPool over scripted local servers: retries, failover, Retry-After, the circuit
breaker, and the rule that a send is only ever re-sent as the same signed bytes."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from eth_hash.auto import keccak

from bot.rpc import BatchPolicy, EndpointPool, HealthPolicy, HttpTransport, RetryPolicy, Timeouts
from bot.rpc.errors import NodeError, RateLimited, TransportError
from bot.rpc.health import BreakerState
from tests.unit.rpc_fakes import Behaviour, FakeNode, drop, node_error, slow, status

FAST = Timeouts(connect=0.5, read=0.5, total=1.0)


class FakeTime:
    """A clock and a sleep that advances it: waits are recorded, not slept."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
async def nodes() -> AsyncIterator[list[FakeNode]]:
    fakes = [FakeNode("a"), FakeNode("b")]
    for fake in fakes:
        await fake.start()
    try:
        yield fakes
    finally:
        for fake in fakes:
            await fake.stop()


def make_pool(
    nodes: list[FakeNode], time: FakeTime | None = None, *, retry: RetryPolicy | None = None,
    batching: bool = True, **health: float
) -> EndpointPool:
    policy = BatchPolicy(enabled=batching)
    clients = [HttpTransport(n.url, FAST, name=n.name, batching=policy) for n in nodes]
    kwargs = {} if time is None else {"clock": time.clock, "sleep": time.sleep}
    return EndpointPool(
        clients,
        retry or RetryPolicy(max_attempts=4, base_delay=0.1, max_delay=1.0),
        HealthPolicy(**health),  # type: ignore[arg-type]
        rng=random.Random(1),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_retries_a_5xx_on_the_only_endpoint_with_bounded_backoff(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    async with make_pool(nodes[:1], time) as pool:
        nodes[0].script.extend([status(503), status(502)])
        assert await pool.call("eth_blockNumber") == "0x10"
        assert nodes[0].requests == 3
        assert len(time.sleeps) == 2
        assert 0 <= time.sleeps[0] <= 0.1 and 0 <= time.sleeps[1] <= 0.2
        assert pool.statistics().retries == 2


async def test_fails_over_to_the_other_endpoint_without_waiting(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    async with make_pool(nodes, time) as pool:
        first = pool.statistics().endpoints[0].name
        by_name = {n.name: n for n in nodes}
        by_name[first].script.append(status(503))
        assert await pool.call("eth_blockNumber") == "0x10"
        assert time.sleeps == []
        assert sum(n.requests for n in nodes) == 2
        stats = pool.statistics()
        assert stats.failovers == 1 and stats.failed == 0


async def test_retry_after_is_honoured_when_no_other_endpoint(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    async with make_pool(nodes[:1], time) as pool:
        nodes[0].script.append(status(429, b"", {"Retry-After": "3"}))
        assert await pool.call("eth_blockNumber") == "0x10"
        assert time.sleeps == [3.0]
        assert pool.statistics().endpoints[0].rate_limited == 1


async def test_rate_limited_endpoint_is_parked_and_others_serve(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    async with make_pool(nodes, time) as pool:
        a, b = nodes
        a.script.append(status(429, b"", {"Retry-After": "30"}))
        b.delay = 0.0
        # Make "a" the first choice: give "b" a worse record.
        pool._endpoints[1].health.record_success(0.5)
        for _ in range(5):
            assert await pool.call("eth_blockNumber") == "0x10"
        assert a.requests == 1 and b.requests == 5
        assert time.sleeps == []
        parked = pool.statistics().endpoints[0]
        assert parked.name == "a" and parked.blocked_for_s == pytest.approx(30.0)


async def test_too_long_retry_after_ends_with_rate_limited(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    async with make_pool(nodes[:1], time, retry=RetryPolicy(max_retry_after=5.0)) as pool:
        nodes[0].script.append(status(429, b"", {"Retry-After": "60"}))
        with pytest.raises(RateLimited):
            await pool.call("eth_blockNumber")
        assert pool.statistics().failed == 1


async def test_definite_node_errors_are_not_retried(nodes: list[FakeNode]) -> None:
    async with make_pool(nodes) as pool:
        for n in nodes:
            n.script.append(node_error(3, "execution reverted: slippage"))
        with pytest.raises(NodeError, match="slippage"):
            await pool.call("eth_call", [{}])
        assert sum(n.requests for n in nodes) == 1
        # A revert is the node working: it does not hurt the endpoint's health.
        assert all(e.failures == 0 for e in pool.statistics().endpoints)


async def test_attempts_are_bounded(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    async with make_pool(nodes[:1], time, retry=RetryPolicy(max_attempts=3)) as pool:
        nodes[0].script.extend([status(503)] * 5)
        with pytest.raises(TransportError):
            await pool.call("eth_blockNumber")
        assert nodes[0].requests == 3


async def test_breaker_stops_sending_to_a_dead_endpoint(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    async with make_pool(nodes, time, failure_threshold=2, cooldown=60.0) as pool:
        a = nodes[0]
        # "a" is the first choice, and stays so even when a loaded machine slows its first answers
        pool._endpoints[1].health.record_success(5.0)
        a.script.extend([status(503)] * 10)
        for _ in range(10):
            assert await pool.call("eth_blockNumber") == "0x10"
        assert a.requests == 2  # then the breaker opened
        assert pool.statistics().endpoints[0].state is BreakerState.OPEN
        time.now += 60.0  # cooldown over: the next call is the probe to "a", and it succeeds
        a.script.clear()
        await pool.call("eth_blockNumber")
        assert a.requests == 3
        assert pool.statistics().endpoints[0].state is BreakerState.CLOSED


async def test_no_endpoint_available_within_budget_is_a_clear_error(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    retry = RetryPolicy(max_attempts=10, budget=1.0, base_delay=0.01, max_delay=0.02)
    async with make_pool(nodes[:1], time, retry=retry, failure_threshold=1, cooldown=30.0) as pool:
        nodes[0].script.append(status(503))
        with pytest.raises(TransportError, match="no endpoint available"):
            await pool.call("eth_blockNumber")


@pytest.mark.parametrize("batching", [False, True], ids=["one-request-per-call", "auto-batched"])
async def test_killing_one_server_mid_run_loses_no_call(nodes: list[FakeNode], batching: bool) -> None:
    a, b = nodes
    a.delay = 0.05  # long enough that calls are in flight on "a" when it dies
    async with make_pool(nodes, retry=RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05),
                         batching=batching) as pool:
        # "a" is the first choice, and stays so even when a loaded machine slows its first answers
        pool._endpoints[1].health.record_success(5.0)

        async def one(i: int) -> list[int]:
            result: list[int] = await pool.call("echo", [i])
            return result

        first = await asyncio.gather(*(one(i) for i in range(20)))
        assert (len(a.methods), b.requests) == (20, 0)
        assert a.requests == (1 if batching else 20)  # batched: the 20 calls of one iteration, one request
        before = a.requests
        if batching:
            # The 200 calls are two requests, both inside the server at once: the delay must outlast the
            # server's shutdown (so they are cut, not answered) and stay inside the call's timeout.
            a.delay = 0.5 * FAST.total
        calls = [asyncio.ensure_future(one(i)) for i in range(20, 220)]
        # wait until calls are really in flight on "a" (a fixed sleep races a loaded machine), bounded
        deadline = asyncio.get_running_loop().time() + 5.0
        while a.requests <= before and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.001)
        await a.stop()  # a crash: the requests in flight on "a" are cut
        rest = await asyncio.gather(*calls)
        assert first + rest == [[i] for i in range(220)]
        stats = pool.statistics()
        assert stats.failed == 0
        assert stats.endpoints[0].failures >= 1 and stats.failovers >= 1
        assert len(b.methods) >= 200 - (len(a.methods) - 20)


def _tx_hash(raw: bytes) -> str:
    return "0x" + keccak(raw).hex()


async def test_send_retries_the_same_bytes_after_a_timeout(nodes: list[FakeNode]) -> None:
    async with make_pool(nodes) as pool:
        raw = b"\x02signed"
        first = pool.statistics().endpoints[0].name
        by_name = {n.name: n for n in nodes}
        by_name[first].script.append(slow(5.0))
        assert await pool.send_raw_transaction(raw, timeout=0.2) == _tx_hash(raw)
        other = next(n for n in nodes if n.name != first)
        assert other.known_txs == {_tx_hash(raw)}


def accept_then_drop(node: FakeNode) -> Behaviour:
    """The node takes the transaction into its pool, then the connection dies before the answer."""

    async def behave(request: web.Request, body: bytes) -> web.StreamResponse:
        import orjson

        raw = bytes.fromhex(orjson.loads(body)["params"][0][2:])
        node.known_txs.add(_tx_hash(raw))
        return await drop()(request, body)

    return behave


async def test_a_resend_answered_already_known_is_success(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    node = nodes[0]
    async with make_pool([node], time) as pool:
        raw = b"\x02same-bytes"
        node.script.append(accept_then_drop(node))
        assert await pool.send_raw_transaction(raw) == _tx_hash(raw)
        assert node.methods.count("eth_sendRawTransaction") == 1  # the dropped one never reached _answer
        assert node.requests == 2
        endpoint = pool.statistics().endpoints[0]
        assert endpoint.transport is not None and endpoint.transport.already_known == 1


async def test_definite_rejection_after_an_ambiguous_attempt_checks_by_hash(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    node = nodes[0]
    async with make_pool([node], time) as pool:
        raw = b"\x02mined-meanwhile"
        # 1st attempt delivered (then the socket died); it got mined, so the resend reads "nonce too low".
        node.script.extend([accept_then_drop(node), node_error(-32000, "nonce too low")])
        assert await pool.send_raw_transaction(raw) == _tx_hash(raw)
        assert node.methods[-1] == "eth_getTransactionByHash"
        stats = pool.statistics()
        assert stats.sends_recovered_by_lookup == 1 and stats.failed == 0


async def test_definite_rejection_without_the_tx_on_chain_is_raised(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    node = nodes[0]
    async with make_pool([node], time) as pool:
        node.script.extend([drop(), node_error(-32000, "nonce too low")])
        with pytest.raises(NodeError, match="nonce too low"):
            await pool.send_raw_transaction(b"\x02never-accepted")
        assert pool.statistics().sends_recovered_by_lookup == 0


async def test_definite_rejection_on_first_try_is_not_retried_or_looked_up(nodes: list[FakeNode]) -> None:
    node = nodes[0]
    async with make_pool(nodes) as pool:
        for n in nodes:
            n.script.append(node_error(-32000, "insufficient funds for gas * price + value"))
        with pytest.raises(NodeError, match="insufficient funds"):
            await pool.send_raw_transaction(b"\x02poor")
        assert sum(n.requests for n in nodes) == 1
        assert "eth_getTransactionByHash" not in node.methods


async def test_batch_fails_over_as_a_whole(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    async with make_pool(nodes, time) as pool:
        first = pool.statistics().endpoints[0].name
        {n.name: n for n in nodes}[first].script.append(status(503))
        out = await pool.batch([("echo", [1]), ("eth_blockNumber", [])])
        assert out == [[1], "0x10"]


async def test_non_resendable_methods_are_not_sent_twice_after_an_ambiguous_failure(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    async with make_pool(nodes, time) as pool:
        for n in nodes:
            n.script.append(drop())
        with pytest.raises(TransportError):
            await pool.call("evm_mine")
        with pytest.raises(TransportError):
            await pool.batch([("eth_blockNumber", []), ("evm_mine", [])])
        assert sum(n.requests for n in nodes) == 2
        # A rate-limit answer means "not processed": that one is retried.
        first = pool.statistics().endpoints[0].name
        {n.name: n for n in nodes}[first].script.append(status(429))
        with pytest.raises(NodeError, match="not found"):  # the fake does not mine; it got there
            await pool.call("evm_mine")
        assert sum(n.requests for n in nodes) == 4


def test_pool_needs_an_endpoint() -> None:
    with pytest.raises(ValueError, match="at least one"):
        EndpointPool([])
