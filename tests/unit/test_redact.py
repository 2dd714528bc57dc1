"""bot.redact: credentials never survive redaction, the endpoint does, and it is applied where
URLs leak: transport errors and statistics, log lines, /status, bot.toml, results.json."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.api import ApiHooks, create_app
from bot.config import ConfigError, loads
from bot.redact import (
    MASK,
    RedactingFormatter,
    excepthook,
    host_of,
    redact_logging,
    redact_text,
    redact_tree,
    redact_url,
)
from bot.rpc import HttpTransport, Timeouts, TransportError
from harness.results.writer import ResultsWriter
from harness.run.botconfig import NODE_HTTP_ENV, NODE_WS_ENV, node_env, write_bot_config

# A planted secret: a marker no host, scheme or parameter name below contains.
secrets_ = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=4, max_size=24).map(
    lambda s: "SEKRET" + s)
hosts = st.sampled_from(["127.0.0.1", "localhost", "rpc.example.com", "[::1]", "eth-mainnet.g.alchemy.com"])
ports = st.none() | st.integers(1, 65535)
names = st.sampled_from(["apikey", "key", "token", "x"])
routes = st.sampled_from(["v3", "v2", "rpc", "ws", "eth"])


@st.composite
def secret_urls(draw: st.DrawFn) -> tuple[str, str, str]:
    """(url, host[:port] as written, the secret planted in it one or more times)."""
    secret = draw(secrets_)
    host, port = draw(hosts), draw(ports)
    hostport = host if port is None else f"{host}:{port}"
    scheme = draw(st.sampled_from(["http", "https", "ws", "wss"]))
    userinfo = draw(st.sampled_from(["", f"{secret}@", f"user:{secret}@", f"{secret}:x@"]))
    segments = draw(st.lists(routes | st.just(secret), max_size=3))
    where = draw(st.sampled_from(["userinfo", "path", "query", "fragment"]))
    if where == "userinfo" and not userinfo:
        userinfo = f"u:{secret}@"
    if where == "path" or (not segments and draw(st.booleans())):
        segments.insert(draw(st.integers(0, len(segments))), secret)
    slash = bool(segments) or draw(st.booleans())
    path = "/" + "/".join(segments) if slash else ""
    query = ""
    if where == "query" or draw(st.booleans()):
        items = draw(st.lists(st.tuples(names, routes | st.just(secret)), max_size=3))
        items.append((draw(names), secret) if where == "query" else ("n", "1"))
        query = "?" + "&".join(f"{k}={v}" for k, v in items)
        if draw(st.booleans()):
            query += f"&{secret}"  # a bare item is a value too
    fragment = f"#{secret}" if where == "fragment" else ""
    return f"{scheme}://{userinfo}{hostport}{path}{query}{fragment}", hostport, secret


@given(secret_urls())
@settings(max_examples=400)
def test_no_planted_secret_survives_and_the_endpoint_does(case: tuple[str, str, str]) -> None:
    url, hostport, secret = case
    out = redact_url(url)
    assert secret not in out, (url, out)
    assert out.startswith(url.split("://", 1)[0] + "://")
    assert hostport in out
    before, after = urlsplit(url), urlsplit(out)
    assert (after.hostname, after.port) == (before.hostname, before.port)
    assert redact_url(out) == out  # idempotent


@given(secret_urls(), st.sampled_from(["{}", "error talking to {}: boom", "URL('{}')", '{{"url": "{}"}}',
                                       "see {}.", "({})", "a {} and {}"]))
@settings(max_examples=300)
def test_no_secret_survives_in_text(case: tuple[str, str, str], template: str) -> None:
    url, hostport, secret = case
    text = template.format(url, url)
    out = redact_text(text)
    assert secret not in out, (text, out)
    assert hostport in out
    assert redact_text(out) == out


@given(st.text(max_size=80).filter(lambda s: "://" not in s))
def test_what_is_not_a_url_passes_through(text: str) -> None:
    assert redact_url(text) == text
    assert redact_text(text) == text


@pytest.mark.parametrize(("url", "want"), [
    ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
    ("http://127.0.0.1:8545/", "http://127.0.0.1:8545/"),
    ("https://mainnet.infura.io/v3/0123abcd", f"https://mainnet.infura.io/{MASK}/{MASK}"),
    ("https://user:pw@host:1/?apikey=k&x", f"https://{MASK}@host:1/?apikey={MASK}&{MASK}"),
    ("ws://[::1]:8546/ws?token=t#frag", f"ws://[::1]:8546/{MASK}?token={MASK}#{MASK}"),
    # an unescaped slash in a password: what urlsplit would call a port is masked, not shown
    ("http://u:ab/cd@host/", f"http://u:{MASK}/{MASK}/"),
])
def test_examples(url: str, want: str) -> None:
    assert redact_url(url) == want


def test_host_of_names_the_host_only() -> None:
    assert host_of("http://u:KEY@evil.example:8080/KEY?k=KEY") == "evil.example:8080"
    assert host_of("https://[::1]/x") == "[::1]"
    assert host_of("/relative/KEY") == "(no host)"
    assert host_of(None) == "(no host)"


def test_redact_tree_reaches_nested_strings() -> None:
    doc = {"node": {"url": "http://u:KEY@h:1/KEY"}, "list": ["x", ("http://h/KEY",)], "n": 3}
    out = redact_tree(doc)
    assert "KEY" not in orjson.dumps(out).decode()
    assert out["n"] == 3 and out["node"]["url"] == f"http://{MASK}@h:1/{MASK}"


def test_log_records_and_crash_reports_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test_redact")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        redact_logging(logger)
        redact_logging(logger)  # idempotent: one wrapper, not two
        assert isinstance(handler.formatter, RedactingFormatter)
        assert not isinstance(handler.formatter.inner, RedactingFormatter)
        try:
            raise ValueError("cannot reach http://u:KEY1@127.0.0.1:1/KEY1")
        except ValueError:
            logger.exception("endpoint %s failed", "https://h/v3/KEY2")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert text.startswith("ERROR endpoint https://h/***/*** failed")
    assert "KEY1" not in text and "KEY2" not in text and "127.0.0.1:1" in text
    try:
        raise RuntimeError("boom at wss://x:KEY3@h:2/KEY3")
    except RuntimeError:
        excepthook(*sys.exc_info())
    err = capsys.readouterr().err
    assert "RuntimeError: boom at wss://***@h:2/***" in err and "KEY3" not in err


async def test_transport_errors_repr_and_statistics_show_the_url_redacted() -> None:
    url = "http://u:KEY@127.0.0.1:1/KEY?apikey=KEY"  # port 1: nothing listens there
    transport = HttpTransport(url, Timeouts(connect=1.0, read=1.0, total=2.0))
    try:
        with pytest.raises(TransportError) as err:
            await transport.call("eth_chainId")
        assert "KEY" not in str(err.value) and "127.0.0.1:1" in str(err.value)
        assert "KEY" not in repr(transport) and "KEY" not in transport.name
        assert "KEY" not in str(transport.statistics())
        assert transport.url == url  # the real one is still what it connects to
    finally:
        await transport.aclose()
    with pytest.raises(ValueError, match="expected http") as bad:
        HttpTransport("ftp://u:KEY@h/KEY")
    assert "KEY" not in str(bad.value)


async def test_status_and_health_views_are_redacted() -> None:
    def status() -> dict[str, Any]:
        return {"rpc": {"name": "http://u:KEY@h:1/KEY"}, "error": 'TransportError("wss://h/KEY")'}

    hooks = ApiHooks(health=lambda: (False, {"reasons": ["heads: https://h/v3/KEY unreachable"]}), status=status,
                     stats=lambda since: {}, metrics=lambda: b"")
    async with TestClient(TestServer(create_app(hooks, token=None))) as client:
        r = await client.get("/status")
        body = await r.read()
        assert r.status == 200 and b"KEY" not in body
        assert orjson.loads(body)["rpc"]["name"] == "http://***@h:1/***"  # still valid JSON
        r = await client.get("/health")
        body = await r.read()
        assert r.status == 503 and b"KEY" not in body and b"https://h/***/***" in body


def test_bot_toml_holds_the_redacted_url_and_the_bot_reads_the_real_one(tmp_path: Path) -> None:
    http, ws = "http://u:SEKRET9@127.0.0.1:8545/SEKRET9?key=SEKRET9", "ws://u:SEKRET9@127.0.0.1:8545/SEKRET9?key=SEKRET9"
    path, settings_ = write_bot_config(tmp_path, node_http=http, node_ws=ws, deployment=tmp_path / "d.json",
                                       feed_url="ws://127.0.0.1:9/feed", api_port=8600)
    text = path.read_text()
    assert "SEKRET9" not in text and "SEKRET9" not in orjson.dumps(settings_).decode()
    env = node_env(http, ws)
    assert env == {NODE_HTTP_ENV: http, NODE_WS_ENV: ws}
    cfg = loads(text, base_dir=tmp_path)
    assert cfg.endpoints.http_urls(env) == (http,) and cfg.endpoints.ws_url(env) == ws
    with pytest.raises(ConfigError, match=f"endpoints.http_env: environment variable {NODE_HTTP_ENV} is not set"):
        cfg.endpoints.http_urls({})
    other = {NODE_HTTP_ENV: "http://u:SEKRET9@127.0.0.1:9999/SEKRET9?key=SEKRET9"}
    with pytest.raises(ConfigError, match=r"endpoints\.http\[0\]: .* is not the endpoint in") as err:
        cfg.endpoints.http_urls(other)
    assert "SEKRET9" not in str(err.value)
    # a plain URL (our own anvil) is written as it is, and needs no variable
    plain, _ = write_bot_config(tmp_path, node_http="http://127.0.0.1:8545", node_ws="ws://127.0.0.1:8545",
                                deployment=tmp_path / "d.json", feed_url="ws://127.0.0.1:9/feed", api_port=8600)
    assert node_env("http://127.0.0.1:8545", "ws://127.0.0.1:8545") == {}
    assert loads(plain.read_text(), base_dir=tmp_path).endpoints.http_urls({}) == ("http://127.0.0.1:8545",)


def test_a_config_error_never_quotes_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        loads('deployment = "d.json"\n[endpoints]\nhttp = ["http://u:KEY@127.0.0.1:notaport/KEY"]\n')
    assert "KEY" not in str(err.value) and "endpoints.http[0]" in str(err.value)


def test_results_json_conditions_and_errors_are_redacted(tmp_path: Path) -> None:
    node = {"kind": "endpoint", "url": "https://u:KEY@rpc.example.com/v3/KEY", "mining": "unknown"}
    writer = ResultsWriter(tmp_path, "r1", "custom", {"node": node, "bot": {"endpoints": {"ws": "wss://h/KEY"}}})
    writer.set_condition("extra", {"url": "http://h/?apikey=KEY"})
    writer.add_error("burst", "node https://h/v3/KEY refused")
    text = (tmp_path / "results.json").read_text()
    assert "KEY" not in text and "rpc.example.com" in text
