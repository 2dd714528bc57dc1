"""End-to-end figures tracked over history: tx/s and p99 per operation from a ``harness run``.

The figures come from the newest ``reports/*/results.json`` whose ``conditions.git_commit`` is the
commit asv is measuring (``ASV_COMMIT``), so a number is never filed under the wrong commit. The
nightly workflow runs ``harness run --profile quick`` and then ``asv run`` on the same commit.
Without a matching run the benchmark is skipped (``NotImplementedError``). ``TRADEBENCH_RESULTS``
may name a results.json explicitly (then the commit check still applies).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, ClassVar

_REPO = Path(__file__).resolve().parents[1]
OPERATIONS = ["tx_submission", "price_fetch", "balance_check", "trade_execution"]


def _candidates() -> list[Path]:
    explicit = os.environ.get("TRADEBENCH_RESULTS")
    if explicit:
        return [Path(explicit)]
    files = (_REPO / "reports").glob("*/results.json")
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


def find_results(commit: str | None) -> dict[str, Any]:
    for path in _candidates():
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        # A run from a working tree with local edits is filed under the commit it started from.
        run_commit = str(data.get("conditions", {}).get("git_commit") or "").removesuffix("+dirty")
        if commit and run_commit and not (commit.startswith(run_commit) or run_commit.startswith(commit)):
            continue
        if commit and not run_commit:
            continue
        return data
    raise NotImplementedError(f"no reports/*/results.json from a harness run of commit {commit or '?'}")


def verdict_value(data: dict[str, Any], row: str, stat: str) -> float:
    """The row's figure, from the sustained scenario when the run judged it in several scenarios."""
    found = [
        v for v in data.get("verdicts", [])
        if v.get("row") == row and v.get("stat") == stat and v.get("value") is not None
    ]  # fmt: skip
    if not found:
        raise NotImplementedError(f"the run has no {row} {stat} figure")
    found.sort(key=lambda v: v.get("scenario") != "sustained")
    return float(found[0]["value"])


def _commit() -> str | None:
    """The commit being measured: asv says so in ``ASV_COMMIT``; an existing environment is HEAD."""
    commit = os.environ.get("ASV_COMMIT")
    if commit:
        return commit
    proc = subprocess.run(
        ["git", "-C", str(_REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() or None


# asv treats NotImplementedError from setup (not from the benchmark itself) as "skipped".


class Throughput:
    unit = "tx/s"

    def setup(self) -> None:
        data = find_results(_commit())
        for stat in ("steady", "target", "peak", "minimum", "mean"):
            try:
                self.value = verdict_value(data, "transactions_per_sec", stat)
                return
            except NotImplementedError:
                continue
        raise NotImplementedError("the run has no transactions_per_sec figure")

    def track_transactions_per_sec(self) -> float:
        return self.value


class LatencyP99:
    params: ClassVar[list[list[str]]] = [OPERATIONS]
    param_names: ClassVar[list[str]] = ["operation"]
    unit = "ms"

    def setup(self, operation: str) -> None:
        self.value = verdict_value(find_results(_commit()), operation, "p99")

    def track_p99(self, operation: str) -> float:
        return self.value
