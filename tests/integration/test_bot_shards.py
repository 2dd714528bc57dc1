"""A 2-shard bot against a real anvil: one API in front, each shard its own accounts, nothing lost or doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from hdrh.histogram import HdrHistogram

from harness.load.feed import MarketFeed
from harness.load.schedules import schedule_from_spec
from harness.node.anvil import Anvil, AnvilOptions
from harness.node.mining import MiningMode
from harness.run.botconfig import bot_keys_env, write_bot_config
from harness.run.deployment import ensure_deployment
from harness.run.ledgercheck import session_outcome
from harness.run.options import free_port

pytestmark = pytest.mark.integration

PAIRS = [f"T{i:03d}/USD" for i in range(6)]
TOKEN = "shard-s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START_S = 90.0  # two bot processes importing and connecting on a loaded 2-core machine


@pytest.fixture
async def chain(tmp_path: Path) -> AsyncIterator[Anvil]:
    async with Anvil(tmp_path, AnvilOptions(mining=MiningMode.interval(0.05), disable_block_gas_limit=True,
                                            quiet=True)) as node:
        await ensure_deployment(node.url, len(PAIRS), 4, tmp_path, None)
        yield node


class ShardedBot:
    """``python -m bot run`` with ``engine.processes = 2``, as the harness starts it."""

    def __init__(self, node: Anvil, tmp_path: Path, feed_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg, _ = write_bot_config(tmp_path, node_http=node.url, node_ws=node.ws_url,
                                  deployment=tmp_path / "deployment.json", feed_url=feed_url, api_port=self.port,
                                  extra={"engine": {"processes": 2}})
        self.out = (tmp_path / "bot.out").open("wb")
        env = {**os.environ, **bot_keys_env(4), "TRADEBENCH_API_TOKEN": TOKEN}
        self.proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(cfg)], env=env,
                                     stdout=self.out, stderr=subprocess.STDOUT)
        self.log = tmp_path / "bot.out"

    async def wait_healthy(self, http: aiohttp.ClientSession) -> None:
        async def healthy() -> bool:
            assert self.proc.poll() is None, f"the sharded bot exited: {self.log.read_text()[-3000:]}"
            try:
                async with http.get(self.url + "/health") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        deadline = asyncio.get_running_loop().time() + START_S
        while not await healthy():
            assert asyncio.get_running_loop().time() < deadline, f"not healthy in {START_S:g} s: {self.log.read_text()}"
            await asyncio.sleep(0.1)

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.out.close()


async def _get(http: aiohttp.ClientSession, url: str, **kw: Any) -> Any:
    async with http.get(url, **kw) as r:
        assert r.status == 200, (url, r.status, await r.text())
        return orjson.loads(await r.read())


def _totals(intervals: list[dict[str, Any]]) -> tuple[dict[str, int], int]:
    counters: dict[str, int] = {}
    samples = 0
    for iv in intervals:
        for k, n in iv["counters"].items():
            counters[k] = counters.get(k, 0) + int(n)
        enc = iv["histograms"].get("trade_execution")
        samples += 0 if enc is None else HdrHistogram.decode(enc).get_total_count()
    return counters, samples


async def test_two_shards_trade_behind_one_api_and_stop_together(chain: Anvil, tmp_path: Path) -> None:
    async with MarketFeed(PAIRS, seed=5) as feed, aiohttp.ClientSession() as http:
        bot = ShardedBot(chain, tmp_path, feed.url)
        try:
            await bot.wait_healthy(http)
            status = await _get(http, bot.url + "/status")
            shards = status["shards"]
            assert [s["index"] for s in shards] == [0, 1]
            hands = [set(s["pairs"]) for s in shards]
            assert hands[0] | hands[1] == set(PAIRS) and not hands[0] & hands[1]
            accounts = [{a.lower() for a in s["accounts"]} for s in shards]
            assert len(accounts[0]) == len(accounts[1]) == 2 and not accounts[0] & accounts[1]
            assert set(status["pairs"]) == set(PAIRS)  # the children's pair maps, merged

            # Orders are routed to the pair's shard; the token rules are the single bot's.
            order = {"pair": sorted(hands[1])[0], "side": "buy", "amount": str(10**18)}
            async with http.post(bot.url + "/orders", json=order) as r:
                assert r.status == 401
            for pair in (sorted(hands[0])[0], sorted(hands[1])[0]):
                async with http.post(bot.url + "/orders", json={**order, "pair": pair}, headers=AUTH) as r:
                    assert r.status == 202, await r.text()
            async with http.post(bot.url + "/orders", json={**order, "pair": "NOPE/USD"}, headers=AUTH) as r:
                assert r.status == 404
            async with http.post(bot.url + f"/pairs/{sorted(hands[1])[1]}/pause", headers=AUTH) as r:
                assert r.status == 200 and (await r.json())["state"] == "paused"
            async with http.post(bot.url + f"/pairs/{sorted(hands[1])[1]}/resume", headers=AUTH) as r:
                assert r.status == 200

            # Trade signals for all six pairs, through the parent's feed relay.
            await feed.wait_for_client(30)
            res = await feed.run(trades=schedule_from_spec({"kind": "constant", "rate": 30.0, "duration": 2.0}))
            expected = res.ws_sent + 2
            assert res.ws_sent >= 50

            # Every trade reaches a receipt, and the merged telemetry catches up with the children's.
            async with http.post(bot.url + "/ledger/drain?within=30", headers=AUTH) as r:
                drained = await r.json()
            assert drained["drained"] and drained["in_flight"] == 0, drained
            merged: dict[str, int] = {}

            async def caught_up() -> bool:
                nonlocal merged
                merged, _ = _totals((await _get(http, bot.url + "/stats"))["intervals"])
                return merged.get("trades_ok", 0) >= expected

            deadline = asyncio.get_running_loop().time() + 30
            while not await caught_up():
                assert asyncio.get_running_loop().time() < deadline, merged
                await asyncio.sleep(0.2)
            payload = await _get(http, bot.url + "/stats", params={"since": "-1"})
            merged, merged_samples = _totals(payload["intervals"])
            seqs = [iv["seq"] for iv in payload["intervals"]]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and payload["seq"] > seqs[-1]
            later = await _get(http, bot.url + "/stats", params={"since": str(seqs[-2])})
            assert [iv["seq"] for iv in later["intervals"]][:1] == [seqs[-1]]
            children = [_totals((await _get(http, s["api"] + "/stats"))["intervals"]) for s in shards]
            for key in ("trades_ok", "tx_accepted", "ticks_handled"):
                assert merged.get(key, 0) == sum(c[0].get(key, 0) for c in children), key
            assert merged_samples == sum(c[1] for c in children) == expected
            assert merged["trades_ok"] == expected and all(c[0].get("trades_ok", 0) > 0 for c in children)
            assert merged.get("ticks_handled", 0) == res.ws_sent
            assert payload["gauges"]["in_flight"] == 0

            # The harness's own reconciliation, through the parent: every trade on chain exactly once.
            outcome = await session_outcome(bot.url, TOKEN, chain.url, session=1, final=True)
            assert outcome.check.reconciled, outcome.check.note
            assert outcome.check.counts.problems == 0, outcome
            assert outcome.check.counts.mined_confirmed == expected
            ledger = await _get(http, bot.url + "/ledger", headers=AUTH)
            by_sender: dict[str, list[int]] = {}
            for rec in ledger["records"]:
                assert rec["state"] == "mined_ok", rec
                assert rec["sender"].lower() in accounts[rec["shard"]]  # signed by its own shard's account
                by_sender.setdefault(rec["sender"].lower(), []).append(rec["nonce"])
            assert len({rec["hash"] for rec in ledger["records"]}) == expected
            for sender, nonces in by_sender.items():  # gap-free, each nonce once, per account
                start = ledger["accounts"][next(a for a in ledger["accounts"] if a.lower() == sender)]["start_nonce"]
                assert sorted(nonces) == list(range(start, start + len(nonces))), sender

            metrics = await (await http.get(bot.url + "/metrics")).text()
            assert 'bot_trades_ok_total{shard="0"}' in metrics and 'bot_trades_ok_total{shard="1"}' in metrics
            assert "\nbot_process_resident_memory_bytes " in metrics
            child_pids = [s["pid"] for s in shards]
        finally:
            code = bot.stop()
    out = bot.log.read_text()
    assert code == 0, out[-3000:]
    # Each child drained and printed its own summary; none outlives the parent.
    assert out.count("bot ran ") == 3 and "as 2 shards" in out, out[-3000:]
    for pid in child_pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


async def test_a_crashed_shard_fails_health_and_the_exit_code(chain: Anvil, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as http:
        bot = ShardedBot(chain, tmp_path, "ws://127.0.0.1:9/none")
        try:
            await bot.wait_healthy(http)
            shards = (await _get(http, bot.url + "/status"))["shards"]
            os.kill(shards[1]["pid"], signal.SIGKILL)
            reasons: list[str] = []

            async def unhealthy() -> bool:
                nonlocal reasons
                async with http.get(bot.url + "/health") as r:
                    reasons = (await r.json()).get("reasons", [])
                    return r.status == 503

            deadline = asyncio.get_running_loop().time() + 30
            while not await unhealthy():
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            assert any(r.startswith("shard 1: exited") for r in reasons), reasons
            async with http.get(bot.url + "/stats") as r:
                assert r.status == 200  # the survivor's telemetry is still served
        finally:
            code = bot.stop()
    assert code == 3, bot.log.read_text()[-3000:]


def test_too_few_accounts_for_the_shards_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "deployment.json").write_text(orjson.dumps({"pairs": [{"id": p} for p in PAIRS]}).decode())
    cfg = tmp_path / "bot.toml"
    cfg.write_text('deployment = "deployment.json"\n[endpoints]\nhttp = ["http://127.0.0.1:9"]\n'
                   '[accounts]\nsource = "anvil-dev:1"\n')
    res = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(cfg), "--shards", "3"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 2, res.stderr
    assert 'accounts.source = "anvil-dev:3"' in res.stderr and "Traceback" not in res.stderr
