"""harness.slo.spec: the shipped slo.toml holds every row of the SLO tables; bad files say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.slo.spec import latency_limits_ms, load, load_default, load_spec, loads

# The SLO tables (/work/shared/slo-tables.md), transcribed: row -> {(stat, level): (op, value)}.
TABLES = {
    "tx_submission": {("mean", "target"): ("<", 50), ("p95", "target"): ("<", 100), ("p99", "target"): ("<", 200)},
    "price_fetch": {("mean", "target"): ("<", 10), ("p95", "target"): ("<", 20), ("p99", "target"): ("<", 50)},
    "balance_check": {("mean", "target"): ("<", 5), ("p95", "target"): ("<", 10), ("p99", "target"): ("<", 25)},
    "trade_execution": {("mean", "target"): ("<", 100), ("p95", "target"): ("<", 200),
                        ("p99", "target"): ("<", 500)},
    "transactions_per_sec": {("target", "target"): (">=", 1000), ("minimum", "minimum"): (">=", 500)},
    "concurrent_operations": {("target", "target"): (">=", 100), ("minimum", "minimum"): (">=", 50)},
    "websocket_messages_per_sec": {("target", "target"): (">=", 10000), ("minimum", "minimum"): (">=", 5000)},
    "api_calls_per_sec": {("target", "target"): (">=", 500), ("minimum", "minimum"): (">=", 250),
                          ("error_rate", "maximum"): ("<", 0.001)},
    "memory_rss": {("peak", "target"): ("<", 256), ("peak", "maximum"): ("<", 512),
                   ("steady", "target"): ("<", 256), ("steady", "maximum"): ("<", 512)},
    "cpu": {("mean", "target"): ("<", 50), ("mean", "maximum"): ("<", 80)},
    "network_bandwidth": {("mean", "target"): ("<", 10), ("mean", "maximum"): ("<", 50)},
    "disk_io": {("mean", "target"): ("<", 1), ("mean", "maximum"): ("<", 10)},
    "error_rate": {("rate", "maximum"): ("<", 0.001)},
    "uptime": {("rate", "minimum"): (">=", 0.999)},
    "memory_leak": {("rss_slope", "maximum"): ("<", 1_000_000)},
    "regression": {("mean_ratio", "maximum"): ("<", 1.05)},
}
# Rows the harness adds of its own (not in slo-tables.md), after the tables' rows.
OWN_ROWS = {
    "ledger_reconciliation": {("lost_or_doubled", "maximum"): ("<=", 0)},
    "failover_time": {("p99", "maximum"): ("<", 1000)},
    "retry_after_honoured": {("early_requests", "maximum"): ("<=", 0)},
    "ws_resubscribed": {("unrecovered_drops", "maximum"): ("<=", 0)},
    "slow_endpoint_avoided": {("mean", "maximum"): ("<", 300)},
    "no_trade_lost_or_doubled": {("lost_or_doubled", "maximum"): ("<=", 0)},
}


def test_shipped_file_has_every_row_of_every_table() -> None:
    spec = load_default()
    assert spec.ids() == [*TABLES, *OWN_ROWS]
    for row in spec.rows:
        got = {(t.stat, t.level): (t.op, t.value) for t in row.thresholds}
        assert got == {**TABLES, **OWN_ROWS}[row.id], row.id
        assert row.definition and row.source and row.unit


def test_load_spec_default_and_user_file(tmp_path: Path) -> None:
    assert load_spec(None).ids() == [*TABLES, *OWN_ROWS]
    f = tmp_path / "mine.toml"
    f.write_text(GOOD)
    spec = load_spec(f)
    assert spec.ids() == ["quote_fetch"] and spec.origin == str(f)
    assert latency_limits_ms(spec) == {"quote_fetch": {"p99": 20.0}}
    assert latency_limits_ms(load_default())["trade_execution"] == {"mean": 100.0, "p95": 200.0, "p99": 500.0}


GOOD = """
[[row]]
id = "quote_fetch"
table = "latency"
definition = "a custom operation"
unit = "ms"
source = "scenario sustained"
thresholds = [ { expr = "p(99) < 20" } ]
"""


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (GOOD.replace('"p(99) < 20"', '"p99 < 20"'), ["row 0 (quote_fetch)", "thresholds[0]", "p(N)"]),
        (GOOD.replace('table = "latency"', 'table = "speed"'), ["row 0 (quote_fetch) field 'table'", "latency"]),
        (GOOD.replace('unit = "ms"', 'unit = "s"'), ["field 'unit'", 'unit = "ms"']),
        (GOOD.replace('id = "quote_fetch"', 'id = "quote_fetch"\nfoo = 1'), ["unknown field", "foo"]),
        (GOOD.replace('definition = "a custom operation"\n', ""), ["field 'definition'", "missing"]),
        (GOOD.replace("thresholds = [ { expr = \"p(99) < 20\" } ]", "thresholds = []"), ["at least one threshold"]),
        (GOOD.replace('{ expr = "p(99) < 20" }', '{ expr = "p(99) < 20", level = "goal" }'), ["level", "target"]),
        (GOOD.replace('{ expr = "p(99) < 20" }', '{ expr = "max < 20" }'), ["latency threshold"]),
        (GOOD.replace('{ expr = "p(99) < 20" }', '{ expr = "p(99) < 20" }, { expr = "p(99) < 30" }'),
         ["second threshold"]),
        (GOOD + GOOD, ["duplicate row id"]),
        (GOOD.replace('id = "quote_fetch"', 'id = "gpu"').replace('"latency"', '"resources"'),
         ["does not know how to measure 'gpu'"]),
        (GOOD.replace('id = "quote_fetch"', 'id = "cpu"').replace('"latency"', '"resources"'),
         ["cpu is reported in %"]),
        ("schema_version = 2\n" + GOOD, ["schema_version", "version 1"]),
        ("[[row]\n", ["not valid TOML"]),
        ("", ["no rows"]),
    ],
)
def test_bad_files_name_the_row_field_and_fix(text: str, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as exc:
        loads(text, origin="my.toml")
    msg = str(exc.value)
    assert msg.startswith("my.toml")
    for n in needles:
        assert n in msg, (n, msg)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read the SLO file"):
        load("/nonexistent/slo.toml")


def test_params_are_typed() -> None:
    spec = load_default()
    assert spec.row("memory_leak").param("warmup_fraction", 0.5) == 0.2
    assert spec.row("regression").param_str("correction", "bh") == "holm"
    assert spec.row("cpu").param("anything", 7.0) == 7.0
    with pytest.raises(ConfigError, match="expected a number"):
        spec.row("regression").param("correction", 0.0)
