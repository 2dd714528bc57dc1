"""The open-loop HTTP GET driver (``harness load --get``): statuses to error kinds, against a local server."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from harness.errors import ConfigError
from harness.load.httpget import HttpGetDriver, run_http_get_load
from harness.load.jsonrpc import RequestFailed
from harness.load.schedules import Burst
from harness.run.locustcmd import check_args


@pytest.fixture
async def rotating_server() -> AsyncIterator[tuple[str, list[str]]]:
    """GET answers in a fixed rotation: 200, 204, 429, 500, 302."""
    statuses = [200, 204, 429, 500, 302]
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.method)
        status = statuses[(len(seen) - 1) % len(statuses)]
        headers = {"Location": "http://example.com/"} if status == 302 else None
        return web.Response(status=status, body=b"ok" if status == 200 else None, headers=headers)

    app = web.Application()
    app.router.add_get("/health", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/health", seen
    await runner.cleanup()


async def test_2xx_succeed_and_other_statuses_are_counted_by_kind(rotating_server: tuple[str, list[str]]) -> None:
    url, seen = rotating_server
    # One connection keeps the server's rotation aligned with the count.
    res = await run_http_get_load(url, Burst(20, 0.5), connections=1)
    s = res.summary
    assert (s.sent, s.ok) == (20, 8)
    assert s.errors_by_kind == {"rate_limited": 4, "transport": 8}
    assert res.merged("http_get").get_total_count() == 8
    assert set(seen) == {"GET"}


async def test_a_redirect_is_refused_naming_only_its_host(rotating_server: tuple[str, list[str]]) -> None:
    url, _ = rotating_server
    async with HttpGetDriver(url, connections=1) as drv:
        await drv.call()  # 200
        await drv.call()  # 204
        with pytest.raises(RequestFailed):
            await drv.call()  # 429
        with pytest.raises(RequestFailed):
            await drv.call()  # 500
        with pytest.raises(RequestFailed, match=r"302 redirect to example\.com refused") as exc:
            await drv.call()
        assert exc.value.kind == "transport"
        assert (drv.statistics().requests, drv.statistics().failures) == (5, 3)
        assert "failures=3" in repr(drv)


async def test_a_remote_url_is_refused_before_any_request() -> None:
    with pytest.raises(ConfigError, match="not a loopback"):
        await run_http_get_load("http://192.0.2.1/health", Burst(1, 0.1))


def test_get_with_locust_names_the_fix() -> None:
    args = argparse.Namespace(get=True, steps=None, ramp_to=None, workers=0, remote_workers=0, url="http://x",
                              master_bind=None, api_mix=False)
    with pytest.raises(ConfigError, match="--get is for the open-loop generator"):
        check_args(args)
