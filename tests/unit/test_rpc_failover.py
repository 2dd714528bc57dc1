"""EndpointPool over scripted local servers: retries, failover, Retry-After, the circuit
breaker, and the rule that a send is only ever re-sent as the same signed bytes."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from eth_hash.auto import keccak

from bot.rpc import BatchPolicy, EndpointPool, HealthPolicy, HttpTransport, Lane, LimitPolicy, RetryPolicy, Timeouts
from bot.rpc.errors import NodeError, RateLimited, RpcTimeout, Throttled, TransportError
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
        a.script.append(status(429, b"", {"Retry-After": "3"}))
        b.delay = 0.0
        # Make "a" the first choice: give "b" a worse record.
        pool._endpoints[1].health.record_success(0.5)
        for _ in range(5):
            assert await pool.call("eth_blockNumber") == "0x10"
        assert a.requests == 1 and b.requests == 5
        assert time.sleeps == []
        parked = pool.statistics().endpoints[0]
        assert parked.name == "a" and parked.blocked_for_s == pytest.approx(3.0)


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


# -- rate limits without a stall ------------------------------------------------------------------


async def test_one_retry_after_parks_an_endpoint_at_most_max_retry_after(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    async with make_pool(nodes, time, max_retry_after=5.0) as pool:
        a = nodes[0]
        pool._endpoints[1].health.record_success(0.5)  # "a" first
        a.script.append(status(429, b"", {"Retry-After": "86400"}))
        assert await pool.call("eth_blockNumber") == "0x10"  # served by "b" meanwhile
        parked = pool.statistics().endpoints[0]
        assert parked.name == "a" and parked.blocked_for_s == pytest.approx(5.0)
        time.now += 5.0  # a day's Retry-After retired "a" for five seconds, not a day
        assert pool.endpoint_names()[0] == "a"
        assert await pool.call("eth_blockNumber") == "0x10"
        assert a.requests == 2 and time.sleeps == []


async def test_a_429_on_the_only_endpoint_slows_it_instead_of_parking_all_traffic(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    async with make_pool(nodes[:1], time) as pool:
        node = nodes[0]
        node.script.append(status(429, b"", {"Retry-After": "3"}))
        with pytest.raises(RateLimited):  # a read fails fast: no retry on the endpoint that asked for less
            await pool.reads().batch([("eth_blockNumber", [])])
        stats = pool.statistics().endpoints[0]
        assert stats.blocked_for_s == pytest.approx(3.0)  # parked (ranked behind any peer) ...
        assert stats.limit is not None and (stats.limit.limit, stats.limit.decreases) == (32, 1)  # ... and slowed
        # Every other call goes on at once while the park lasts, sends and reads alike.
        assert await pool.call("eth_blockNumber") == "0x10"
        assert await pool.reads().call("eth_blockNumber") == "0x10"
        assert await pool.send_raw_transaction(b"\x02a-send") == _tx_hash(b"\x02a-send")
        assert time.sleeps == [] and pool.statistics().waits == 0
        assert stats.limit.hold_s == pytest.approx(3.0)  # the window does not grow back before Retry-After


async def test_a_confirmation_call_still_honours_its_own_retry_after(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    async with make_pool(nodes[:1], time) as pool:
        nodes[0].script.append(status(429, b"", {"Retry-After": "2"}))
        assert await pool.call("eth_blockNumber") == "0x10"
        assert time.sleeps == [2.0]  # in the caller's own task: a receipt poller, never a pair's actor


async def test_reads_never_sleep(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    async with make_pool(nodes[:1], time, failure_threshold=2, cooldown=60.0) as pool:
        node = nodes[0]
        node.script.append(status(503))  # a failure a prompt second try may fix: retried at once
        assert await pool.reads().call("eth_blockNumber") == "0x10"
        assert node.requests == 2
        node.script.extend([status(503), status(503)])  # the breaker opens: a read does not wait for it
        with pytest.raises(TransportError):
            await pool.reads().call("eth_blockNumber")
        with pytest.raises(TransportError, match="a fail-fast call does not wait"):
            await pool.reads().call("eth_blockNumber")
        assert time.sleeps == [] and node.requests == 4
        with pytest.raises(TransportError, match="beyond the retry budget"):
            await pool.call("eth_blockNumber")  # the default lane would wait; 60 s is past its budget here


async def test_a_read_that_timed_out_is_not_tried_again(nodes: list[FakeNode]) -> None:
    async with make_pool(nodes[:1]) as pool:
        nodes[0].script.append(slow(5.0))
        with pytest.raises(RpcTimeout):
            await pool.reads().call("eth_blockNumber", timeout=0.05)
        assert nodes[0].requests == 1


def gate(release: asyncio.Event) -> Behaviour:
    """Hold the request until ``release`` is set, then answer ``eth_blockNumber``."""

    async def behave(_request: web.Request, body: bytes) -> web.StreamResponse:
        await release.wait()
        import orjson

        return web.json_response({"jsonrpc": "2.0", "id": orjson.loads(body)["id"], "result": "0x10"})

    return behave


async def test_sends_then_confirmations_then_reads_when_the_limit_binds(nodes: list[FakeNode]) -> None:
    node = nodes[0]
    pool = EndpointPool([HttpTransport(node.url, FAST, name="a")], limit_policy=LimitPolicy(max_window=1))
    async with pool:
        release = asyncio.Event()
        node.script.append(gate(release))
        first = asyncio.create_task(pool.call("eth_blockNumber"))
        deadline = asyncio.get_running_loop().time() + 5.0
        while node.requests == 0:  # the one slot is taken, on the wire
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.001)
        raw = b"\x02urgent"
        read = asyncio.create_task(pool.reads().call("echo", ["read"]))
        lookup = asyncio.create_task(pool.call_on("a", "eth_getTransactionByHash", [_tx_hash(raw)]))
        send = asyncio.create_task(pool.send_raw_transaction_on("a", raw))
        while pool.statistics().endpoints[0].limit.waiting != (1, 1, 1):  # type: ignore[union-attr]
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.001)
        release.set()
        await asyncio.wait_for(asyncio.gather(first, read, lookup, send), 5.0)
        assert node.methods == ["eth_sendRawTransaction", "eth_getTransactionByHash", "echo"]


async def test_a_read_waits_for_a_slot_at_most_its_timeout(nodes: list[FakeNode]) -> None:
    node = nodes[0]
    pool = EndpointPool([HttpTransport(node.url, FAST, name="a")], limit_policy=LimitPolicy(max_window=1))
    async with pool:
        release = asyncio.Event()
        node.script.append(gate(release))
        held = asyncio.create_task(pool.call("eth_blockNumber"))
        deadline = asyncio.get_running_loop().time() + 5.0
        while node.requests == 0:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.001)
        with pytest.raises(Throttled):
            await pool.reads().call("eth_blockNumber", timeout=0.05)
        release.set()
        assert await asyncio.wait_for(held, 5.0) == "0x10"
        stats = pool.statistics()
        assert node.requests == 1 and stats.endpoints[0].rate_limited == 0  # ours, not the node's


async def test_a_fail_fast_view_of_the_confirm_lane_never_sleeps_on_a_retry_after(nodes: list[FakeNode]) -> None:
    time = FakeTime()
    async with make_pool(nodes[:1], time) as pool:
        confirm = pool.view(Lane.CONFIRM, fail_fast=True)  # the receipt tracker's and fee oracle's client
        nodes[0].script.append(status(429, b"", {"Retry-After": "1"}))
        with pytest.raises(RateLimited):
            await confirm.call("eth_getBlockReceipts", ["0x1"])
        assert await confirm.call("eth_blockNumber") == "0x10"  # its own next pass goes out at once
        assert time.sleeps == [] and "confirm lane (fail fast)" in repr(confirm)
