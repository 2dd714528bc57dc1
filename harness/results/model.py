"""The typed results model: one run's ``results.json`` as frozen dataclasses, read and written by this code.

Every type here has ``from_json`` (a decoded JSON object in, no validation beyond the keys it needs) and
``to_json`` (the canonical JSON object out). The writer (``harness.results.writer``) keeps a run as these
types and serialises them with ``to_json``; the reader (``harness.results.validate``) validates a document
against the JSON Schema and builds them with ``from_json``. So what is written is exactly what is read:
``Run.from_json(run.to_json()) == run`` for every run (a hypothesis test holds it to that).

Descriptive objects (conditions, a scenario's schedule and summary) stay free-form mappings, as the schema
lets them; keys the schema allows but this model does not name (a scenario's ``description``, ``x_`` keys)
travel in ``extra`` so nothing a writer adds is lost on the way through. The one typed part of a summary is a
market-data stress's ``capacity`` (``harness.results.capacity``: read with ``Scenario.capacity``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.telemetry.gcclock import is_auxiliary_op
from harness.probes.calibration import Calibration
from harness.results.capacity import MarketCapacity
from harness.results.chaos import ChaosResults
from harness.results.faults import FaultsInjected
from harness.results.ledger import LedgerReconciliation

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
STATUSES: tuple[str, ...] = ("partial", "interrupted", "complete")


def base_operation(key: str) -> str:
    """The operation a histogram key belongs to: ``tx_submission.from_tick`` -> ``tx_submission``."""
    for suffix in (SERVICE_SUFFIX, FROM_TICK_SUFFIX):
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _extra(d: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in known}


@dataclass(frozen=True)
class Threshold:
    op: str
    value: float
    level: str

    def describe(self) -> str:
        return f"{self.op} {self.value:g}"

    @classmethod
    def from_json(cls, t: Mapping[str, Any]) -> Threshold:
        return cls(t["op"], float(t["value"]), t["level"])

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "value": self.value, "level": self.level}


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
    # ``x_`` keys (the memory_leak rows' ``x_leak``: slope, CI and minimum detectable leak per signal)
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

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

    @classmethod
    def from_json(cls, v: Mapping[str, Any]) -> Verdict:
        ci = v["ci"]
        return cls(
            row=v["row"], table=v["table"], stat=v["stat"], unit=v["unit"], scenario=v["scenario"],
            value=_opt_float(v["value"]),
            ci=None if ci is None else (float(ci[0]), float(ci[1])),
            confidence=float(v["confidence"]),
            threshold=Threshold.from_json(v["threshold"]),
            verdict=v["verdict"],
            margin=_opt_float(v["margin"]),
            more_time_s=_opt_float(v["more_time_s"]),
            note=v["note"],
            extra={k: x for k, x in v.items() if k.startswith("x_")},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row, "table": self.table, "stat": self.stat, "unit": self.unit,
            "scenario": self.scenario, "value": self.value,
            "ci": None if self.ci is None else [self.ci[0], self.ci[1]],
            "confidence": self.confidence, "threshold": self.threshold.to_json(), "verdict": self.verdict,
            "margin": self.margin, "more_time_s": self.more_time_s, "note": self.note, **self.extra,
        }


@dataclass(frozen=True)
class Interval:
    start: float
    end: float
    histograms: Mapping[str, str]  # operation -> HdrHistogram.encode() (compressed base64)
    counters: Mapping[str, int]

    @property
    def duration(self) -> float:
        return self.end - self.start

    @classmethod
    def from_json(cls, iv: Mapping[str, Any]) -> Interval:
        return cls(float(iv["start"]), float(iv["end"]), dict(iv["histograms"]), dict(iv["counters"]))

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "histograms": dict(self.histograms),
                "counters": dict(self.counters)}


_RESOURCE_KEYS = frozenset({"t", "rss_bytes", "cpu_percent", "net_bytes_per_s", "disk_bytes_per_s"})


@dataclass(frozen=True)
class ResourceSample:
    t: float
    rss_bytes: int
    cpu_percent: float
    net_bytes_per_s: float | None
    disk_bytes_per_s: float | None
    extra: Mapping[str, Any] = field(default_factory=dict)  # ``x_`` keys

    @classmethod
    def from_json(cls, r: Mapping[str, Any]) -> ResourceSample:
        return cls(
            t=float(r["t"]), rss_bytes=int(r["rss_bytes"]), cpu_percent=float(r["cpu_percent"]),
            net_bytes_per_s=_opt_float(r.get("net_bytes_per_s")),
            disk_bytes_per_s=_opt_float(r.get("disk_bytes_per_s")),
            extra=_extra(r, _RESOURCE_KEYS),
        )

    def to_json(self) -> dict[str, Any]:
        return {"t": self.t, "rss_bytes": self.rss_bytes, "cpu_percent": self.cpu_percent,
                "net_bytes_per_s": self.net_bytes_per_s, "disk_bytes_per_s": self.disk_bytes_per_s,
                **self.extra}


@dataclass(frozen=True)
class Annotation:
    t: float
    label: str

    @classmethod
    def from_json(cls, a: Mapping[str, Any]) -> Annotation:
        return cls(float(a["t"]), a["label"])

    def to_json(self) -> dict[str, Any]:
        return {"t": self.t, "label": self.label}


@dataclass(frozen=True)
class NodeState:
    """The node's side of a scenario: reverted before it or not, blocks, and our anvil's resources."""

    reset: bool
    reset_reason: str
    block_start: int | None
    block_end: int | None
    blocks_since_snapshot: int | None  # the chain's growth since the deployment snapshot when the scenario began
    rss_mb_max: float | None  # None: not our process to sample (a user's node)
    rss_mb_end: float | None
    cpu_percent_mean: float | None


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


@dataclass(frozen=True)
class CpuPerTrade:
    """µs of the bot's CPU per completed trade over a window (harness.run.figures), with its CI."""

    value_us: float
    ci_us: tuple[float, float] | None
    confidence: float
    trades: int
    trades_per_s: float
    cpu_percent: float
    note: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CpuPerTrade | None:
        v = _number(d.get("value_us"))
        if v is None:
            return None
        ci = d.get("ci_us")
        return cls(
            value_us=v,
            ci_us=(float(ci[0]), float(ci[1])) if isinstance(ci, list | tuple) and len(ci) == 2 else None,
            confidence=float(d.get("confidence") or 0.95),
            trades=int(d.get("trades") or 0),
            trades_per_s=float(d.get("trades_per_s") or 0.0),
            cpu_percent=float(d.get("cpu_percent") or 0.0),
            note=str(d.get("note") or ""),
        )

    def reference_iterations(self, cpu_ref_per_s: float) -> float:
        """The same CPU in iterations of the calibration's reference loop: the machine's speed cancels."""
        return self.value_us * 1e-6 * cpu_ref_per_s


