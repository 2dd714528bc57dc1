"""``GET /ledger`` and ``POST /ledger/drain``: behind the bearer token, bounded, and what the harness reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.api import MAX_DRAIN_S, ApiHooks, create_app, hooks_for
from bot.chain.ledger import Ledger, NonceFate, TxState
from bot.chain.ledger_view import ledger_document
from bot.telemetry.recorder import Telemetry
from harness.run.ledgerdump import LedgerDump

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = TestClient[aiohttp.web.Request, aiohttp.web.Application]


class LedgerBot:
    def __init__(self) -> None:
        self.ledger = Ledger(keep_recent=10)
        rec = self.ledger.open("0xA", "swap", 0)
        rec.nonce, rec.hash, rec.nonce_fate = 7, "0x" + "ab" * 32, NonceFate.CONFIRMED
        rec.candidates.append(rec.hash)
        for state in (TxState.SIGNED, TxState.SUBMITTED, TxState.MINED_OK):
            self.ledger.transition(rec, state, 1)
        self.live = self.ledger.open("0xA", "swap", 2)
        self.settled = asyncio.Event()
        self.drains: list[float] = []

    def ledger_dump(self, records: bool = True) -> dict[str, Any]:
        return ledger_document(self.ledger, {"0xA": 7}, records=records)

    async def drain_ledger(self, within: float) -> Mapping[str, Any]:
        self.drains.append(within)
        try:
            await asyncio.wait_for(self.settled.wait(), within)
        except TimeoutError:
            return {"drained": False, "in_flight": 1, "waited_s": within}
        return {"drained": True, "in_flight": 0, "waited_s": 0.0}

    def hooks(self) -> ApiHooks:
        return ApiHooks(health=lambda: (True, {}), status=dict, stats=lambda _: {}, metrics=bytes,
                        ledger=self.ledger_dump, drain=self.drain_ledger)


@pytest.fixture
def bot() -> LedgerBot:
    return LedgerBot()


@pytest.fixture
async def client(bot: LedgerBot) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(bot.hooks(), token=TOKEN), host="127.0.0.1")) as c:
        yield c


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401), ({"Authorization": "Bearer "}, 401), ({"Authorization": "Bearer wrong"}, 403),
])
async def test_the_ledger_needs_the_token(client: Client, bot: LedgerBot, headers: dict[str, str],
                                          status: int) -> None:
    assert (await client.get("/ledger", headers=headers)).status == status
    assert (await client.post("/ledger/drain?within=1", headers=headers)).status == status
    assert bot.drains == []


async def test_no_token_configured_disables_the_ledger(bot: LedgerBot) -> None:
    async with TestClient(TestServer(create_app(bot.hooks(), token=None), host="127.0.0.1")) as c:
        assert (await c.get("/ledger", headers={"Authorization": "Bearer anything"})).status == 403


async def test_the_ledger_lists_every_record_and_the_tallies(client: Client, bot: LedgerBot) -> None:
    r = await client.get("/ledger", headers=AUTH)
    assert r.status == 200
    doc = await r.json()
    ids = [(x["id"], x["state"]) for x in doc["records"]]
    assert ids == [(bot.live.id, "created"), (1, "mined_ok")]  # live first, then the recent ring
    mined = doc["records"][1]
    assert (mined["sender"], mined["nonce"], mined["hashes"], mined["nonce_fate"]) == (
        "0xA", 7, ["0x" + "ab" * 32], "confirmed")
    assert doc["accounts"]["0xA"]["mined_nonces"] == [[7, 7]] and doc["accounts"]["0xA"]["start_nonce"] == 7
    dump = LedgerDump.from_json(doc)  # exactly what the harness reads
    assert dump.opened == 2 and dump.in_flight == 1 and len(dump.records) == 2
    lean = await (await client.get("/ledger?records=0", headers=AUTH)).json()
    assert "records" not in lean and LedgerDump.from_json(lean).fingerprint == dump.fingerprint
    assert (await client.get("/ledger?records=yes", headers=AUTH)).status == 400


@pytest.mark.parametrize("within", ["", "0", "-1", "abc", str(MAX_DRAIN_S + 1), "nan"])
async def test_drain_bounds_are_checked(client: Client, bot: LedgerBot, within: str) -> None:
    r = await client.post(f"/ledger/drain?within={within}", headers=AUTH)
    assert r.status == 400 and "within" in (await r.json())["error"]
    assert bot.drains == []


async def test_drain_waits_until_terminal_or_the_bound(client: Client, bot: LedgerBot) -> None:
    r = await client.post("/ledger/drain?within=0.05", headers=AUTH)
    assert r.status == 200 and (await r.json())["drained"] is False
    bot.settled.set()
    body = await (await client.post("/ledger/drain?within=5", headers=AUTH)).json()
    assert body == {"drained": True, "in_flight": 0, "waited_s": 0.0} and bot.drains == [0.05, 5.0]


async def test_a_bot_without_a_ledger_answers_501(bot: LedgerBot) -> None:
    hooks = ApiHooks(health=lambda: (True, {}), status=dict, stats=lambda _: {}, metrics=bytes)
    async with TestClient(TestServer(create_app(hooks, token=TOKEN), host="127.0.0.1")) as c:
        assert (await c.get("/ledger", headers=AUTH)).status == 501
        assert (await c.post("/ledger/drain?within=1", headers=AUTH)).status == 501


def test_hooks_find_the_bots_ledger_by_name(bot: LedgerBot) -> None:
    class Controlled(LedgerBot):
        config: Any = None
        telemetry = Telemetry()
        engine: Any = None

    hooks = hooks_for(Controlled())
    assert hooks.ledger is not None and hooks.drain is not None
    assert hooks.ledger(False)["opened"] == 2
