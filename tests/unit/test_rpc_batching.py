"""Auto-batching in ``HttpTransport``: calls of one loop iteration leave as one JSON-RPC batch, and
each call keeps its own id, result, error and timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from eth_hash.auto import keccak
from hypothesis import given
from hypothesis import strategies as st

from bot.rpc import BatchPolicy, HttpTransport, Timeouts
from bot.rpc.batching import SIZE_BUCKETS, BatchQueue, SizeHistogram, chunks
from bot.rpc.errors import NodeError, RpcTimeout, TransportError


class BatchNode:
    """A JSON-RPC server that records every request's size and answers batches in reverse order
    (nodes may answer in any order: the client must match by id, not by position)."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.fail_next: int | None = None  # an HTTP status for the next request
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.0, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        payload = orjson.loads(await request.read())
        items = payload if isinstance(payload, list) else [payload]
        self.sizes.append(len(items) if isinstance(payload, list) else 0)  # 0: a plain, unbatched request
        if self.fail_next is not None:
            code, self.fail_next = self.fail_next, None
            return web.Response(status=code, text="boom")
        answers = [await self._answer(it) for it in items]
        body: Any = list(reversed(answers)) if isinstance(payload, list) else answers[0]
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _answer(self, req: dict[str, Any]) -> dict[str, Any]:
        method, params, rid = req["method"], req["params"], req["id"]
        if method == "echo":
            return {"jsonrpc": "2.0", "id": rid, "result": params}
        if method == "hang":
            await asyncio.sleep(30)
        if method == "eth_sendRawTransaction":
            return {"jsonrpc": "2.0", "id": rid, "result": "0x" + keccak(bytes.fromhex(params[0][2:])).hex()}
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"no method {method}"}}


@pytest.fixture
async def node() -> AsyncIterator[BatchNode]:
    n = BatchNode()
    await n.start()
    try:
        yield n
    finally:
        await n.stop()


def client(node: BatchNode, **policy: Any) -> HttpTransport:
    return HttpTransport(node.url, Timeouts(connect=2.0, read=10.0, total=10.0), batching=BatchPolicy(**policy))


async def test_calls_of_one_iteration_leave_as_one_batch_and_each_gets_its_own_answer(node: BatchNode) -> None:
    async with client(node) as t:
        results = await asyncio.gather(*(t.call("echo", [i]) for i in range(10)))
        assert results == [[i] for i in range(10)]  # matched by id though the node answered reversed
        assert node.sizes == [10]
        stats = t.statistics()
        assert (stats.requests, stats.calls, stats.batches, stats.auto_batched) == (1, 10, 1, 10)
        assert dict(stats.batch_sizes)[16.0] == 1 and dict(stats.batch_sizes)[8.0] == 0


async def test_a_lone_call_leaves_as_a_plain_request(node: BatchNode) -> None:
    async with client(node) as t:
        assert await t.call("echo", ["x"]) == ["x"]
        assert await t.call("echo", ["y"]) == ["y"]  # awaited one by one: nothing to batch with
        assert node.sizes == [0, 0]


async def test_one_calls_error_does_not_fail_the_others(node: BatchNode) -> None:
    async with client(node) as t:
        out = await asyncio.gather(t.call("echo", [1]), t.call("nope", []), t.call("echo", [3]),
                                   return_exceptions=True)
        assert out[0] == [1] and out[2] == [3]
        assert isinstance(out[1], NodeError) and out[1].code == -32601
        assert node.sizes == [3]
        assert t.statistics().errors == {"node": 1}


async def test_each_call_keeps_its_own_timeout(node: BatchNode) -> None:
    async with client(node) as t:
        hung, ok = await asyncio.gather(t.call("hang", [], timeout=0.2), t.call("echo", [2], timeout=5.0),
                                        return_exceptions=True)
        assert isinstance(hung, RpcTimeout)
        assert ok == [2]
        # Different timeouts never share a request, so the echo did not wait for the hang.
        assert sorted(node.sizes) == [0, 0]


async def test_a_full_group_closes_and_the_next_calls_start_another(node: BatchNode) -> None:
    async with client(node, max_size=3) as t:
        results = await asyncio.gather(*(t.call("echo", [i]) for i in range(7)))
        assert results == [[i] for i in range(7)]
        assert sorted(node.sizes) == [0, 3, 3]  # 3 + 3 + a lone one


async def test_an_explicit_batch_above_the_limit_is_split_and_reassembled_in_order(node: BatchNode) -> None:
    async with client(node, max_size=3) as t:
        results = await t.batch([("echo", [i]) if i != 4 else ("nope", []) for i in range(8)])
        assert [r for i, r in enumerate(results) if i != 4] == [[i] for i in range(8) if i != 4]
        assert isinstance(results[4], NodeError)
        assert sorted(node.sizes) == [2, 3, 3]


async def test_a_failed_request_fails_each_of_its_calls_with_its_own_error(node: BatchNode) -> None:
    async with client(node) as t:
        node.fail_next = 503
        out = await asyncio.gather(*(t.call("echo", [i]) for i in range(4)), return_exceptions=True)
        assert all(isinstance(e, TransportError) and e.status == 503 for e in out)
        assert len({id(e) for e in out}) == 4  # one object per caller, not one shared traceback
        assert await asyncio.gather(*(t.call("echo", [i]) for i in range(4))) == [[i] for i in range(4)]


