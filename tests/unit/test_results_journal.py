"""checkpoint.jsonl: a kill tears at most the last line, and the reader keeps every whole record before it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.results.journal import JOURNAL_NAME, CheckpointJournal, fold, load_journal, read_journal

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                     st.floats(allow_nan=False, allow_infinity=False, width=32), st.text(max_size=12))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                       max_leaves=12)
_records = st.lists(st.fixed_dictionaries({"kind": st.sampled_from(["run", "scenario", "checkpoint"])},
                                          optional={"x": _values, "t": st.floats(0, 1e5)}), max_size=8)


def _lines(records: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


@settings(max_examples=200, deadline=None)
@given(records=_records, cut=st.floats(0, 1))
def test_a_file_torn_anywhere_reads_as_a_prefix_of_its_records(records: list[dict[str, Any]], cut: float) -> None:
    data = _lines(records)
    at = int(len(data) * cut)
    got = read_journal(data[:at])
    whole = data[:at].count(b"\n")  # lines written completely before the tear
    torn = data[:at].rsplit(b"\n", 1)[-1]
    if torn and torn == orjson.dumps(records[whole]):  # torn just before its newline: still a whole record
        whole, torn = whole + 1, b""
    assert list(got.records) == records[:whole]
    assert got.skipped == (1 if torn else 0)


def test_torn_just_before_the_newline_is_still_a_record() -> None:
    data = _lines([{"kind": "run"}, {"kind": "checkpoint", "t": 1.0}])
    assert [r["kind"] for r in read_journal(data[:-1]).records] == ["run", "checkpoint"]
    assert [r["kind"] for r in read_journal(data[:-2]).records] == ["run"]


@settings(max_examples=50, deadline=None)
@given(records=_records, garbage=st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b))
def test_a_garbled_line_in_the_middle_is_skipped_not_raised(records: list[dict[str, Any]], garbage: bytes) -> None:
    half = len(records) // 2
    data = _lines(records[:half]) + garbage + b"\n" + _lines(records[half:])
    got = read_journal(data)
    # garbage that happens to be a kind-carrying object would be a record; anything else is skipped
    assert [r for r in got.records if r in records] == records
    assert got.skipped <= 1


def test_fold_sums_checkpoints_per_scenario_and_drops_orphans() -> None:
    recs = [
        {"kind": "run", "pid": 1, "pid_started": 2.0, "run_id": "r"},
        {"kind": "checkpoint", "scenario": "soak", "t": 1.0},  # before its header: cannot be placed
        {"kind": "scenario", "id": "soak", "started_at": 100.0, "planned_s": 60.0,
         "doc": {"id": "soak", "kind": "trades", "schedule": {"kind": "constant", "rate": 10.0}}},
        {"kind": "checkpoint", "scenario": "soak", "t": 5.0, "intervals": [{"start": 0.0}],
         "resources": [{"t": 1.0}], "health": {"probes": 10, "ok": 9}, "backlog": [[1.0, 2.0, 0.0]],
         "feed": {"sent": 50, "dropped": 1}, "cost_ms": 0.5},
        {"kind": "checkpoint", "scenario": "soak", "t": 10.0, "intervals": [{"start": 1.0}, {"start": 2.0}],
         "resources": [{"t": 6.0}], "health": {"probes": 5, "ok": 5}, "feed": {"sent": 50, "dropped": 0},
         "cost_ms": 0.4},
    ]
    f = fold(recs)
    assert f.run is not None and f.run["pid"] == 1
    p = f.scenarios["soak"]
    assert (p.checkpoints, p.covered_s, p.planned_s) == (2, 10.0, 60.0)
    assert [iv["start"] for iv in p.intervals] == [0.0, 1.0, 2.0] and len(p.resources) == 2
    assert (p.probes, p.ok, p.sent, p.dropped) == (15, 14, 100, 1)
    assert p.backlog == [(1.0, 2.0, 0.0)] and p.cost_ms == [0.5, 0.4]


def test_the_journal_appends_whole_lines_after_one_run_record(tmp_path: Path) -> None:
    j = CheckpointJournal(tmp_path / JOURNAL_NAME, "run-1")
    assert load_journal(tmp_path) is None  # nothing written before the first append
    j.append({"kind": "scenario", "id": "soak"})
    j.append({"kind": "checkpoint", "scenario": "soak", "t": 1.0})
    got = load_journal(tmp_path)
    assert got is not None and got.skipped == 0
    assert [r["kind"] for r in got.records] == ["run", "scenario", "checkpoint"]
    assert got.records[0]["run_id"] == "run-1" and got.records[0]["pid"] > 0
    assert (tmp_path / JOURNAL_NAME).read_bytes().endswith(b"\n")
