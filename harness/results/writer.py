"""Writing results.json as the run goes: the typed ``Run``, flushed atomically after every change.

Every change replaces the writer's frozen ``Run`` and flushes it (write a temp file, then ``os.replace``),
so a run that is killed at any moment leaves a readable ``results.json`` whose ``status`` says how far it
got: ``partial`` while running, ``interrupted`` if stopped early, ``complete`` at the end. A SIGKILL leaves
``partial``; the scenario that was running is in ``checkpoint.jsonl`` (``journal``), from which
``harness report`` re-judges the run (``harness.run.rejudge``).

The document is serialised by ``Run.to_json``, the same model the reader builds, and validated against the
JSON Schema once, at ``finish``: validating each 5-second flush would cost the run's event loop time that
grows with the run, and the checkpoints in between are written by the same code that is checked at the end.

Conditions and error texts are redacted on the way in (``bot.redact``): a node URL with a provider key in
it must not reach a file that CI uploads.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import secrets
from pathlib import Path
from typing import Any

import orjson

from bot.redact import redact_text, redact_tree
from harness.results.chaos import ChaosResults
from harness.results.faults import FaultsInjected
from harness.results.journal import JOURNAL_NAME, CheckpointJournal
from harness.results.ledger import LedgerReconciliation
from harness.results.model import Artifacts, Run, Scenario, Verdict
from harness.results.validate import validate_results


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def iso_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class ResultsWriter:
    def __init__(self, run_dir: Path, run_id: str, profile: str, conditions: dict[str, Any]) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / "results.json"
        self._run = Run(run_id=run_id, status="partial", started_at=iso_now(), finished_at=None,
                        profile=profile, conditions=redact_tree(dict(conditions)))
        # A running scenario's measurements go here, appended (harness.results.journal): results.json gets
        # the scenario whole when it ends.
        self.journal = CheckpointJournal(run_dir / JOURNAL_NAME, run_id)
        self.flush()

    def __repr__(self) -> str:
        return f"<ResultsWriter {self.path} status={self._run.status} scenarios={len(self._run.scenarios)}>"

    @property
    def run(self) -> Run:
        """The run as written so far."""
        return self._run

    @property
    def doc(self) -> dict[str, Any]:
        """A fresh copy of the JSON object written to results.json (changing it changes nothing)."""
        return self._run.to_json()

    def _update(self, **changes: Any) -> None:
        self._run = dataclasses.replace(self._run, **changes)
        self.flush()

    def flush(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_bytes(orjson.dumps(self._run.to_json(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        os.replace(tmp, self.path)

    def upsert_scenario(self, scenario: dict[str, Any] | Scenario) -> None:
        """Add or replace (by id) a scenario; called repeatedly while a scenario runs."""
        scn = scenario if isinstance(scenario, Scenario) else Scenario.from_json(scenario)
        scns = list(self._run.scenarios)
        for i, s in enumerate(scns):
            if s.id == scn.id:
                scns[i] = scn
                break
        else:
            scns.append(scn)
        self._update(scenarios=tuple(scns))

    def add_artifact(self, kind: str, path: Path) -> None:
        rel = os.path.relpath(path, self.run_dir)
        self._update(artifacts=self._run.artifacts.with_item(kind, rel))

    def set_condition(self, key: str, value: Any) -> None:
        self._update(conditions={**self._run.conditions, key: redact_tree(value)})

    def set_extension(self, key: str, value: Any) -> None:
        """A top-level ``x_`` extension (the schema accepts those beside its own keys)."""
        if not key.startswith("x_"):
            raise ValueError(f"extension keys start with 'x_', got {key!r}")
        self._update(extra={**self._run.extra, key: value})

    def set_faults(self, faults: FaultsInjected) -> None:
        """The top-level ``faults`` section: what the fault proxy injected."""
        self._update(extra={**self._run.extra, "faults": faults.to_json()})

    def set_ledger(self, ledger: LedgerReconciliation) -> None:
        """The top-level ``ledger`` section: the bot's ledger reconciled against the chain."""
        self._update(extra={**self._run.extra, "ledger": ledger.to_json()})

    def set_chaos(self, chaos: ChaosResults) -> None:
        """The top-level ``chaos`` section: each chaos scenario's actions, measurements and ledger."""
        self._update(extra={**self._run.extra, "chaos": chaos.to_json()})

    def add_error(self, scenario: str, error: str) -> None:
        """Why a part of the run produced nothing (``x_errors``: shown on the page, judged inconclusive)."""
        errors = [*self._run.extra.get("x_errors", []), {"scenario": scenario, "error": redact_text(error)}]
        self.set_extension("x_errors", errors)

    def set_verdicts(self, verdicts: list[dict[str, Any]] | list[Verdict]) -> None:
        self._update(verdicts=tuple(v if isinstance(v, Verdict) else Verdict.from_json(v) for v in verdicts))

    def finish(self, status: str) -> None:
        """Write the final status, then check the document against the schema: an invalid one is a harness
        bug, reported (``ResultsError``) with the file already on disk, so nothing measured is lost."""
        self._update(status=status, finished_at=iso_now())
        validate_results(self._run.to_json(), str(self.path))


__all__ = ["Artifacts", "ResultsWriter", "iso_now", "new_run_id"]
