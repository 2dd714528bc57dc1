"""Acknowledgements (trailers, perf-acknowledged.toml), the gate's reports, and asv's result lookup."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.endtoend import find_results, verdict_value
from harness.errors import ConfigError
from harness.gate.decision import compare_callgrind, decide
from harness.gate.gate import GateOptions, validate
from harness.gate.report import GateContext, to_markdown, write_report
from harness.gate.revisions import (
    TRAILER,
    parse_ack_file,
    parse_trailer_value,
    resolve,
    trailer_acknowledgements,
)


def test_ack_file_entries_and_errors_name_the_field() -> None:
    acks = parse_ack_file('[[acknowledged]]\nbenchmark = "tx.build_sign"\nreason = "stricter checks"\n')
    assert [(a.benchmark, a.reason, a.source) for a in acks] == [
        ("tx.build_sign", "stricter checks", "perf-acknowledged.toml")
    ]
    assert parse_ack_file("") == []
    with pytest.raises(ConfigError, match=r"acknowledged\[0\]\.reason"):
        parse_ack_file('[[acknowledged]]\nbenchmark = "x"\n')
    with pytest.raises(ConfigError, match=r"acknowledged\[0\]\.benchmark"):
        parse_ack_file('[[acknowledged]]\nreason = "x"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_ack_file("[[acknowledged]\n")


def test_trailer_value_needs_benchmark_and_reason() -> None:
    ack = parse_trailer_value("codec.decode_batch: id matching is now strict", "commit abc")
    assert (ack.benchmark, ack.reason) == ("codec.decode_batch", "id matching is now strict")
    with pytest.raises(ConfigError, match="<benchmark>: <reason>"):
        parse_trailer_value("codec.decode_batch", "commit abc")


def test_trailers_are_read_from_the_head_range_only(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@t")
    git("config", "user.name", "t")
    git("commit", "-q", "--allow-empty", "-m", f"old\n\n{TRAILER}: a.b: before the range")
    git("tag", "base")
    git("commit", "-q", "--allow-empty", "-m", f"new\n\n{TRAILER}: c.d: inside the range\n{TRAILER}: e.f: two")
    base, head = resolve(tmp_path, "base"), resolve(tmp_path, "HEAD")
    acks = trailer_acknowledgements(tmp_path, base, head)
    assert sorted((a.benchmark, a.reason) for a in acks) == [("c.d", "inside the range"), ("e.f", "two")]
    assert all(a.source.startswith("commit ") for a in acks)
    with pytest.raises(ConfigError, match="not a commit"):
        resolve(tmp_path, "no-such-branch")


def test_reports_say_what_failed_and_why(tmp_path: Path) -> None:
    decisions = decide(
        ["a", "b", "c"],
        {},
        {"a": compare_callgrind("a", 1000, 1000, 1100), "b": compare_callgrind("b", 1000, 1000, 1000)},
        skipped={"c": "base: bot.market.prices is not importable"},
    )
    ctx = GateContext("main", "a" * 40, "HEAD", "b" * 40, {"processes": 8}, ("a note",), {})
    md = to_markdown(decisions, ctx, 1)
    assert md.startswith("## Performance gate: FAIL: a")
    assert "bot.market.prices" in md and "a note" in md
    write_report(tmp_path, decisions, ctx, 1)
    data = json.loads((tmp_path / "gate.json").read_text())
    assert data["exit_code"] == 1
    assert [d["status"] for d in data["decisions"]] == ["regression", "unchanged", "skipped"]


def test_asv_tracks_only_read_a_run_of_the_measured_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps({
        "conditions": {"git_commit": "abc1234+dirty"},
        "verdicts": [{"row": "tx_submission", "stat": "p99", "value": 99.0, "scenario": "burst"},
                     {"row": "tx_submission", "stat": "p99", "value": 12.5, "scenario": "sustained"},
                     {"row": "transactions_per_sec", "stat": "steady", "value": 640.0}],
    }))  # fmt: skip
    monkeypatch.setenv("TRADEBENCH_RESULTS", str(results))
    data = find_results("abc1234def")
    assert verdict_value(data, "tx_submission", "p99") == 12.5
    with pytest.raises(NotImplementedError, match="price_fetch"):
        verdict_value(data, "price_fetch", "p99")
    with pytest.raises(NotImplementedError, match="ffff"):
        find_results("ffff")


@pytest.mark.parametrize(
    ("kw", "flag"),
    [({"processes": 1}, "--processes"), ({"rounds": 2}, "--rounds"), ({"alpha": 1.5}, "--alpha"),
     ({"slot_s": 10.0}, "--slot"), ({"callgrind": "maybe"}, "--callgrind"),
     ({"callgrind_iterations": 5}, "--callgrind-iterations"), ({"min_effect": -0.1}, "--min-effect"),
     ({"plant_head": "nocolon"}, "TRADEBENCH_PLANT_SLOWDOWN")],
)  # fmt: skip
def test_bad_gate_options_name_the_flag(kw: dict[str, object], flag: str) -> None:
    with pytest.raises(ValueError, match=flag):
        validate(GateOptions(base="HEAD", **kw))  # type: ignore[arg-type]


_names = st.from_regex(r"[a-z][a-z0-9_]{0,10}(\.[a-z0-9_]{1,10}){0,2}", fullmatch=True)
_reasons = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=40).filter(
    lambda r: r.strip() != ""
)


@given(_names, _reasons)
def test_trailer_round_trip(benchmark: str, reason: str) -> None:
    ack = parse_trailer_value(f"{benchmark}: {reason}", "commit x")
    assert (ack.benchmark, ack.reason) == (benchmark, reason.strip())
