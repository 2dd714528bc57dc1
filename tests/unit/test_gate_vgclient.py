"""Valgrind client requests from Python: a no-op natively, seen by valgrind under it."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from harness.gate import vgclient


def test_natively_a_request_returns_its_default_and_changes_nothing() -> None:
    assert vgclient.supported()  # the project's machines are x86-64 Linux; elsewhere the tier instruments all
    assert vgclient.running_on_valgrind() == 0
    vgclient.start_instrumentation()
    vgclient.stop_instrumentation()
    assert vgclient.request(vgclient.DUMP_STATS, 1, 2, 3, 4, 5) == 0
    with pytest.raises(ValueError, match="at most five"):
        vgclient.request(vgclient.DUMP_STATS, 1, 2, 3, 4, 5, 6)


def test_under_valgrind_the_request_is_answered() -> None:
    # Fails, rather than skips, without valgrind: ./dev setup installs it (the callgrind tier needs it).
    assert shutil.which("valgrind"), "valgrind is not installed: run ./dev setup (apt-get install valgrind)"
    code = "from harness.gate import vgclient; print(vgclient.running_on_valgrind())"
    proc = subprocess.run(["valgrind", "--tool=none", "-q", sys.executable, "-c", code], capture_output=True,
                          text=True, check=True, timeout=300)
    assert proc.stdout.strip() == "1"
