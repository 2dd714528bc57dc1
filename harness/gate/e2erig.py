"""The end-to-end tier's rig (async shell): one anvil, one deployment, one feed, two revisions' bots in turn.

Why the idle bot is *stopped*, not paused, and why the chain is reverted before every window:

- A bot only trades correctly on the chain it read its nonces from. Reverting the chain under a live
  (or SIGSTOPped) bot leaves its nonces, heads and balances ahead of the chain
  (``harness.run.chainstate``), so a revert always comes with a fresh bot process.
- Without reverts the chain grows by ~20 blocks a second, and anvil's own work per block grows with
  it (38 CPU ticks per 20 s at 400 blocks, 142 at 1,600): each window would run on a slower node
  than the one before. ABBA cancels a linear trend, but not the extra noise, and a long gate would
  end far from where it began.
- A paused bot resumes with a backlog (heads, timers, telemetry rotations) that lands in its next
  window; a fresh bot's start-up lands before its window, outside the measurement.

So every window is: revert to the post-deployment snapshot, start that revision's bot, warm it up
with its own tagged ticks, let it drain, measure (CPU clock and the measured ticks' tag), drain,
read its telemetry, stop it. Both revisions therefore meet the same chain, state and tick stream;
the price is a bot start (about 3 s here) per window. The chain's age at each window's start is
recorded, so a revert that did not take shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import psutil

from harness.errors import HarnessError
from harness.gate.e2emetrics import WindowMetrics, window_ops
from harness.gate.e2eplan import Window
from harness.gate.e2etoml import bot_config_toml
from harness.load.feed import MarketFeed
from harness.load.schedules import ConstantRate
from harness.load.ticks import TickSource
from harness.node.anvil import Anvil, AnvilOptions
from harness.node.mining import MiningMode
from harness.run.botconfig import HARNESS_DEFAULTS, KEYS_ENV, bot_keys_env
from harness.run.botproc import BotProcess
from harness.run.chainstate import ChainSnapshot, block_number, went_back
from harness.run.options import free_port

TOKEN_ENV = "TRADEBENCH_API_TOKEN"
POLL_S = 0.05


@dataclass(frozen=True)
class E2ESettings:
    quartets: int = 8
    window_s: float = 6.0  # measured seconds per window (drawn within +-jitter per quartet)
    jitter: float = 0.2
    warm_s: float = 1.0  # tagged apart and not measured: connections, caches, first allocations
    # Trade signals per second: near the sustained scenario's 100/s, and enough that the shortest
    # window (4.8 s) holds the ~560 samples a p99 needs.
    rate: float = 120.0
    pairs: int = 20
    accounts: int = 4
    block_time: float = 0.05  # interval mining, as load runs use (README: why not automine)
    interval_s: float = 0.5  # the bot's telemetry interval: the wait for a window's last one to close
    ready_timeout_s: float = 90.0
    drain_timeout_s: float = 30.0
    seed: int = 0


@dataclass(frozen=True)
class BotSide:
    """One revision's bot: the tree it imports from and its own config overrides (plants)."""

    name: str
    root: Path
    overrides: Mapping[str, Any] = field(default_factory=dict)