async def until_each_iteration(cond: Callable[[], bool], what: str, within_s: float = 10.0) -> None:
    """Check ``cond`` after every loop iteration (a state that lasts one iteration is not missed),
    up to a deadline."""
    try:
        async with asyncio.timeout(within_s):
            while not cond():
                await asyncio.sleep(0)
    except TimeoutError:
        raise AssertionError(f"{what} (waited {within_s:g} s)") from None


@pytest.mark.parametrize("victim", [0, 2], ids=["the-leader", "a-follower"])
async def test_a_cancelled_caller_leaves_the_rest_of_its_batch_alone(node: BatchNode, victim: int) -> None:
    async with client(node) as t:
        tasks = [asyncio.ensure_future(t.call("echo", [i])) for i in range(5)]
        # Until the four followers wait in the leader's (call 0's) open group, which it has not sent yet.
        await until_each_iteration(lambda: t._queue.statistics().waiting == 4, "the calls never formed one open group")
        tasks[victim].cancel()
        out = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(out[victim], asyncio.CancelledError)
        assert [out[i] for i in range(5) if i != victim] == [[i] for i in range(5) if i != victim]
        assert node.sizes == [4 if victim == 0 else 5]


async def test_a_window_gathers_calls_from_later_iterations(node: BatchNode) -> None:
    async with client(node, window=0.05) as t:
        async def later(i: int) -> Any:
            for _ in range(i):
                await asyncio.sleep(0)  # i loop iterations later, well inside the window
            return await t.call("echo", [i])

        assert await asyncio.gather(*(later(i) for i in range(4))) == [[i] for i in range(4)]
        assert node.sizes == [4]


async def test_batching_off_sends_one_request_per_call(node: BatchNode) -> None:
    async with client(node, enabled=False) as t:
        await asyncio.gather(*(t.call("echo", [i]) for i in range(3)))
        assert node.sizes == [0, 0, 0]
        assert t.statistics().auto_batched == 0


async def test_a_send_never_shares_a_batch_with_reads(node: BatchNode) -> None:
    async with client(node) as t:
        raw = b"\x02signed"
        _, sent, _ = await asyncio.gather(t.call("echo", [1]), t.send_raw_transaction(raw), t.call("echo", [2]))
        assert sent == "0x" + keccak(raw).hex()
        assert sorted(node.sizes) == [0, 2]  # the two reads together, the send alone


async def test_closing_fails_queued_calls_instead_of_stranding_them(node: BatchNode) -> None:
    t = client(node)
    pending = asyncio.ensure_future(t.call("echo", [1]))
    await asyncio.sleep(0)
    await t.aclose()
    with pytest.raises(TransportError, match="closed"):
        await pending


# -- the pure parts -------------------------------------------------------------------------------------


@given(st.integers(1, 8), st.lists(st.tuples(st.sampled_from([0.5, 1.0, 2.0]), st.booleans()), max_size=60))
def test_the_queue_puts_every_call_in_exactly_one_group_of_one_timeout_within_the_limit(
    max_size: int, steps: list[tuple[float, bool]]
) -> None:
    """Calls join in any order; ``True`` steps also let the oldest waiting leader wake and close its group."""
    q: BatchQueue[tuple[float, int]] = BatchQueue(max_size)
    leaders: list[tuple[float, int, list[tuple[float, int]]]] = []  # (timeout, leader's call, its group)
    sent: list[tuple[float, list[tuple[float, int]]]] = []
    for seq, (timeout, wake) in enumerate(steps):
        group = q.join(timeout, (timeout, seq))
        if group is not None:
            assert group == []
            leaders.append((timeout, seq, group))
        if wake and leaders:
            t, lead, g = leaders.pop(0)
            sent.append((t, [(t, lead), *q.close(t, g)]))
    for t, lead, g in leaders:
        sent.append((t, [(t, lead), *q.close(t, g)]))
    assert q.statistics().open_groups == 0
    for timeout, calls in sent:
        assert 1 <= len(calls) <= max_size
        assert all(c[0] == timeout for c in calls)
    assert sorted(c[1] for _, calls in sent for c in calls) == list(range(len(steps)))


@given(st.lists(st.integers(0, 50), max_size=30), st.integers(1, 10))
def test_chunks_cover_the_items_in_order_within_the_size(items: list[int], size: int) -> None:
    parts = chunks(items, size)
    assert [x for p in parts for x in p] == items
    assert all(1 <= len(p) <= size for p in parts)


@given(st.lists(st.integers(1, 5000), max_size=50))
def test_the_size_histogram_is_cumulative_and_counts_every_request(sizes: list[int]) -> None:
    h = SizeHistogram()
    for s in sizes:
        h.record(s)
    buckets = h.buckets()
    assert [le for le, _ in buckets] == [*map(float, SIZE_BUCKETS), float("inf")]
    counts = [c for _, c in buckets]
    assert counts == sorted(counts) and counts[-1] == len(sizes) == h.requests
    for le, c in buckets:
        assert c == sum(1 for s in sizes if s <= le)
    assert h.calls == sum(sizes)
