"""``checkpoint.jsonl``: what a running scenario measured, appended as it goes, so a killed run keeps it.

results.json is rewritten whole, so a checkpoint that rewrote it every few seconds cost more as a soak
aged (every interval since the start, re-merged and re-serialised, on the loop that paces the feed).
This file is only ever appended to: each checkpoint writes what is new since the last one, so its cost
is the same at hour 20 as at minute 1. results.json is still written whole when a scenario ends.

One JSON object per line; each line goes out in one ``write`` and is flushed, so a SIGKILL leaves every
earlier line intact and at most the last one torn (the reader drops it). Nothing is fsynced: a killed
process loses nothing the kernel already has; only a machine crash would. Records (``kind``):

- ``run``: once, first: ``run_id``, ``pid`` and ``pid_started`` (its create time; a pid is reused),
  ``at`` (Unix s), ``v`` (format version);
- ``scenario``: when a scenario starts: ``id``, ``started_at`` (Unix s), ``planned_s`` and ``doc``
  (the scenario document without its measurements: id, description, kind, schedule, annotations);
- ``checkpoint``: ``scenario``, ``t`` (s since its start), and what is new since the previous one:
  ``intervals`` (closed 1-s intervals, as merged for the scenario), ``resources`` (samples, ``t`` from the
  scenario start), ``health`` (``probes``/``ok`` since the last), ``backlog`` ([t, in_flight, queued]),
  ``feed`` (``sent``/``dropped`` since the last), and ``cost_ms`` (what building the record took); and when
  the bot reported them, ``heap`` ([t, heap_bytes or null, heap_blocks or null] per closed bot interval) and
  ``heap_growth`` (the bot's newest table of allocation sites grown since the warm-up; the last one wins).

``read_journal`` tolerates a torn or garbled line; ``fold`` sums the records into one ``PartialScenario``
per scenario (pure, no I/O).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

JOURNAL_NAME = "checkpoint.jsonl"
FORMAT_VERSION = 1


class CheckpointJournal:
    """Appends records to ``path`` (created on the first append). ``cursors`` holds, per scenario, how far
    the appender got (``harness.run.checkpointing`` keeps it there), so the next record holds only what is new."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        self.cursors: dict[str, Any] = {}
        self.lines = 0
        self._started = False

    def __repr__(self) -> str:
        return f"<CheckpointJournal {self.path} lines={self.lines}>"

    def append(self, record: Mapping[str, Any]) -> None:
        if not self._started:
            self._started = True
            self._write(run_record(self.run_id))
        self._write(record)

    def _write(self, record: Mapping[str, Any]) -> None:
        line = orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
        # O_APPEND + one write per line: a line is never interleaved with another, and a kill tears at
        # most the one being written.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        self.lines += 1


def run_record(run_id: str) -> dict[str, Any]:
    import psutil

    me = psutil.Process()
    return {"kind": "run", "v": FORMAT_VERSION, "run_id": run_id, "pid": me.pid, "pid_started": me.create_time(),
            "at": time.time()}


@dataclass(frozen=True)
class JournalRead:
    records: tuple[dict[str, Any], ...]
    skipped: int  # lines that were not a whole JSON object (a torn last line after a kill)


def read_journal(data: bytes) -> JournalRead:
    """Every whole record in ``data``; a line that does not parse is skipped and counted, never raised.

    A torn last line is the expected case (the writer was killed mid-write): every record is one JSON
    object, and no strict prefix of an object's text parses, so a torn line is always recognised."""
    records: list[dict[str, Any]] = []
    skipped = 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            skipped += 1
            continue
        if isinstance(rec, dict) and isinstance(rec.get("kind"), str):
            records.append(rec)
        else:
            skipped += 1
    return JournalRead(tuple(records), skipped)


def load_journal(run_dir: Path) -> JournalRead | None:
    path = run_dir / JOURNAL_NAME
    try:
        return read_journal(path.read_bytes())
    except FileNotFoundError:
        return None


@dataclass
class PartialScenario:
    """One scenario as far as its checkpoints got."""

    id: str
    started_at: float
    planned_s: float
    header: dict[str, Any]
    covered_s: float = 0.0  # seconds since its start that the last checkpoint covered
    intervals: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    probes: int = 0
    ok: int = 0
    backlog: list[tuple[float, float, float]] = field(default_factory=list)
    sent: int = 0
    dropped: int = 0
    checkpoints: int = 0
    cost_ms: list[float] = field(default_factory=list)
    heap: list[tuple[float, float | None, float | None]] = field(default_factory=list)
    heap_growth: dict[str, Any] | None = None

    def add(self, rec: Mapping[str, Any]) -> None:
        self.checkpoints += 1
        self.covered_s = max(self.covered_s, _num(rec.get("t")))
        self.intervals.extend(x for x in _list(rec.get("intervals")) if isinstance(x, dict))
        self.resources.extend(x for x in _list(rec.get("resources")) if isinstance(x, dict))
        health = rec.get("health")
        if isinstance(health, Mapping):
            self.probes += int(_num(health.get("probes")))
            self.ok += int(_num(health.get("ok")))
        for b in _list(rec.get("backlog")):
            if isinstance(b, list) and len(b) == 3:
                self.backlog.append((_num(b[0]), _num(b[1]), _num(b[2])))
        feed = rec.get("feed")
        if isinstance(feed, Mapping):
            self.sent += int(_num(feed.get("sent")))
            self.dropped += int(_num(feed.get("dropped")))
        if isinstance(rec.get("cost_ms"), int | float):
            self.cost_ms.append(float(rec["cost_ms"]))
        for h in _list(rec.get("heap")):
            if isinstance(h, list) and len(h) == 3 and isinstance(h[0], int | float):
                self.heap.append((float(h[0]), _opt(h[1]), _opt(h[2])))
        growth = rec.get("heap_growth")
        if isinstance(growth, dict):
            self.heap_growth = growth


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


def _opt(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


@dataclass(frozen=True)
class Folded:
    run: Mapping[str, Any] | None  # the ``run`` record (who wrote the journal)
    scenarios: dict[str, PartialScenario]
    skipped: int


def fold(records: Iterable[Mapping[str, Any]], skipped: int = 0) -> Folded:
    """The journal's records summed per scenario, in the order the scenarios started."""
    run: Mapping[str, Any] | None = None
    out: dict[str, PartialScenario] = {}
    for rec in records:
        kind = rec.get("kind")
        if kind == "run" and run is None:
            run = rec
        elif kind == "scenario" and isinstance(rec.get("id"), str):
            header = rec.get("doc")
            out[rec["id"]] = PartialScenario(rec["id"], _num(rec.get("started_at")), _num(rec.get("planned_s")),
                                             dict(header) if isinstance(header, Mapping) else {"id": rec["id"]})
        elif kind == "checkpoint":
            scn = out.get(str(rec.get("scenario")))
            if scn is not None:  # a checkpoint before its scenario's header cannot be placed: dropped
                scn.add(rec)
    return Folded(run, out, skipped)
