"""The assembled ``Bot`` in-process against a small fake node (HTTP JSON-RPC and a newHeads WebSocket
on 127.0.0.1): a killed or crashed background task turns ``/health`` 503 naming it, then 200 once
restarted, and the task works again; garbage from the node is counted, not fatal; ``run_bot``
exits 3 when the node is unreachable at start or a task exceeds its restart budget."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from bot import app as bot_app
from bot.app import EXIT_FATAL, Bot, run_bot
from bot.chain.fee_oracle import FeeOracle
from bot.config import BotConfig, loads
from bot.engine.supervision import RestartPolicy
from bot.engine.supervisor import Supervisor
from harness.run.options import free_port
from tests.unit.rpc_fakes import FakeWsNode
from tests.waiting import until

# A restart a second after the crash: long enough for any machine to see the 503.
SLOW_RESTART = RestartPolicy(max_restarts=5, window_s=60.0, backoff_s=1.0, backoff_max_s=1.0)


class BotNode(FakeWsNode):
    """FakeWsNode plus HTTP POST on the same port, and the calls a starting bot makes."""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/", self._ws_handler)
        app.router.add_post("/", self._http)
        self._runner = web.AppRunner(app, shutdown_timeout=0.0, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = int(self._runner.addresses[0][1])
        return self.url

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _http(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())

        def one(req: dict[str, Any]) -> dict[str, Any]:
            return {"jsonrpc": "2.0", "id": req["id"], "result": self.answer(req["method"], req["params"])}

        answer = [one(r) for r in body] if isinstance(body, list) else one(body)
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    def answer(self, method: str, params: list[Any], ws: web.WebSocketResponse | None = None) -> Any:
        if method == "eth_chainId":
            return "0x7a69"
        if method == "eth_getBlockReceipts":
            return [] if int(params[0], 16) <= self.head else None
        if method == "eth_getBlockByNumber" and params[0] == "latest":
            return self.blocks[-1]
        return super().answer(method, params, ws)

    async def push_head(self, header: dict[str, Any]) -> None:
        for ws, subs in list(self._subs.items()):
            for sid, kind in subs.items():
                if kind == "newHeads" and not ws.closed:
                    push = {"jsonrpc": "2.0", "method": "eth_subscription",
                            "params": {"subscription": sid, "result": header}}
                    await ws.send_str(orjson.dumps(push).decode())


@pytest.fixture
async def node() -> AsyncIterator[BotNode]:
    n = BotNode()
    await n.start()
    try:
        yield n
    finally:
        await n.stop()


def config_for(tmp_path: Path, http: str, ws: str | None, api_port: int) -> BotConfig:
    addr = [f"0x{i:040x}" for i in range(1, 5)]
    pair = {"id": "T000/USD", "pool": addr[0], "token0": addr[1], "token1": addr[2], "base": addr[1],
            "quote": addr[2]}
    (tmp_path / "deployment.json").write_bytes(orjson.dumps({"chain_id": 31337, "pairs": [pair]}))
    ws_line = f'ws = "{ws}"\n' if ws else ""
    return loads(f'deployment = "deployment.json"\n[endpoints]\nhttp = ["{http}"]\n{ws_line}'
                 f'[api]\nport = {api_port}\ntoken_env = "TEST_BOT_API_TOKEN"\n[timeouts]\nshutdown = 2.0\n',
                 base_dir=tmp_path)


async def health_until(s: aiohttp.ClientSession, url: str, status: int, within: float = 30.0) -> dict[str, Any]:
    """Poll /health until it answers ``status``; its body then."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: tuple[int, Any] = (0, None)
    while loop.time() < deadline:
        async with s.get(url + "/health") as r:
            last = (r.status, await r.json())
        if last[0] == status:
            body: dict[str, Any] = last[1]
            return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"/health never answered {status} within {within:g} s; last {last}")


@contextlib.asynccontextmanager
async def running_bot(node: BotNode, tmp_path: Path, supervisor_policy: RestartPolicy) -> AsyncIterator[Bot]:
    cfg = config_for(tmp_path, node.http_url, node.url, 1)
    bot = Bot(replace(cfg, api=replace(cfg.api, port=0)))  # port 0: the OS picks a free one
    bot.supervisor = Supervisor(supervisor_policy, telemetry=bot.telemetry, recovering_s=0.2)
    await bot.start()
    try:
        yield bot
    finally:
        await bot.stop()


def api_url(bot: Bot) -> str:
    url: str = bot._api_runner.url
    return url


