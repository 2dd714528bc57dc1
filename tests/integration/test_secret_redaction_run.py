"""A provider key planted in ``--node-url`` reaches the node, and nothing else: a real (short)
``harness run`` against a node URL that carries the key in its userinfo, path and query, then
every file under the test's folders (run folder, history page, bot.toml, bot.log, results, reports,
anvil's log) and the harness's own output are searched for it.

anvil serves JSON-RPC at "/" only, so a loopback forwarder stands in for a provider: it accepts a
request only with the key in all three places (proving the bot and the harness used the real URL,
which bot.toml no longer holds), and forwards HTTP and WebSocket traffic to anvil's "/".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType, web

from harness.node.anvil import Anvil, AnvilOptions
from harness.node.deploy import deploy
from harness.node.keys import DEV_ADDRESSES
from harness.node.mining import MiningMode
from tests.conftest import AnvilFactory

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

SECRET = "SEKRET123"


async def _pump(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
    async for msg in source:
        if msg.type != WSMsgType.TEXT:
            break
        await sink.send_str(msg.data)


@contextlib.asynccontextmanager
async def provider(node: Anvil, seen: Counter[str]) -> AsyncIterator[int]:
    """A loopback "provider" in front of ``node``; yields its port."""
    session = aiohttp.ClientSession()

    def authorised(req: web.Request) -> bool:
        auth = aiohttp.BasicAuth.decode(req.headers.get("Authorization", "")) if "Authorization" in req.headers \
            else None
        return (req.path == f"/{SECRET}" and req.query.get("key") == SECRET
                and auth is not None and (auth.login, auth.password) == ("u", SECRET))

    async def handle(req: web.Request) -> web.StreamResponse:
        if not authorised(req):
            seen["refused"] += 1
            return web.Response(status=403, text="provider: bad key")
        if req.headers.get("Upgrade", "").lower() == "websocket":
            seen["ws"] += 1
            client = web.WebSocketResponse(max_msg_size=0)
            await client.prepare(req)
            async with session.ws_connect(node.ws_url, max_msg_size=0) as upstream:
                pumps = [asyncio.create_task(_pump(client, upstream)), asyncio.create_task(_pump(upstream, client))]
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                for task in pumps:
                    task.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
            await client.close()
            return client
        seen["http"] += 1
        async with session.post(node.url, data=await req.read(), headers={"Content-Type": "application/json"}) as r:
            return web.Response(status=r.status, body=await r.read(), content_type="application/json")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()
        await session.close()


async def test_a_key_in_the_node_url_appears_in_no_artifact_and_no_output(
    anvil_factory: AnvilFactory, tmp_path: Path
) -> None:
    node = await anvil_factory(AnvilOptions(mining=MiningMode.interval(0.05), disable_block_gas_limit=True,
                                            quiet=True, accounts=10))
    deployment = tmp_path / "deployment.json"
    # The run's bot trades from dev accounts 1..4 (the harness's default); two pairs are enough.
    await deploy(node.url, n_pairs=2, bot_accounts=DEV_ADDRESSES[1:5], out_path=deployment)
    out = tmp_path / "reports"
    seen: Counter[str] = Counter()
    async with provider(node, seen) as port:
        node_url = f"http://u:{SECRET}@127.0.0.1:{port}/{SECRET}?key={SECRET}"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "harness.cli", "run", "--node-url", node_url, "--deployment", str(deployment),
            "--profile", "smoke", "--only", "sustained", "--minutes", "0.05", "--settle-timeout", "30",
            "--out", str(out), "--no-progress",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "COLUMNS": "200"})
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=600)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    output = (stdout + stderr).decode(errors="replace")
    runs = [p for p in out.iterdir() if (p / "results.json").exists()]
    assert len(runs) == 1, output
    run = runs[0]
    doc = orjson.loads((run / "results.json").read_bytes())
    assert doc["status"] == "complete", output

    # The key was used: the harness and the bot reached the node through the real URL only.
    assert seen["http"] > 0 and seen["ws"] > 0 and seen["refused"] == 0, (seen, output)
    sustained = next(s for s in doc["scenarios"] if s["id"] == "sustained")
    assert sum(iv["counters"].get("ok", 0) for iv in sustained["intervals"]) > 0, output
    # ... and what the files say about the endpoint is still readable.
    assert doc["conditions"]["node"]["url"] == f"http://***@127.0.0.1:{port}/***?key=***"
    assert 'http_env = "TRADEBENCH_NODE_HTTP"' in (run / "bot.toml").read_text()
    for name in ("results.json", "index.html", "junit.xml", "bot.log", "bot.toml"):
        assert (run / name).is_file(), name

    assert SECRET not in output, output
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 8, files
    leaks = [str(p.relative_to(tmp_path)) for p in files if SECRET.encode() in p.read_bytes()]
    assert leaks == [], leaks
