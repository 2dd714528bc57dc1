"""FaultSchedule: the text and TOML forms, exact round trip, validation naming the change and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.node.faultplan import FaultPlan
from harness.node.faultschedule import FaultSchedule
from tests.unit.test_node_faultplan import plans

schedules = st.lists(st.tuples(st.floats(0, 1e6, allow_nan=False), plans), max_size=5, unique_by=lambda c: c[0]).map(
    lambda changes: FaultSchedule(tuple(sorted(changes, key=lambda c: c[0]))))


@given(schedules)
def test_text_form_round_trips(schedule: FaultSchedule) -> None:
    assert FaultSchedule.parse(str(schedule)) == schedule


def test_text_form_reads_as_documented() -> None:
    schedule = FaultSchedule.parse("10s: loss=0.05,5xx=0.01 | 30s: | 45s: outage=45s-50s,slow=0.1:300ms")
    assert schedule.changes == (
        (10.0, FaultPlan(loss_rate=0.05, http_5xx_rate=0.01)),
        (30.0, FaultPlan()),
        (45.0, FaultPlan(outages=((45.0, 50.0),), slow_rate=0.1, slow_ms=300.0)),
    )
    assert schedule.plan_at(9.99) is None and schedule.plan_at(10) == schedule.changes[0][1]
    assert schedule.plan_at(44) == FaultPlan() and schedule.plan_at(1e9) == schedule.changes[2][1]
    assert [schedule.next_change(t) for t in (0, 10, 30, 45)] == [10, 30, 45, None]
    assert FaultSchedule.parse("1500ms: error=1").changes[0][0] == 1.5
    assert not FaultSchedule.parse("")


def test_toml_form(tmp_path: Path) -> None:
    path = tmp_path / "faults.toml"
    path.write_text('[[schedule]]\nat = 10\nplan = "loss=0.05"\n\n[[schedule]]\nat = "30s"\nplan = ""\n')
    assert FaultSchedule.load(str(path)) == FaultSchedule.parse("10s: loss=0.05 | 30s:")
    assert FaultSchedule.load("5s: 429=1") == FaultSchedule.parse("5s: 429=1")


def test_on_top_of_a_profile() -> None:
    base = FaultPlan(latency_ms=70, jitter_ms=10)
    schedule = FaultSchedule.parse("5s: loss=0.1 | 9s:").on_top_of(base)
    assert schedule.changes == ((5.0, FaultPlan(latency_ms=70, jitter_ms=10, loss_rate=0.1)), (9.0, base))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("loss=0.05", "change 1 'loss=0.05' has no time; write it as 'T: PLAN'"),
        ("soon: loss=0.05", "change 1 time 'soon' cannot be read; e.g. 10s"),
        ("10s: loss=2", r"change 1 \(at 10s\): fault plan: loss rate must be in \[0, 1\]"),
        ("10s: | 5s: 5xx=1", "change 2 at 5s is not after the one before it; list the changes in time order"),
        ("-1s: 5xx=1", "change 1 at -1.0 s; give a time >= 0"),
    ],
)
def test_bad_schedules_name_the_change_and_the_fix(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FaultSchedule.parse(text)


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        ("x = 1", r"no \[\[schedule\]\] tables"),
        ('[[schedule]]\nplan = "loss=0.1"', r"\[\[schedule\]\] 1 needs at = SECONDS"),
        ('[[schedule]]\nat = 1\nplan = "loss=0.1"\nrate = 2', r"unknown keys \['rate'\]"),
        ('[[schedule]]\nat = 1\nplan = "loss=x"', r"change 1 \(at 1\): fault plan: loss='x'"),
    ],
)
def test_bad_toml_names_the_table(tmp_path: Path, toml: str, match: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=match):
        FaultSchedule.load(str(path))
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        FaultSchedule.load(str(tmp_path / "missing.toml"))
