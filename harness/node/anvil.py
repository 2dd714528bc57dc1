"""The anvil dev chain as a managed child process.

``Anvil`` runs the real binary (not the npm node wrapper, so ``.pid`` is the process that
serves RPC) on a free 127.0.0.1 port, keeps its log in the run folder, waits until it answers
``eth_chainId``, and stops it with SIGTERM then SIGKILL. ``harness.node.process`` makes sure it
cannot outlive the harness (PDEATHSIG + atexit).

The port: by default anvil binds port 0 and we read the port from its "Listening on" log line,
which is race-free when several engineers or tests start anvils at once. With ``quiet=True``
(``--silent``: no per-transaction logging, which costs anvil CPU under load) there is no such
line, so we pick a free port ourselves and retry if another process takes it first.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from harness.errors import ConfigError, HarnessError
from harness.node import process
from harness.node.jsonrpc import NodeRpc
from harness.node.mining import MiningMode

ANVIL_ENV = "TRADEBENCH_ANVIL"
_RELATIVE_BINARY = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
_LISTENING = re.compile(rb"Listening on 127\.0\.0\.1:(\d+)")
_REPO_ROOT = Path(__file__).resolve().parents[2]


def find_anvil_binary() -> Path:
    """``$TRADEBENCH_ANVIL`` if set, else the npm platform package's binary under the repo root."""
    env = os.environ.get(ANVIL_ENV)
    if env:
        path = Path(env)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ConfigError(f"{ANVIL_ENV}={env!r} is not an executable file; point it at the anvil binary")
        return path
    for root in (_REPO_ROOT, Path.cwd()):
        path = root / _RELATIVE_BINARY
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise ConfigError(
        f"anvil binary not found at {_REPO_ROOT / _RELATIVE_BINARY}; run ./dev setup (npm ci) "
        f"or set {ANVIL_ENV} to the binary's path"
    )


