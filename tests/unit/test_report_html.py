"""The run page: every SLO row with its verdict, plots on disk, partial runs marked, re-render from disk."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from harness.report import render_from_results, write_run_report
from harness.report.format import fmt_value
from harness.results import SLO_ROWS, ResultsError
from tests.unit.report_data import results

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VOID = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "source", "wbr"}


class Page(HTMLParser):
    """Collects verdict rows, image sources and links, and checks that tags nest properly."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.rows: list[dict[str, str]] = []
        self.imgs: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "tr" and "verdict-row" in a.get("class", ""):
            self.rows.append(a)
        if tag == "img":
            self.imgs.append(a["src"])
        if tag == "a":
            self.links.append(a.get("href", ""))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert page.stack == []
    return page


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, Page]:
    doc = results()
    run_dir = tmp_path_factory.mktemp("run") / doc["run_id"]
    index = write_run_report(doc, run_dir)
    return doc, run_dir, parse(index)


def test_every_verdict_row_appears_with_its_verdict(rendered: tuple[dict[str, Any], Path, Page]) -> None:
    doc, _, page = rendered
    got = [(r["data-row"], r["data-stat"], r["data-scenario"], r["data-verdict"]) for r in page.rows]
    want = [(v["row"], v["stat"], v["scenario"], v["verdict"]) for v in doc["verdicts"]]
    assert sorted(got) == sorted(want)
    assert {"verdict-table", "conditions", "latency", "throughput", "resources", "annotations", "artifacts"} <= page.ids


def test_sections_in_the_required_order(rendered: tuple[dict[str, Any], Path, Page]) -> None:
    _, run_dir, _ = rendered
    html = (run_dir / "index.html").read_text(encoding="utf-8")
    order = [html.index(f'<section id="{s}">') for s in
             ("verdicts", "conditions", "latency", "throughput", "resources", "annotations", "artifacts")]
    assert order == sorted(order)


def test_plots_exist_are_png_and_are_relative(rendered: tuple[dict[str, Any], Path, Page]) -> None:
    doc, run_dir, page = rendered
    # 4 scenarios x 4 operations latency figures, plus throughput and resources per scenario.
    assert len(page.imgs) == 4 * 4 + 4 + 4
    for src in page.imgs:
        assert not src.startswith(("/", "http")), src
        assert (run_dir / src).read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == sorted(Path(s).name for s in page.imgs)
    for kind_paths in doc["artifacts"].values():
        for p in kind_paths:
            assert p in page.links


def test_inconclusive_rows_say_how_much_longer_and_conditions_are_shown(
    rendered: tuple[dict[str, Any], Path, Page],
) -> None:
    _, run_dir, page = rendered
    text = " ".join(page.text)
    assert "About 15 min more run time would decide it" in text  # websocket target, 900 s
    assert "About 20 min more run time would decide it" in text  # cpu mean, 1200 s
    for needle in ("interval:1s", "loopback", "process:2", "steps 100 → 200 → 400 → 800 → 1600/s, 10 s each",
                   "breaking point: 1600.0/s"):
        assert needle in text, needle
    assert (run_dir / "junit.xml").exists()


def test_spectrum_targets_come_from_the_latency_verdicts() -> None:
    from harness.report.html import spectrum_targets
    from harness.results import parse_results

    run = parse_results(results())
    got = spectrum_targets(run, "sustained", "tx_submission")
    assert [(round(x), y, label) for x, y, label in got] == [(20, 100.0, "p95 target"), (100, 200.0, "p99 target")]
    [(x, y, label)] = spectrum_targets(run, "burst", "tx_submission")
    assert x == pytest.approx(100.0) and (y, label) == (200.0, "p99 target")
    assert spectrum_targets(run, "soak", "tx_submission") == []


def test_unmeasured_rows_say_so_instead_of_promising_more_time(tmp_path: Path) -> None:
    doc = results()
    doc["scenarios"] = []
    doc["verdicts"] = doc["verdicts"][:2]
    doc["verdicts"][0].update(value=None, ci=None, verdict="inconclusive", more_time_s=None,
                              note="not measured in this run (scenario sustained missing)")
    text = " ".join(parse(write_run_report(doc, tmp_path / "r")).text)
    assert "Not measured." in text and "scenario sustained missing" in text
    assert "decide it" not in text


def test_partial_run_is_marked_and_unjudged_rows_are_listed(tmp_path: Path) -> None:
    doc = results()
    doc.update(status="interrupted", finished_at=None, scenarios=doc["scenarios"][:1],
               verdicts=[v for v in doc["verdicts"] if v["scenario"] == "burst"])
    page = parse(write_run_report(doc, tmp_path / "r"))
    assert "partial-banner" in page.ids
    missing = [r for r in page.rows if r["data-verdict"] == "missing"]
    assert len(missing) == len(SLO_ROWS) - 1  # only tx_submission was judged (in burst)
    assert len(page.imgs) == 4 + 2


