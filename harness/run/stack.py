"""Everything that runs while scenarios run: node, deployment, feed, and the bot with its probes.

``stack()`` starts the parts in dependency order and stops them in reverse through one
``AsyncExitStack``. The bot and the probes that watch it (telemetry puller, process sampler,
health prober) form a ``BotSession``: with ``--fresh-bot`` the runner replaces the session
between scenarios, so no scenario inherits the previous one's process state.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.redact import redact_url
from harness.load.feed import MarketFeed
from harness.node.anvil import AnvilOptions
from harness.node.endpoint import NodeConfig, start_node
from harness.probes.health import HealthProber
from harness.probes.resources import ProcessTreeSampler
from harness.run import progress as progress_ui
from harness.run.botproc import BotProcess, StatsPuller
from harness.run.chainstate import ChainSnapshot
from harness.run.options import RunOptions, free_port, mining_for


def _net_bytes(gauges: dict[str, Any]) -> int | None:
    sent, recv = gauges.get("net_bytes_sent"), gauges.get("net_bytes_received")
    if sent is None or recv is None:
        return None
    return int(sent) + int(recv)


@dataclass
class BotSession:
    """One bot process and the probes that watch it; started and stopped as one."""

    bot: BotProcess
    puller: StatsPuller = field(init=False)
    sampler: ProcessTreeSampler = field(init=False)
    prober: HealthProber = field(init=False)
    started_mono: float = 0.0

    async def start(self) -> None:
        await self.bot.start()
        self.started_mono = time.monotonic()
        self.puller = StatsPuller(self.bot.api_url)
        self.sampler = ProcessTreeSampler(self.bot.pid, interval=0.5,
                                          net_bytes=lambda: _net_bytes(self.puller.gauges))
        # 40 probes/s: deciding uptime >= 99.9% needs thousands of probes (Wilson interval), and a
        # /health GET is cheap next to the load itself.
        self.prober = HealthProber(self.bot.api_url + "/health", interval=0.025)
        for probe in (self.puller, self.sampler, self.prober):
            probe.start()

    def carry_from(self, earlier: BotSession) -> None:
        """Take an earlier session's records (telemetry intervals, resource samples, health probes)
        as this one's: a scenario that starts a fresh bot between its steps (the stress search, on a
        reverted chain) reads one continuous record. Call after ``start()``."""
        self.puller.intervals[:0] = earlier.puller.intervals
        self.sampler.series.carry(earlier.sampler.series)
        self.prober.carry(earlier.prober.statistics())

    async def stop(self) -> None:
        for probe in (self.prober, self.sampler, self.puller):  # reverse of start, before the bot
            with contextlib.suppress(Exception):
                await probe.stop()
        await self.bot.stop()


@dataclass
class Stack:
    """Everything that runs while scenarios run; built by ``stack()``."""

    run_dir: Path
    node_info: dict[str, Any]
    deployment: dict[str, Any]
    session: BotSession
    feed: MarketFeed
    api_url: str
    token: str
    bot_settings: dict[str, Any]
    network_profile: str = "loopback"
    slo: Path | None = None
    locust_workers: int = 0
    node_url: str = ""  # the node itself (not the fault proxy): quiescence asks its txpool
    calibration_key_index: int | None = None  # the dev account the calibration may spend from
    new_session: Any = None  # () -> BotSession, for --fresh-bot and chain resets
    bot_starts: int = 1
    chain: ChainSnapshot | None = None  # our own anvil only: reverted before each trading scenario
    node_sampler: ProcessTreeSampler | None = None  # our own anvil's RSS and CPU, beside the bot's

    @property
    def bot(self) -> BotProcess:
        return self.session.bot

    @property
    def puller(self) -> StatsPuller:
        return self.session.puller

    @property
    def sampler(self) -> ProcessTreeSampler:
        return self.session.sampler

    @property
    def prober(self) -> HealthProber:
        return self.session.prober

    async def restart_bot(self, while_stopped: Callable[[], Awaitable[Any]] | None = None, *,
                          keep_records: bool = False) -> Any:
        """A fresh bot process (same config, keys and feed): the old one drains and stops first.
        ``while_stopped`` runs with no bot up (a chain revert must not move the chain under a bot);
        its result is returned. ``keep_records``: the new session carries the old one's records
        (``BotSession.carry_from``), for a restart inside one scenario."""
        old = self.session
        await old.stop()
        result = await while_stopped() if while_stopped is not None else None
        self.session = self.new_session()
        await self.session.start()
        if keep_records:
            self.session.carry_from(old)
        self.bot_starts += 1
        return result


@contextlib.asynccontextmanager
async def stack(opts: RunOptions, run_dir: Path, ui: progress_ui.Ui) -> AsyncIterator[Stack]:
    from harness.run.allocator import resolve
    from harness.run.botconfig import bot_account_count, bot_keys_env, node_env, write_bot_config

    allocator = resolve(opts.bot_allocator)  # a missing library fails here, naming its package, before anything starts
    from harness.run.deployment import ensure_deployment

    # One dev account more than the bot's: the calibration spends from it, never from the bot's.
    bot_accounts = bot_account_count(opts.accounts, opts.extra_bot)
    n_accounts = max(10, bot_accounts + 2)
    # A soak's node keeps no past states: it runs for hours on one chain (harness.node.anvil).
    anvil_opts = AnvilOptions(mining=mining_for(opts), disable_block_gas_limit=True, quiet=True,
                              accounts=n_accounts, history_states=0 if opts.profile == "soak" else 500)
    async with contextlib.AsyncExitStack() as exits:
        node = await exits.enter_async_context(
            start_node(NodeConfig(url=opts.node_url, anvil=anvil_opts, run_dir=run_dir)))
        ui.log(f"node: {node.kind} {node.version} at {redact_url(node.url)} ({node.mining})")
        t = time.monotonic()
        deployment = await ensure_deployment(node.url, opts.pairs, bot_accounts, run_dir, opts.deployment)
        ui.log(f"deployed {len(deployment['pairs'])} pairs in {time.monotonic() - t:.1f} s")
        bot_http, bot_ws, network = node.url, node.ws_url, "loopback"
        setup = opts.proxy
        if setup is not None:  # --network, --faults, --fault-schedule: harness.run.faultsrun
            from harness.run.faultsrun import start_proxy

            proxy = await start_proxy(setup, node.url, run_dir, exits, ui)
            bot_http, bot_ws, network = proxy.url, proxy.ws_url, setup.network_profile
        feed = MarketFeed([p["id"] for p in deployment["pairs"]], seed=opts.seed)
        await feed.start()
        exits.push_async_callback(feed.stop)
        api_port = free_port()
        token = secrets.token_urlsafe(24)
        cfg_path, settings = write_bot_config(
            run_dir, node_http=bot_http, node_ws=bot_ws, deployment=run_dir / "deployment.json",
            feed_url=feed.url, api_port=api_port, extra=opts.extra_bot)
        api_url = f"http://127.0.0.1:{api_port}"
        env = {"TRADEBENCH_API_TOKEN": token, **bot_keys_env(bot_accounts), **node_env(bot_http, bot_ws),
               **allocator.env(os.environ)}
        settings = {**settings, "allocator": allocator.as_dict()}  # into conditions.bot

        def new_session() -> BotSession:
            wrap = None
            if opts.memray:
                from harness.probes.profilers import memray_wrap

                wrap = memray_wrap([sys.executable, "-m", "bot", "run", "--config", str(cfg_path)],
                                   run_dir / "bot.memray.bin")
            elif opts.bot_wrap:  # harness profile --spy-launch: py-spy starts the bot as its child
                wrap = [*opts.bot_wrap, sys.executable, "-m", "bot", "run", "--config", str(cfg_path)]
            return BotSession(BotProcess(cfg_path, run_dir / "bot.log", api_url, token=token, wrap=wrap, env=env))

        own = node.kind == "anvil"
        node_sampler = None
        if own and node.pid is not None:
            node_sampler = ProcessTreeSampler(node.pid, interval=1.0)
            node_sampler.start()
            exits.push_async_callback(node_sampler.stop)
        chain = ChainSnapshot(node.url, enabled=opts.reset_chain, limit=opts.chain_reset_blocks,
                              one_bot=opts.memray) if own else None
        node_info = {"kind": node.kind, "version": node.version, "url": redact_url(node.url), "mining": node.mining}
        st = Stack(run_dir, node_info,
                   deployment, new_session(), feed, api_url, token, settings, network, opts.slo,
                   opts.locust_workers, node_url=node.url,
                   calibration_key_index=n_accounts - 1 if own else None,
                   new_session=new_session, chain=chain, node_sampler=node_sampler)
        await st.session.start()
        # Late-bound: with --fresh-bot the session at exit is not the first one.
        exits.push_async_callback(lambda: st.session.stop())  # noqa: PLW0108
        ui.log(f"bot: pid {st.bot.pid}, api {api_url}")
        yield st
