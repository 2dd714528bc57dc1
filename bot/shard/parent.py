"""The parent of a sharded bot: plan, child processes, the public API in front of them, and the stop.

``run_sharded`` is ``bot run`` with ``engine.processes`` > 1:

1. the plan (``plan.make_plan``) from the deployment's selected pairs and the loaded accounts; too few
   accounts or pairs for the shards is a config error (exit 2) before anything starts;
2. the feed relay (when ``feed.url`` is set) and the gateway on ``api.host:api.port`` (a port taken is
   fatal, exit 3, before any child starts);
3. one child per shard: ``python -m bot run`` with a config of its own (the parent's, plus ``[shard]``,
   ``api.port`` a free loopback port and ``feed.url`` its relay stream), PR_SET_PDEATHSIG so that no child
   outlives the parent, output on the parent's stdout/stderr (log lines say which shard);
4. started once every child answers ``/health`` with 200 (a child that exits first ends the start with its
   exit code); then it runs until SIGTERM/SIGINT, ``seconds``, or every child has exited. A child that dies
   meanwhile is not restarted: ``/health`` names it and the exit code becomes 3;
5. the stop: SIGTERM to every child at once (each drains as a single bot does), SIGKILL to any still
   running after ``1.5 x timeouts.shutdown + 5`` s (a single bot's own worst case is about
   ``1.5 x timeouts.shutdown + 1``). Exit 0 only when every child stopped cleanly with 0 after being asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import orjson

from bot.api import serve
from bot.config import BotConfig, ConfigError, FeedConfig, ShardConfig
from bot.redact import redact_text
from bot.shard.gateway import Gateway
from bot.shard.links import ShardLink
from bot.shard.merge import IntervalAligner
from bot.shard.plan import ShardPlan, make_plan, selected_ids
from bot.shard.relay import FeedRelay

log = logging.getLogger("bot.shard")

EXIT_CONFIG = 2
EXIT_FATAL = 3  # bot.app.EXIT_FATAL (not imported: that would load the whole bot into the parent)
START_TIMEOUT_S = 120.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def plan_for(config: BotConfig) -> ShardPlan:
    """The split of ``config``'s pairs and accounts over ``engine.processes`` shards (``ConfigError``)."""
    try:
        raw = orjson.loads(Path(config.deployment).read_bytes())["pairs"]
        ids = [str(p["id"]) for p in raw]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"deployment: cannot read pairs from {config.deployment} ({exc}); "
                          "point it at the deployment.json written by the harness's deploy step") from exc
    accounts = [a.address for a in config.accounts.load()]
    return make_plan(selected_ids(ids, config.pairs), accounts, config.engine.processes)


def child_config(config: BotConfig, index: int, api_port: int, feed_url: str | None) -> BotConfig:
    """Shard ``index``'s config: the parent's, as one process with a ``[shard]`` table, its own API port and
    its relay stream."""
    return replace(config, engine=replace(config.engine, processes=1),
                   shard=ShardConfig(index, config.engine.processes),
                   api=replace(config.api, host="127.0.0.1", port=api_port),
                   feed=FeedConfig(url=feed_url) if feed_url is not None else config.feed)


class Child:
    """One child bot process; its exit is noticed at once through a pidfd."""

    def __init__(self, index: int, argv: list[str]) -> None:
        self.index = index
        self.argv = argv
        self.proc: subprocess.Popen[bytes] | None = None
        self.asked_to_stop = False
        self.exited = asyncio.Event()
        self._code: int | None = None

    def __repr__(self) -> str:
        return f"<Child shard={self.index} pid={self.pid} exit={self._code}>"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def exit_code(self) -> int | None:
        return self._code

    def spawn(self) -> None:
        self.proc = subprocess.Popen(self.argv, preexec_fn=_die_with_parent)
        loop = asyncio.get_running_loop()
        fd = os.pidfd_open(self.proc.pid)

        def reaped() -> None:
            assert self.proc is not None
            if self.proc.poll() is None:
                return
            loop.remove_reader(fd)
            os.close(fd)
            self._code = self.proc.returncode
            self.exited.set()
            if not self.asked_to_stop:
                log.error("shard %d (pid %d) exited with code %s while running", self.index, self.proc.pid, self._code)

        loop.add_reader(fd, reaped)

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self._code is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)


