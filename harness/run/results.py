"""The run's results document (``results.json``), written as the run goes.

Every change is flushed atomically (write a temp file, then ``os.replace``), so a run that is
killed at any moment leaves a readable ``results.json`` whose ``status`` says how far it got:
``partial`` while running, ``interrupted`` if stopped early, ``complete`` at the end. A SIGKILL
leaves ``partial``, which the report renders as such.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path
from typing import Any

import orjson

SCHEMA_VERSION = 1


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
        self.doc: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "status": "partial",
            "started_at": iso_now(),
            "finished_at": None,
            "profile": profile,
            "conditions": conditions,
            "scenarios": [],
            "verdicts": [],
            "artifacts": {"profiles": [], "memray": [], "logs": []},
        }
        self.flush()

    def __repr__(self) -> str:
        return f"<ResultsWriter {self.path} status={self.doc['status']} scenarios={len(self.doc['scenarios'])}>"

    def flush(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_bytes(orjson.dumps(self.doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        os.replace(tmp, self.path)

    def upsert_scenario(self, scenario: dict[str, Any]) -> None:
        """Add or replace (by id) a scenario; called repeatedly while a scenario runs."""
        scns: list[dict[str, Any]] = self.doc["scenarios"]
        for i, s in enumerate(scns):
            if s["id"] == scenario["id"]:
                scns[i] = scenario
                break
        else:
            scns.append(scenario)
        self.flush()

    def add_artifact(self, kind: str, path: Path) -> None:
        rel = os.path.relpath(path, self.run_dir)
        self.doc["artifacts"].setdefault(kind, []).append(rel)
        self.flush()

    def set_verdicts(self, verdicts: list[dict[str, Any]]) -> None:
        self.doc["verdicts"] = verdicts
        self.flush()

    def finish(self, status: str) -> None:
        self.doc["status"] = status
        self.doc["finished_at"] = iso_now()
        self.flush()
