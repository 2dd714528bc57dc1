"""Load and validate an SLO file (``slo.toml``) into frozen dataclasses.

The project ships ``harness/slo/slo.toml`` (the SLO tables as data); users can pass their own file
with other thresholds, fewer rows, or extra latency rows for their own operations. Every problem
is reported with the row, the field and the fix, e.g.::

    slo.toml: row 3 (balance_check) field 'thresholds[1].expr': cannot parse 'p95 < 10': write ...
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

from harness.errors import ConfigError
from harness.slo.thresholds import Threshold, parse_threshold

Table = Literal["latency", "throughput", "resources", "quality"]
Level = Literal["target", "minimum", "maximum"]
TABLES: tuple[str, ...] = ("latency", "throughput", "resources", "quality")
LEVELS: tuple[str, ...] = ("target", "minimum", "maximum")

# Rows outside the latency table need a measurement the judge knows; their unit is fixed by it.
KNOWN_ROWS: dict[str, tuple[str, str]] = {
    "transactions_per_sec": ("throughput", "tx/s"),
    "concurrent_operations": ("throughput", "ops"),
    "websocket_messages_per_sec": ("throughput", "msg/s"),
    "api_calls_per_sec": ("throughput", "req/s"),
    "memory_rss": ("resources", "MB"),
    "cpu": ("resources", "%"),
    "network_bandwidth": ("resources", "MB/s"),
    "disk_io": ("resources", "MB/s"),
    "error_rate": ("quality", "ratio"),
    "uptime": ("quality", "ratio"),
    "memory_leak": ("quality", "bytes/h"),
    "regression": ("quality", "ratio"),
    # The harness's own checks, not rows of slo-tables.md.
    "ledger_reconciliation": ("quality", "tx"),
    # ... under the chaos scenarios (harness.slo.chaos_rows)
    "failover_time": ("quality", "ms"),
    "retry_after_honoured": ("quality", "requests"),
    "ws_resubscribed": ("quality", "drops"),
    "slow_endpoint_avoided": ("quality", "ms"),
    "no_trade_lost_or_doubled": ("quality", "tx"),
}
LATENCY_UNITS: tuple[str, ...] = ("ms",)
_ROW_KEYS = {"id", "table", "definition", "unit", "source", "thresholds", "params"}
_THRESHOLD_KEYS = {"expr", "level", "stat"}


@dataclass(frozen=True)
class SloThreshold:
    expr: Threshold
    level: Level
    stat: str

    @property
    def op(self) -> str:
        return self.expr.op

    @property
    def value(self) -> float:
        return self.expr.value


@dataclass(frozen=True)
class SloRow:
    id: str
    table: Table
    definition: str
    unit: str
    source: str
    thresholds: tuple[SloThreshold, ...]
    params: tuple[tuple[str, float | str | bool], ...] = ()

    def param(self, name: str, default: float) -> float:
        for key, val in self.params:
            if key == name:
                if isinstance(val, bool) or not isinstance(val, int | float):
                    raise ConfigError(f"row {self.id} params.{name}: expected a number, got {val!r}")
                return float(val)
        return default

    def param_str(self, name: str, default: str) -> str:
        for key, val in self.params:
            if key == name:
                return str(val)
        return default


@dataclass(frozen=True)
class SloSpec:
    rows: tuple[SloRow, ...]
    origin: str
    schema_version: int = 1

    def row(self, row_id: str) -> SloRow:
        for r in self.rows:
            if r.id == row_id:
                return r
        raise KeyError(row_id)

    def ids(self) -> list[str]:
        return [r.id for r in self.rows]


def _fail(origin: str, where: str, msg: str) -> ConfigError:
    return ConfigError(f"{origin}: {where}: {msg}")


def _text(raw: Mapping[str, Any], key: str, origin: str, where: str) -> str:
    val = raw.get(key)
    if not isinstance(val, str) or not val.strip():
        raise _fail(origin, f"{where} field '{key}'", f"missing or empty: give a non-empty string ({key} = \"...\")")
    return val


def _parse_threshold(raw: Any, origin: str, where: str, table: str) -> SloThreshold:
    if not isinstance(raw, Mapping):
        raise _fail(origin, where, 'each threshold is a table like { expr = "p(95) < 100", level = "target" }')
    unknown = set(raw) - _THRESHOLD_KEYS
    if unknown:
        raise _fail(origin, where, f"unknown key(s) {sorted(unknown)}: allowed are {sorted(_THRESHOLD_KEYS)}")
    expr = parse_threshold(raw.get("expr"), where=f"{origin}: {where}.expr")
    level = raw.get("level", "target")
    if level not in LEVELS:
        raise _fail(origin, f"{where}.level", f"{level!r} is not a level: use one of {', '.join(LEVELS)}")
    # Throughput verdicts are named by their level ("target"/"minimum"), as in results.json.
    default_stat = level if table == "throughput" and expr.aggregate == "value" else expr.stat
    stat = raw.get("stat", default_stat)
    if not isinstance(stat, str) or not stat:
        raise _fail(origin, f"{where}.stat", "give the statistic's name as a string, e.g. \"peak\"")
    if table == "latency" and expr.aggregate not in ("avg", "med", "p"):
        raise _fail(origin, f"{where}.expr", f"a latency threshold must use avg, med or p(N), got {str(expr)!r}")
    return SloThreshold(expr, cast(Level, level), stat)


def _parse_params(raw: Any, origin: str, where: str) -> tuple[tuple[str, float | str | bool], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise _fail(origin, f"{where} field 'params'", "give a table like params = { alpha = 0.05 }")
    out: list[tuple[str, float | str | bool]] = []
    for key, val in raw.items():
        if not isinstance(val, bool | int | float | str):
            raise _fail(origin, f"{where} field 'params.{key}'", f"expected a number, string or boolean, got {val!r}")
        out.append((str(key), val))
    return tuple(out)


def _parse_row(raw: Any, index: int, origin: str) -> SloRow:
    where = f"row {index}"
    if not isinstance(raw, Mapping):
        raise _fail(origin, where, "each row is a [[row]] table")
    if isinstance(raw.get("id"), str):
        where = f"row {index} ({raw['id']})"
    unknown = set(raw) - _ROW_KEYS
    if unknown:
        raise _fail(origin, where, f"unknown field(s) {sorted(unknown)}: allowed are {sorted(_ROW_KEYS)}")
    row_id = _text(raw, "id", origin, where)
    table = _text(raw, "table", origin, where)
    if table not in TABLES:
        raise _fail(origin, f"{where} field 'table'", f"{table!r} is not a table: use one of {', '.join(TABLES)}")
    unit = _text(raw, "unit", origin, where)
    if table == "latency":
        if unit not in LATENCY_UNITS:
            raise _fail(origin, f"{where} field 'unit'", "latency rows are reported in ms: set unit = \"ms\"")
    elif row_id not in KNOWN_ROWS:
        raise _fail(origin, f"{where} field 'id'",
                    f"the harness does not know how to measure {row_id!r} in table {table}: outside the latency "
                    f"table, use one of {', '.join(KNOWN_ROWS)}")
    else:
        want_table, want_unit = KNOWN_ROWS[row_id]
        if table != want_table:
            raise _fail(origin, f"{where} field 'table'", f"{row_id} belongs to table {want_table!r}")
        if unit != want_unit:
            raise _fail(origin, f"{where} field 'unit'",
                        f"{row_id} is reported in {want_unit}: set unit = \"{want_unit}\"")
    thresholds_raw = raw.get("thresholds")
    if not isinstance(thresholds_raw, list) or not thresholds_raw:
        raise _fail(origin, f"{where} field 'thresholds'",
                    'give at least one threshold: thresholds = [ { expr = "p(95) < 100", level = "target" } ]')
    thresholds = tuple(
        _parse_threshold(t, origin, f"{where} field 'thresholds[{i}]'", table) for i, t in enumerate(thresholds_raw)
    )
    seen: set[tuple[str, str]] = set()
    for i, t in enumerate(thresholds):
        if (t.stat, t.level) in seen:
            raise _fail(origin, f"{where} field 'thresholds[{i}]'",
                        f"a second threshold for stat {t.stat!r} at level {t.level!r}: keep one")
        seen.add((t.stat, t.level))
    return SloRow(
        id=row_id,
        table=cast(Table, table),
        definition=_text(raw, "definition", origin, where),
        unit=unit,
        source=_text(raw, "source", origin, where),
        thresholds=thresholds,
        params=_parse_params(raw.get("params"), origin, where),
    )


def parse_spec(data: Mapping[str, Any], *, origin: str = "slo.toml") -> SloSpec:
    """Validate an already-parsed TOML document."""
    version = data.get("schema_version", 1)
    if version != 1:
        raise _fail(origin, "field 'schema_version'", f"{version!r} is not supported: this harness reads version 1")
    unknown = set(data) - {"schema_version", "row"}
    if unknown:
        raise _fail(origin, "top level", f"unknown key(s) {sorted(unknown)}: rows go in [[row]] tables")
    rows_raw = data.get("row")
    if not isinstance(rows_raw, list) or not rows_raw:
        raise _fail(origin, "field 'row'", "no rows: add [[row]] tables (see harness/slo/slo.toml)")
    rows = tuple(_parse_row(r, i, origin) for i, r in enumerate(rows_raw))
    ids = [r.id for r in rows]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise _fail(origin, "rows", f"duplicate row id(s) {dupes}: each id may appear once")
    return SloSpec(rows=rows, origin=origin, schema_version=1)


def loads(text: str, *, origin: str = "slo.toml") -> SloSpec:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML ({exc}); fix the syntax at the position given") from exc
    return parse_spec(data, origin=origin)


def load(path: str | Path) -> SloSpec:
    """Load a user's SLO file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the SLO file ({exc.strerror}); check the path") from exc
    return loads(text, origin=str(p))


def load_default() -> SloSpec:
    """The SLO tables shipped with the project (``harness/slo/slo.toml``)."""
    text = resources.files("harness.slo").joinpath("slo.toml").read_text(encoding="utf-8")
    return loads(text, origin="harness/slo/slo.toml")


def load_spec(path: str | Path | None = None) -> SloSpec:
    """The user's SLO file if given, else the shipped one."""
    return load_default() if path is None else load(path)


def latency_limits_ms(spec: SloSpec) -> dict[str, dict[str, float]]:
    """Latency row -> {stat: threshold in ms} for the target level (e.g. the stress stopping rule)."""
    out: dict[str, dict[str, float]] = {}
    for r in spec.rows:
        if r.table == "latency":
            out[r.id] = {t.stat: t.value for t in r.thresholds if t.level == "target"}
    return out
