"""Child processes that cannot outlive the harness.

Three layers, because each covers a way the harness can end that the others miss:
- ``PR_SET_PDEATHSIG`` (set in the child between fork and exec): the kernel kills the child
  when the harness dies for any reason, SIGKILL included.
- an ``atexit`` hook: stops whatever is still registered on a normal interpreter exit.
- the owners' ``finally`` / ``__aexit__``: the normal path, SIGTERM then SIGKILL.

Children start in their own session so a Ctrl-C in the terminal reaches only the harness,
which then stops them in order (instead of the children racing the harness to exit).
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_live: set[subprocess.Popen[bytes]] = set()
_libc: ctypes.CDLL | None = None


def _load_libc() -> ctypes.CDLL | None:
    # Loaded once, before any fork, so the child never calls dlopen between fork and exec.
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            return None
    return _libc


def _make_preexec(parent_pid: int) -> Callable[[], None]:
    libc = _load_libc()

    def preexec() -> None:
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died between fork and prctl; then nobody would ever signal us.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def spawn(argv: Sequence[str], log_path: Path, *, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout+stderr appended to ``log_path``; registered for cleanup at exit.

    PDEATHSIG fires when the *thread* that forked exits, so call this from a long-lived thread
    (the event loop's thread), not from a short-lived worker thread.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_make_preexec(os.getpid()),  # prctl must run in the child, between fork and exec
        )
    _live.add(proc)
    return proc


async def terminate(proc: subprocess.Popen[bytes], *, grace_s: float = 5.0, sig: int = signal.SIGTERM) -> int:
    """``sig`` (SIGTERM; py-spy wants SIGINT to write what it has), wait up to ``grace_s``, then SIGKILL;
    returns the exit code. Idempotent."""
    try:
        if proc.poll() is None:
            proc.send_signal(sig)
            deadline = time.monotonic() + grace_s
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if proc.poll() is None:
                proc.kill()
                # SIGKILL cannot be ignored; the bound only guards against a kernel-stuck (D state) child.
                deadline = time.monotonic() + 5.0
                while proc.poll() is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
    finally:
        if proc.poll() is not None:
            _live.discard(proc)
    rc = proc.poll()
    return -9 if rc is None else rc


def terminate_sync(proc: subprocess.Popen[bytes], *, grace_s: float = 2.0) -> None:
    """Blocking variant for the ``atexit`` path, where no event loop may be running."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                return
    _live.discard(proc)


def live_children() -> int:
    return sum(1 for p in _live if p.poll() is None)


@atexit.register
def _cleanup_at_exit() -> None:
    for proc in list(_live):
        terminate_sync(proc)


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file (for error messages), or a note that it is missing."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16_384))
            text = f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])