def bot_env(root: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The bot's environment: that tree's code first on the path, and never the current directory
    (``PYTHONSAFEPATH``: ``python -m`` would otherwise put the harness's own checkout first)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update({"PYTHONPATH": str(root), "PYTHONSAFEPATH": "1", "PYTHONNOUSERSITE": "1", **extra})
    return env


def check_origin(side: BotSide, python: str) -> str:
    """Where that side's ``bot`` package is imported from; the run is void unless it is its tree."""
    proc = subprocess.run([python, "-P", "-c", "import bot; print(bot.__file__)"], env=bot_env(side.root, {}),
                          capture_output=True, text=True, check=False, cwd=str(side.root))
    origin = proc.stdout.strip()
    if proc.returncode != 0 or not origin:
        raise HarnessError(f"{side.name}: `import bot` failed in {side.root}: {proc.stderr.strip()[-800:]}")
    if not Path(origin).resolve().is_relative_to(side.root.resolve()):
        raise HarnessError(f"{side.name} bot imported from {origin}, not from {side.root}; an installed copy "
                           "shadows the tree (reinstall with `pip install -e .`)")
    return origin


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children (a process signer has some)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


class Rig:
    """The shared node, deployment and feed; ``run_window`` runs one bot through one window."""

    def __init__(self, run_dir: Path, settings: E2ESettings, sides: Mapping[str, BotSide], *,
                 python: str = sys.executable, common: Mapping[str, Any] | None = None) -> None:
        self.run_dir = run_dir
        self.settings = settings
        self.sides = dict(sides)
        self.python = python
        self.common = dict(common or {})
        self.origins: dict[str, str] = {}
        self.node: Anvil | None = None
        self.feed: MarketFeed | None = None
        self.chain: ChainSnapshot | None = None
        self.pair_ids: list[str] = []
        self.revert_failures = 0
        self._keys = bot_keys_env(settings.accounts)
        self._exits = contextlib.AsyncExitStack()

    def __repr__(self) -> str:
        return f"<Rig {self.run_dir} node={self.node!r} sides={sorted(self.sides)}>"

    async def __aenter__(self) -> Rig:
        try:
            await self._start()
        except BaseException:
            await self._exits.aclose()
            raise
        return self

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._exits.aclose()

    async def _start(self) -> None:
        from harness.run.deployment import ensure_deployment

        s = self.settings
        self.run_dir.mkdir(parents=True, exist_ok=True)
        origins = await asyncio.gather(*(asyncio.to_thread(check_origin, side, self.python)
                                         for side in self.sides.values()))
        self.origins = {side.name: o for side, o in zip(self.sides.values(), origins, strict=True)}
        opts = AnvilOptions(mining=MiningMode.interval(s.block_time), disable_block_gas_limit=True, quiet=True,
                            accounts=max(10, s.accounts + 2))
        self.node = await self._exits.enter_async_context(Anvil(self.run_dir, opts))
        deployment = await ensure_deployment(self.node.url, s.pairs, s.accounts, self.run_dir, None)
        self.pair_ids = [p["id"] for p in deployment["pairs"]]
        self.feed = MarketFeed(self.pair_ids, seed=s.seed)
        await self.feed.start()
        self._exits.push_async_callback(self.feed.stop)
        self.chain = ChainSnapshot(self.node.url)
        await self.chain.take()
        # Each revision's own parser must accept the config (both at once: each is a 2 s import).
        await asyncio.gather(*(asyncio.to_thread(self._check_config, side) for side in self.sides.values()))

    def _config(self, side: BotSide, port: int) -> str:
        assert self.node is not None and self.feed is not None
        fixed = {
            "deployment": str((self.run_dir / "deployment.json").resolve()),
            "endpoints": {"http": [self.node.url], "ws": self.node.ws_url},
            "accounts": {"env": KEYS_ENV},
            "api": {"host": "127.0.0.1", "port": port, "token_env": TOKEN_ENV},
            "feed": {"url": self.feed.url},
            "telemetry": {"interval_s": self.settings.interval_s},
        }
        return bot_config_toml(HARNESS_DEFAULTS, self.common, side.overrides, fixed)

    def _check_config(self, side: BotSide) -> None:
        path = self.run_dir / f"bot-{side.name}.toml"
        path.write_text(self._config(side, free_port()))
        proc = subprocess.run([self.python, "-P", "-m", "bot", "check-config", "--config", str(path)],
                              env=bot_env(side.root, {}), capture_output=True, text=True, check=False,
                              cwd=str(side.root))
        if proc.returncode != 0:
            raise HarnessError(f"the {side.name} revision's bot rejects the gate's config ({path}): "
                               f"{proc.stderr.strip()[-800:]}; a --bot/--bot-head key it does not know?")

    async def run_window(self, win: Window) -> WindowMetrics:
        """Revert, start ``win.side``'s bot, warm it up, measure, read its telemetry, stop it."""
        assert self.node is not None and self.feed is not None and self.chain is not None
        s = self.settings
        side = self.sides[win.side]
        phases: dict[str, float] = {}
        mark = time.monotonic()

        def lap(name: str) -> None:
            nonlocal mark
            now = time.monotonic()
            phases[name] = round(now - mark, 3)
            mark = now

        block = await self.chain.revert()
        revert_ok = went_back(block, self.chain.snapshot_block)
        self.revert_failures += not revert_ok
        bot = self._bot(side, win)
        await bot.start(ready_timeout=s.ready_timeout_s)
        try:
            async with aiohttp.ClientSession(base_url=bot.api_url) as http:
                await self.feed.wait_for_client(s.ready_timeout_s)
                lap("start")
                await self._send(win.tick_seed + 7_919, s.warm_s, win.warm_tag, 0)
                await self._quiet(http, bot)
                lap("warm")
                cpu0, ref0, t0 = tree_cpu_s(bot.pid), self._reference_cpu_s(), time.time()
                chain_age = await block_number(self.node.url)
                sent = await self._send(win.tick_seed, win.seconds, win.tag, round(s.warm_s * s.rate))
                lap("measured")
                await asyncio.sleep(0.2)  # ticks still in socket buffers reach the bot first
                await self._quiet(http, bot)
                cpu1, ref1, t1 = tree_cpu_s(bot.pid), self._reference_cpu_s(), time.time()
                lap("drain")
                intervals = await self._closed_until(http, t1)
                lap("read")
            # Nothing the bot would do on a clean exit is read, and the chain is reverted before the
            # next window: a kill saves the graceful shutdown's second per window.
            bot.kill_now()
        finally:
            await bot.stop()
        lap("stop")
        ops, counts = window_ops(intervals, win.tag, t0)
        base_block = self.chain.snapshot_block
        return WindowMetrics(
            index=win.index, side=win.side, quartet=win.quartet, pair=win.pair, position=win.position,
            seconds=win.seconds, ops=ops, trades_ok=counts.ok, errors=counts.errors, skipped=counts.skipped, sent=sent,
            cpu_s=cpu1 - cpu0, node_cpu_s=ref1[0] - ref0[0], harness_cpu_s=ref1[1] - ref0[1], cpu_wall_s=t1 - t0,
            revert_ok=revert_ok, phases_s=phases,
            blocks_at_start=None if chain_age is None or base_block is None else chain_age - base_block,
        )  # fmt: skip

    def _reference_cpu_s(self) -> tuple[float, float]:
        """The node's CPU and this process's: the same work in every window, whichever bot trades
        (``harness.gate.e2emetrics``: they measure the machine's speed beside the bot)."""
        pid = None if self.node is None else self.node.pid
        return (0.0 if pid is None else tree_cpu_s(pid)), time.process_time()

    def _bot(self, side: BotSide, win: Window) -> BotProcess:
        port = free_port()
        cfg = self.run_dir / f"bot-{win.index:03d}-{side.name}.toml"
        cfg.write_text(self._config(side, port))
        token = secrets.token_urlsafe(16)
        # One hash seed per pair, the same for both of its windows: dict and set layouts (and so a
        # little of the speed) follow the seed, and a pair should differ only in the code.
        env = bot_env(side.root, {TOKEN_ENV: token, "PYTHONHASHSEED": str(win.tick_seed % 4_294_967_295),
                                  **self._keys})
        argv = [self.python, "-P", "-m", "bot", "run", "--config", str(cfg)]
        bot = BotProcess(cfg, self.run_dir / f"bot-{side.name}.log", f"http://127.0.0.1:{port}", token=token,
                         wrap=argv, env=env)
        bot.env = env  # BotProcess adds os.environ under ``env``: the side's PYTHONPATH must replace ours
        return bot

    async def _send(self, seed: int, seconds: float, tag: str, first_seq: int) -> int:
        """The feed's trade signals for one part of a window: the same seed gives the same ticks."""
        assert self.feed is not None
        self.feed.source = TickSource(self.pair_ids, seed=seed)
        self.feed.source.seq = first_seq  # no backward jump in sequence numbers within a bot's life
        result = await self.feed.run(trades=ConstantRate(self.settings.rate, seconds), tag=tag)
        return result.ws_sent

    async def _gauges(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        # since = a sequence number far ahead: the payload carries the gauges and no intervals.
        async with http.get("/stats", params={"since": str(2**53)}, timeout=aiohttp.ClientTimeout(total=5)) as r:
            payload: dict[str, Any] = await r.json()
        return dict(payload.get("gauges", {}))

    async def _quiet(self, http: aiohttp.ClientSession, bot: BotProcess) -> None:
        """Until nothing is in flight or queued, twice in a row (bounded)."""
        deadline = time.monotonic() + self.settings.drain_timeout_s
        streak = 0
        while time.monotonic() < deadline:
            g = await self._gauges(http)
            busy = int(g.get("in_flight", 1)) or int(g.get("queue_depth", 0))
            streak = 0 if busy else streak + 1
            if streak >= 2:
                return
            await asyncio.sleep(POLL_S)
        raise HarnessError(f"{bot!r} still had trades in flight {self.settings.drain_timeout_s:.0f} s after "
                           f"its window; log tail:\n{bot.log_tail()}")

    async def _closed_until(self, http: aiohttp.ClientSession, wall: float) -> list[dict[str, Any]]:
        """Every closed interval, once one ending at or after ``wall`` has closed (bounded)."""
        deadline = time.monotonic() + max(5.0, 10 * self.settings.interval_s)
        while True:
            async with http.get("/stats", params={"since": "-1"}, timeout=aiohttp.ClientTimeout(total=10)) as r:
                payload: dict[str, Any] = await r.json()
            intervals: list[dict[str, Any]] = payload.get("intervals", [])
            if intervals and float(intervals[-1]["end"]) >= wall:
                return intervals
            if time.monotonic() > deadline:
                raise HarnessError("the bot closed no telemetry interval after its window; is telemetry running?")
            await asyncio.sleep(self.settings.interval_s / 4)