_SCENARIO_KEYS = frozenset({"id", "started_at", "duration_s", "schedule", "annotations", "intervals",
                            "resources", "health", "summary"})


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
    # Keys the schema allows beside the named ones (the runner's ``description`` and ``kind``; extra
    # health fields under ``health``).
    extra: Mapping[str, Any] = field(default_factory=dict)
    health_extra: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        # The intervals hold kilobytes of base64 each: show the shape, not the data.
        return (f"Scenario(id={self.id!r}, duration_s={self.duration_s:g}, intervals={len(self.intervals)}, "
                f"resources={len(self.resources)}, annotations={len(self.annotations)})")

    @classmethod
    def from_json(cls, s: Mapping[str, Any]) -> Scenario:
        health = s["health"]
        return cls(
            id=s["id"], started_at=float(s["started_at"]), duration_s=float(s["duration_s"]),
            schedule=dict(s["schedule"]),
            annotations=tuple(Annotation.from_json(a) for a in s["annotations"]),
            intervals=tuple(Interval.from_json(iv) for iv in s["intervals"]),
            resources=tuple(ResourceSample.from_json(r) for r in s["resources"]),
            health_probes=int(health["probes"]), health_ok=int(health["ok"]),
            summary=dict(s["summary"]),
            extra=_extra(s, _SCENARIO_KEYS),
            health_extra=_extra(health, frozenset({"probes", "ok"})),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, **self.extra, "started_at": self.started_at, "duration_s": self.duration_s,
            "schedule": dict(self.schedule), "annotations": [a.to_json() for a in self.annotations],
            "intervals": [iv.to_json() for iv in self.intervals],
            "resources": [r.to_json() for r in self.resources],
            "health": {"probes": self.health_probes, "ok": self.health_ok, **self.health_extra},
            "summary": dict(self.summary),
        }

    def operations(self) -> tuple[str, ...]:
        """Operations with any latency histogram (``.service``/``.from_tick`` keys fold into their
        operation), SLO operations first; the collector's auxiliary histograms (``gc_pause.gen0``,
        ``<op>.gc_overlap``: ``bot.telemetry.gcclock``) are not operations."""
        names = {base_operation(k) for iv in self.intervals for k in iv.histograms if not is_auxiliary_op(k)}
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
    def other_percent(self) -> float | None:
        """CPU other processes on this machine took during the scenario (harness.probes.machine)."""
        machine = self.summary.get("machine")
        return _number(machine.get("other_percent")) if isinstance(machine, Mapping) else None

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
    def node_state(self) -> NodeState | None:
        n = self.summary.get("node")
        if not isinstance(n, Mapping):
            return None

        def opt_int(v: Any) -> int | None:
            return int(v) if isinstance(v, int) else None

        return NodeState(reset=bool(n.get("reset")), reset_reason=str(n.get("reset_reason", "")),
                         block_start=opt_int(n.get("block_start")), block_end=opt_int(n.get("block_end")),
                         blocks_since_snapshot=opt_int(n.get("blocks_since_snapshot")),
                         rss_mb_max=_number(n.get("rss_mb_max")), rss_mb_end=_number(n.get("rss_mb_end")),
                         cpu_percent_mean=_number(n.get("cpu_percent_mean")))

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
    def cpu_per_trade(self) -> CpuPerTrade | None:
        c = self.summary.get("cpu_per_trade")
        return CpuPerTrade.from_dict(c) if isinstance(c, Mapping) else None

    @property
    def step_cpu_per_trade(self) -> tuple[tuple[float, CpuPerTrade], ...]:
        """(offered rate, CPU per trade) for each stress step that has one."""
        steps = self.summary.get("steps")
        out = []
        for st in steps if isinstance(steps, list) else ():
            c = st.get("cpu_per_trade") if isinstance(st, Mapping) else None
            fig = CpuPerTrade.from_dict(c) if isinstance(c, Mapping) else None
            rate = _number(st.get("rate")) if isinstance(st, Mapping) else None
            if fig is not None and rate is not None:
                out.append((rate, fig))
        return tuple(out)

    @property
    def breaking_point(self) -> float | None:
        """The lowest stress rate known broken (None: not a stress scenario, or nothing broke)."""
        return _number(self.summary.get("breaking_point"))

    @property
    def last_good(self) -> float | None:
        """The highest stress rate that held every latency row (the ladder's top if nothing broke)."""
        search = self.summary.get("search")
        return _number(search.get("last_good")) if isinstance(search, Mapping) else None

    @property
    def capacity(self) -> MarketCapacity | None:
        """A market-data stress scenario's search and steps (None: not such a scenario)."""
        c = self.summary.get("capacity")
        return MarketCapacity.from_json(c) if isinstance(c, Mapping) else None

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

    def __post_init__(self) -> None:
        # Canonical order, the one results.json groups them in (the three named kinds, then others by
        # first appearance), so a run read back from its document compares equal to the one written.
        first: dict[str, int] = {}
        for kind, _ in self.items:
            first.setdefault(kind, len(first))
        named = ("profiles", "memray", "logs")
        rank = {k: (named.index(k) if k in named else len(named) + i) for k, i in first.items()}
        object.__setattr__(self, "items", tuple(sorted(self.items, key=lambda it: rank[it[0]])))

    def all(self) -> tuple[tuple[str, str], ...]:
        return self.items

    def of(self, kind: str) -> tuple[str, ...]:
        return tuple(p for k, p in self.items if k == kind)

    def with_item(self, kind: str, path: str) -> Artifacts:
        return Artifacts((*self.items, (kind, path)))

    @classmethod
    def from_json(cls, a: Mapping[str, Sequence[str]]) -> Artifacts:
        return cls(tuple((kind, p) for kind, paths in a.items() for p in paths))

    def to_json(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"profiles": [], "memray": [], "logs": []}
        for kind, p in self.items:
            out.setdefault(kind, []).append(p)
        return out


