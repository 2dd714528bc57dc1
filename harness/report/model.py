"""The results.json model: load, validate and view one run.

``results.json`` (schema_version 1, see docs/DESIGN.md and ``results.schema.json`` beside this file) is
written by the harness and is the only input of every report. This module validates a document against
the JSON Schema plus the few rules a schema cannot express (``ci`` low <= high, interval end >= start),
and turns it into small frozen dataclasses the renderers can rely on.

Errors name the place in the document (``$.verdicts[3].verdict``), what is wrong, and when the schema
says how, the fix. Partial and interrupted runs are valid documents: they may have fewer scenarios,
fewer intervals and missing verdicts; ``missing_rows`` tells the report which SLO rows were not judged
so nothing disappears silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.probes.calibration import Calibration

SCHEMA_VERSION = 1

# The SLO rows of /work/shared/slo-tables.md, in table order. Every full report must show each of them;
# a row with no verdict is shown as "not judged" rather than dropped.
SLO_ROWS: tuple[tuple[str, str], ...] = (
    ("latency", "tx_submission"),
    ("latency", "price_fetch"),
    ("latency", "balance_check"),
    ("latency", "trade_execution"),
    ("throughput", "transactions_per_sec"),
    ("throughput", "concurrent_operations"),
    ("throughput", "websocket_messages_per_sec"),
    ("throughput", "api_calls_per_sec"),
    ("resources", "memory_rss"),
    ("resources", "cpu"),
    ("resources", "network_bandwidth"),
    ("resources", "disk_io"),
    ("quality", "error_rate"),
    ("quality", "uptime"),
    ("quality", "memory_leak"),
    ("quality", "regression"),
)
TABLE_ORDER: tuple[str, ...] = ("latency", "throughput", "resources", "quality")
LATENCY_OPERATIONS: tuple[str, ...] = ("tx_submission", "price_fetch", "balance_check", "trade_execution")
SERVICE_SUFFIX = ".service"
FROM_TICK_SUFFIX = ".from_tick"
# Operations the bot records as their own time under the bare key (service time, which their SLO rows
# judge), with ``<op>.from_tick`` from the tick's scheduled time (corrected). Every other operation
# (trade_execution, the load generators' operations) is corrected under the bare key, ``<op>.service``.
OWN_TIME_OPERATIONS: tuple[str, ...] = ("tx_submission", "price_fetch", "balance_check")
THROUGHPUT_UNITS: tuple[str, ...] = ("tx/s", "msg/s", "req/s")


def base_operation(key: str) -> str:
    """The operation a histogram key belongs to: ``tx_submission.from_tick`` -> ``tx_submission``."""
    for suffix in (SERVICE_SUFFIX, FROM_TICK_SUFFIX):
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


class ResultsError(HarnessError):
    """A results.json document is unreadable or invalid; the message lists every problem with its path."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        shown = "\n  ".join(self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n  {shown}{more}")


