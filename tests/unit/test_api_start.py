"""``start_api`` against a real Engine and Telemetry (no chain): the wiring the bot uses."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp

from bot.api import start_api
from bot.config import BotConfig, loads
from bot.engine.actors import Engine, EngineSettings
from bot.engine.mailbox import Message
from bot.telemetry.recorder import Telemetry


async def _noop(pair: str, m: Message) -> None:
    pass


@dataclass
class MiniBot:
    config: BotConfig
    telemetry: Telemetry = field(default_factory=Telemetry)
    engine: Engine | None = None


def mini_config() -> BotConfig:
    return loads('deployment = "d.json"\n[endpoints]\nhttp = ["http://127.0.0.1:8545"]\n'
                 '[api]\nport = 1\ntoken_env = "TEST_API_TOKEN"\n')


async def test_start_api_serves_engine_state() -> None:
    cfg = mini_config()
    # Port 0: let the OS choose a free port (the config's port is replaced for the test).
    cfg = replace(cfg, api=replace(cfg.api, port=0))
    bot = MiniBot(cfg)
    server = await start_api(bot, environ={"TEST_API_TOKEN": "tok"})
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(server.url + "/health") as r:
                assert r.status == 503  # no engine yet
                assert (await r.json())["reasons"] == ["engine not started"]
            bot.engine = Engine(_noop, EngineSettings())
            bot.engine.add_pair("T000/USD")
            await bot.engine.start()
            async with s.get(server.url + "/health") as r:
                assert r.status == 200
            async with s.get(server.url + "/status") as r:
                body: dict[str, Any] = await r.json()
                assert body["pairs"]["T000/USD"]["state"] == "running"
                assert body["engine"]["pairs"] == 1
                assert body["telemetry"]["keep"] == 600
            async with s.post(server.url + "/pairs/T000/USD/pause", headers={"Authorization": "Bearer tok"}) as r:
                assert r.status == 200
            assert bot.engine.actor("T000/USD").state.value == "paused"
            async with s.post(server.url + "/pairs/NOPE/pause", headers={"Authorization": "Bearer tok"}) as r:
                assert r.status == 404
            async with s.post(server.url + "/orders", json={}, headers={"Authorization": "Bearer tok"}) as r:
                assert r.status == 501  # this bot has no submit_order
            async with s.get(server.url + "/metrics") as r:
                assert "bot_process_resident_memory_bytes" in await r.text()
            async with s.get(server.url + "/stats?since=-1") as r:
                assert set(await r.json()) == {"seq", "now", "intervals", "gauges"}
    finally:
        await server.cleanup()
        if bot.engine is not None:
            await bot.engine.stop(1.0)
