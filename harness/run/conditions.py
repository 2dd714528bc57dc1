"""The conditions a result was measured under: a number without its conditions is not a result."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import psutil

import harness


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str, repo: Path | None = None) -> str:
    where = repo or Path(__file__).resolve().parents[2]
    return subprocess.run(["git", *args], check=False, capture_output=True, text=True, timeout=5,
                          cwd=where).stdout.strip()


def git_commit(repo: Path | None = None) -> str:
    try:
        commit = _git("rev-parse", "HEAD", repo=repo)
        dirty = _git("status", "--porcelain", "--untracked-files=no", repo=repo)
        return commit + ("+dirty" if dirty else "") if commit else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count() or 0,
        "memory_bytes": psutil.virtual_memory().total,
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def conditions(node: dict[str, Any], bot: dict[str, Any], network_profile: str = "loopback") -> dict[str, Any]:
    return {
        "machine": machine(),
        "node": node,
        "network_profile": network_profile,
        "bot": bot,
        "harness_version": harness.__version__,
        "git_commit": git_commit(),
    }