def test_render_from_results_rerenders_and_drops_stale_plots(tmp_path: Path) -> None:
    doc = results()
    doc["scenarios"] = doc["scenarios"][:2]
    run_dir = tmp_path / "run"
    write_run_report(doc, run_dir)
    doc["scenarios"] = doc["scenarios"][1:2]
    (run_dir / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    page = parse(render_from_results(run_dir))
    assert len(list((run_dir / "plots").iterdir())) == len(page.imgs) == 4 + 2
    (run_dir / "results.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ResultsError, match="'schema_version' is a required property"):
        render_from_results(run_dir)


def test_text_from_the_document_is_escaped(tmp_path: Path) -> None:
    doc = results()
    doc["scenarios"] = doc["scenarios"][:1]
    doc["verdicts"] = doc["verdicts"][:1]
    doc["verdicts"][0]["note"] = "<script>alert(1)</script>"
    doc["scenarios"][0]["annotations"] = [{"t": 0.0, "label": "<img src=x onerror=alert(1)>"}]
    html = write_run_report(doc, tmp_path / "r").read_text(encoding="utf-8")
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html


def _cells(html: str, cls: str) -> dict[str, str]:
    """Inner HTML of ``<td class="... cls" data-scenario="id">`` cells by scenario."""
    return dict(re.findall(rf'<td class="[^"]*\b{cls}\b[^"]*" data-scenario="([^"]+)">(.*?)</td>', html, re.S))


def _latency_tables(html: str) -> dict[tuple[str, str], str]:
    found = re.findall(r'<table class="latency-stats" data-op="([^"]+)" data-scenario="([^"]+)">(.*?)</table>', html,
                       re.S)
    return {(op, scn): body for op, scn, body in found}


def test_calibration_panel_and_throughput_rows_beside_the_node_ceiling(
    rendered: tuple[dict[str, Any], Path, Page],
) -> None:
    doc, run_dir, page = rendered
    html = (run_dir / "index.html").read_text(encoding="utf-8")
    text = " ".join(page.text)
    cal = doc["conditions"]["calibration"]
    assert {"calibration-table", "calibration-meaning"} <= page.ids and "not-calibrated" not in page.ids
    for figure in ("CPU reference", "Signing", "Node ceiling"):
        assert figure in text
    assert f"{cal['node_accept_per_s']:,.0f} tx/s" in text
    assert f"±{cal['node_accept_spread'] * 100:.2g}%" in text
    assert "moves with the machine" in text
    share = 800.0 / cal["node_accept_per_s"] * 100
    assert f"800 tx/s = {share:.2g}% of this node's ceiling" in text
    # transactions_per_sec target and minimum, and the stress bracket among the figures that travel
    assert text.count("of this node's ceiling") == 3
    assert text.count("per million CPU-reference iterations") == 4  # websocket and api, target and minimum
    assert "calibration" not in dict(re.findall(r"<tr><td>([^<]+)</td><td><code>([^<]*)</code>", html))


def test_generator_lag_settle_time_and_carry_over_per_scenario(rendered: tuple[dict[str, Any], Path, Page]) -> None:
    doc, run_dir, page = rendered
    html = (run_dir / "index.html").read_text(encoding="utf-8")
    lag = _cells(html, "lag")
    assert set(lag) == {s["id"] for s in doc["scenarios"]}
    for s in doc["scenarios"]:
        summ = s["summary"]
        cell = lag[s["id"]]
        assert cell.startswith(f"{fmt_value(summ['generator_lag_p99_ms'], 'ms')} / "), cell
        assert ("generator behind" in cell) == summ["generator_behind"], cell
    assert "31.0 ms" in lag["stress"] and "generator-banner" in page.ids
    settle = _cells(html, "settle")
    assert settle["sustained"] == "6.30 s" and settle["soak"] == "11.8 s"
    carry = _cells(html, "carry")
    assert carry["sustained"] == "trade_execution 14, tx_submission 2 samples; trades_ok 14 (from burst)"
    assert carry["burst"] == carry["stress"] == "none"


def test_every_operation_shows_service_beside_corrected_with_honest_labels(
    rendered: tuple[dict[str, Any], Path, Page],
) -> None:
    _, run_dir, _ = rendered
    tables = _latency_tables((run_dir / "index.html").read_text(encoding="utf-8"))
    assert len(tables) == 4 * 4
    for (op, scn), body in tables.items():
        assert "n/a" not in body, (op, scn)
        corrected, service = body.split('<tr class="lat-service">')
        if op == "trade_execution":
            assert "from intended start (corrected)" in corrected and "<code>trade_execution</code>" in corrected
            assert "<code>trade_execution.service</code>" in service and 'class="judged"' in corrected
        else:
            assert "from tick (corrected)" in corrected and f"<code>{op}.from_tick</code>" in corrected
            assert "operation (service)" in service and f"<code>{op}</code>" in service
            assert 'class="judged"' in service and 'class="judged"' not in corrected


def _as_old_run(doc: dict[str, Any]) -> dict[str, Any]:
    """What runs wrote before calibration and isolation: no such keys, every op corrected under the bare key."""
    del doc["conditions"]["calibration"]
    for s in doc["scenarios"]:
        for k in ("settle_s", "quiescence", "carry_over", "generator_lag_max_ms", "generator_behind"):
            s["summary"].pop(k)
        for iv in s["intervals"]:
            h = iv["histograms"]
            for op in ("tx_submission", "price_fetch", "balance_check"):
                h[op + ".service"] = h.pop(op)
                h[op] = h.pop(op + ".from_tick")
    return doc


def test_a_document_without_calibration_lag_or_isolation_still_renders(tmp_path: Path) -> None:
    doc = results()
    doc["scenarios"] = doc["scenarios"][:2]
    index = write_run_report(_as_old_run(doc), tmp_path / "r")
    page = parse(index)
    html = index.read_text(encoding="utf-8")
    text = " ".join(page.text)
    assert "not-calibrated" in page.ids and "calibration-table" not in page.ids and "Not calibrated" in text
    assert "of this node's ceiling" not in text and "machine not calibrated" in text
    assert "generator-banner" not in page.ids
    assert _cells(html, "lag")["burst"] == "0.400 ms / n/a"
    assert _cells(html, "settle")["sustained"] == "n/a"
    tables = _latency_tables(html)
    assert len(tables) == 2 * 4
    for (op, scn), body in tables.items():
        assert "n/a" not in body and "from intended start (corrected)" in body, (op, scn)


def test_figures_that_travel_show_cpu_per_trade_with_its_ci_and_the_stress_bracket(
    rendered: tuple[dict[str, Any], Path, Page],
) -> None:
    doc, run_dir, page = rendered
    html = (run_dir / "index.html").read_text(encoding="utf-8")
    assert "travel-table" in page.ids
    travel = html.split('id="travel-table"')[1].split("</table>")[0]
    sus = next(s for s in doc["scenarios"] if s["id"] == "sustained")["summary"]["cpu_per_trade"]
    lo, hi = sus["ci_us"]
    assert f"{sus['value_us']:,.0f} µs" in travel and f"[{lo:,.0f}, {hi:,.0f}] µs" in travel
    cal = doc["conditions"]["calibration"]
    iters = sus["value_us"] * 1e-6 * cal["cpu_ref_per_s"]
    assert f"{iters:,.0f} CPU-reference iterations per trade" in travel
    assert travel.count("Bot CPU per trade, step") == 5
    share = 800.0 / cal["node_accept_per_s"] * 100
    assert "Highest stress rate held" in travel and "800 trades/s" in travel and "broke at 1,600/s" in travel
    assert f"= {share:.2g}% of this node&#39;s ceiling" in travel


def test_the_market_data_capacity_search_is_shown_with_its_steps_and_ceiling(tmp_path: Path) -> None:
    from harness.results import MarketCapacity, MarketStep

    def step(rate: float, *, bound: bool = False, broken: str | None = None) -> MarketStep:
        return MarketStep(rate=rate, start=2.0, end=10.0, warmup_s=2.0, offered=rate, achieved=rate * 0.999,
                          sent=int(rate * 10), handled=int(rate * 2), conflated=int(rate * 8),
                          dropped=int(bool(broken)),
                          generator_lag_p99_ms=4.0 if bound else 0.7, generator_lag_max_ms=12.0,
                          generator_bound=bound, broken=broken, undecided=False, intervals=8, delivery_p99_ms=11.0,
                          tag=f"websocket_stress/{int(rate)}", bot_cpu_percent=rate / 1000, generator_cpu_percent=60.0)

    cap = MarketCapacity((12_500.0, 25_000.0, 50_000.0), 0.1, 25_000.0, None, None, 50_000.0, False,
                         "generator_bound", steps=(step(12_500.0), step(25_000.0), step(50_000.0, bound=True)))
    doc = results()
    scn = next(s for s in doc["scenarios"] if s["id"] == "sustained")
    doc["scenarios"].append({**scn, "id": "websocket_stress", "summary": {"capacity": cap.to_json()}})
    index = write_run_report(doc, tmp_path / "r")
    page = parse(index)
    html = index.read_text(encoding="utf-8")
    assert "capacity-websocket_stress" in page.ids
    section = html.split('id="capacity-websocket_stress"')[1].split("</table>")[0]
    assert "≥ 49,950 msg/s handled with none dropped (held 25,000 offered on schedule), generator-bound" in section
    assert "CPU reference" in section and "node ceiling" in section
    assert section.count('class="capacity-step') == 3 and "generator-bound</span>" in section
    assert "80%" in section  # the share of the step's ticks conflated
    travel = html.split('id="travel-table"')[1].split("</table>")[0]
    assert "Market data handled, none dropped" in travel and "≥ 49,950 msg/s" in travel
    assert "generator-bound at 50,000/s" in travel and "bot CPU 50% of one core at 50,000/s offered" in travel
