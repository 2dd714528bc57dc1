"""Child processes die with the harness: SIGTERM/SIGKILL on stop, PDEATHSIG when the parent is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.node import process


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it has exited if /proc says so.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.02)
    return False


async def test_terminate_stops_a_child_and_forgets_it(tmp_path: Path) -> None:
    before = process.live_children()
    proc = process.spawn(["sleep", "60"], tmp_path / "sleep.log")
    assert process.live_children() == before + 1
    rc = await process.terminate(proc, grace_s=2.0)
    assert rc == -signal.SIGTERM
    assert process.live_children() == before
    assert await process.terminate(proc) == rc  # idempotent


async def test_terminate_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    log = tmp_path / "stubborn.log"
    proc = process.spawn([sys.executable, "-c", script], log)
    deadline = time.monotonic() + 10
    while b"ready" not in log.read_bytes() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    rc = await process.terminate(proc, grace_s=0.2)
    assert rc == -signal.SIGKILL


def test_child_dies_when_its_parent_is_killed(tmp_path: Path) -> None:
    # A middle process spawns a long sleep through harness.node.process, reports its pid, and is
    # then SIGKILLed: no atexit, no finally. Only PDEATHSIG can stop the grandchild.
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from harness.node import process\n"
        f"p = process.spawn(['sleep', '60'], Path({str(tmp_path / 'gc.log')!r}))\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    middle = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=Path(__file__).parents[2])
    try:
        assert middle.stdout is not None
        grandchild = int(middle.stdout.readline())
        assert not _gone(grandchild)
        middle.kill()
        middle.wait(timeout=10)
        assert _wait_gone(grandchild), f"orphan {grandchild} survived its parent"
    finally:
        if middle.poll() is None:
            middle.kill()


def test_tail_gives_the_last_lines_or_says_the_log_is_missing(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert process.tail(log, 3) == "line 97\nline 98\nline 99"
    assert "no log" in process.tail(tmp_path / "missing.log")
