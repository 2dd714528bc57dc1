"""The typed results model: what the writer writes is what the reader reads, and it is schema-valid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.report.fixtures import synthetic_results
from harness.results import (
    Annotation,
    Artifacts,
    Interval,
    MarketCapacity,
    MarketStep,
    ResourceSample,
    ResultsError,
    Run,
    Scenario,
    Threshold,
    Verdict,
    load_results,
    parse_results,
    validate_results,
)
from harness.results.writer import ResultsWriter


def _encoded(values: list[int]) -> str:
    h = HdrHistogram(1, 60_000_000, 3)
    for v in values:
        h.record_value(v)
    out: bytes = h.encode()
    return out.decode("ascii")


CONDITIONS = synthetic_results(0)["conditions"]
finite = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)
names = st.from_regex(r"[a-z][a-z0-9_]{0,10}(\.[a-z0-9_]{1,8})?", fullmatch=True)
ids = st.from_regex(r"[a-z][a-z0-9_-]{0,15}", fullmatch=True)
histograms = st.lists(st.integers(1, 10_000_000), min_size=1, max_size=5).map(_encoded)
json_leaf = st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=8) | finite
free = st.dictionaries(st.text(min_size=1, max_size=8), json_leaf, max_size=3)


@st.composite
def intervals(draw: st.DrawFn) -> Interval:
    start = draw(finite)
    return Interval(start, start + draw(finite), draw(st.dictionaries(names, histograms, max_size=3)),
                    draw(st.dictionaries(names, st.integers(0, 2**40), max_size=3)))


resources = st.builds(
    ResourceSample, t=finite, rss_bytes=st.integers(0, 2**40), cpu_percent=finite,
    net_bytes_per_s=st.none() | finite, disk_bytes_per_s=st.none() | finite,
    extra=st.dictionaries(st.from_regex(r"x_[a-z]{1,6}", fullmatch=True), json_leaf, max_size=2),
)


@st.composite
def scenarios(draw: st.DrawFn, sid: str) -> Scenario:
    probes = draw(st.integers(0, 1000))
    return Scenario(
        id=sid, started_at=draw(finite), duration_s=draw(finite),
        schedule={"kind": draw(st.sampled_from(["constant", "ramp", "steps", "burst"])), "rate": 10},
        annotations=tuple(draw(st.lists(st.builds(Annotation, finite, st.text(min_size=1, max_size=8)),
                                        max_size=2))),
        intervals=tuple(draw(st.lists(intervals(), max_size=3))),
        resources=tuple(draw(st.lists(resources, max_size=3))),
        health_probes=probes, health_ok=draw(st.integers(0, probes)),
        summary=draw(free),
        extra={"description": draw(st.text(max_size=10)), "kind": "trading"},
    )


@st.composite
def verdicts(draw: st.DrawFn) -> Verdict:
    lo = draw(finite)
    outcome = draw(st.sampled_from(["pass", "fail", "inconclusive"]))
    return Verdict(
        row=draw(names), table=draw(st.sampled_from(["latency", "throughput", "resources", "quality"])),
        stat=draw(names), unit="ms", scenario=draw(st.none() | ids),
        value=draw(finite if outcome != "inconclusive" else st.none() | finite),
        ci=draw(st.none() | st.just((lo, lo + draw(finite)))),
        confidence=draw(st.floats(0.5, 0.999)),
        threshold=Threshold(draw(st.sampled_from(["<", "<=", ">", ">="])), draw(finite),
                            draw(st.sampled_from(["target", "maximum", "minimum"]))),
        verdict=outcome,
        margin=draw(st.none() | finite), more_time_s=draw(st.none() | finite), note=draw(st.text(max_size=12)),
    )


@st.composite
def runs(draw: st.DrawFn) -> Run:
    scn_ids = draw(st.lists(ids, unique=True, max_size=3))
    return Run(
        run_id=draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)),
        status=draw(st.sampled_from(["partial", "interrupted", "complete"])),
        started_at="2026-12-03T07:00:00+00:00",
        finished_at=draw(st.none() | st.just("2026-12-03T07:05:00+00:00")),
        profile=draw(st.sampled_from(["quick", "full", "soak", "smoke", "custom"])),
        conditions=CONDITIONS,
        scenarios=tuple(draw(scenarios(s)) for s in scn_ids),
        verdicts=tuple(draw(st.lists(verdicts(), max_size=4))),
        artifacts=Artifacts(tuple(draw(st.lists(
            st.tuples(st.sampled_from(["logs", "memray", "profiles", "plots"]),
                      st.from_regex(r"[a-z]{1,8}\.(log|bin|svg)", fullmatch=True)), max_size=4)))),
        extra=draw(st.dictionaries(st.from_regex(r"x_[a-z]{1,6}", fullmatch=True), free, max_size=2)),
    )


@settings(max_examples=30, deadline=None)
@given(runs())
def test_every_run_the_model_writes_is_schema_valid_and_reads_back_equal(run: Run) -> None:
    doc = json.loads(json.dumps(run.to_json()))  # through real JSON text, as on disk
    validate_results(doc)
    back = parse_results(doc)
    assert back == run
    assert back.to_json() == doc


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_a_realistic_document_survives_the_round_trip_unchanged(seed: int) -> None:
    doc = synthetic_results(seed)
    assert parse_results(doc).to_json() == doc


def test_the_writer_checkpoints_a_document_the_reader_loads_as_the_same_run(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path, "r1", "custom", synthetic_results(0)["conditions"])
    scn = synthetic_results(0)["scenarios"][0]
    w.upsert_scenario(scn)
    w.add_error("stress", "locust would not start")
    assert load_results(tmp_path).status == "partial"  # a checkpoint, before finish, is already readable
    w.upsert_scenario({**scn, "duration_s": 99.0})  # replaced by id, not appended
    w.finish("complete")
    read = load_results(tmp_path)
    assert read == w.run
    assert [s.duration_s for s in read.scenarios] == [99.0]
    assert read.extra["x_errors"] == [{"scenario": "stress", "error": "locust would not start"}]


def test_an_invalid_final_document_is_reported_with_its_path_and_kept_on_disk(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path, "r2", "custom", synthetic_results(0)["conditions"])
    scn = synthetic_results(0)["scenarios"][0]
    w.upsert_scenario({**scn, "health": {"probes": 1, "ok": 5}})
    with pytest.raises(ResultsError, match=r"\$\.scenarios\[0\]\.health: ok > probes"):
        w.finish("complete")
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["status"] == "complete" and on_disk["scenarios"][0]["health"]["ok"] == 5


def test_extensions_must_be_marked_as_such(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path, "r3", "custom", synthetic_results(0)["conditions"])
    with pytest.raises(ValueError, match="x_"):
        w.set_extension("memray", {})


def test_a_run_against_a_users_node_records_its_mining_as_unknown_and_stays_valid() -> None:
    from harness.node.endpoint import ExternalNode
    from harness.results import validate_results

    doc = synthetic_results()
    # What --node-url records, as the harness cannot know how a foreign node mines. The schema
    # once rejected it, so every run against a user's node ended in a ResultsError.
    doc["conditions"]["node"]["mining"] = ExternalNode("http://127.0.0.1:8545").mining
    validate_results(doc, "user node")


# --------------------------------------------------------------------- the market-data stress's capacity
rates = st.floats(min_value=1, max_value=1e6, allow_nan=False, allow_infinity=False)
opt = st.none() | finite
market_steps = st.builds(
    MarketStep, rate=rates, start=finite, end=finite, warmup_s=finite, offered=finite, achieved=finite,
    sent=st.integers(0, 2**40), handled=st.integers(0, 2**40), conflated=st.integers(0, 2**40),
    dropped=st.integers(0, 2**40), generator_lag_p99_ms=finite, generator_lag_max_ms=finite,
    generator_bound=st.booleans(), broken=st.sampled_from([None, "dropped", "handled_rate"]),
    undecided=st.booleans(), intervals=st.integers(0, 3600), delivery_p99_ms=opt, tag=st.text(max_size=12),
    phase_after=st.sampled_from(["ramp", "bisect", "done"]), settle_s=opt, handled_wait_s=opt,
    bot_cpu_percent=opt, generator_cpu_percent=opt,
)
capacities = st.builds(
    MarketCapacity, ladder=st.lists(rates, min_size=1, max_size=5).map(tuple),
    resolution=st.floats(0.01, 1.0), last_good=st.none() | rates, breaking_point=st.none() | rates,
    broken_by=st.sampled_from([None, "dropped", "handled_rate"]), generator_bound_at=st.none() | rates,
    resolved=st.booleans(), stop_reason=st.sampled_from([None, "resolved", "ladder_held", "max_steps",
                                                         "generator_bound"]),
    undecided_rates=st.lists(rates, max_size=2).map(tuple), steps=st.lists(market_steps, max_size=4).map(tuple),
)


@settings(max_examples=15, deadline=None)
@given(capacities)
def test_a_capacity_search_is_read_back_as_written_and_the_run_holding_it_is_valid(cap: MarketCapacity) -> None:
    scn = synthetic_results(0)["scenarios"][0]
    run = Run(run_id="r4", status="complete", started_at="2026-12-03T07:00:00+00:00", finished_at=None,
              profile="custom", conditions=CONDITIONS,
              scenarios=(Scenario.from_json({**scn, "id": "websocket_stress",
                                             "summary": {"capacity": cap.to_json()}}),))
    doc = json.loads(json.dumps(run.to_json()))  # through real JSON text, as on disk
    validate_results(doc)
    back = parse_results(doc)
    assert back == run
    assert back.scenarios[0].capacity == cap
    assert MarketCapacity.from_json(cap.to_json()) == cap
    assert cap.describe()  # every state of a search reads as one line


def test_a_capacity_with_a_misspelt_field_is_refused() -> None:
    from harness.results import ResultsError

    step = {**MarketStep(rate=1.0, start=0, end=1, warmup_s=0, offered=1, achieved=1, sent=1, handled=1, conflated=0,
                         dropped=0, generator_lag_p99_ms=0.1, generator_lag_max_ms=0.2, generator_bound=False,
                         broken=None, undecided=False, intervals=1).to_json(), "handeld": 3}
    cap = {**MarketCapacity((1.0,), 0.1, 1.0, None, None, None, False, "ladder_held").to_json(), "steps": [step]}
    doc = synthetic_results(0)
    doc["scenarios"][0]["summary"]["capacity"] = cap
    with pytest.raises(ResultsError, match="handeld"):
        validate_results(doc)
