"""A/A proof: agreement, flips, CV, the exit code, and the runner around `harness run`."""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.proof._tables import AATables
from harness.proof.aa import (
    ProofOptions,
    agreement_table,
    build_tables,
    coefficient_of_variation,
    exit_code,
    history_table,
    keyed_verdicts,
    modal_verdict,
    pairs_for,
    parse_args,
    proof_outcome,
    run_once,
    run_proof,
    summarize,
)
from tests.unit.report_data import results

OUTCOME = st.sampled_from(["pass", "fail", "inconclusive"])


def _verdict(row: str, verdict: str, value: float | None = 1.0, *, stat: str = "mean", level: str = "target",
             scenario: str | None = "sustained") -> dict[str, Any]:
    return {"row": row, "table": "latency", "stat": stat, "unit": "ms", "scenario": scenario, "value": value,
            "ci": None if value is None else [value * 0.9, value * 1.1], "confidence": 0.95,
            "threshold": {"op": "<", "value": 50.0, "level": level}, "verdict": verdict, "margin": None,
            "more_time_s": None, "note": ""}


def _doc(i: int, verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Just what the agreement and history tables read (the comparisons need whole documents)."""
    return {"run_id": f"run-{i}", "started_at": f"2026-11-25T1{i}:00:00+00:00", "verdicts": verdicts}


def _docs(columns: list[list[str]]) -> list[dict[str, Any]]:
    """``columns[r]`` = the verdicts of row ``r`` in each run."""
    n = len(columns[0])
    return [_doc(i, [_verdict(f"row{r}", col[i]) for r, col in enumerate(columns)]) for i in range(n)]


@cache
def _aa_tables(*seeds: int) -> AATables:
    # build_tables compares every pair (block bootstraps): about half a second per pair, so share it.
    return build_tables([results(s) for s in seeds])


# ------------------------------------------------------------------------------------------ pure parts
def test_cv_is_the_sample_std_over_the_mean() -> None:
    assert coefficient_of_variation([1.0, 2.0, 3.0]) == pytest.approx(0.5)  # std (ddof 1) 1, mean 2
    assert coefficient_of_variation([-1.0, -2.0, -3.0]) == pytest.approx(0.5)  # |mean|
    assert coefficient_of_variation([0.1, 0.1, 0.1]) == 0.0
    assert math.isnan(coefficient_of_variation([4.0]))
    assert math.isnan(coefficient_of_variation([]))
    assert coefficient_of_variation([-1.0, 1.0]) == math.inf


def test_modal_verdict_breaks_ties_in_a_fixed_order() -> None:
    assert modal_verdict(["fail", "pass"]) == ("pass", 0.5)
    modal, share = modal_verdict(["inconclusive", "fail", "fail"])
    assert modal == "fail" and share == pytest.approx(2 / 3)
    assert modal_verdict(["inconclusive", "fail", "inconclusive", "fail"])[0] == "fail"


def test_pairs_are_all_pairs_up_to_six_runs_then_consecutive() -> None:
    assert pairs_for(3) == [(0, 1), (0, 2), (1, 2)]
    assert len(pairs_for(6)) == 15
    assert pairs_for(7) == [(i, i + 1) for i in range(6)]
    assert pairs_for(3, "consecutive") == [(0, 1), (1, 2)]
    assert len(pairs_for(8, "all")) == 28


def test_agreement_table_counts_runs_flips_and_spread() -> None:
    docs = [_doc(0, [_verdict("a", "pass", 10.0), _verdict("b", "pass", 1.0)]),
            _doc(1, [_verdict("a", "pass", 12.0), _verdict("b", "inconclusive", 1.0)]),
            _doc(2, [_verdict("a", "pass", 14.0), _verdict("b", "fail", 1.0)])]
    t = agreement_table(docs).set_index("key")
    a, b = t.loc["a.mean@target"], t.loc["b.mean@target"]
    assert list(a[["run_1", "run_2", "run_3"]]) == ["pass", "pass", "pass"]
    assert a["agreement"] == 1.0 and not a["flips"] and a["modal"] == "pass"
    assert (a["mean"], a["std"], a["min"], a["max"]) == (12.0, 2.0, 10.0, 14.0)
    assert a["cv"] == pytest.approx(2.0 / 12.0)
    assert b["agreement"] == pytest.approx(1 / 3) and b["flips"]  # pass and fail: the serious failure
    assert b["cv"] == 0.0


def test_a_row_missing_from_a_run_is_a_disagreement_not_a_smaller_sample() -> None:
    docs = [_doc(0, [_verdict("a", "pass"), _verdict("b", "pass")]), _doc(1, [_verdict("a", "pass")])]
    t = agreement_table(docs).set_index("key")
    assert t.loc["b.mean@target", "run_2"] == "missing"
    assert t.loc["b.mean@target", "agreement"] == 0.5 and t.loc["b.mean@target", "n_runs"] == 1
    assert not t.loc["b.mean@target", "flips"]


def test_key_is_row_stat_level_and_a_scenario_only_tells_duplicates_apart() -> None:
    # A row may name different scenarios run to run (uptime "burst+sustained" vs "sustained"): one key.
    docs = [_doc(0, [_verdict("uptime", "pass", scenario="burst+sustained")]),
            _doc(1, [_verdict("uptime", "pass", scenario="sustained")])]
    t = agreement_table(docs)
    assert list(t["key"]) == ["uptime.mean@target"] and t["agreement"].iloc[0] == 1.0
    assert t["scenario"].iloc[0] == "burst+sustained|sustained"
    # Two thresholds of one row are two keys; the fixture judges tx_submission.p99 in burst and sustained.
    keys = set(keyed_verdicts(results(1)))
    assert {"tx_submission.p99@target [burst]", "tx_submission.p99@target [sustained]",
            "transactions_per_sec.target@target", "transactions_per_sec.minimum@minimum"} <= keys
    assert len(keys) == len(results(1)["verdicts"])


def test_the_regression_row_of_a_run_without_baseline_is_not_applicable() -> None:
    # Run 1 of a proof has no baseline: one undecided "mean_ratio" verdict; later runs one per operation.
    first = _doc(0, [_verdict("a", "pass"), _verdict("regression", "inconclusive", None, stat="mean_ratio")])
    later = [_doc(i, [_verdict("a", "pass"), _verdict("regression", v, 0.9, stat="tx_submission.mean_ratio")])
             for i, v in ((1, "pass"), (2, "inconclusive"))]
    for d in later:
        d["conditions"] = {"baseline_run": "run-0"}
    t = agreement_table([first, *later]).set_index("key")
    assert list(t.index) == ["a.mean@target", "regression.tx_submission.mean_ratio@target"]
    reg = t.loc["regression.tx_submission.mean_ratio@target"]
    assert (reg["run_1"], reg["run_2"], reg["run_3"], reg["n_runs"]) == ("n/a", "pass", "inconclusive", 2)
    assert reg["agreement"] == 0.5  # of the two runs that could judge it
    assert len(history_table([first, *later])) == 6  # the history keeps every verdict as written


def test_history_has_one_line_per_run_and_verdict() -> None:
    docs = [results(1), results(2)]
    h = history_table(docs)
    assert len(h) == sum(len(d["verdicts"]) for d in docs)
    assert set(h["run_id"]) == {docs[0]["run_id"], docs[1]["run_id"]}
    first = h.iloc[0]
    v = docs[0]["verdicts"][0]
    assert (first["value"], first["ci_lo"], first["ci_hi"], first["verdict"]) == (v["value"], *v["ci"], v["verdict"])
    assert first["started_at"] == docs[0]["started_at"]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(OUTCOME, min_size=2, max_size=7), min_size=1, max_size=5).flatmap(
    lambda rows: st.just([r[:min(map(len, rows))] for r in rows])))
def test_agreement_is_one_iff_all_runs_agree_and_a_flip_iff_pass_and_fail(columns: list[list[str]]) -> None:
    t = agreement_table(_docs(columns))
    assert len(t) == len(columns)
    for col, (_, rec) in zip(columns, t.iterrows(), strict=True):
        assert (rec["agreement"] == 1.0) == (len(set(col)) == 1)
        assert bool(rec["flips"]) == ({"pass", "fail"} <= set(col))
        assert rec["agreement"] == max(col.count(v) for v in set(col)) / len(col)
        assert 1.0 / len(col) <= rec["agreement"] <= 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(OUTCOME, min_size=3, max_size=3), min_size=1, max_size=6),
       st.floats(min_value=0.0, max_value=1.0))
def test_exit_code_follows_flips_and_agreement(columns: list[list[str]], minimum: float) -> None:
    docs = _docs(columns)
    tables = AATables(tuple(d["run_id"] for d in docs), agreement_table(docs), history_table(docs),
                      build_tables([]).comparisons, "all")  # no comparisons: judged on verdicts alone
    flips = any({"pass", "fail"} <= set(c) for c in columns)
    overall = sum(max(c.count(v) for v in c) / 3 for c in columns) / len(columns)
    assert exit_code(tables, min_agreement=minimum) == (1 if flips or overall < minimum - 1e-12 else 0)
    assert exit_code(tables, min_agreement=minimum, harness_errors=1) == 3


# ----------------------------------------------------------------------- whole synthetic documents
def test_a_a_of_synthetic_runs_holds() -> None:
    t = _aa_tables(1, 2, 4)
    s = summarize(t)
    assert s["exit_code"] == 0, s["reasons"]
    assert s["flips"] == [] and s["significant_changes"] == []
    assert s["pairing"] == "all" and len(s["pairs"]) == 3
    assert all(p["regression"] == p["improvement"] == 0 for p in s["pairs"])
    assert s["overall_agreement"] >= 0.95
    # every row but the regression row, itself a comparison against each run's own baseline
    assert len(t.comparisons) == 3 * len([v for v in results(1)["verdicts"] if v["row"] != "regression"])
    json.dumps(s, allow_nan=False)  # aa.json: no NaN or inf sneaks through


def test_identical_runs_agree_fully_with_zero_cv() -> None:
    doc = results(1)
    t = agreement_table([doc, doc, doc])
    assert (t["agreement"] == 1.0).all() and not t["flips"].any()
    measured = t[t["n_values"] == 3]
    assert len(measured) > 20 and (measured["cv"] == 0.0).all() and (measured["std"] == 0.0).all()


def test_a_planted_slowdown_is_a_significant_change_and_fails_the_proof() -> None:
    t = _aa_tables(1, 2)
    # 2x: beyond the run-to-run spread (25%) plus the 10 ms floor of a p99 (harness.stats.noise)
    slow = build_tables([results(1), results(2, trade_execution=2.0)])
    changes = slow.significant_changes()
    assert {(c["row"], c["stat"], c["verdict"]) for c in changes} == {
        ("trade_execution", s, "regression") for s in ("mean", "p95", "p99")}
    assert all((c["base_run"], c["head_run"]) == (1, 2) for c in changes)
    code, reasons = proof_outcome(slow)
    assert code == 1 and any("significant change" in r for r in reasons)
    assert proof_outcome(t)[0] == 0


def test_one_flipped_row_fails_the_proof_even_with_high_agreement() -> None:
    base = _aa_tables(1, 2, 4)
    docs = [results(1), results(2), results(4)]
    row = next(v for v in docs[2]["verdicts"] if v["verdict"] == "pass")
    row["verdict"] = "fail"
    t = AATables(base.run_ids, agreement_table(docs), history_table(docs), base.comparisons, base.pairing)
    assert t.overall_agreement() > 0.95
    flips = t.flips()
    assert [f["row"] for f in flips] == [row["row"]] and flips[0]["verdicts"] == ["pass", "pass", "fail"]
    assert exit_code(t) == 1
    # pass <-> inconclusive is noise, not a flip: the same edit to "inconclusive" passes
    row["verdict"] = "inconclusive"
    t2 = AATables(base.run_ids, agreement_table(docs), history_table(docs), base.comparisons, base.pairing)
    assert t2.flips() == [] and exit_code(t2) == 0


def test_regression_row_fails_are_listed() -> None:
    docs = [results(1), results(2)]
    reg = next(v for v in docs[1]["verdicts"] if v["row"] == "regression")
    reg["verdict"] = "fail"
    s = summarize(AATables(("a", "b"), agreement_table(docs), history_table(docs), _aa_tables(1, 2).comparisons,
                           "all"))
    assert [(r["run"], r["row"], r["stat"]) for r in s["regression_row_failures"]] == [(2, "regression",
                                                                                        reg["stat"])]


def test_fewer_than_two_runs_with_results_is_a_harness_error() -> None:
    assert proof_outcome(build_tables([results(1)]))[0] == 3
    code, reasons = proof_outcome(build_tables([]))
    assert code == 3 and "at least 2" in reasons[0]
    s = summarize(build_tables([]))
    assert s["overall_agreement"] is None and s["rows"] == 0


# ---------------------------------------------------------------------------- the runner and CLI
def test_arguments_after_double_dash_go_to_harness_run() -> None:
    o = parse_args(["--runs", "3", "--out", "/tmp/x", "--", "--only", "sustained", "--minutes", "0.2"])
    assert (o.runs, o.out, o.harness_args) == (3, Path("/tmp/x"), ("--only", "sustained", "--minutes", "0.2"))
    assert parse_args(["--runs", "2"]).out.name.startswith("aa-")
    for bad in (["--runs", "1"], ["--", "--out", "elsewhere"], ["--", "--out=elsewhere"], ["--min-agreement", "2"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


# Stands in for `harness run`: does what the next word of <out>/../plan says, writing the fixture document
# <out>/../doc.json as a new run folder (the way harness run adds reports/<run-id>/results.json).
FAKE_HARNESS = """
import json, os, sys, time, pathlib
args = sys.argv[1:]
assert args[:2] == ["run", "--no-progress"], args
out = pathlib.Path(args[args.index("--out") + 1])
plan = out.parent / "plan"
behaviour, *rest = plan.read_text().split()
plan.write_text(" ".join(rest))
if behaviour == "hang":
    (out.parent / "pid").write_text(str(os.getpid()))
    time.sleep(60)
if behaviour != "no-results":
    doc = json.loads((out.parent / "doc.json").read_text())
    doc["run_id"] = f"fake-{time.monotonic_ns()}"
    (out / doc["run_id"]).mkdir(parents=True)
    (out / doc["run_id"] / "results.json").write_text(json.dumps(doc))
print("results: written")
sys.exit({"fails": 1, "crash": 3}.get(behaviour, 0))
"""


def _fake(tmp_path: Path, plan: str) -> tuple[tuple[str, ...], Path]:
    """(launcher, proof folder) with the fake harness set up to follow ``plan``."""
    script = tmp_path / "fake_harness.py"
    script.write_text(FAKE_HARNESS)
    out = tmp_path / "aa"
    out.mkdir()
    (out / "doc.json").write_text(json.dumps(results(1)))
    (out / "plan").write_text(plan)
    return (sys.executable, str(script)), out


@pytest.mark.parametrize(("behaviour", "code", "error"), [
    ("fails", 1, None),  # exit 1 = some rows failed: a normal outcome
    ("crash", 3, "harness run exited 3"),
    ("no-results", 0, "wrote no results.json"),
])
def test_run_once_reads_the_new_run_or_records_a_harness_error(tmp_path: Path, behaviour: str, code: int,
                                                               error: str | None) -> None:
    launcher, out = _fake(tmp_path, behaviour)
    runs = out / "runs"
    cmd = [*launcher, "run", "--no-progress", "--out", str(runs)]
    o = run_once(1, cmd, runs, out / "logs" / "run-1.log", timeout_s=60)
    assert o.exit_code == code
    assert (o.error is None) == (error is None) and (error is None or error in str(o.error))
    if behaviour == "fails":
        assert o.doc is not None and o.run_dir is not None and o.run_dir.parent == runs
        assert sum(o.counts.values()) == len(o.doc["verdicts"])
    assert "results: written" in o.log.read_text()


def test_a_run_past_its_timeout_is_stopped_and_recorded(tmp_path: Path) -> None:
    launcher, out = _fake(tmp_path, "hang")
    cmd = [*launcher, "run", "--no-progress", "--out", str(out / "runs")]
    t0 = time.monotonic()
    o = run_once(1, cmd, out / "runs", out / "run.log", timeout_s=1.0)
    assert time.monotonic() - t0 < 30
    assert o.exit_code is None and o.error is not None and "timed out" in o.error
    with pytest.raises(ProcessLookupError):  # stopped and reaped, not left running
        os.kill(int((out / "pid").read_text()), 0)


def test_run_proof_writes_every_file_and_continues_past_a_harness_error(tmp_path: Path) -> None:
    launcher, out = _fake(tmp_path, "fails crash fails")
    lines: list[str] = []
    opts = ProofOptions(runs=3, out=out, timeout_s=60, launcher=launcher)
    code, summary = run_proof(opts, say=lines.append)
    assert code == 3  # run 2 is a harness error; runs 1 and 3 are still compared
    assert [r["exit_code"] for r in summary["runs"]] == [1, 3, 1]
    assert [e["index"] for e in summary["harness_errors"]] == [2]
    assert summary["runs_used"] == 2 and len(summary["pairs"]) == 1 and summary["flips"] == []
    assert re.fullmatch(r"run 1/3: \d+ pass / \d+ fail / \d+ inconclusive in \dm\d\ds", lines[1]), lines
    assert lines[2].startswith("run 2/3: HARNESS ERROR")
    for name in ("agreement.csv", "history.csv", "comparisons.csv", "aa.json", "aa.html"):
        assert (out / name).stat().st_size > 0, name
    written = json.loads((out / "aa.json").read_text())
    assert written["exit_code"] == 3 and written["runs_requested"] == 3 and written["overall_agreement"] == 1.0
    page = (out / "aa.html").read_text()
    assert "<style>" in page and "A/A does not hold" in page and "harness run exited 3" in page
