"""The market-data feed: tick content, accounting of every tick, reconnects, a bot that reads too slowly."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.load.feed import LAG_KEY, MarketFeed
from harness.load.schedules import Burst, ConstantRate
from harness.load.ticks import TickSource, decode_frame, encode_frame, merge_schedules

PAIRS = ["T000/USD", "T001/USD", "T002/USD"]


async def _read_all(url: str, into: list[dict[str, Any]], *, stop_after_s: float | None = None) -> None:
    async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
        t_end = None if stop_after_s is None else time.monotonic() + stop_after_s
        while True:
            timeout = None if t_end is None else max(0.0, t_end - time.monotonic())
            try:
                msg = await ws.receive(timeout=timeout)
            except TimeoutError:
                return
            if msg.type != aiohttp.WSMsgType.TEXT:
                return
            into.extend(decode_frame(msg.data))


async def _connected(feed: MarketFeed) -> None:
    await feed.wait_for_client(5.0)


@pytest.mark.parametrize(("batch_max", "coalesce_s"), [(1, None), (64, None), (64, 0.005)])
async def test_every_tick_arrives_in_order_with_its_schedule(batch_max: int, coalesce_s: float | None) -> None:
    got: list[dict[str, Any]] = []
    async with MarketFeed(PAIRS, seed=7, batch_max=batch_max, coalesce_s=coalesce_s) as feed:
        reader = asyncio.create_task(_read_all(feed.url, got))
        await _connected(feed)
        before = time.time()
        res = await feed.run(market=ConstantRate(600, 1.0), trades=Burst(9, 1.0))
        await asyncio.sleep(0.1)
        st_ = feed.statistics()
    await reader
    assert (res.scheduled, res.ws_sent, res.ws_undelivered, res.ws_dropped) == (609, 609, 0, 0)
    assert sum(iv.counters["ws_sent"] for iv in res.intervals) == 609
    assert st_.ws_sent == 609 and st_.connects == 1
    assert len(got) == 609
    assert [t["seq"] for t in got] == list(range(609))
    trades = [t for t in got if t["trade"]]
    assert Counter(t["pair"] for t in trades) == dict.fromkeys(PAIRS, 3)
    assert Counter(t["pair"] for t in got if not t["trade"]) == dict.fromkeys(PAIRS, 200)
    sched = [t["scheduled"] for t in got]
    assert sched == sorted(sched)
    assert before - 0.05 <= sched[0] <= before + 0.05
    assert sched[-1] - sched[0] == pytest.approx(599 / 600, abs=1e-6)
    assert all(isinstance(t["price"], float) and t["price"] > 0 for t in got)
    assert any(LAG_KEY in iv.histograms for iv in res.intervals)
    if batch_max == 1:
        assert st_.ws_frames == 609
    if coalesce_s:
        # A 5 ms window at 600 ticks/s gathers about 3 ticks a frame, each at least 5 ms late
        # for the first tick of its frame (the lag says so).
        assert st_.ws_frames < 609 / 2
        assert res.lag_max_ms >= 5.0


async def test_ticks_without_a_client_are_counted_undelivered() -> None:
    async with MarketFeed(PAIRS) as feed:
        res = await feed.run(market=Burst(50, 0.1))
    assert (res.ws_sent, res.ws_undelivered, res.ws_dropped) == (0, 50, 0)


async def test_reconnect_counts_the_gap_and_loses_nothing_silently() -> None:
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []

    async def bot() -> None:
        await _read_all(feed.url, first, stop_after_s=0.4)
        await asyncio.sleep(0.4)  # disconnected: these ticks cannot be delivered
        await _read_all(feed.url, second)

    async with MarketFeed(PAIRS, batch_max=16) as feed:
        task = asyncio.create_task(bot())
        await _connected(feed)
        res = await feed.run(market=ConstantRate(400, 1.5))
        await asyncio.sleep(0.1)
        st_ = feed.statistics()
    await task
    assert res.ws_sent + res.ws_undelivered + res.ws_dropped == res.scheduled == 600
    assert res.ws_undelivered >= 100  # about 0.4 s at 400/s
    assert st_.connects == 2 and st_.disconnects >= 1
    received = len(first) + len(second)
    # Bytes in flight when the first connection closed are counted sent, not received.
    assert res.ws_sent - 20 <= received <= res.ws_sent
    seqs = [t["seq"] for t in first + second]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def _stalled_client(url: str) -> socket.socket:
    """A WebSocket client that completes the handshake, then never reads (tiny receive buffer)."""
    port = urlsplit(url).port or 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: caps the window
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET /feed HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    await loop.sock_sendall(sock, req.encode())
    head = await loop.sock_recv(sock, 1024)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def test_a_bot_that_stops_reading_makes_the_feed_drop_not_wait() -> None:
    async with MarketFeed(PAIRS, batch_max=64, queue_frames=4, send_buffer_bytes=8192,
                          flush_timeout_s=1.0) as feed:
        sock = await _stalled_client(feed.url)
        try:
            await _connected(feed)
            t0 = time.monotonic()
            res = await feed.run(market=ConstantRate(20_000, 1.0), grace_s=1.0)
            elapsed = time.monotonic() - t0
        finally:
            sock.close()
    assert res.ws_dropped > 0
    assert res.ws_sent + res.ws_undelivered + res.ws_dropped == 20_000
    # The schedule kept its pace: it did not slow to the (zero) reading rate. The flush of the
    # stuck queue is bounded by flush_timeout_s.
    assert elapsed < 1.0 + 1.0 + 1.0


def test_tick_source_is_deterministic_and_rotates_pairs() -> None:
    a, b = TickSource(PAIRS, seed=3), TickSource(PAIRS, seed=3)
    ta = [a.tick(float(i), i % 4 == 0) for i in range(40)]
    tb = [b.tick(float(i), i % 4 == 0) for i in range(40)]
    assert ta == tb
    assert [t["pair"] for t in ta if t["trade"]][:4] == [*PAIRS, PAIRS[0]]
    assert TickSource(PAIRS, seed=4).tick(0.0, False)["price"] != ta[0]["price"]


def test_merge_orders_both_schedules_by_time() -> None:
    due = list(merge_schedules(ConstantRate(10, 1.0), Burst(4, 1.0)))
    assert len(due) == 14
    assert [d.t for d in due] == sorted(d.t for d in due)
    assert sum(d.trade for d in due) == 4


@given(st.lists(st.fixed_dictionaries({"seq": st.integers(0, 10**9), "pair": st.sampled_from(PAIRS),
                                       "price": st.floats(0.001, 1e9), "scheduled": st.floats(0, 2e9),
                                       "trade": st.booleans()}), min_size=1, max_size=20))
def test_frames_round_trip_in_both_forms(ticks: list[dict[str, Any]]) -> None:
    assert decode_frame(encode_frame(ticks, batched=True)) == ticks
    assert decode_frame(encode_frame(ticks[:1], batched=False)) == ticks[:1]


def test_bad_feed_settings_name_the_field() -> None:
    with pytest.raises(ConfigError, match="at least one pair"):
        TickSource([])
    with pytest.raises(ConfigError, match="unique"):
        TickSource(["A", "A"])
    with pytest.raises(ConfigError, match="batch_max"):
        MarketFeed(PAIRS, batch_max=0)
    with pytest.raises(ConfigError, match="coalesce_s"):
        MarketFeed(PAIRS, batch_max=1, coalesce_s=0.001)
    with pytest.raises(ValueError, match="tick object or an array"):
        decode_frame("[1, 2]")