_RUN_KEYS = frozenset({"schema_version", "run_id", "status", "started_at", "finished_at", "profile",
                       "conditions", "scenarios", "verdicts", "artifacts"})


@dataclass(frozen=True)
class Run:
    run_id: str
    status: str
    started_at: str
    finished_at: str | None
    profile: str
    conditions: Mapping[str, Any]
    scenarios: tuple[Scenario, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    artifacts: Artifacts = Artifacts()
    extra: Mapping[str, Any] = field(default_factory=dict)  # top-level ``x_`` extensions, ``faults``, ``ledger``

    def __repr__(self) -> str:
        return (f"Run(run_id={self.run_id!r}, status={self.status!r}, scenarios={[s.id for s in self.scenarios]}, "
                f"verdicts={self.counts()})")

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Run:
        return cls(
            run_id=doc["run_id"], status=doc["status"], started_at=doc["started_at"],
            finished_at=doc["finished_at"], profile=doc["profile"], conditions=dict(doc["conditions"]),
            scenarios=tuple(Scenario.from_json(s) for s in doc["scenarios"]),
            verdicts=tuple(Verdict.from_json(v) for v in doc["verdicts"]),
            artifacts=Artifacts.from_json(doc["artifacts"]),
            extra=_extra(doc, _RUN_KEYS),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION, "run_id": self.run_id, "status": self.status,
            "started_at": self.started_at, "finished_at": self.finished_at, "profile": self.profile,
            "conditions": dict(self.conditions), "scenarios": [s.to_json() for s in self.scenarios],
            "verdicts": [v.to_json() for v in self.verdicts], "artifacts": self.artifacts.to_json(),
            **self.extra,
        }

    @property
    def raw(self) -> dict[str, Any]:
        """The JSON object of this run (what ``results.json`` holds)."""
        return self.to_json()

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
    def faults(self) -> FaultsInjected | None:
        """What the fault proxy injected (None: the run used no proxy). Travels in ``extra`` as ``faults``."""
        f = self.extra.get("faults")
        return FaultsInjected.from_json(f) if isinstance(f, Mapping) else None

    @property
    def ledger(self) -> LedgerReconciliation | None:
        """The bot's ledger reconciled against the chain (None: not reconciled). Travels in ``extra`` as ``ledger``."""
        led = self.extra.get("ledger")
        return LedgerReconciliation.from_json(led) if isinstance(led, Mapping) else None

    @property
    def chaos(self) -> ChaosResults | None:
        """Each chaos scenario's actions, measurements, ledger (None: none ran). Travels in ``extra`` as ``chaos``."""
        c = self.extra.get("chaos")
        return ChaosResults.from_json(c) if isinstance(c, Mapping) else None

    @property
    def calibration(self) -> Calibration | None:
        """The machine calibration measured before the scenarios (None: this run was not calibrated)."""
        c = self.conditions.get("calibration")
        return Calibration.from_dict(c) if isinstance(c, Mapping) else None

    def missing_rows(self) -> tuple[tuple[str, str], ...]:
        """SLO rows (table, row) with no verdict at all in this run."""
        judged = {(v.table, v.row) for v in self.verdicts}
        return tuple(r for r in SLO_ROWS if r not in judged)


def sorted_verdicts(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """Verdicts in SLO-table order (table, row as in slo-tables.md); within a row, as the harness wrote them."""
    row_rank = {r: i for i, r in enumerate(SLO_ROWS)}
    return sorted(
        verdicts,
        key=lambda v: (row_rank.get((v.table, v.row), len(SLO_ROWS)), v.table, v.row),
    )
