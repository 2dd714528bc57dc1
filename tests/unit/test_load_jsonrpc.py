"""The JSON-RPC load driver: target policy, parsers, error kinds against a local server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.load.jsonrpc import (
    JsonRpcDriver,
    RequestFailed,
    check_response,
    check_target,
    parse_params,
    run_jsonrpc_load,
)
from harness.load.schedules import Burst


@pytest.mark.parametrize("url", ["http://127.0.0.1:8545", "http://localhost:1/", "https://[::1]:8545/x",
                                 "http://127.8.9.10:80"])
def test_loopback_targets_are_allowed(url: str) -> None:
    assert check_target(url, allow_remote=False) == url


@pytest.mark.parametrize("url", ["http://10.0.0.1:8545", "https://rpc.example.com", "http://[2001:db8::1]:1"])
def test_remote_targets_need_the_explicit_flag(url: str) -> None:
    with pytest.raises(ConfigError, match="--allow-remote"):
        check_target(url, allow_remote=False)
    assert check_target(url, allow_remote=True) == url


@pytest.mark.parametrize(("url", "needle"), [("ws://127.0.0.1:1", "http:// or https://"),
                                             ("http://:8545", "no host"),
                                             ("http://127.0.0.1:99999", "invalid port")])
def test_malformed_targets_name_the_problem(url: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        check_target(url, allow_remote=True)


def test_params_parse_as_json_array_or_object() -> None:
    assert parse_params('["0xabc", "latest"]') == ["0xabc", "latest"]
    assert parse_params('{"a": 1}') == {"a": 1}
    with pytest.raises(ConfigError, match="--params is not valid JSON"):
        parse_params("[0xabc]")
    with pytest.raises(ConfigError, match="array or object"):
        parse_params('"latest"')


json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=5),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                           max_leaves=8)


@given(st.binary(max_size=64))
def test_any_body_gives_a_result_or_a_labelled_failure(body: bytes) -> None:
    try:
        check_response(body)
    except RequestFailed as exc:
        assert exc.kind in {"invalid_response", "node"}


@given(json_values)
def test_result_is_returned_and_error_objects_are_node_errors(value: object) -> None:
    assert check_response(orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": value})) == value
    with pytest.raises(RequestFailed) as exc:
        check_response(orjson.dumps({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": value}}))
    assert exc.value.kind == "node"


@pytest.fixture
async def mixed_server() -> AsyncIterator[str]:
    """Answers in a fixed rotation: ok, node error, 429, 500, garbage."""
    answers = [
        web.Response(body=b'{"jsonrpc":"2.0","id":1,"result":"0x10"}', content_type="application/json"),
        web.Response(body=b'{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"nope"}}'),
        web.Response(status=429),
        web.Response(status=500),
        web.Response(body=b"<html>"),
    ]
    seen: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(await request.read())
        a = answers[(len(seen) - 1) % len(answers)]
        return web.Response(status=a.status, body=a.body)

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    await runner.cleanup()
    assert orjson.loads(seen[0]) == {"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance",
                                     "params": ["0xabc", "latest"]}


async def test_failures_are_counted_by_kind(mixed_server: str) -> None:
    # One in flight at a time keeps the server's rotation aligned with the count.
    res = await run_jsonrpc_load(mixed_server, "eth_getBalance", ["0xabc", "latest"], Burst(25, 0.5),
                                 max_in_flight=1000, connections=1)
    s = res.summary
    assert s.sent == 25
    assert s.ok == 5
    assert s.errors_by_kind == {"node": 5, "rate_limited": 5, "transport": 5, "invalid_response": 5}
    assert res.merged("eth_getBalance").get_total_count() == 5


async def test_unreachable_endpoint_is_a_transport_error() -> None:
    async with JsonRpcDriver("http://127.0.0.1:1/", "eth_chainId", []) as drv:
        with pytest.raises(RequestFailed) as exc:
            await drv.call()
        assert exc.value.kind == "transport"
        st_ = drv.statistics()
        assert (st_.requests, st_.failures) == (1, 1)
        assert "failures=1" in repr(drv)


async def test_remote_url_is_refused_before_any_request() -> None:
    with pytest.raises(ConfigError, match="not a loopback"):
        await run_jsonrpc_load("http://192.0.2.1:8545", "eth_chainId", [], Burst(1, 0.1))
