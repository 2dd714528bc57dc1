"""``POST /tasks/{name}/kill``: a supervised background task killed through the API, for chaos testing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.api import ApiHooks, create_app, hooks_for
from bot.engine.supervision import RestartPolicy
from bot.engine.supervisor import Supervisor
from bot.telemetry.recorder import Telemetry
from tests.waiting import until

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = TestClient[aiohttp.web.Request, aiohttp.web.Application]


class SupervisedBot:
    """What ``hooks_for`` needs, with a real Supervisor running one task that only waits."""

    config: Any = None
    engine: Any = None

    def __init__(self) -> None:
        self.telemetry = Telemetry()
        # A restart soon after the kill, and a recovery window long enough for a poll to see it.
        self.supervisor = Supervisor(RestartPolicy(max_restarts=10, window_s=60.0, backoff_s=0.05, backoff_max_s=0.05),
                                     telemetry=self.telemetry, recovering_s=0.5)

    async def start(self) -> None:
        async def wait_forever() -> None:
            await asyncio.Event().wait()

        self.supervisor.spawn("receipts", wait_forever)


@pytest.fixture
async def bot() -> AsyncIterator[SupervisedBot]:
    b = SupervisedBot()
    await b.start()
    yield b
    await b.supervisor.aclose()


@pytest.fixture
async def client(bot: SupervisedBot) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(hooks_for(bot), token=TOKEN), host="127.0.0.1")) as c:
        yield c


def _count(bot: SupervisedBot, key: str) -> int:
    return int(bot.telemetry.counter_totals().get(key, 0))


async def test_kill_needs_the_token_and_a_known_task(client: Client) -> None:
    assert (await client.post("/tasks/receipts/kill")).status == 401
    assert (await client.post("/tasks/receipts/kill", headers={"Authorization": "Bearer nope"})).status == 403
    r = await client.post("/tasks/nosuch/kill", headers=AUTH)
    assert r.status == 404 and "receipts" in (await r.json())["error"]  # names the tasks there are


async def test_a_killed_task_is_counted_restarted_and_its_restart_is_told_apart(client: Client,
                                                                                 bot: SupervisedBot) -> None:
    r = await client.post("/tasks/receipts/kill", headers=AUTH)
    assert r.status == 200 and await r.json() == {"task": "receipts", "killed": True}
    # A second kill before the restart finds nothing running: 409, not a second crash.
    again = await client.post("/tasks/receipts/kill", headers=AUTH)
    assert again.status in (200, 409)
    await until(lambda: _count(bot, "task_restarts{task=receipts}") >= 1, 10, "the killed task restarted")
    assert _count(bot, "task_crashes{task=receipts}") >= 1
    ok, reasons = bot.supervisor.health()
    if not ok:  # within the recovery window the task still counts as down, by name
        assert any("receipts" in why for why in reasons)
    await until(lambda: bot.supervisor.health()[0], 10, "the task counted as up again")


async def test_a_bot_without_a_supervisor_answers_501() -> None:
    hooks = ApiHooks(health=lambda: (True, {}), status=dict, stats=lambda _: {}, metrics=bytes)
    async with TestClient(TestServer(create_app(hooks, token=TOKEN), host="127.0.0.1")) as c:
        assert (await c.post("/tasks/receipts/kill", headers=AUTH)).status == 501