@dataclass(frozen=True)
class AnvilOptions:
    mining: MiningMode = field(default_factory=MiningMode.automine)
    chain_id: int = 31337
    accounts: int = 10
    # None keeps anvil's default (30M gas); throughput runs want a larger limit or none at all.
    gas_limit: int | None = None
    disable_block_gas_limit: bool = False
    balance_eth: int | None = None
    quiet: bool = False
    # Anvil keeps 500 block states in memory and writes every older one to
    # ~/.foundry/anvil/tmp, never deleting them: about 4 GB per quick run, which filled a 74 GB
    # disk after a day of runs and made each run's node slower than the last (disk writes on
    # the serving path). The bot and harness read state only near the head, so keeping the same
    # 500 states in memory and persisting none changes nothing they can see. None restores
    # anvil's default (full history, persisted) for someone who wants historical eth_call.
    history_states: int | None = 500
    # 0: bare ``--prune-history``, no past states kept at all. Measured on anvil 1.7.1 (50-ms blocks,
    # idle): RSS 21-29 MB over 90 s, against 110-115 MB at 45 s with ``--prune-history 10`` or none,
    # and 4.2 GB after 9 minutes of a soak with 500: a soak's node must not grow like that.
    # evm_snapshot/evm_revert, blocks and receipts still work; only state reads at past blocks fail.
    port: int | None = None
    extra_args: tuple[str, ...] = ()
    start_timeout_s: float = 30.0
    stop_grace_s: float = 5.0

    def __post_init__(self) -> None:
        if self.accounts < 1:
            raise ConfigError(f"anvil accounts must be >= 1, got {self.accounts}")
        if self.chain_id < 1:
            raise ConfigError(f"anvil chain_id must be >= 1, got {self.chain_id}")
        if self.gas_limit is not None and self.gas_limit < 21_000:
            raise ConfigError(f"anvil gas_limit must be >= 21000, got {self.gas_limit}")
        if self.gas_limit is not None and self.disable_block_gas_limit:
            raise ConfigError("anvil: set either gas_limit or disable_block_gas_limit, not both")
        if self.history_states is not None and self.history_states < 0:
            raise ConfigError(f"anvil history_states must be >= 0 (0: none) or None (full history), "
                              f"got {self.history_states}")
        if self.start_timeout_s <= 0:
            raise ConfigError(f"anvil start_timeout_s must be > 0, got {self.start_timeout_s}")

    def argv(self, binary: Path, port: int) -> list[str]:
        args = [str(binary), "--host", "127.0.0.1", "--port", str(port)]
        args += ["--chain-id", str(self.chain_id), "--accounts", str(self.accounts)]
        args += self.mining.anvil_args()
        if self.gas_limit is not None:
            args += ["--gas-limit", str(self.gas_limit)]
        if self.disable_block_gas_limit:
            args.append("--disable-block-gas-limit")
        if self.balance_eth is not None:
            args += ["--balance", str(self.balance_eth)]
        if self.quiet:
            args.append("--silent")
        if self.history_states == 0:
            args += ["--prune-history"]
        elif self.history_states is not None:
            args += ["--prune-history", str(self.history_states)]
        args += list(self.extra_args)
        return args


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _read_from(path: Path, offset: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read()


def _unique_log(run_dir: Path, stem: str) -> Path:
    path = run_dir / f"{stem}.log"
    n = 2
    while path.exists():
        path = run_dir / f"{stem}-{n}.log"
        n += 1
    return path


class Anvil:
    """A running anvil; use ``async with Anvil(run_dir, options) as node:``."""

    kind = "anvil"

    def __init__(self, run_dir: Path | str, options: AnvilOptions | None = None, *, log_name: str = "anvil") -> None:
        self.options = options or AnvilOptions()
        self.run_dir = Path(run_dir)
        self._log_name = log_name
        self.log_path: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self.version: str = ""
        self.chain_id: int = self.options.chain_id
        self.started_at: float | None = None
        self.exit_code: int | None = None

    # -- read-only surface shared with ExternalNode ------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._require_port()}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self._require_port()}"

    @property
    def port(self) -> int:
        return self._require_port()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def mining(self) -> str:
        return str(self.options.mining)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        where = f"127.0.0.1:{self._port}" if self._port else "not started"
        state = "running" if self.running else ("exited" if self._proc is not None else "new")
        return (
            f"<Anvil {where} pid={self.pid} {state} mining={self.mining} "
            f"chain_id={self.chain_id} version={self.version or '?'} log={self.log_path}>"
        )

    def _require_port(self) -> int:
        if self._port is None:
            raise HarnessError("anvil is not started; use `async with Anvil(...)` or await start() first")
        return self._port

    # -- lifecycle -----------------------------------------------------------------------------
    async def __aenter__(self) -> Anvil:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._proc is not None:
            raise HarnessError(f"{self!r} was already started; create a new Anvil for a new chain")
        binary = find_anvil_binary()
        self.log_path = _unique_log(self.run_dir, self._log_name)
        attempts = 3 if (self.options.quiet and self.options.port is None) else 1
        for attempt in range(attempts):
            try:
                await self._start_once(binary)
                return
            except _PortTaken:
                if attempt == attempts - 1:
                    raise HarnessError(
                        f"anvil could not bind a free port after {attempts} tries; log: {self.log_path}"
                    ) from None

    async def _start_once(self, binary: Path) -> None:
        assert self.log_path is not None
        opts = self.options
        port = opts.port if opts.port is not None else (_free_port() if opts.quiet else 0)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._proc = process.spawn(opts.argv(binary, port), self.log_path)
        self.started_at = time.monotonic()
        deadline = self.started_at + opts.start_timeout_s
        try:
            self._port = port if port != 0 else await self._read_port(offset, deadline)
            await self._wait_ready(deadline)
        except BaseException:
            await self._kill_quietly()
            raise

    async def _read_port(self, offset: int, deadline: float) -> int:
        assert self.log_path is not None
        while time.monotonic() < deadline:
            self._check_alive()
            # A few KB of local log, read every 20 ms only during start-up: not worth a thread.
            m = _LISTENING.search(_read_from(self.log_path, offset))
            if m:
                return int(m.group(1))
            await asyncio.sleep(0.02)
        raise self._failure(f"did not print its listening address within {self.options.start_timeout_s:g} s")

    async def _wait_ready(self, deadline: float) -> None:
        async with NodeRpc(f"http://127.0.0.1:{self._port}", timeout=2.0) as rpc:
            last: Exception | None = None
            while time.monotonic() < deadline:
                self._check_alive()
                try:
                    chain_id = int(await rpc.call("eth_chainId"), 16)
                    self.version = str(await rpc.call("web3_clientVersion"))
                except HarnessError as exc:
                    last = exc
                    await asyncio.sleep(0.05)
                    continue
                if chain_id != self.options.chain_id:
                    raise self._failure(f"answers chain id {chain_id}, expected {self.options.chain_id}")
                self.chain_id = chain_id
                return
        raise self._failure(f"did not answer eth_chainId within {self.options.start_timeout_s:g} s ({last})")

    def _check_alive(self) -> None:
        assert self._proc is not None
        rc = self._proc.poll()
        if rc is None:
            return
        self.exit_code = rc
        if self.options.quiet and self.log_path is not None and b"in use" in self.log_path.read_bytes()[-4096:]:
            raise _PortTaken
        raise self._failure(f"exited with code {rc} before it was ready")

    def _failure(self, what: str) -> HarnessError:
        assert self.log_path is not None
        return HarnessError(f"anvil {what}; log {self.log_path}, last lines:\n{process.tail(self.log_path)}")

    async def _kill_quietly(self) -> None:
        if self._proc is not None:
            self.exit_code = await process.terminate(self._proc, grace_s=1.0)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_grace_s``. Safe to call twice."""
        if self._proc is not None:
            self.exit_code = await process.terminate(self._proc, grace_s=self.options.stop_grace_s)


class _PortTaken(Exception):
    pass
