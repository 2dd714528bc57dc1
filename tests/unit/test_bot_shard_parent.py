"""The parent's child processes: exits noticed at once, no child outlives its parent, stops bounded."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from bot.shard.parent import Child, _stop_children
from tests.waiting import until

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
# A child that ignores SIGTERM, as a wedged bot would.
STUBBORN = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "time.sleep(120)"]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return True
    return state == "Z"


def _ignores_sigterm(pid: int | None) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(mask & (1 << (signal.SIGTERM - 1)))


async def test_an_exit_is_noticed_with_its_code() -> None:
    child = Child(0, [sys.executable, "-c", "raise SystemExit(7)"])
    child.spawn()
    await asyncio.wait_for(child.exited.wait(), 30)
    assert child.exit_code == 7


async def test_stop_asks_then_kills_a_child_that_does_not_stop() -> None:
    polite, stubborn = Child(0, SLEEPER), Child(1, STUBBORN)
    polite.spawn()
    stubborn.spawn()
    await until(lambda: _ignores_sigterm(stubborn.pid), 30, "the stubborn child ignoring SIGTERM")
    t0 = time.monotonic()
    await _stop_children([polite, stubborn], grace=2.0)
    assert polite.exit_code == -signal.SIGTERM
    assert stubborn.exit_code == -signal.SIGKILL
    assert time.monotonic() - t0 < 30


def test_no_child_outlives_a_killed_parent(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import asyncio, sys
        from bot.shard.parent import Child

        async def main() -> None:
            child = Child(0, {SLEEPER!r})
            child.spawn()
            print(child.pid, flush=True)
            await asyncio.sleep(120)

        asyncio.run(main())
    """))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, cwd=os.getcwd(),
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert not _gone(pid)
        parent.kill()  # SIGKILL: the parent cannot clean up; the kernel must (PR_SET_PDEATHSIG)
        parent.wait(30)
        deadline = time.monotonic() + 30
        while not _gone(pid):
            assert time.monotonic() < deadline, f"child {pid} outlived its parent"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait(30)