async def caught_up(bot: Bot, node: BotNode) -> None:
    """Mine a block and wait for the receipts cursor to reach it: heads, WebSocket and receipts all work."""
    await node.mine()
    await until(lambda: bot.receipts.statistics().last_block == node.head, what=f"receipts at block {node.head}")


@pytest.mark.parametrize("task", ["heads", "ws", "receipts"])
async def test_a_killed_task_turns_health_503_naming_it_then_200_after_the_restart(
    node: BotNode, tmp_path: Path, task: str
) -> None:
    async with running_bot(node, tmp_path, SLOW_RESTART) as bot, aiohttp.ClientSession() as s:
        url = api_url(bot)
        await health_until(s, url, 200)
        await caught_up(bot, node)
        assert bot.supervisor.kill(task)
        body = await health_until(s, url, 503)
        assert any(r.startswith(f"task {task} crashed") for r in body["reasons"]), body
        await health_until(s, url, 200)
        await caught_up(bot, node)  # the restarted task does its job
        async with s.get(url + "/metrics") as r:
            metrics = await r.text()
        assert re.search(rf'^bot_task_restarts_total\{{task="{task}"\}} 1\.0$', metrics, re.M), metrics
        async with s.get(url + "/status") as r:
            status = await r.json()
        (entry,) = [t for t in status["supervisor"]["tasks"] if t["name"] == task]
        assert (entry["state"], entry["restarts"], entry["last_error"]) == ("running", 1, "killed (cancelled)")


async def test_a_crashing_heads_pump_is_restarted_and_garbage_heads_are_only_counted(
    node: BotNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_bot(node, tmp_path, SLOW_RESTART) as bot, aiohttp.ClientSession() as s:
        url = api_url(bot)
        await health_until(s, url, 200)
        await caught_up(bot, node)
        # A header the subscriber accepts (hash, number) with a base fee no chain has: skipped and counted.
        await node.push_head({"number": hex(node.head), "hash": "0x" + "ee" * 32, "baseFeePerGas": "-0x1"})
        await until(lambda: bot.telemetry.counter_totals().get("invalid_responses{what=head}") == 1,
                    what="the garbage head counted")
        await caught_up(bot, node)
        (heads,) = [t for t in bot.supervisor.statistics().tasks if t.name == "heads"]
        assert heads.crashes == 0  # skipped, not crashed on
        original = bot.fees.on_head

        def crash_once(base_fee: int | None = None) -> None:
            monkeypatch.setattr(bot.fees, "on_head", original)
            raise RuntimeError("boom in the pump")

        monkeypatch.setattr(bot.fees, "on_head", crash_once)
        await node.mine()
        body = await health_until(s, url, 503)
        assert any("task heads crashed" in r and "RuntimeError: boom in the pump" in r for r in body["reasons"])
        await health_until(s, url, 200)
        await caught_up(bot, node)


def test_run_bot_exits_3_when_the_node_is_unreachable_at_start(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config_for(tmp_path, f"http://127.0.0.1:{free_port()}", None, free_port())
    assert asyncio.run(asyncio.wait_for(run_bot(cfg), 60.0)) == EXIT_FATAL
    err = capsys.readouterr().err
    assert "bot: fatal: could not start" in err and "Traceback" not in err


async def test_run_bot_exits_3_when_a_task_exceeds_its_restart_budget(
    node: BotNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    budget = RestartPolicy(max_restarts=2, window_s=60.0, backoff_s=0.01, backoff_max_s=0.01)
    monkeypatch.setattr(bot_app, "Supervisor", lambda telemetry: Supervisor(budget, telemetry=telemetry))

    def always_crash(self: FeeOracle, base_fee: int | None = None) -> None:
        raise RuntimeError("pump bug")

    monkeypatch.setattr(FeeOracle, "on_head", always_crash)
    port = free_port()
    running = asyncio.create_task(run_bot(config_for(tmp_path, node.http_url, node.url, port)))

    async def keep_mining() -> None:
        # Only once the bot serves its API: crashes during start-up would end it as a failed start.
        async with aiohttp.ClientSession() as s:
            while True:
                try:
                    async with s.get(f"http://127.0.0.1:{port}/health"):
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.02)
        while True:
            await node.mine()
            await asyncio.sleep(0.02)

    miner = asyncio.create_task(keep_mining())
    try:
        assert await asyncio.wait_for(running, 60.0) == EXIT_FATAL
    finally:
        miner.cancel()
        await asyncio.gather(miner, return_exceptions=True)
    captured = capsys.readouterr()
    assert "bot: fatal: task heads crashed more than 2 times" in captured.err
    assert "bot ran" in captured.out  # a fatal stop still stops in order and prints its summary