@dataclass(frozen=True)
class Threshold:
    op: str
    value: float
    level: str

    def describe(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass(frozen=True)
class Verdict:
    row: str
    table: str
    stat: str
    unit: str
    scenario: str | None
    value: float | None
    ci: tuple[float, float] | None
    confidence: float
    threshold: Threshold
    verdict: str
    margin: float | None
    more_time_s: float | None
    note: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity of a verdict row across runs (used by history and compare)."""
        return (self.table, self.row, self.stat, self.scenario or "")

    @property
    def label(self) -> str:
        """``row.stat [scenario]``: the JUnit test name and the compare/history row label."""
        scen = f" [{self.scenario}]" if self.scenario else ""
        return f"{self.row}.{self.stat}{scen}"

    @property
    def lower_is_better(self) -> bool:
        return self.threshold.op in ("<", "<=")


@dataclass(frozen=True)
class Interval:
    start: float
    end: float
    histograms: Mapping[str, str]
    counters: Mapping[str, int]

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class ResourceSample:
    t: float
    rss_bytes: int
    cpu_percent: float
    net_bytes_per_s: float | None
    disk_bytes_per_s: float | None


@dataclass(frozen=True)
class Annotation:
    t: float
    label: str


@dataclass(frozen=True)
class Quiescence:
    """What the runner saw when it stopped waiting for quiet before the scenario."""

    in_flight: int
    txpool_pending: int
    txpool_queued: int
    bot_cpu_percent: float
    timed_out: bool
    busy: tuple[str, ...]  # what was still running at a time-out (empty when quiet)


@dataclass(frozen=True)
class CarryOver:
    """Operations inside this scenario's window caused by an earlier scenario's ticks (reported, never judged)."""

    histograms: Mapping[str, int]  # operation -> samples
    counters: Mapping[str, int]
    tags: tuple[str, ...]

    @property
    def samples(self) -> int:
        return sum(self.histograms.values())

    @property
    def empty(self) -> bool:
        return not any(self.histograms.values()) and not any(self.counters.values())


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


@dataclass(frozen=True)
class Scenario:
    id: str
    started_at: float
    duration_s: float
    schedule: Mapping[str, Any]
    annotations: tuple[Annotation, ...]
    intervals: tuple[Interval, ...]
    resources: tuple[ResourceSample, ...]
    health_probes: int
    health_ok: int
    summary: Mapping[str, Any]

    def __repr__(self) -> str:
        # The intervals hold kilobytes of base64 each: show the shape, not the data.
        return (f"Scenario(id={self.id!r}, duration_s={self.duration_s:g}, intervals={len(self.intervals)}, "
                f"resources={len(self.resources)}, annotations={len(self.annotations)})")

    def operations(self) -> tuple[str, ...]:
        """Operations with any latency histogram (``.service``/``.from_tick`` keys fold into their
        operation), SLO operations first."""
        names = {base_operation(k) for iv in self.intervals for k in iv.histograms}
        first = [op for op in LATENCY_OPERATIONS if op in names]
        return (*first, *sorted(names - set(first)))

    def has_key(self, key: str) -> bool:
        return any(key in iv.histograms for iv in self.intervals)

    # The runner's per-scenario summary is free-form (older runs lack these keys): typed reads, None if absent.
    @property
    def settle_s(self) -> float | None:
        return _number(self.summary.get("settle_s"))

    @property
    def steal_percent(self) -> float | None:
        """CPU the host took from this machine during the scenario (harness.probes.machine)."""
        machine = self.summary.get("machine")
        return _number(machine.get("steal_percent")) if isinstance(machine, Mapping) else None

    @property
    def generator_lag_p99_ms(self) -> float | None:
        return _number(self.summary.get("generator_lag_p99_ms"))

    @property
    def generator_lag_max_ms(self) -> float | None:
        return _number(self.summary.get("generator_lag_max_ms"))

    @property
    def generator_behind(self) -> bool | None:
        v = self.summary.get("generator_behind")
        return v if isinstance(v, bool) else None

    @property
    def quiescence(self) -> Quiescence | None:
        q = self.summary.get("quiescence")
        if not isinstance(q, Mapping):
            return None
        busy = q.get("busy")
        return Quiescence(
            in_flight=int(q.get("in_flight") or 0),
            txpool_pending=int(q.get("txpool_pending") or 0),
            txpool_queued=int(q.get("txpool_queued") or 0),
            bot_cpu_percent=float(q.get("bot_cpu_percent") or 0.0),
            timed_out=bool(q.get("timed_out")),
            busy=tuple(str(b) for b in busy) if isinstance(busy, list) else (),
        )

    @property
    def carry_over(self) -> CarryOver | None:
        c = self.summary.get("carry_over")
        if not isinstance(c, Mapping):
            return None
        tags = c.get("tags")
        return CarryOver(
            histograms={str(k): int(v) for k, v in (c.get("histograms") or {}).items()},
            counters={str(k): int(v) for k, v in (c.get("counters") or {}).items()},
            tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        )


@dataclass(frozen=True)
class Artifacts:
    """Files the run left beside results.json, by kind (profiles, memray, logs, and any other kind)."""

    items: tuple[tuple[str, str], ...] = ()

    def all(self) -> tuple[tuple[str, str], ...]:
        return self.items

    def of(self, kind: str) -> tuple[str, ...]:
        return tuple(p for k, p in self.items if k == kind)


@dataclass(frozen=True)
class Run:
    run_id: str
    status: str
    started_at: str
    finished_at: str | None
    profile: str
    conditions: Mapping[str, Any]
    scenarios: tuple[Scenario, ...]
    verdicts: tuple[Verdict, ...]
    artifacts: Artifacts
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    def __repr__(self) -> str:
        return (f"Run(run_id={self.run_id!r}, status={self.status!r}, scenarios={[s.id for s in self.scenarios]}, "
                f"verdicts={self.counts()})")

    @property
    def is_partial(self) -> bool:
        return self.status != "complete"

    def scenario(self, scenario_id: str) -> Scenario | None:
        return next((s for s in self.scenarios if s.id == scenario_id), None)

    def counts(self) -> dict[str, int]:
        """Verdict counts by outcome, with every outcome present (zero when absent)."""
        out = {"pass": 0, "fail": 0, "inconclusive": 0}
        for v in self.verdicts:
            out[v.verdict] += 1
        return out

    @property
    def calibration(self) -> Calibration | None:
        """The machine calibration measured before the scenarios (None: this run was not calibrated)."""
        c = self.conditions.get("calibration")
        return Calibration.from_dict(c) if isinstance(c, Mapping) else None

    def missing_rows(self) -> tuple[tuple[str, str], ...]:
        """SLO rows (table, row) with no verdict at all in this run."""
        judged = {(v.table, v.row) for v in self.verdicts}
        return tuple(r for r in SLO_ROWS if r not in judged)


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of results.json, loaded once from the package data."""
    text = resources.files("harness.report").joinpath("results.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _json_path(parts: Sequence[object]) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _schema_problems(doc: Any) -> list[str]:
    import jsonschema  # deferred: importing jsonschema costs ~0.1 s and only validation needs it

    validator = jsonschema.Draft202012Validator(schema())
    problems: list[tuple[str, str]] = []
    for err in validator.iter_errors(doc):
        # A failed oneOf/anyOf reports its branches as context; the deepest one is the useful message.
        best = jsonschema.exceptions.best_match([err])
        fix = best.schema.get("x-fix") if isinstance(best.schema, dict) else None
        if fix is None and isinstance(err.schema, dict):
            fix = err.schema.get("x-fix")
        msg = best.message
        if best.validator == "additionalProperties" and isinstance(best.instance, dict):
            msg += " (unknown keys are rejected as likely typos; prefix extensions with 'x_')"
        path = _json_path(list(best.absolute_path))
        problems.append((path, f"at {path}: {msg}" + (f"; fix: {fix}" if fix else "")))
    problems.sort()
    return [p for _, p in problems]


def _semantic_problems(doc: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for i, v in enumerate(doc.get("verdicts", [])):
        ci = v.get("ci")
        if isinstance(ci, list) and len(ci) == 2 and ci[0] > ci[1]:
            problems.append(f"at $.verdicts[{i}].ci: low {ci[0]} > high {ci[1]}; fix: write [low, high]")
    seen: set[str] = set()
    for s_i, s in enumerate(doc.get("scenarios", [])):
        sid = s.get("id")
        if sid in seen:
            problems.append(f"at $.scenarios[{s_i}].id: duplicate scenario id {sid!r}; fix: ids must be unique")
        seen.add(sid)
        for i_i, iv in enumerate(s.get("intervals", [])):
            if iv.get("end", 0) < iv.get("start", 0):
                problems.append(
                    f"at $.scenarios[{s_i}].intervals[{i_i}]: end {iv['end']} < start {iv['start']}; "
                    "fix: start/end are seconds from the scenario start, end >= start"
                )
        health = s.get("health", {})
        if health.get("ok", 0) > health.get("probes", 0):
            problems.append(f"at $.scenarios[{s_i}].health: ok > probes; fix: ok counts answered probes")
    return problems


def validate_results(doc: Any, source: str = "results.json") -> None:
    """Raise ``ResultsError`` listing every problem of ``doc``; return quietly when it is valid."""
    problems = _schema_problems(doc)
    if not problems and isinstance(doc, Mapping):
        problems = _semantic_problems(doc)
    if problems:
        raise ResultsError(source, problems)


def parse_results(doc: Mapping[str, Any], source: str = "results.json") -> Run:
    """Validate ``doc`` and build the typed view of it."""
    validate_results(doc, source)
    return Run(
        run_id=doc["run_id"],
        status=doc["status"],
        started_at=doc["started_at"],
        finished_at=doc["finished_at"],
        profile=doc["profile"],
        conditions=doc["conditions"],
        scenarios=tuple(_scenario(s) for s in doc["scenarios"]),
        verdicts=tuple(_verdict(v) for v in doc["verdicts"]),
        artifacts=Artifacts(tuple((kind, p) for kind, paths in doc["artifacts"].items() for p in paths)),
        raw=doc,
    )


def load_results(path: Path) -> Run:
    """Read, validate and parse a results.json file (or a run folder containing one)."""
    if path.is_dir():
        path = path / "results.json"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultsError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(
            str(path), [f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"]
        ) from exc
    if not isinstance(doc, dict):
        raise ResultsError(str(path), [f"at $: expected a JSON object, got {type(doc).__name__}"])
    return parse_results(doc, str(path))


def _scenario(s: Mapping[str, Any]) -> Scenario:
    return Scenario(
        id=s["id"],
        started_at=float(s["started_at"]),
        duration_s=float(s["duration_s"]),
        schedule=s["schedule"],
        annotations=tuple(Annotation(float(a["t"]), a["label"]) for a in s["annotations"]),
        intervals=tuple(
            Interval(float(iv["start"]), float(iv["end"]), iv["histograms"], iv["counters"])
            for iv in s["intervals"]
        ),
        resources=tuple(
            ResourceSample(
                t=float(r["t"]),
                rss_bytes=int(r["rss_bytes"]),
                cpu_percent=float(r["cpu_percent"]),
                net_bytes_per_s=r.get("net_bytes_per_s"),
                disk_bytes_per_s=r.get("disk_bytes_per_s"),
            )
            for r in s["resources"]
        ),
        health_probes=int(s["health"]["probes"]),
        health_ok=int(s["health"]["ok"]),
        summary=s["summary"],
    )


def _verdict(v: Mapping[str, Any]) -> Verdict:
    ci = v["ci"]
    t = v["threshold"]
    return Verdict(
        row=v["row"],
        table=v["table"],
        stat=v["stat"],
        unit=v["unit"],
        scenario=v["scenario"],
        value=None if v["value"] is None else float(v["value"]),
        ci=None if ci is None else (float(ci[0]), float(ci[1])),
        confidence=float(v["confidence"]),
        threshold=Threshold(t["op"], float(t["value"]), t["level"]),
        verdict=v["verdict"],
        margin=None if v["margin"] is None else float(v["margin"]),
        more_time_s=None if v["more_time_s"] is None else float(v["more_time_s"]),
        note=v["note"],
    )


def sorted_verdicts(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """Verdicts in SLO-table order (table, row as in slo-tables.md); within a row, as the harness wrote them."""
    row_rank = {r: i for i, r in enumerate(SLO_ROWS)}
    return sorted(
        verdicts,
        key=lambda v: (row_rank.get((v.table, v.row), len(SLO_ROWS)), v.table, v.row),
    )
