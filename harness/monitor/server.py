"""``Prometheus``: a real Prometheus process scraping one bot, owned by the caller.

``async with Prometheus("http://127.0.0.1:8600", MonitorOptions(scrape_interval_s=1)) as prom:``
refuses bad input first (binary, URL, rule files), checks that a bot answers ``/metrics``, writes
``prometheus.yml``, starts the binary on 127.0.0.1 (a free port unless one is given), and returns
once it is ready (``/-/ready``) *and* has scraped the bot (the target is ``up``), each wait bounded
by a deadline. ``stop`` sends SIGTERM, then SIGKILL after ``stop_grace_s``, and removes the
temporary directory. ``harness.node.process`` adds PDEATHSIG and an atexit hook, so the process
cannot outlive its owner however the owner ends.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import aiohttp

from harness.errors import ConfigError, HarnessError
from harness.monitor.client import PrometheusClient, Target
from harness.monitor.config import (
    MonitorOptions,
    ScrapeTarget,
    find_prometheus,
    prometheus_config,
    render_config,
    scrape_target,
)
from harness.node import process

# A port taken between our choice and Prometheus's bind (another test, another engineer).
_IN_USE = re.compile(rb"address already in use", re.IGNORECASE)
# Distinct failed scrapes before we stop waiting for the target: one can be a bot restarting.
_FAILED_SCRAPES = 3
_POLL_S = 0.05


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def check_bot(target: ScrapeTarget, *, timeout_s: float = 5.0) -> None:
    """A bot must answer ``/metrics`` with its ``bot_`` series before Prometheus is started for it:
    otherwise the user would get a Prometheus with one red target instead of the reason."""
    # No URL with a placeholder or a path here: the CLI redacts URLs in errors, and would mask both.
    fix = ("start the bot first (`bot run --config bot.toml`), or give the running bot's URL with --bot, "
           "e.g. http://127.0.0.1:8600 (the bot's [api] port)")
    what = f"{target.shown} (GET {target.metrics_path})"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as s, \
                s.get(target.url, allow_redirects=False) as r:
            body = await r.content.read(1 << 20)
            status = r.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise HarnessError(f"no bot answers at {what}: {type(exc).__name__}: {exc}; {fix}") from None
    if status != 200:
        raise HarnessError(f"{what} answered HTTP {status}, not the bot's metrics; {fix}")
    if b"bot_" not in body:
        raise HarnessError(f"{what} answered, but with no bot_ series: is this the bot's control API? {fix}")


@dataclass(frozen=True)
class Pages:
    """Where the UI's pages are: the Debian build has only the classic UI (``/classic/...``; its
    ``/alerts`` is a 404), upstream builds the React one (``/alerts``). Found by asking."""

    ui: str
    graph: str
    alerts: str
    targets: str


class Prometheus:
    kind = "prometheus"

    def __init__(self, bot_url: str, options: MonitorOptions | None = None, *, allow_remote: bool = False) -> None:
        self.options = options or MonitorOptions()
        self.target = scrape_target(bot_url, allow_remote=allow_remote)  # bad input fails here, nothing started
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._owned_dir: Path | None = None
        self.work_dir: Path | None = None
        self.version = ""
        self.exit_code: int | None = None
        self._log_offset = 0  # where this start's lines begin in the log (earlier tries' lines come before)

    # -- surface ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._port is None:
            raise HarnessError("Prometheus is not started; use `async with Prometheus(...)` or await start() first")
        return f"http://127.0.0.1:{self._port}"

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        return None if self.work_dir is None else self.work_dir / "prometheus.log"

    @property
    def config_path(self) -> Path | None:
        return None if self.work_dir is None else self.work_dir / "prometheus.yml"

    def __repr__(self) -> str:
        where = f"127.0.0.1:{self._port}" if self._port else "not started"
        every = self.options.scrape_interval_s
        return f"<Prometheus {where} pid={self.pid} scraping {self.target.shown} every {every:g}s>"

    def client(self, *, timeout_s: float = 10.0) -> PrometheusClient:
        return PrometheusClient(self.url, timeout_s=timeout_s)

    # -- lifecycle --------------------------------------------------------------------------------
    async def __aenter__(self) -> Prometheus:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._proc is not None:
            raise HarnessError(f"{self!r} was already started; create a new Prometheus to start another")
        opts = self.options
        binary = opts.binary or find_prometheus()
        rule_files = opts.all_rule_files()
        await check_bot(self.target)
        if opts.work_dir is None:
            self.work_dir = self._owned_dir = Path(tempfile.mkdtemp(prefix="tradebench-prometheus-"))
        else:
            self.work_dir = opts.work_dir
            self.work_dir.mkdir(parents=True, exist_ok=True)
        assert self.config_path is not None
        self.config_path.write_text(render_config(prometheus_config(self.target, opts, rule_files)))
        try:
            attempts = 3 if opts.port is None else 1
            for attempt in range(attempts):
                try:
                    await self._start_once(binary, opts.port or _free_port())
                    break
                except _PortTaken:
                    if opts.port is not None:
                        raise ConfigError(f"--port {opts.port} is in use on 127.0.0.1; give another --port, or "
                                          "omit it for a free one") from None
                    if attempt == attempts - 1:
                        raise HarnessError(f"Prometheus could not bind a free port after {attempts} tries; "
                                           f"log {self.log_path}") from None
            await self._wait_scraped(time.monotonic() + opts.start_timeout_s + opts.scrape_interval_s)
        except BaseException:
            await self.stop()
            raise

    async def _start_once(self, binary: Path, port: int) -> None:
        assert self.work_dir is not None and self.log_path is not None and self.config_path is not None
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv = [str(binary), f"--config.file={self.config_path}", f"--storage.tsdb.path={self.work_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}", *self.options.extra_args]
        self._proc = process.spawn(argv, self.log_path)
        self._port = port
        deadline = time.monotonic() + self.options.start_timeout_s
        async with self.client(timeout_s=2.0) as prom:
            while time.monotonic() < deadline:
                self._check_alive()
                if await prom.ready():
                    try:
                        self.version = await prom.version()
                    except HarnessError:
                        self.version = "?"  # only shown to the user; not worth failing for
                    return
                await asyncio.sleep(_POLL_S)
        raise self._failure(f"was not ready (/-/ready) within {self.options.start_timeout_s:g} s")

    async def _wait_scraped(self, deadline: float) -> Target:
        """Until Prometheus has scraped the bot once (target ``up``); a target that fails
        ``_FAILED_SCRAPES`` scrapes in a row is an error naming Prometheus's own reason."""
        failed: set[str] = set()
        last: Target | None = None
        async with self.client(timeout_s=5.0) as prom:
            while time.monotonic() < deadline:
                self.check_alive()
                ours = [t for t in await prom.targets() if t.job == self.options.job]
                if ours:
                    last = ours[0]
                    if last.health == "up":
                        return last
                    if last.health == "down" and last.scraped:
                        failed.add(last.last_scrape)
                        if len(failed) >= _FAILED_SCRAPES:
                            raise HarnessError(
                                f"Prometheus cannot scrape {self.target.shown}: {last.last_error or 'down'}; is the "
                                "bot still running? (`curl` its /metrics, restart it, then rerun)")
                await asyncio.sleep(_POLL_S)
        why = f" (last error: {last.last_error})" if last is not None and last.last_error else ""
        raise HarnessError(f"Prometheus did not scrape {self.target.shown} within "
                           f"{self.options.start_timeout_s + self.options.scrape_interval_s:g} s{why}")

    def check_alive(self) -> None:
        """Raise ``HarnessError`` (with the log's last lines) if Prometheus has exited."""
        try:
            self._check_alive()
        except _PortTaken:
            raise self._failure(f"exited with code {self.exit_code} (its port was taken)") from None

    def _check_alive(self) -> None:
        """Raise if the process has exited: the log's last lines say why (a bad rule file, a port)."""
        assert self._proc is not None
        rc = self._proc.poll()
        if rc is None:
            return
        self.exit_code = rc
        if self.log_path is not None and self.log_path.exists():
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                if _IN_USE.search(f.read()):
                    raise _PortTaken
        raise self._failure(f"exited with code {rc}")

    def _failure(self, what: str) -> HarnessError:
        # The temporary directory (log included) goes at stop: the message carries what matters.
        where = f"; log {self.log_path}" if self._owned_dir is None else ""
        tail = process.tail(self.log_path) if self.log_path is not None else ""
        # Prometheus logs its reason (a rule that does not parse, a bad flag) at level=error,
        # often above the last lines' shutdown chatter: name it first.
        errors = [line for line in tail.splitlines() if "level=error" in line]
        reason = "".join(f"\n{line}" for line in errors[-3:])
        return HarnessError(f"Prometheus {what}{where}{reason}\nlast lines:\n{tail}")

    async def pages(self) -> Pages:
        """The UI's page URLs on this build (see ``Pages``)."""
        found: dict[str, str] = {}
        async with self.client(timeout_s=5.0) as prom:
            for page in ("graph", "alerts", "targets"):
                for path in (f"/{page}", f"/classic/{page}"):
                    if await prom.status(path) == 200:
                        found[page] = self.url + path
                        break
                else:
                    found[page] = f"{self.url}/{page}"
        return Pages(ui=self.url + "/", graph=found["graph"], alerts=found["alerts"], targets=found["targets"])

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_grace_s``; then the temporary directory goes. Idempotent."""
        try:
            if self._proc is not None:
                self.exit_code = await process.terminate(self._proc, grace_s=self.options.stop_grace_s)
        finally:
            if self._owned_dir is not None:
                shutil.rmtree(self._owned_dir, ignore_errors=True)
                self._owned_dir = None


class _PortTaken(Exception):
    pass
