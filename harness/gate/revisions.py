"""Git plumbing for the gate: resolve revisions, temporary worktrees, acknowledgement trailers.

Acknowledgements say "this slowdown is on purpose". Two sources, both shown in the report:

- a commit-message trailer in the head range (``base..head``)::

      Perf-Regression-Acknowledged: eth_account.sign_tx: stricter validation, worth 3%

- ``perf-acknowledged.toml`` at the head revision's root::

      [[acknowledged]]
      benchmark = "eth_account.sign_tx"
      reason = "stricter validation, worth 3%"
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError, HarnessError
from harness.gate.decision import Acknowledgement

TRAILER = "Perf-Regression-Acknowledged"
ACK_FILE = "perf-acknowledged.toml"


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise HarnessError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout


def repo_root(start: Path) -> Path:
    return Path(git(start, "rev-parse", "--show-toplevel").strip())


@dataclass(frozen=True)
class Revision:
    ref: str  # as the user wrote it
    sha: str

    @property
    def short(self) -> str:
        return self.sha[:10]


def resolve(repo: Path, ref: str) -> Revision:
    proc = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ConfigError(
            f"--base/--head {ref!r} is not a commit in {repo}; give a branch, tag or SHA "
            "(in CI: fetch the base branch first, e.g. `git fetch origin main`)"
        )
    return Revision(ref=ref, sha=proc.stdout.strip())


@contextmanager
def worktrees(repo: Path, revisions: dict[str, Revision]) -> Iterator[tuple[Path, dict[str, Path]]]:
    """Check each revision out (detached) in a temporary directory; always removed afterwards.

    Yields the temporary directory and ``name -> worktree``. Names are padded to equal length so that
    paths (which end up in argv and the environment) have equal length across revisions.
    """
    tmp = Path(tempfile.mkdtemp(prefix="tradebench-gate-"))
    width = max((len(n) for n in revisions), default=0)
    paths: dict[str, Path] = {}
    try:
        for name, rev in revisions.items():
            path = tmp / f"wt-{name:_<{width}}"
            git(repo, "worktree", "add", "--detach", "--quiet", str(path), rev.sha)
            paths[name] = path
        yield tmp, paths
    finally:
        for path in paths.values():
            subprocess.run(
                ["git", "-C", str(repo), "worktree", "remove", "--force", str(path)],
                capture_output=True,
                check=False,
            )
        subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def parse_trailer_value(value: str, source: str) -> Acknowledgement:
    benchmark, sep, reason = value.partition(":")
    if not sep or not benchmark.strip() or not reason.strip():
        raise ConfigError(
            f"{source}: trailer '{TRAILER}: {value}' must read '{TRAILER}: <benchmark>: <reason>'"
        )
    return Acknowledgement(benchmark.strip(), reason.strip(), source)


def trailer_acknowledgements(repo: Path, base: Revision, head: Revision) -> list[Acknowledgement]:
    fmt = f"%H%x00%(trailers:key={TRAILER},valueonly,separator=%x01)%x00"
    out = git(repo, "log", f"--format={fmt}", f"{base.sha}..{head.sha}")
    acks = []
    fields = out.split("\x00")
    for sha, values in zip(fields[0::2], fields[1::2], strict=False):
        for value in values.split("\x01"):
            if value.strip():
                acks.append(parse_trailer_value(value.strip(), f"commit {sha.strip()[:10]}"))
    return acks


def parse_ack_file(text: str, source: str = ACK_FILE) -> list[Acknowledgement]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    entries = data.get("acknowledged", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'acknowledged' must be an array of tables ([[acknowledged]])")
    acks = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"{source}: acknowledged[{i}] must be a table with benchmark and reason")
        benchmark, reason = entry.get("benchmark"), entry.get("reason")
        if not isinstance(benchmark, str) or not benchmark.strip():
            raise ConfigError(f"{source}: acknowledged[{i}].benchmark is missing; name the benchmark case")
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"{source}: acknowledged[{i}].reason is missing; say why the slowdown is accepted")
        acks.append(Acknowledgement(benchmark.strip(), reason.strip(), source))
    return acks


def file_acknowledgements(worktree: Path) -> list[Acknowledgement]:
    path = worktree / ACK_FILE
    return parse_ack_file(path.read_text(), ACK_FILE) if path.is_file() else []
