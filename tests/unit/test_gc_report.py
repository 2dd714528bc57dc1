"""GC pauses and profiles on the run page (harness.report.gcview, gcprofile.html.j2), from scenario intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram

from bot.telemetry.gcclock import GC_PAUSE_GEN_OPS, overlap_op
from bot.telemetry.gcwatch import COLLECTIONS, CPU_US, GC_PAUSE_OP, PAUSE_US
from harness.report import write_run_report
from harness.report.format import sig
from harness.report.gcview import gc_figures, gc_section
from harness.report.html import environment
from harness.results import Run
from tests.unit.report_data import results


def _gc_interval(iv: dict[str, Any], pauses_us: list[tuple[int, int]]) -> None:
    """Add collections (generation, pause µs) to an interval as the bot's counters would carry them."""
    h = HdrHistogram(1, 60_000_000, 3)
    gens = [HdrHistogram(1, 60_000_000, 3) for _ in GC_PAUSE_GEN_OPS]
    for g, us in pauses_us:
        h.record_value(us)
        gens[g].record_value(us)
        iv["counters"][COLLECTIONS[g]] = iv["counters"].get(COLLECTIONS[g], 0) + 1
        iv["counters"][PAUSE_US[g]] = iv["counters"].get(PAUSE_US[g], 0) + us
        iv["counters"][CPU_US[g]] = iv["counters"].get(CPU_US[g], 0) + us // 2
    iv["histograms"][GC_PAUSE_OP] = h.encode().decode("ascii")
    for op, gh in zip(GC_PAUSE_GEN_OPS, gens, strict=True):
        if gh.get_total_count():
            iv["histograms"][op] = gh.encode().decode("ascii")


def _with_gc() -> dict[str, Any]:
    doc = results()
    (sustained,) = [s for s in doc["scenarios"] if s["id"] == "sustained"]
    ivs = sustained["intervals"]
    for i, iv in enumerate(ivs):
        _gc_interval(iv, [(0, 200)] * 10 + ([(2, 40_000)] if i == 0 else []))
    # The slowest trade overlapped the full collection (as the bot marks it: <op>.gc_overlap, a subset).
    slowest = max(ivs, key=lambda iv: HdrHistogram.decode(iv["histograms"]["trade_execution"]).get_max_value())
    mark = HdrHistogram(1, 60_000_000, 3)
    mark.record_value(HdrHistogram.decode(slowest["histograms"]["trade_execution"]).get_max_value())
    slowest["histograms"][overlap_op("trade_execution")] = mark.encode().decode("ascii")
    sustained["summary"]["profile"] = {
        "page": "profiles/sustained/index.html", "samples": 974,
        "files": {"flamegraph": "profiles/sustained/bot-flamegraph.svg"},
        "by_self": [{"function": "Trader.trade (bot/trader.py)", "self": 0.12, "total": 0.3, "own": True}],
        "by_total": [], "failure": None,
    }
    doc["conditions"]["bot"] = {"engine": {"gc_freeze": True, "gc_threshold": None}}
    return doc


def test_figures_over_the_scenarios_window() -> None:
    run = Run.from_json(_with_gc())
    (sustained,) = [s for s in run.scenarios if s.id == "sustained"]
    f = gc_figures(sustained)
    assert f is not None
    n = len(sustained.intervals)
    seconds = sum(iv.duration for iv in sustained.intervals)
    assert f.seconds == pytest.approx(seconds)
    assert f.collections == (10 * n, 0, 1)
    assert f.per_s[0] == pytest.approx(10 * n / seconds)
    assert f.mean_ms[0] == pytest.approx(0.2) and f.mean_ms[1] is None and f.mean_ms[2] == pytest.approx(40.0)
    assert f.max_ms == pytest.approx(40.0, rel=1e-3) and f.p99_ms is not None and f.p99_ms < 1
    assert f.share == pytest.approx((2 * n + 40) / 1000 / seconds)
    assert f.cpu_share == pytest.approx(f.share / 2, rel=1e-2)
    assert f.gen_p99_ms[0] == pytest.approx(0.2, rel=1e-3) and f.gen_p99_ms[1] is None
    assert f.gen_p99_ms[2] == pytest.approx(40.0, rel=1e-3)
    by_op = {o.op: o for o in f.overlap}
    assert set(by_op) == set(sustained.operations()) & {"tx_submission", "price_fetch", "balance_check",
                                                        "trade_execution"}
    te = by_op["trade_execution"]
    assert te.overlapped == 1 == te.tail_overlapped and te.tail >= te.samples / 100
    assert all(o.overlapped == 0 for op, o in by_op.items() if op != "trade_execution")
    assert all(gc_figures(s) is None for s in run.scenarios if s.id != "sustained")  # an older bot: none


def test_the_run_page_shows_gc_and_links_the_profile(tmp_path: Path) -> None:
    doc = _with_gc()
    page = write_run_report(doc, tmp_path).read_text(encoding="utf-8")
    assert 'id="gc-table"' in page and '<tr class="gc-row" data-scenario="sustained">' in page
    assert "engine.gc_freeze = True" in page
    row = page[page.index('<tr class="gc-row" data-scenario="sustained">'):]
    row = row[:row.index("</tr>")]
    assert "40.0 ms" in row  # the one full collection is the maximum
    assert 'href="profiles/sustained/bot-flamegraph.svg"' in page and 'href="profiles/sustained/index.html"' in page
    assert "Trader.trade (bot/trader.py)" in page
    assert 'id="op-gc_pause"' not in page  # its own section, not a latency operation
    assert 'id="op-gc_pause.gen0"' not in page and 'id="op-trade_execution.gc_overlap"' not in page
    assert "gc_overlap" not in page.replace("&lt;op&gt;.gc_overlap", "")  # named only in the explanation
    assert '<td class="num gc-gen-p99">0.200 / – / 40.0</td>' in row
    (sustained,) = [s for s in Run.from_json(doc).scenarios if s.id == "sustained"]
    f = gc_figures(sustained)
    assert f is not None
    te = next(o for o in f.overlap if o.op == "trade_execution")
    assert 'id="gc-overlap-table"' in page and "collector pause ≥ 1 ms" in page
    ov = page[page.index('data-scenario="sustained" data-op="trade_execution"'):]
    ov = ov[:ov.index("</tr>")]
    assert te.tail_share is not None and te.share is not None
    assert f'<td class="num gc-tail-overlap">1 of {te.tail:,} ({sig(te.tail_share * 100, 2)}%)</td>' in ov
    assert f'<td class="num gc-all-overlap">1 of {te.samples:,} ({sig(te.share * 100, 2)}%)</td>' in ov


def test_a_run_without_gc_figures_or_profiles_says_so() -> None:
    section = gc_section(Run.from_json(results()))
    assert section["gc"] == [] and section["profiles"] == []


def test_an_older_bots_figures_show_no_overlap_and_dashes_per_generation() -> None:
    doc = results()
    (sustained,) = [s for s in doc["scenarios"] if s["id"] == "sustained"]
    for iv in sustained["intervals"]:
        _gc_interval(iv, [(0, 200)] * 3)
        for op in GC_PAUSE_GEN_OPS:  # a bot before the split by generation and the overlap
            iv["histograms"].pop(op, None)
    section = gc_section(Run.from_json(doc))
    (row,) = section["gc"]
    assert row.gen_p99_ms == (None, None, None) and row.overlap == () and section["overlap"] == []
    html = environment().get_template("gcprofile.html.j2").render(gcprofile=section)
    assert '<td class="num gc-gen-p99">– / – / –</td>' in html
    assert 'id="gc-overlap-table"' not in html and "No overlap figures" in html
