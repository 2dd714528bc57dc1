"""What the chaos scenarios need of the fault proxy: faults narrowed to a method (``only``), and a watch on
every request with the proxy's own timestamps."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from harness.errors import ConfigError
from harness.node.faultplan import FaultPlan
from harness.node.faultproxy import FaultProxy
from tests.unit.fault_upstream import Upstream, call, upstream_fixture

RAW = bytes.fromhex("02f86b827a6980843b9aca00847735940082520894") + bytes(range(40))


@pytest.fixture
async def node() -> AsyncIterator[Upstream]:
    async for n in upstream_fixture():
        yield n


def test_only_round_trips_and_keeps_method_case() -> None:
    plan = FaultPlan.parse("loss=0.2,only=eth_sendRawTransaction;eth_call")
    assert plan.only == ("eth_sendRawTransaction", "eth_call")
    assert FaultPlan.parse(str(plan)) == plan
    assert plan.applies_to(b'{"method":"eth_sendRawTransaction","params":["0x00"]}')
    assert not plan.applies_to(b'{"method":"eth_blockNumber"}')
    assert FaultPlan(loss_rate=0.2).applies_to(b"anything")
    with pytest.raises(ConfigError, match="only"):
        FaultPlan.parse("loss=1,only=eth call")


async def test_only_loses_the_sends_and_passes_the_reads_and_the_watch_sees_both(node: Upstream) -> None:
    seen: list[tuple[float, float, int]] = []
    plan = FaultPlan(loss_rate=1.0, only=("eth_sendRawTransaction",))
    async with FaultProxy(node.url, plan, watch=lambda a, b, s: seen.append((a, b, s))) as proxy, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        async with s.post(proxy.url, json=call("eth_blockNumber", [], 1)) as r:
            assert r.status == 200
        with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError)):
            async with s.post(proxy.url, json=call("eth_sendRawTransaction", ["0x" + RAW.hex()], 2)) as r:
                await r.read()
        proxy.start_outage(5.0)
        with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError)):
            async with s.post(proxy.url, json=call("eth_blockNumber", [], 3)) as r:
                await r.read()
    assert node.methods() == ["eth_blockNumber", "eth_sendRawTransaction"]  # the send reached the node
    assert [st for _, _, st in seen] == [200, 0, 0]  # answered, lost after forwarding, refused while down
    assert all(a <= b for a, b, _ in seen)
    assert [e.kind for e in proxy.log if e.kind != "outage_start"] == ["loss", "outage"]


async def test_an_unwatched_proxy_has_no_middleware(node: Upstream) -> None:
    async with FaultProxy(node.url) as proxy, aiohttp.ClientSession() as s:
        async with s.post(proxy.url, json=call("eth_chainId", [], 1)) as r:
            assert r.status == 200
        assert len(proxy._runners[0].app.middlewares) == 0