async def _started(children: list[Child], links: list[ShardLink], stop: asyncio.Event) -> int | None:
    """None once every child is healthy; else the exit code to end with."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and not stop.is_set():
        for child in children:
            if child.exit_code is not None:
                code = child.exit_code
                print(f"bot: shard {child.index} exited with code {code} while starting", file=sys.stderr, flush=True)
                return code if code in (EXIT_CONFIG, EXIT_FATAL) else EXIT_FATAL
        if all(link.health is not None and link.health.ok for link in links):
            return None
        await asyncio.sleep(0.1)
    if stop.is_set():
        return 0
    print(f"bot: fatal: the shards did not all become healthy within {START_TIMEOUT_S:g} s", file=sys.stderr,
          flush=True)
    return EXIT_FATAL


async def _all_exited(children: list[Child]) -> None:
    for child in children:
        await child.exited.wait()


async def _stop_children(children: list[Child], grace: float) -> None:
    for child in children:
        child.asked_to_stop = True
        child.signal(signal.SIGTERM)
    running = [c.exited.wait() for c in children if c.exit_code is None and c.proc is not None]
    if running:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await asyncio.gather(*running)
    for child in children:
        if child.exit_code is None and child.proc is not None:
            log.error("shard %d did not stop within %.0f s: killed", child.index, grace)
            child.signal(signal.SIGKILL)
            await child.exited.wait()


async def run_sharded(config: BotConfig, *, seconds: float | None = None, log_level: str = "INFO") -> int:
    """``bot run`` for ``engine.processes`` > 1; the exit code (module docstring)."""
    try:
        plan = plan_for(config)
    except ValueError as exc:  # ConfigError, AccountLoadError: the message names the field and the fix
        print(f"bot: config error: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    n = plan.count
    token = config.api.token()
    owner = {pair: i for i, hand in enumerate(plan.pairs) for pair in hand}
    relay = FeedRelay(config.feed.url, owner, n) if config.feed.url else None
    workdir = Path(tempfile.mkdtemp(prefix="bot-shards-"))
    children: list[Child] = []
    links: list[ShardLink] = []
    gateway: Gateway | None = None
    server = None
    t0 = time.monotonic()
    try:
        if relay is not None:
            await relay.start()
        for i in range(n):
            port = _free_port()
            path = workdir / f"shard-{i}.toml"
            path.write_text(child_config(config, i, port, relay.url(i) if relay else None).to_toml())
            child = Child(i, [sys.executable, "-m", "bot", "run", "--config", str(path), "--log-level", log_level])
            children.append(child)
            links.append(ShardLink(i, f"http://127.0.0.1:{port}", child, token))
        aligner = IntervalAligner(n, origin=time.time(), width=config.telemetry.interval_s, keep=config.telemetry.keep)
        gateway = Gateway(plan, links, aligner, token=token, relay=relay)
        try:
            server = await serve(gateway.app(), config.api.host, config.api.port)
        except OSError as exc:
            print(f"bot: fatal: could not start: the control API on {config.api.host}:{config.api.port}: {exc}",
                  file=sys.stderr, flush=True)
            return EXIT_FATAL
        for child, link in zip(children, links, strict=True):
            child.spawn()
            link.start()
        failed = await _started(children, links, stop)
        if failed is not None:
            return failed
        # Merged intervals count from here: a shard's start-up seconds fall into the first one.
        gateway.start(IntervalAligner(n, origin=time.time(), width=config.telemetry.interval_s,
                                      keep=config.telemetry.keep))
        log.info("bot started: %d shards (pids %s), %d pairs, %d accounts, api http://%s:%d", n,
                 ", ".join(str(c.pid) for c in children), sum(map(len, plan.pairs)), sum(map(len, plan.accounts)),
                 config.api.host, config.api.port)
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(_all_exited(children))]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.wait(waiters)
        log.info("stopping %d shards", n)
    finally:
        if gateway is not None:
            gateway.stopping = True
        await _stop_children(children, 1.5 * config.timeouts.shutdown + 5.0)
        for link in links:
            await link.aclose()
        if gateway is not None:
            await gateway.aclose()
        if server is not None:
            await server.aclose()
        if relay is not None:
            await relay.aclose()
        shutil.rmtree(workdir, ignore_errors=True)
    states = ", ".join(f"shard {c.index} (pid {c.pid}) exit {c.exit_code}" for c in children)
    print(f"bot ran {time.monotonic() - t0:.1f} s as {n} shards: {states}", flush=True)
    return EXIT_FATAL if any(c.exit_code != 0 for c in children) else 0
