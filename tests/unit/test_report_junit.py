"""JUnit XML: one testcase per verdict row, failures and skips carry the numbers that explain them."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.report.junit import junit_xml
from harness.results import parse_results
from tests.unit.report_data import results


def _suite(doc: dict) -> ET.Element:  # type: ignore[type-arg]
    root = ET.fromstring(junit_xml(parse_results(doc)).encode("utf-8"))
    suite = root.find("testsuite")
    assert suite is not None
    return suite


def test_one_testcase_per_verdict_with_matching_counts() -> None:
    doc = results()
    suite = _suite(doc)
    cases = suite.findall("testcase")
    verdicts = doc["verdicts"]
    assert len(cases) == len(verdicts) == int(suite.get("tests", "-1"))
    fails = [v for v in verdicts if v["verdict"] == "fail"]
    incs = [v for v in verdicts if v["verdict"] == "inconclusive"]
    assert int(suite.get("failures", "-1")) == len(fails) == len(suite.findall("testcase/failure"))
    assert int(suite.get("skipped", "-1")) == len(incs) == len(suite.findall("testcase/skipped"))
    names = {(c.get("classname"), c.get("name")) for c in cases}
    for v in verdicts:
        assert (v["table"], f'{v["row"]}.{v["stat"]} [{v["scenario"]}]') in names


def test_failure_message_has_value_ci_and_threshold() -> None:
    doc = results()
    suite = _suite(doc)
    case = next(c for c in suite.findall("testcase") if c.get("name") == "transactions_per_sec.target [stress]")
    failure = case.find("failure")
    assert failure is not None
    msg = failure.get("message", "")
    assert "800 tx/s" in msg and "95% CI [772, 826]" in msg and ">= 1,000 tx/s (target)" in msg


def test_inconclusive_is_skipped_with_the_time_that_would_decide_it() -> None:
    suite = _suite(results())
    case = next(c for c in suite.findall("testcase") if c.get("name") == "cpu.mean [stress]")
    skipped = case.find("skipped")
    assert skipped is not None
    assert "inconclusive" in skipped.get("message", "")
    assert "about 20 min more run time would decide it" in skipped.get("message", "")


def test_partial_run_lists_unjudged_rows_as_skipped() -> None:
    doc = results()
    doc["status"] = "partial"
    doc["verdicts"] = [v for v in doc["verdicts"] if v["table"] == "latency"]
    suite = _suite(doc)
    not_judged = [c for c in suite.findall("testcase") if c.get("name", "").endswith("[not judged]")]
    assert len(not_judged) == 12  # throughput, resources and quality rows: 4 each
    assert all("partial run has no verdict" in (c.find("skipped").get("message") or "")  # type: ignore[union-attr]
               for c in not_judged)
    assert int(suite.get("tests", "0")) == len(doc["verdicts"]) + 12


def test_unmeasured_row_is_skipped_as_not_measured() -> None:
    doc = results()
    doc["verdicts"][0].update(value=None, ci=None, verdict="inconclusive", more_time_s=None, note="scenario missing")
    suite = _suite(doc)
    skipped = suite.find("testcase/skipped")
    assert skipped is not None
    assert skipped.get("message") == "inconclusive: tx_submission.mean [sustained] was not measured; scenario missing"
