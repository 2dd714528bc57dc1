"""The bot's malloc: glibc's (``system``), or jemalloc or mimalloc preloaded into the bot's process only.

``--bot-allocator jemalloc`` puts the Debian library in the bot's ``LD_PRELOAD`` (the harness, anvil and
the feed keep glibc's), so the comparison is of the bot alone. The library is looked up in the usual
library folders; a missing one is a ``HarnessError`` naming the Debian package (``./dev setup``
installs both). What was used goes into the run's conditions (``conditions.bot.allocator``).
"""

from __future__ import annotations

import glob
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from harness.errors import HarnessError

# name -> (Debian package, shared object): bookworm's names
LIBRARIES: Mapping[str, tuple[str, str]] = {
    "jemalloc": ("libjemalloc2", "libjemalloc.so.2"),
    "mimalloc": ("libmimalloc2.0", "libmimalloc.so.2"),
}
CHOICES = ("system", *LIBRARIES)
_DIRS = ("/usr/lib/*-linux-gnu", "/lib/*-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")


@dataclass(frozen=True)
class Allocator:
    name: str
    library: str | None = None  # the preloaded shared object (None: glibc's malloc)
    package: str | None = None
    version: str | None = None  # the package's version, when dpkg knows it

    def as_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "library": self.library, "package": self.package, "version": self.version}

    def env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """``LD_PRELOAD`` for the bot: the library first, before anything the caller preloads already."""
        if self.library is None:
            return {}
        have = environ.get("LD_PRELOAD", "").strip()
        return {"LD_PRELOAD": f"{self.library} {have}".strip()}


def find_library(soname: str, dirs: tuple[str, ...] = _DIRS) -> str | None:
    for pattern in dirs:
        for folder in sorted(glob.glob(pattern)):
            path = os.path.join(folder, soname)
            if os.path.exists(path):
                return os.path.realpath(path)
    return None


def _package_version(package: str) -> str | None:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def resolve(name: str, dirs: tuple[str, ...] = _DIRS) -> Allocator:
    """The allocator called ``name``; a HarnessError names the package to install when its library is missing."""
    if name == "system":
        return Allocator("system")
    if name not in LIBRARIES:
        raise HarnessError(f"--bot-allocator {name!r}: use one of {', '.join(CHOICES)}")
    package, soname = LIBRARIES[name]
    path = find_library(soname, dirs)
    if path is None:
        raise HarnessError(f"--bot-allocator {name}: {soname} not found; install the Debian package {package} "
                           f"(apt-get install {package}, or ./dev setup as root)")
    return Allocator(name, path, package, _package_version(package))
