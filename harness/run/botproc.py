"""The bot as its own process, so its resources are measured alone.

``BotProcess`` starts ``python -m bot run --config FILE`` (optionally under memray), waits for
``/health``, and stops it with SIGTERM then SIGKILL; PR_SET_PDEATHSIG makes the kernel kill it
if the harness dies first, so no bot outlives its run. ``StatsPuller`` pulls the bot's closed
telemetry intervals from ``/stats?since=SEQ`` every second and keeps them (the bot keeps only
the last 600), which is how a 24 h run stays small and complete.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from harness.errors import HarnessError
from harness.probes.periodic import Periodic

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class BotProcess:
    def __init__(self, config_path: Path, log_path: Path, api_url: str, *, token: str,
                 wrap: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.argv = [sys.executable, "-m", "bot", "run", "--config", str(config_path)]
        if wrap is not None:
            self.argv = wrap
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = "not started" if self.proc is None else f"pid={self.proc.pid} rc={self.proc.poll()}"
        return f"<BotProcess {self.api_url} {state}>"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise HarnessError("the bot is not running")
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def start(self, ready_timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + ready_timeout
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise HarnessError(f"the bot exited with code {self.proc.returncode} while starting; "
                                       f"log {self.log_path}:\n{self.log_tail()}")
                try:
                    async with s.get(f"{self.api_url}/health", timeout=aiohttp.ClientTimeout(total=1)) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.2)
        await self.stop()
        raise HarnessError(f"the bot did not answer /health within {ready_timeout:.0f} s; log tail:\n{self.log_tail()}")

    async def stop(self, grace: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self.proc.poll() is None:
            await asyncio.sleep(0.1)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        return self.proc.returncode

    def kill_now(self) -> None:
        """Synchronous last resort (atexit / signal paths)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()


class StatsPuller:
    """Pulls closed telemetry intervals every ``period`` seconds; keeps all of them, in order."""

    def __init__(self, api_url: str, period: float = 1.0, max_pulls: int = 10_000_000) -> None:
        self.url = api_url.rstrip("/") + "/stats"
        self.period = period
        self.max_pulls = max_pulls
        self.intervals: list[dict[str, Any]] = []
        self.gauges: dict[str, Any] = {}
        self.pulled_at = 0.0  # monotonic time of the last successful pull: how fresh ``gauges`` are
        self.failures = 0
        self._seq = -1
        self._loop = Periodic(self.pull_once, period, name="stats-puller", max_runs=max_pulls)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"<StatsPuller {self.url} intervals={len(self.intervals)} failures={self.failures}>"

    async def pull_once(self) -> None:
        assert self._session is not None
        try:
            async with self._session.get(self.url, params={"since": str(self._seq)},
                                         timeout=aiohttp.ClientTimeout(total=2)) as r:
                if r.status != 200:
                    self.failures += 1
                    return
                payload = await r.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            self.failures += 1
            return
        for iv in payload.get("intervals", []):
            if iv["seq"] > self._seq:
                self.intervals.append(iv)
                self._seq = iv["seq"]
        self.gauges = payload.get("gauges", {})
        self.pulled_at = time.monotonic()

    def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        if self._session is not None:
            await self.pull_once()  # the last closed intervals
            await self._session.close()
            self._session = None

    def between(self, start: float, end: float) -> list[dict[str, Any]]:
        """Intervals whose midpoint lies in [start, end) (wall-clock seconds)."""
        return [iv for iv in self.intervals if start <= (iv["start"] + iv["end"]) / 2 < end]
