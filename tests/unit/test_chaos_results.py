"""The ``chaos`` section of results.json (harness.results.chaos) and the chaos rows judged from it."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.results.chaos import (
    Ambiguous,
    ChaosAction,
    ChaosLedger,
    ChaosResults,
    ChaosScenario,
    Failover,
    ProxyTraffic,
    Resubscribe,
    RetryAfterCheck,
    SlowNode,
)
from harness.results.ledger import LedgerCounts
from harness.slo.chaos_rows import CHAOS_ROWS
from harness.slo.judge import judge_run
from harness.slo.spec import load_default
from harness.slo.synth import Synth, synth_results

SCHEMA = Path(__file__).resolve().parents[2] / "harness" / "results" / "results.schema.json"
CLEAN = ChaosLedger(2, True, LedgerCounts(reported=180, checked=180, mined_confirmed=180))


def _entry(name: str, **kw: Any) -> ChaosScenario:
    base: dict[str, Any] = dict(actions=(ChaosAction(1.5, "A", "plan", "429=1,retry_after=30s"),),
                                proxies=(ProxyTraffic("A", 10, 7, 0, {"rate_limited": 3}, "chaos-x-A.jsonl"),
                                         ProxyTraffic("B", 400, 400)),
                                trades_sent=180, trades_ok=180, ledger=CLEAN)
    base.update(kw)
    return ChaosScenario(f"chaos_{name}", name, "short", f"chaos {name}", 30.0, "fixed", 6.0, **base)


GOOD = ChaosResults((
    _entry("outage", failover=Failover(("A", "B"), (12.0, 20.5), 2, 0, 12.0, 20.5, 20.5)),
    _entry("ratelimit", retry_after=RetryAfterCheck(30.0, 2.0, 0.25, 3, 0, (), 350, 110, 3, (2.0, 2.01))),
    _entry("wsdrop", resubscribe=Resubscribe(4, 4, 4, 40, 12, 4)),
    _entry("slownode", slow=SlowNode(300.0, 0.95, 60.0)),
    _entry("ambiguous", ambiguous=Ambiguous(0.2, 23, ("0x" + "ab" * 32,))),
))


def _doc(chaos: ChaosResults | None) -> dict[str, Any]:
    doc = synth_results(Synth(seed=3, sustained_s=20, scenarios=("sustained",)))
    slow = copy.deepcopy(doc["scenarios"][0])
    slow.update(id="chaos_slownode", kind="chaos", health={"probes": 100, "ok": 0})  # a 503 storm: not uptime's
    doc["scenarios"].append(slow)
    if chaos is not None:
        doc["chaos"] = chaos.to_json()
    return doc


def _verdicts(doc: dict[str, Any]) -> dict[tuple[str, str | None], dict[str, Any]]:
    return {(v["row"], v["scenario"]): v for v in judge_run(doc, load_default(), n_boot=200) if v["row"] in CHAOS_ROWS}


def test_the_section_round_trips_and_matches_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    assert ChaosResults.from_json(json.loads(json.dumps(GOOD.to_json()))) == GOOD
    doc = _doc(GOOD)
    doc["verdicts"] = judge_run(doc, load_default(), n_boot=200)
    jsonschema.validate(json.loads(json.dumps(doc, allow_nan=False)), json.loads(SCHEMA.read_text()))
    bad = json.loads(json.dumps(doc))
    bad["chaos"]["scenarios"][0]["failover"]["n"] = -1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(SCHEMA.read_text()))


@given(st.lists(st.one_of(st.none(), st.floats(0, 1e5, allow_nan=False)), max_size=8),
       st.integers(0, 10**6), st.booleans())
def test_entries_round_trip(times: list[float | None], lost: int, reconciled: bool) -> None:
    e = _entry("outage", failover=Failover(tuple("AB"[i % 2] for i in range(len(times))), tuple(times), 1, 0,
                                           None, None, None),
               ledger=ChaosLedger(3, reconciled, LedgerCounts(lost=lost), "n"), error=None if reconciled else "x")
    assert ChaosScenario.from_json(json.loads(json.dumps(e.to_json()))) == e


def test_healthy_chaos_passes_every_chaos_row_and_leaves_uptime_alone() -> None:
    doc = _doc(GOOD)
    got = _verdicts(doc)
    assert {k: v["verdict"] for k, v in got.items()} == {
        ("failover_time", "chaos_outage"): "pass", ("retry_after_honoured", "chaos_ratelimit"): "pass",
        ("ws_resubscribed", "chaos_wsdrop"): "pass", ("slow_endpoint_avoided", "chaos_slownode"): "pass",
        **{("no_trade_lost_or_doubled", f"chaos_{n}"): "pass"
           for n in ("outage", "ratelimit", "wsdrop", "slownode", "ambiguous")}}
    assert got[("failover_time", "chaos_outage")]["value"] == 20.5
    assert "2.00, 2.01 s after a 429" in got[("retry_after_honoured", "chaos_ratelimit")]["note"]
    uptime = next(v for v in judge_run(doc, load_default(), n_boot=200) if v["row"] == "uptime")
    assert "chaos" not in str(uptime["scenario"])  # probes of a chaos scenario are not uptime's


def _with(name: str, **kw: Any) -> dict[str, Any]:
    scn = next(s for s in GOOD.scenarios if s.name == name)
    return _doc(GOOD.with_scenario(dataclasses.replace(scn, **kw)))


@pytest.mark.parametrize(("name", "change", "row", "why"), [
    ("outage", {"failover": Failover(("A", "B"), (12.0, None), 1, 1, 12.0, 12.0, 12.0)}, "failover_time",
     "no success through the other"),
    ("outage", {"failover": Failover(("A",), (1500.0,), 1, 0, 1500.0, 1500.0, 1500.0)}, "failover_time", ""),
    ("ratelimit", {"retry_after": RetryAfterCheck(30.0, 2.0, 0.25, 9, 2, (2.0, 2.1), 350, 110)},
     "retry_after_honoured", ""),
    ("ratelimit", {"retry_after": RetryAfterCheck(30.0, 2.0, 0.25, 9, 0, (), 0, 0)}, "retry_after_honoured",
     "no trade completed"),
    ("wsdrop", {"resubscribe": Resubscribe(4, 4, 3, 40, 12, 4)}, "ws_resubscribed", ""),
    ("wsdrop", {"resubscribe": Resubscribe(4, 4, 4, 0, 12, 4)}, "ws_resubscribed", "nothing was backfilled"),
    ("slownode", {"slow": SlowNode(300.0, 0.1, 60.0)}, "slow_endpoint_avoided", "still went to the slow"),
    ("ambiguous", {"ledger": ChaosLedger(6, True, LedgerCounts(reported=180, lost=1))}, "no_trade_lost_or_doubled",
     ""),
    ("ambiguous", {"ledger": ChaosLedger(6, True, LedgerCounts(reported=180, not_terminal=2))},
     "no_trade_lost_or_doubled", "not terminal"),
])
def test_each_failure_fails_its_row(name: str, change: dict[str, Any], row: str, why: str) -> None:
    v = _verdicts(_with(name, **change))[(row, f"chaos_{name}")]
    assert v["verdict"] == "fail", v
    assert why in v["note"]


def test_not_measured_failed_and_unreconciled_are_inconclusive_with_the_reason() -> None:
    none = _verdicts(_doc(None))
    assert {v["verdict"] for v in none.values()} == {"inconclusive"}
    assert "harness run --chaos outage" in none[("failover_time", None)]["note"]
    assert "harness run --chaos all" in none[("no_trade_lost_or_doubled", None)]["note"]
    only_outage = _verdicts(_doc(ChaosResults((GOOD.scenarios[0],))))
    assert only_outage[("retry_after_honoured", None)]["verdict"] == "inconclusive"
    assert only_outage[("failover_time", "chaos_outage")]["verdict"] == "pass"
    failed = _verdicts(_with("wsdrop", error="the bot did not start", resubscribe=None))
    assert failed[("ws_resubscribed", "chaos_wsdrop")]["verdict"] == "inconclusive"
    assert "the bot did not start" in failed[("ws_resubscribed", "chaos_wsdrop")]["note"]
    unreconciled = _verdicts(_with("outage", ledger=ChaosLedger(2, False, LedgerCounts(), "deadline")))
    assert unreconciled[("no_trade_lost_or_doubled", "chaos_outage")]["verdict"] == "inconclusive"
