"""py-spy around the bot: its command line, one recording's process, and a refusal explained.

One sampling pass whatever formats are asked for: py-spy writes one format per run, so it always records
``raw`` (folded stacks, ``frame;frame;leaf count``) and the flame graph SVG and speedscope JSON are rendered
from that file (``harness.probes.flame``). A second py-spy beside the first would double the sampling cost,
and under ``--native`` pause the bot twice as often.

Attaching (``--pid``) is the default: the bot outlives the profile, and the profile covers exactly the window
asked for. When the kernel refuses the attach, ``harness.probes.ptrace`` says why and how to fix it; in launch
mode py-spy starts the bot as its own child instead, which needs no attach permission under Yama scopes 0-1.

``--native`` unwinds C frames too, which needs the process stopped per sample: py-spy refuses it together
with ``--nonblocking``, so a native profile pauses the bot ``rate`` times a second; the conditions say so.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.node.process import spawn, terminate
from harness.probes.ptrace import PtraceFacts, SpyFailure, diagnose

MAX_RATE = 1000

_SAMPLES = re.compile(r"Samples: (\d+) Errors: (\d+)")


@dataclass(frozen=True)
class SpyOptions:
    """What py-spy samples: ``rate`` per second, and its ``--native``, ``--idle``, ``--gil``, ``--subprocesses``."""

    rate: int = 100
    native: bool = False
    idle: bool = False
    gil: bool = False
    subprocesses: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.rate <= MAX_RATE:
            raise HarnessError(f"--sample-rate: {self.rate} samples/s is out of range; give 1..{MAX_RATE} "
                               "(py-spy's default is 100)")

    @property
    def nonblocking(self) -> bool:
        """Sample without stopping the bot; impossible with ``native`` (py-spy refuses the pair)."""
        return not self.native

    def flags(self) -> list[str]:
        out = ["--rate", str(self.rate)]
        out += [f"--{name}" for name in ("native", "idle", "gil", "subprocesses") if getattr(self, name)]
        if self.nonblocking:
            out.append("--nonblocking")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "nonblocking": self.nonblocking}


def pyspy_binary() -> str:
    """``$TRADEBENCH_PYSPY`` (another build, or a wrapper that runs it with other privileges), else the venv's."""
    chosen = os.environ.get("TRADEBENCH_PYSPY")
    if chosen:
        if not os.access(chosen, os.X_OK):
            raise HarnessError(f"TRADEBENCH_PYSPY={chosen}: not an executable file; point it at py-spy or unset it")
        return chosen
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise HarnessError("py-spy is not installed: run ./dev setup (it is a Python dependency)")
    return found


def pyspy_version() -> str:
    try:
        out = subprocess.run([pyspy_binary(), "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def record_command(raw: Path, options: SpyOptions, *, pid: int | None = None, duration_s: int | None = None,
                   launch: Sequence[str] = ()) -> list[str]:
    """``py-spy record`` into ``raw`` (folded stacks): attached to ``pid``, or starting ``launch`` as its child."""
    if (pid is None) == (not launch):
        raise HarnessError("py-spy: give either a pid to attach to or a command to launch, not both")
    if duration_s is not None and duration_s <= 0:
        raise HarnessError("--seconds: give a positive number of seconds to profile")
    cmd = [pyspy_binary(), "record", "--format", "raw", "--output", str(raw), *options.flags()]
    if duration_s is not None:
        cmd += ["--duration", str(duration_s)]
    if pid is not None:
        return [*cmd, "--pid", str(pid)]
    return [*cmd, "--", *launch]


def launch_prefix(raw: Path, options: SpyOptions) -> list[str]:
    """What goes before the bot's own command line so that py-spy starts it as its child and records it.

    The bot gets SIGTERM when py-spy dies (``setpriv --pdeathsig``, util-linux): the harness's own
    PDEATHSIG reaches py-spy only, and a py-spy killed that way leaves its child running."""
    cmd = [*record_command(raw, options, launch=["-"])[:-1]]  # up to and including "--"
    setpriv = shutil.which("setpriv")
    return [*cmd, setpriv, "--pdeathsig", "TERM"] if setpriv else cmd


def sample_counts(output: str) -> tuple[int, int] | None:
    """``(samples, errors)`` from py-spy's closing line, if it printed one."""
    m = _SAMPLES.search(output)
    return (int(m.group(1)), int(m.group(2))) if m else None


@dataclass(frozen=True)
class SpyResult:
    raw: Path | None  # the folded stacks, None when py-spy wrote nothing
    log: Path
    returncode: int | None
    samples: int | None  # as py-spy counted them
    errors: int | None
    wall_s: float
    failure: SpyFailure | None


class SpyRecording:
    """One ``py-spy record`` into ``raw``: started, then ended by its ``--duration`` or by ``stop`` (SIGINT,
    on which py-spy writes what it sampled; SIGTERM would kill it with nothing written)."""

    def __init__(self, raw: Path, options: SpyOptions, *, facts: PtraceFacts | None = None) -> None:
        self.raw = raw
        self.log = raw.with_name("py-spy.log")
        self.options = options
        self._facts = facts
        self._proc: subprocess.Popen[bytes] | None = None
        self._t0 = 0.0
        self._launched = False

    def __repr__(self) -> str:
        state = "not started" if self._proc is None else f"pid={self._proc.pid} rc={self._proc.poll()}"
        return f"<SpyRecording {self.raw.name} {state}>"

    def start(self, pid: int, duration_s: int | None = None) -> None:
        self.raw.unlink(missing_ok=True)
        self._proc = spawn(record_command(self.raw, self.options, pid=pid, duration_s=duration_s), self.log)
        self._t0 = time.monotonic()

    def adopt(self, proc: subprocess.Popen[bytes]) -> None:
        """A py-spy started elsewhere in launch mode (the bot as its child): this recording only reads its output."""
        self._proc, self._t0, self._launched = proc, time.monotonic(), True

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    async def wait(self, timeout_s: float) -> SpyResult:
        """Until py-spy ends by itself (its ``--duration`` or its launched child's exit), at most ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return await self.stop()

    async def stop(self, grace_s: float = 15.0) -> SpyResult:
        proc = self._proc
        if proc is None:
            raise HarnessError("py-spy was never started")
        await terminate(proc, grace_s=grace_s, sig=signal.SIGINT)
        return self.result()

    def result(self) -> SpyResult:
        assert self._proc is not None
        output = self.log.read_text(errors="replace") if self.log.exists() else ""
        wrote = self.raw.exists()
        counts = sample_counts(output)
        failure = diagnose(self._proc.returncode, output, self._facts or PtraceFacts.read(), wrote=wrote,
                           launched=self._launched, log=self.log)
        return SpyResult(self.raw if wrote else None, self.log, self._proc.returncode,
                         counts[0] if counts else None, counts[1] if counts else None,
                         round(time.monotonic() - self._t0, 3), failure)
