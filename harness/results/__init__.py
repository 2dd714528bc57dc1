"""One run's ``results.json``: the typed model, its JSON Schema, the reader and the writer.

``results.json`` (schema_version 1, JSON Schema in ``results.schema.json`` beside this file, see
docs/DESIGN.md) is written by ``ResultsWriter`` while the harness runs and is the only input of every
report. Both sides go through the same frozen types (``Run``, ``Scenario``, ``Verdict`` ...), so what is
written is what is read. Invalid input raises ``ResultsError`` (a ``HarnessError``) naming each problem's
place in the document and, where the schema says, the fix.

This package imports neither ``harness.run`` nor ``harness.report``: both depend on it.
"""

from harness.results.capacity import MarketCapacity, MarketStep
from harness.results.model import (
    FROM_TICK_SUFFIX,
    LATENCY_OPERATIONS,
    OWN_TIME_OPERATIONS,
    SCHEMA_VERSION,
    SERVICE_SUFFIX,
    SLO_ROWS,
    TABLE_ORDER,
    THROUGHPUT_UNITS,
    Annotation,
    Artifacts,
    CarryOver,
    Interval,
    Quiescence,
    ResourceSample,
    Run,
    Scenario,
    Threshold,
    Verdict,
    base_operation,
    sorted_verdicts,
)
from harness.results.validate import ResultsError, load_results, parse_results, schema, validate_results

__all__ = [
    "FROM_TICK_SUFFIX", "LATENCY_OPERATIONS", "OWN_TIME_OPERATIONS", "SCHEMA_VERSION", "SERVICE_SUFFIX",
    "SLO_ROWS", "TABLE_ORDER", "THROUGHPUT_UNITS", "Annotation", "Artifacts", "CarryOver", "Interval",
    "MarketCapacity", "MarketStep", "Quiescence", "ResourceSample", "ResultsError", "Run", "Scenario", "Threshold",
    "Verdict",
    "base_operation", "load_results", "parse_results", "schema", "sorted_verdicts", "validate_results",
]
