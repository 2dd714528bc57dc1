"""One performance run, end to end: chain, deployment, bot process, scenarios, verdicts, report.

The shape follows docs/../shared/architecture.md: the harness is one asyncio process that starts
anvil, the market-data feed and the bot (its own process, so its resources are measured alone),
then drives each scenario through the feed while it samples the bot's process tree, probes its
health and pulls its telemetry intervals every second. Results are flushed after every scenario
(and every few seconds inside a long one), so Ctrl-C or a crash leaves a readable partial run;
the verdicts and the report are produced from whatever was measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.load.feed import MarketFeed
from harness.node.anvil import AnvilOptions
from harness.node.endpoint import NodeConfig, start_node
from harness.node.mining import MiningMode
from harness.probes.health import HealthProber
from harness.probes.resources import ProcessTreeSampler
from harness.run import progress as progress_ui
from harness.run.botproc import BotProcess, StatsPuller
from harness.run.conditions import conditions
from harness.run.results import ResultsWriter, new_run_id
from harness.run.scenarios import Profile


@dataclass(frozen=True)
class RunOptions:
    profile: str = "quick"
    pairs: int = 100
    out: Path = Path("reports")
    node_url: str | None = None
    deployment: Path | None = None
    block_time: float | None = None
    slo: Path | None = None
    baseline: Path | None = None
    seed: int = 1
    progress: bool = True
    memray: bool = False
    accounts: int = 4
    faults: str | None = None  # a FaultPlan text: the bot talks to the node through the fault proxy
    locust_workers: int = 0  # > 0: the api scenario runs Locust as a master with this many workers
    extra_bot: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.pairs <= 500:
            raise HarnessError(f"--pairs: {self.pairs} is out of range; give 1..500")
        if self.node_url and not self.deployment:
            raise HarnessError("--node-url needs --deployment (the deployment.json of the contracts on that node)")
        if self.block_time is not None and self.block_time < 0:
            raise HarnessError("--block-time: give seconds >= 0 (0 = automine)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def mining_for(opts: RunOptions) -> MiningMode:
    # Interval mining, not automine: anvil's automine stalls for >12 s under a burst from one
    # sender (machine-facts.md, foundry #10122). 50 ms blocks keep the wait for inclusion small
    # next to the trade_execution target (mean < 100 ms) while never stalling.
    bt = 0.05 if opts.block_time is None else opts.block_time
    return MiningMode.automine() if bt == 0 else MiningMode.interval(bt)


@dataclass
class Stack:
    """Everything that runs while scenarios run; built by ``stack()``."""

    run_dir: Path
    node_info: dict[str, Any]
    deployment: dict[str, Any]
    bot: BotProcess
    puller: StatsPuller
    sampler: ProcessTreeSampler
    prober: HealthProber
    feed: MarketFeed
    api_url: str
    token: str
    bot_settings: dict[str, Any]
    network_profile: str = "loopback"
    slo: Path | None = None
    locust_workers: int = 0


@contextlib.asynccontextmanager
async def stack(opts: RunOptions, run_dir: Path, ui: progress_ui.Ui) -> AsyncIterator[Stack]:
    from harness.run.botconfig import bot_keys_env, write_bot_config
    from harness.run.deployment import ensure_deployment

    anvil_opts = AnvilOptions(mining=mining_for(opts), disable_block_gas_limit=True, quiet=True,
                              accounts=max(10, opts.accounts + 1))
    async with contextlib.AsyncExitStack() as exits:
        node = await exits.enter_async_context(
            start_node(NodeConfig(url=opts.node_url, anvil=anvil_opts, run_dir=run_dir)))
        ui.log(f"node: {node.kind} {node.version} at {node.url} ({node.mining})")
        t = time.monotonic()
        deployment = await ensure_deployment(node.url, opts.pairs, opts.accounts, run_dir, opts.deployment)
        ui.log(f"deployed {len(deployment['pairs'])} pairs in {time.monotonic() - t:.1f} s")
        bot_http, bot_ws, network = node.url, node.ws_url, "loopback"
        if opts.faults is not None:
            from harness.node.faultplan import FaultPlan
            from harness.node.faultproxy import FaultProxy

            plan = FaultPlan.parse(opts.faults)
            proxy = await exits.enter_async_context(FaultProxy(node.url, plan))
            bot_http, bot_ws, network = proxy.url, proxy.ws_url, f"proxy:{plan}"
            ui.log(f"fault proxy at {proxy.url}: {plan}")
        feed = MarketFeed([p["id"] for p in deployment["pairs"]], seed=opts.seed)
        await feed.start()
        exits.push_async_callback(feed.stop)
        api_port = free_port()
        token = secrets.token_urlsafe(24)
        cfg_path, settings = write_bot_config(
            run_dir, node_http=bot_http, node_ws=bot_ws, deployment=run_dir / "deployment.json",
            feed_url=feed.url, api_port=api_port, extra=opts.extra_bot)
        api_url = f"http://127.0.0.1:{api_port}"
        wrap = None
        if opts.memray:
            from harness.probes.profilers import memray_wrap

            wrap = memray_wrap([sys.executable, "-m", "bot", "run", "--config", str(cfg_path)],
                               run_dir / "bot.memray.bin")
        bot = BotProcess(cfg_path, run_dir / "bot.log", api_url, token=token, wrap=wrap,
                         env={"TRADEBENCH_API_TOKEN": token, **bot_keys_env(opts.accounts)})
        await bot.start()
        exits.push_async_callback(bot.stop)
        ui.log(f"bot: pid {bot.pid}, api {api_url}")
        puller = StatsPuller(api_url)
        sampler = ProcessTreeSampler(bot.pid, interval=0.5, net_bytes=lambda: _net_bytes(puller.gauges))
        # 40 probes/s: deciding uptime >= 99.9% needs thousands of probes (Wilson interval), and a
        # /health GET is cheap next to the load itself.
        prober = HealthProber(api_url + "/health", interval=0.025)
        for probe in (puller, sampler, prober):  # stopped in reverse, before the bot
            probe.start()
            exits.push_async_callback(probe.stop)
        node_info = {"kind": node.kind, "version": node.version, "url": node.url, "mining": node.mining}
        yield Stack(run_dir, node_info, deployment, bot, puller, sampler, prober, feed, api_url, token, settings,
                    network, opts.slo, opts.locust_workers)


def _net_bytes(gauges: dict[str, Any]) -> int | None:
    sent, recv = gauges.get("net_bytes_sent"), gauges.get("net_bytes_received")
    if sent is None or recv is None:
        return None
    return int(sent) + int(recv)


def memray_artifacts(writer: ResultsWriter, capture: Path) -> None:
    """After the bot exited (a memray capture is complete only then): the leak flame graph and a
    summary of what was still allocated at exit, linked from the report."""
    from harness.probes.profilers import render_memray_flamegraph, summarize_memray

    if not capture.exists():
        return
    writer.add_artifact("memray", capture)
    try:
        summary = summarize_memray(capture)
        page = render_memray_flamegraph(capture, capture.with_name("memray-leaks.html"))
    except Exception as exc:  # a broken capture must not cost the run its verdicts
        writer.doc.setdefault("x_errors", []).append({"scenario": "soak", "error": f"memray: {exc}"})
        return
    writer.add_artifact("memray", page)
    writer.doc["x_memray"] = summary.as_dict()
    writer.flush()


def install_signal_handlers(task: asyncio.Task[Any]) -> None:
    """SIGTERM/SIGINT cancel the run task, so ``finally`` blocks write partial results and stop children."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)


