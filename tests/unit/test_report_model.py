"""results.json validation: the fixture is valid, broken documents fail with the path and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import HarnessError
from harness.results import SLO_ROWS, ResultsError, load_results, parse_results, schema, validate_results
from tests.unit.report_data import results


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())


def test_fixture_is_valid_and_covers_every_slo_row_with_all_outcomes() -> None:
    run = parse_results(results())
    assert {(v.table, v.row) for v in run.verdicts} == set(SLO_ROWS)
    assert run.missing_rows() == ()
    counts = run.counts()
    assert counts["pass"] > 0 and counts["fail"] > 0 and counts["inconclusive"] > 0
    assert [s.id for s in run.scenarios] == ["burst", "sustained", "stress", "soak"]
    assert all(v.more_time_s is not None for v in run.verdicts if v.verdict == "inconclusive")


def test_fixture_is_reproducible_per_seed() -> None:
    from harness.report.fixtures import synthetic_results

    assert synthetic_results(5) == synthetic_results(5)
    assert synthetic_results(5)["verdicts"] != synthetic_results(6)["verdicts"]


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@pytest.mark.parametrize(
    ("path", "value", "where", "words"),
    [
        (("verdicts", 3, "verdict"), "passed", "$.verdicts[3].verdict", "is not one of"),
        (("verdicts", 0, "table"), "speed", "$.verdicts[0].table", "is not one of"),
        (("status",), "done", "$.status", "is not one of"),
        (("schema_version",), 2, "$.schema_version", "schema_version 1 only"),
        (("run_id",), "../etc", "$.run_id", "names the report folder"),
        (("started_at",), "2026-11-25 11:00", "$.started_at", "timezone"),
        (("verdicts", 1, "threshold", "op"), "=<", "$.verdicts[1].threshold.op", "is not one of"),
        (("verdicts", 2, "ci"), [1.0], "$.verdicts[2].ci", "[low, high]"),
        (("scenarios", 1, "intervals", 0, "histograms", "tx_submission"), "not base64!", "tx_submission",
         "encode()"),
        (("scenarios", 0, "resources", 0, "rss_bytes"), -5, "$.scenarios[0].resources[0].rss_bytes", "minimum"),
        (("artifacts", "logs"), ["/etc/passwd"], "$.artifacts.logs[0]", "relative"),
        (("conditions", "node", "mining"), "sometimes", "$.conditions.node.mining", "interval:<n>s"),
    ],
)
def test_broken_documents_name_the_path_and_the_fix(
    path: tuple[Any, ...], value: Any, where: str, words: str
) -> None:
    doc = results()
    _set(doc, path, value)
    with pytest.raises(ResultsError) as info:
        validate_results(doc)
    assert where in str(info.value)
    assert words in str(info.value)
    assert isinstance(info.value, HarnessError)


def test_missing_required_field_and_unknown_key_are_reported() -> None:
    doc = results()
    del doc["verdicts"][0]["threshold"]
    doc["verdicts"][1]["more_time"] = 5  # a typo of more_time_s
    with pytest.raises(ResultsError) as info:
        validate_results(doc)
    msg = str(info.value)
    assert "'threshold' is a required property" in msg
    assert "$.verdicts[1]" in msg and "more_time" in msg and "x_" in msg
    assert len(info.value.problems) == 2


def test_pass_or_fail_needs_a_value_but_inconclusive_may_lack_one() -> None:
    doc = results()
    doc["verdicts"][0].update(value=None, ci=None, verdict="inconclusive")
    parse_results(doc)
    doc["verdicts"][0]["verdict"] = "pass"
    with pytest.raises(ResultsError, match=r"\$\.verdicts\[0\]\.value"):
        validate_results(doc)


def test_semantic_checks_ci_order_interval_order_duplicate_scenarios() -> None:
    doc = results()
    doc["verdicts"][4]["ci"] = [5.0, 1.0]
    doc["scenarios"][0]["intervals"][2]["end"] = -1.0
    doc["scenarios"][2]["id"] = "burst"
    with pytest.raises(ResultsError) as info:
        validate_results(doc)
    msg = str(info.value)
    assert "$.verdicts[4].ci: low 5.0 > high 1.0" in msg
    assert "$.scenarios[0].intervals[2]" in msg
    assert "duplicate scenario id 'burst'" in msg


def test_partial_run_without_scenarios_or_verdicts_is_valid() -> None:
    doc = results()
    doc.update(status="partial", finished_at=None, verdicts=[], scenarios=doc["scenarios"][:1])
    run = parse_results(doc)
    assert run.is_partial
    assert run.missing_rows() == SLO_ROWS
    assert run.counts() == {"pass": 0, "fail": 0, "inconclusive": 0}


def test_runner_extras_in_descriptive_objects_are_accepted() -> None:
    doc = results()
    doc["conditions"]["machine"]["load_avg_at_start"] = [0.5, 0.4, 0.3]
    doc["scenarios"][2]["summary"]["steps"] = [{"rate": 100, "broken": None}]
    doc["artifacts"]["flamegraphs"] = ["profiles/x.svg"]
    doc["x_notes"] = "anything"
    run = parse_results(doc)
    assert ("flamegraphs", "profiles/x.svg") in run.artifacts.all()


def test_load_results_reports_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="cannot read"):
        load_results(tmp_path / "nope.json")
    bad = tmp_path / "results.json"
    bad.write_text('{"schema_version": 1,', encoding="utf-8")
    with pytest.raises(ResultsError, match="not valid JSON at line 1"):
        load_results(tmp_path)  # a folder means its results.json
    bad.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ResultsError, match="expected a JSON object"):
        load_results(bad)
    bad.write_text(json.dumps(results()), encoding="utf-8")
    assert load_results(tmp_path).run_id == results()["run_id"]


_VERDICT_FIELDS = ("row", "table", "stat", "unit", "verdict", "confidence", "threshold")


@settings(max_examples=40, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=30),
    field=st.sampled_from(_VERDICT_FIELDS),
    value=st.one_of(st.integers(), st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=2)),
)
def test_any_bad_verdict_field_is_reported_at_its_index(index: int, field: str, value: Any) -> None:
    doc = results()
    good = doc["verdicts"][index][field]
    doc["verdicts"][index][field] = value
    try:
        validate_results(doc)
    except ResultsError as exc:
        assert any(p.startswith(f"at $.verdicts[{index}]") for p in exc.problems), exc.problems
    else:
        # Only values the schema allows may pass: a non-empty name, or a number for confidence in (0, 1).
        assert field in ("row", "stat", "unit") and isinstance(value, str) and value, (field, value, good)


def test_reprs_show_shape_not_data() -> None:
    run = parse_results(results())
    text = repr(run)
    assert "run_id='20261125-120000-s001'" in text and "'fail': 2" in text and len(text) < 300
    assert repr(run.scenarios[1]) == (
        "Scenario(id='sustained', duration_s=60, intervals=60, resources=61, annotations=0)"
    )


def _without_run_extras(doc: dict[str, Any]) -> dict[str, Any]:
    """A document as runs wrote them before calibration, quiescence and carry-over existed."""
    del doc["conditions"]["calibration"]
    for s in doc["scenarios"]:
        for k in ("settle_s", "quiescence", "carry_over", "generator_lag_max_ms", "generator_behind", "node"):
            s["summary"].pop(k)
    return doc


def test_calibration_and_scenario_isolation_are_read_and_old_documents_lack_them() -> None:
    doc = results()
    run = parse_results(doc)
    cal = run.calibration
    assert cal is not None and cal.as_dict() == doc["conditions"]["calibration"]
    stress, sustained = run.scenario("stress"), run.scenario("sustained")
    assert stress is not None and sustained is not None
    assert stress.generator_behind is True and stress.generator_lag_max_ms == 31.0
    assert sustained.generator_behind is False and sustained.generator_lag_p99_ms == 0.2
    assert sustained.settle_s == 6.3
    q = sustained.quiescence
    assert q is not None and not q.timed_out and (q.in_flight, q.txpool_pending, q.txpool_queued) == (0, 0, 0)
    carry = sustained.carry_over
    assert carry is not None and carry.samples == 16 and carry.tags == ("burst",) and not carry.empty
    assert stress.carry_over is not None and stress.carry_over.empty
    node = sustained.node_state
    assert node is not None and node.reset and (node.block_start, node.block_end, node.rss_mb_max) == (40, 1240, 640.0)

    old = parse_results(_without_run_extras(results()))
    assert old.calibration is None
    s = old.scenarios[0]
    assert (s.settle_s, s.quiescence, s.carry_over, s.generator_lag_max_ms, s.generator_behind, s.node_state) == (
        None, None, None, None, None, None)


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (("conditions", "calibration", "node_mined"), "yes", "$.conditions.calibration.node_mined"),
        (("conditions", "calibration", "node_accept_per_s"), 0, "$.conditions.calibration.node_accept_per_s"),
        (("conditions", "calibration", "cpu_ref_spread"), -0.1, "$.conditions.calibration.cpu_ref_spread"),
        (("conditions", "calibration", "node_ceiling"), 5.0, "$.conditions.calibration"),
        (("scenarios", 1, "summary", "settle_s"), -1.0, "$.scenarios[1].summary.settle_s"),
        (("scenarios", 1, "summary", "node", "reset"), "yes", "$.scenarios[1].summary.node.reset"),
        (("scenarios", 1, "summary", "generator_behind"), "no", "$.scenarios[1].summary.generator_behind"),
        (("scenarios", 1, "summary", "quiescence", "timed_out"), 0, "$.scenarios[1].summary.quiescence.timed_out"),
        (("scenarios", 1, "summary", "carry_over", "histograms", "tx_submission"), -2,
         "$.scenarios[1].summary.carry_over.histograms.tx_submission"),
    ],
)
def test_bad_calibration_or_isolation_keys_are_reported(path: tuple[Any, ...], value: Any, where: str) -> None:
    doc = results()
    _set(doc, path, value)
    with pytest.raises(ResultsError) as info:
        validate_results(doc)
    assert where in str(info.value)


def test_operations_fold_from_tick_and_service_keys_into_their_operation() -> None:
    run = parse_results(results())
    for s in run.scenarios:
        assert s.operations() == ("tx_submission", "price_fetch", "balance_check", "trade_execution")
