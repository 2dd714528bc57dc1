"""WsSubscriber against an in-memory chain behind a local WebSocket: live delivery, reconnect,
resubscribe, backfill without duplicates, the bounded queue's drop policy, degrading without
giving up, and a supervised connection loop.
Also the pure bookkeeping in ws_sync."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.rpc import WsOptions, WsSubscriber
from bot.rpc.errors import RpcError, TransportError
from bot.rpc.ws import Event
from bot.rpc.ws_sync import HeadCursor, LogCursor, SeenSet, backfill_range
from tests.unit.rpc_fakes import FakeWsNode

# ChainClient below implements the RpcClient protocol, whose methods take ``timeout``.
# ruff: noqa: ASYNC109

OPTS = WsOptions(reconnect_base_delay=0.01, reconnect_max_delay=0.05, request_timeout=2.0, connect_timeout=2.0)


@pytest.fixture
async def chain() -> AsyncIterator[FakeWsNode]:
    node = FakeWsNode()
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


async def take(sub: WsSubscriber, n: int, within: float = 5.0) -> list[Event]:
    async with asyncio.timeout(within):
        return [await sub.get() for _ in range(n)]


def numbers(events: Sequence[Event]) -> list[int]:
    return [int(e.data["number"], 16) for e in events]


async def wait_until(predicate: Any, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.005)


async def outage(chain: FakeWsNode, sub: WsSubscriber, *, blocks: int, logs_per_block: int = 0) -> None:
    """Take the node down, mine while the subscriber cannot see, bring it back."""
    connects = sub.statistics().connects
    await chain.stop()
    await wait_until(lambda: not sub.statistics().connected)
    for _ in range(blocks):
        await chain.mine(logs_per_block)
    await chain.start()
    await wait_until(lambda: sub.statistics().connects > connects)


async def test_new_heads_are_delivered_live(chain: FakeWsNode) -> None:
    sub = WsSubscriber(chain.url, OPTS)
    key = sub.subscribe_new_heads()
    await sub.start()
    try:
        for _ in range(3):
            await chain.mine()
        events = await take(sub, 3)
        assert numbers(events) == [1, 2, 3]
        assert all(e.subscription == key and e.kind == "newHeads" and not e.backfilled for e in events)
        stats = sub.statistics()
        assert (stats.messages, stats.delivered, stats.dropped, stats.duplicates) == (3, 3, 0, 0)
    finally:
        await sub.aclose()


async def test_drop_reconnects_resubscribes_and_backfills_in_order(chain: FakeWsNode) -> None:
    sub = WsSubscriber(chain.url, OPTS, rng=random.Random(3))
    sub.subscribe_new_heads()
    await sub.start()
    try:
        await chain.mine()
        assert numbers(await take(sub, 1)) == [1]
        await outage(chain, sub, blocks=4)
        await chain.mine()  # live again
        events = await take(sub, 5)
        assert numbers(events) == [2, 3, 4, 5, 6]
        assert [e.backfilled for e in events] == [True, True, True, True, False]
        stats = sub.statistics()
        assert stats.backfilled == 4 and stats.reconnects >= 1
        assert chain.subscribe_calls == 2
        assert sub._queue.empty()
    finally:
        await sub.aclose()


async def test_head_pushed_again_after_resubscribe_is_not_delivered_twice(chain: FakeWsNode) -> None:
    chain.push_head_on_subscribe = True
    sub = WsSubscriber(chain.url, OPTS)
    sub.subscribe_new_heads()
    await sub.start()
    try:
        # The push of the current head (genesis) on the first subscribe is a real head: delivered once.
        assert numbers(await take(sub, 1)) == [0]
        await chain.mine()
        assert numbers(await take(sub, 1)) == [1]
        await outage(chain, sub, blocks=2)
        await chain.mine()
        events = await take(sub, 3)
        assert numbers(events) == [2, 3, 4]
        # Block 3 (the head at resubscribe) came both pushed and backfilled: delivered once.
        assert sub.statistics().duplicates >= 1
        await asyncio.sleep(0.05)
        assert sub._queue.empty()
    finally:
        await sub.aclose()


async def test_logs_are_backfilled_with_the_filter_and_never_duplicated(chain: FakeWsNode) -> None:
    sub = WsSubscriber(chain.url, OPTS)
    key = sub.subscribe_logs(address="0xpool", topics=["0xswap"])
    await sub.start()
    try:
        await chain.mine(2)
        live = await take(sub, 2)
        await outage(chain, sub, blocks=3, logs_per_block=2)
        await chain.mine(1)
        rest = await take(sub, 7)
        keys = [(e.data["blockHash"], e.data["logIndex"]) for e in live + rest]
        assert len(set(keys)) == len(keys) == 9
        expected = [(log["blockHash"], log["logIndex"]) for log in chain.logs]
        assert sorted(keys) == sorted(expected)
        assert sum(e.backfilled for e in rest) == 6
        assert all(e.subscription == key and e.kind == "logs" for e in rest)
        (query,) = chain.log_queries
        assert query["address"] == "0xpool" and query["topics"] == ["0xswap"]
        # From the last block that delivered a log (1), through the head at reconnect.
        assert (query["fromBlock"], query["toBlock"]) == ("0x1", "0x4")
        await asyncio.sleep(0.05)
        assert sub._queue.empty()
    finally:
        await sub.aclose()


async def test_full_queue_drops_the_oldest_and_counts(chain: FakeWsNode) -> None:
    sub = WsSubscriber(chain.url, WsOptions(queue_size=3, reconnect_base_delay=0.01, reconnect_max_delay=0.02))
    sub.subscribe_new_heads()
    await sub.start()
    try:
        for _ in range(10):
            await chain.mine()
        await wait_until(lambda: sub.statistics().messages == 10)
        stats = sub.statistics()
        assert stats.dropped == 7 and stats.queue_depth == 3 and stats.queue_size == 3
        assert numbers(await take(sub, 3)) == [8, 9, 10]
    finally:
        await sub.aclose()


async def test_garbage_frames_are_counted_and_skipped(chain: FakeWsNode) -> None:
    sub = WsSubscriber(chain.url, OPTS)
    sub.subscribe_new_heads()
    await sub.start()
    try:
        await chain.push_raw("this is not json")
        stranger = {"jsonrpc": "2.0", "method": "eth_subscription", "params": {"subscription": "0x99", "result": {}}}
        await chain.push_raw(orjson.dumps(stranger).decode())
        await chain.mine()
        assert numbers(await take(sub, 1)) == [1]
        errors = sub.statistics().errors
        assert errors["invalid_response"] == 1 and errors["unknown_subscription"] == 1
        assert sub.statistics().connects == 1
    finally:
        await sub.aclose()


async def test_plain_requests_over_the_socket(chain: FakeWsNode) -> None:
    sub = WsSubscriber(chain.url, OPTS)
    sub.subscribe_new_heads()
    await sub.start()
    try:
        await chain.mine()
        assert await sub.request("eth_blockNumber") == "0x1"
        assert sub.statistics().requests >= 3  # subscribe, head at start, this one
    finally:
        await sub.aclose()


async def test_backfill_is_bounded_and_reports_what_it_skipped(chain: FakeWsNode) -> None:
    sub = WsSubscriber(chain.url, WsOptions(max_backfill_blocks=2, reconnect_base_delay=0.01, reconnect_max_delay=0.02))
    sub.subscribe_new_heads()
    await sub.start()
    try:
        await outage(chain, sub, blocks=5)
        events = await take(sub, 2)
        assert numbers(events) == [4, 5]
        stats = sub.statistics()
        assert (stats.backfilled, stats.backfill_skipped) == (2, 3)
    finally:
        await sub.aclose()


class ChainClient:
    """An RpcClient reading the fake chain directly (as an HTTP endpoint of the same node would)."""

    def __init__(self, chain: FakeWsNode) -> None:
        self.chain = chain
        self.calls: list[str] = []

    async def call(self, method: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> Any:
        self.calls.append(method)
        return self.chain.answer(method, list(params))

    async def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout: float | None = None
    ) -> list[Any | RpcError]:
        return [await self.call(m, p) for m, p in calls]

    async def send_raw_transaction(self, raw: bytes, *, timeout: float | None = None) -> str:
        raise AssertionError("a subscriber never sends transactions")

    async def aclose(self) -> None:
        return None


async def test_backfill_can_go_through_an_http_client(chain: FakeWsNode) -> None:
    client = ChainClient(chain)
    sub = WsSubscriber(chain.url, OPTS, backfill_client=client)
    sub.subscribe_new_heads()
    await sub.start()
    try:
        await outage(chain, sub, blocks=2)
        assert numbers(await take(sub, 2)) == [1, 2]
        assert client.calls.count("eth_getBlockByNumber") == 2
    finally:
        await sub.aclose()


async def test_never_gives_up_once_connected_degrades_and_recovers(chain: FakeWsNode) -> None:
    opts = WsOptions(max_reconnects=2, degraded_after=2, reconnect_base_delay=0.01, reconnect_max_delay=0.02)
    sub = WsSubscriber(chain.url, opts)
    sub.subscribe_new_heads()
    links: list[bool] = []
    sub.on_link(links.append)
    await sub.start()
    try:
        assert links == [True]
        await chain.stop()
        # Far more failed attempts than max_reconnects: after the first connection that bound no longer applies.
        await wait_until(lambda: sub.statistics().reconnects > 4 * opts.max_reconnects)
        st_ = sub.statistics()
        assert st_.degraded and st_.degradations == 1 and links == [True, False]  # told once, not per attempt
        await chain.start()
        await wait_until(lambda: links == [True, False, True])
        assert not sub.statistics().degraded and sub.statistics().degradations == 1
        await chain.mine()
        assert numbers(await take(sub, 1)) == [1]  # still delivering
    finally:
        await sub.aclose()


async def test_start_gives_up_when_the_first_connection_never_comes() -> None:
    from harness.run.options import free_port

    sub = WsSubscriber(f"ws://127.0.0.1:{free_port()}",
                       WsOptions(max_reconnects=2, reconnect_base_delay=0.01, reconnect_max_delay=0.02))
    sub.subscribe_new_heads()
    with pytest.raises(TransportError, match="no connection after 2 attempts"):
        await asyncio.wait_for(sub.start(), 30.0)
    assert "connected=False" in repr(sub)


async def test_a_supervised_connection_loop_is_restarted_after_a_kill(chain: FakeWsNode) -> None:
    from bot.engine.supervision import RestartPolicy
    from bot.engine.supervisor import Supervisor

    sup = Supervisor(RestartPolicy(backoff_s=0.01, backoff_max_s=0.01), recovering_s=0.0)
    sub = WsSubscriber(chain.url, OPTS)
    sub.subscribe_new_heads()
    await sub.start(spawn=lambda run: sup.spawn("ws", run))
    try:
        await chain.mine()
        assert numbers(await take(sub, 1)) == [1]
        assert sup.kill("ws")
        await wait_until(lambda: sub.statistics().connects == 2)
        await chain.mine()
        assert numbers(await take(sub, 1)) == [2]
        assert sup.statistics().tasks[0].restarts == 1
    finally:
        await sup.aclose()
        await sub.aclose()


async def test_closing_ends_iteration(chain: FakeWsNode) -> None:
    sub = WsSubscriber(chain.url, OPTS)
    sub.subscribe_new_heads()
    await sub.start()
    await chain.mine()
    await wait_until(lambda: sub.statistics().delivered == 1)
    await sub.aclose()
    assert [numbers([e]) async for e in sub] == [[1]]
    assert "connected=False" in repr(sub)


async def test_subscribing_after_start_is_refused(chain: FakeWsNode) -> None:
    sub = WsSubscriber(chain.url, OPTS)
    sub.subscribe_new_heads()
    await sub.start()
    try:
        with pytest.raises(RuntimeError, match="before start"):
            sub.subscribe_logs()
    finally:
        await sub.aclose()


def test_bad_url_names_the_field() -> None:
    with pytest.raises(ValueError, match="url"):
        WsSubscriber("http://127.0.0.1:8545")


# -- ws_sync (pure) ----------------------------------------------------------------------------


@given(st.lists(st.integers(0, 50), max_size=200), st.integers(1, 20))
def test_seen_set_remembers_exactly_the_last_window_keys(keys: list[int], window: int) -> None:
    seen = SeenSet(window)
    recent: list[int] = []
    for key in keys:
        assert seen.add(key) == (key not in recent)
        if key not in recent:
            recent.append(key)
            recent = recent[-window:]
    assert len(seen) == len(recent)
    assert all(k in seen for k in recent)


@given(st.integers(0, 1000), st.integers(0, 1000), st.integers(1, 100))
def test_backfill_range_is_the_newest_blocks_of_the_gap(first: int, head: int, limit: int) -> None:
    r = backfill_range(first, head, limit)
    gap = max(0, head - first + 1)
    assert len(r) == min(gap, limit)
    assert r.skipped == gap - len(r)
    if len(r):
        assert r.end == head and r.start >= first


def test_cursors() -> None:
    heads = HeadCursor()
    assert len(heads.gap(10, 100)) == 0
    heads.start_at(10)
    heads.delivered(12)
    heads.delivered(11)  # a late (reorg) header never moves the cursor back
    assert (heads.gap(15, 100).start, heads.gap(15, 100).end) == (13, 15)
    logs = LogCursor()
    logs.start_at(10)
    assert logs.gap(10, 100).start == 11 and len(logs.gap(10, 100)) == 0
    logs.delivered(14)
    assert logs.gap(20, 100).start == 14  # block 14 is read again: it may have been cut in half
    logs.caught_up(20)
    assert logs.gap(20, 100).start == 20
