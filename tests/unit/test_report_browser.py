"""A real browser loads the run page from disk and finds the verdict table with every row."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.report import write_run_report
from harness.report.browser import chromium, dump_dom
from tests.unit.report_data import results

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install chromium)"),
]


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.in_table = False
        self.table_seen = False
        self.rows: list[tuple[str, str, str, str]] = []
        self.images_loaded: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table" and a.get("id") == "verdict-table":
            self.in_table = self.table_seen = True
        elif tag == "tr" and self.in_table and "verdict-row" in a.get("class", ""):
            self.rows.append((a["data-row"], a["data-stat"], a["data-scenario"], a["data-verdict"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.in_table = False


def test_chromium_renders_the_verdict_table_from_disk(tmp_path: Path) -> None:
    doc = results()
    doc["scenarios"] = doc["scenarios"][1:2]  # every verdict row still present; fewer plots to draw
    index = write_run_report(doc, tmp_path / "run")
    dom = dump_dom(index)
    parsed = _Dom()
    parsed.feed(dom)
    assert parsed.table_seen, dom[:500]
    want = sorted((v["row"], v["stat"], v["scenario"], v["verdict"]) for v in doc["verdicts"])
    assert sorted(parsed.rows) == want
    assert 'id="run-status"' in dom and ">complete<" in dom
    assert 'id="calibration-table"' in dom and "of this node's ceiling" in dom and 'id="isolation-table"' in dom
    assert "chain reverted" in dom and "node RSS max 640 MB" in dom  # the node's state beside the bot's