async def execute(opts: RunOptions, profile: Profile) -> tuple[Path, dict[str, Any]]:
    """Run ``profile``; returns the run folder and the final results document."""
    from harness.run.scenario_exec import run_scenario
    from harness.run.verdicts import finalize, load_spec

    load_spec(opts.slo)  # a bad SLO file fails here, naming row and field, before anything starts
    run_id = new_run_id()
    run_dir = (opts.out / run_id).resolve()  # absolute: child processes run elsewhere
    run_dir.mkdir(parents=True, exist_ok=True)
    ui = progress_ui.Ui(enabled=opts.progress)
    writer: ResultsWriter | None = None
    status = "complete"
    this = asyncio.current_task()
    if this is not None:
        install_signal_handlers(this)
    try:
        with ui:
            async with stack(opts, run_dir, ui) as st:
                writer = ResultsWriter(run_dir, run_id, profile.name,
                                       conditions(st.node_info, st.bot_settings, st.network_profile))
                writer.add_artifact("logs", run_dir / "bot.log")
                for scn in profile.scenarios:
                    try:
                        result = await run_scenario(scn, st, ui, writer)
                    except HarnessError as exc:
                        # One scenario's failure (say, Locust would not start) costs its rows, not the
                        # run: they are judged inconclusive with this reason, the rest go on.
                        ui.log(f"scenario {scn.id} failed: {exc}")
                        writer.doc.setdefault("x_errors", []).append({"scenario": scn.id, "error": str(exc)})
                        continue
                    writer.upsert_scenario(result)
    except asyncio.CancelledError:
        status = "interrupted"
    except HarnessError:
        status = "interrupted"  # judged and reported below from what was measured, then re-raised
        raise
    finally:
        if writer is not None:
            if opts.memray:
                memray_artifacts(writer, run_dir / "bot.memray.bin")
            finalize(writer, opts, status)
    if writer is None:
        raise HarnessError("the run stopped before it produced any result")
    return run_dir, writer.doc
