"""JUnit XML for CI: one testcase per SLO verdict row.

CI systems understand JUnit, so each verdict becomes a testcase named ``row.stat [scenario]`` in class
``table``: a fail is a ``<failure>`` whose message carries the value, its CI and the threshold; an
inconclusive row is ``<skipped>`` with how much more run time would decide it. SLO rows with no
verdict at all (a partial run, or a stage that crashed) are ``<skipped>`` too, so CI shows them rather
than silently counting fewer tests.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from bot.redact import redact_text
from harness.report.format import fmt_ci, fmt_more_time, fmt_value
from harness.results import Run, Verdict, sorted_verdicts


def _case_message(v: Verdict) -> str:
    value = fmt_value(v.value, v.unit)
    ci = fmt_ci(v.ci, v.unit)
    thr = f"{v.threshold.op} {fmt_value(v.threshold.value, v.unit)} ({v.threshold.level})"
    return f"{v.label}: {value}, {round(v.confidence * 100):d}% CI {ci}, threshold {thr}"


def junit_xml(run: Run) -> str:
    """The JUnit document for ``run`` as a string (UTF-8 XML declaration included)."""
    verdicts = sorted_verdicts(run.verdicts)
    missing = run.missing_rows()
    counts = run.counts()
    skipped = counts["inconclusive"] + len(missing)
    root = ET.Element("testsuites", name=f"slo {run.run_id}")
    suite = ET.SubElement(
        root,
        "testsuite",
        name="slo",
        tests=str(len(verdicts) + len(missing)),
        failures=str(counts["fail"]),
        errors="0",
        skipped=str(skipped),
        timestamp=run.started_at,
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (("run_id", run.run_id), ("status", run.status), ("profile", run.profile)):
        ET.SubElement(props, "property", name=name, value=value)
    for v in verdicts:
        case = ET.SubElement(suite, "testcase", classname=v.table, name=v.label, time="0")
        msg = _case_message(v)
        if v.verdict == "fail":
            el = ET.SubElement(case, "failure", message=msg, type="slo_fail")
            el.text = f"{msg}\nmargin {_pct(v.margin)}\n{v.note}"
        elif v.verdict == "inconclusive" and v.value is None:
            ET.SubElement(case, "skipped", message=f"inconclusive: {v.label} was not measured; {v.note}")
        elif v.verdict == "inconclusive":
            ET.SubElement(case, "skipped", message=f"inconclusive: {msg}; {fmt_more_time(v.more_time_s)}")
        if v.note:
            ET.SubElement(case, "system-out").text = v.note
    for table, row in missing:
        case = ET.SubElement(suite, "testcase", classname=table, name=f"{row} [not judged]", time="0")
        ET.SubElement(
            case, "skipped", message=f"not judged: this {run.status} run has no verdict for {table}/{row}"
        )
    ET.indent(root)
    body: str = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def _pct(margin: float | None) -> str:
    return "n/a" if margin is None else f"{margin * 100:+.1f}%"


def write_junit(run: Run, path: Path) -> Path:
    # Notes quote errors, and an error may quote a node URL with its key; JUnit has no links to keep.
    path.write_text(redact_text(junit_xml(run)), encoding="utf-8")
    return path
