"""--bot-allocator: the Debian library preloaded into the bot's process only; a missing one names its package.

The preload is checked for real: a Python child given the allocator's environment (as ``stack`` gives the
bot's) maps the library, and one without it does not. The bot itself is checked the same way in
tests/integration/test_soak.py (its /proc/PID/maps during a soak run with --bot-allocator jemalloc)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.errors import HarnessError
from harness.run.allocator import CHOICES, LIBRARIES, resolve
from harness.run.options import RunOptions

MAPS = "import sys; sys.stdout.write(open('/proc/self/maps').read())"


def _maps(env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", MAPS], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60, check=True).stdout


@pytest.mark.parametrize("name", sorted(LIBRARIES))
def test_the_library_is_mapped_into_the_child_that_gets_the_environment(name: str) -> None:
    alloc = resolve(name)  # ./dev installs both: a missing one fails here, naming its package
    assert alloc.library is not None and os.path.exists(alloc.library) and alloc.package == LIBRARIES[name][0]
    env = alloc.env({})
    assert alloc.library in _maps(env)
    assert alloc.library not in _maps({})  # the harness's own processes keep glibc's malloc
    assert alloc.as_dict()["name"] == name and alloc.version  # recorded in conditions.bot.allocator


def test_system_preloads_nothing_and_a_preload_already_there_is_kept() -> None:
    assert resolve("system").env({"LD_PRELOAD": "x.so"}) == {} and resolve("system").library is None
    jemalloc = resolve("jemalloc")
    assert jemalloc.env({"LD_PRELOAD": "/lib/x.so"}) == {"LD_PRELOAD": f"{jemalloc.library} /lib/x.so"}


def test_a_missing_library_names_its_package() -> None:
    with pytest.raises(HarnessError, match=r"install the Debian package libmimalloc2\.0"):
        resolve("mimalloc", dirs=("/nonexistent",))
    with pytest.raises(HarnessError, match="system, jemalloc"):
        resolve("tcmalloc")
    with pytest.raises(HarnessError, match="--bot-allocator"):
        RunOptions(bot_allocator="tcmalloc")
    assert set(CHOICES) == {"system", "jemalloc", "mimalloc"}
