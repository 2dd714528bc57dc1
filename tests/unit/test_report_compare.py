"""Comparison: a planted slowdown is flagged, an A/A pair is not, directions follow the thresholds."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from harness.report import write_comparison
from harness.report.compare import compare, comparison_text, summary_estimate
from harness.results import parse_results
from tests.unit.report_data import results


def _compared(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows a comparison holds: all but the regression row, itself a comparison to another baseline."""
    return [v for v in doc["verdicts"] if v["row"] != "regression"]


# The statistics under test here are the within-run ones, at the 5% threshold a replicated
# comparison would use; the default threshold for two single runs is tested on its own below.
NOISE = 0.05


def test_two_single_runs_are_judged_against_the_run_to_run_spread_by_default() -> None:
    from harness.stats.noise import RUN_TO_RUN_NOISE

    base, head = results(1), results(3, tx_submission=1.15)  # inside the spread two runs of one build show
    default = compare(base, head)
    assert default.noise == RUN_TO_RUN_NOISE and not default.regressions()
    assert [c.row for c in compare(base, head, noise=NOISE).regressions()] == ["tx_submission"] * len(
        compare(base, head, noise=NOISE).regressions())

def test_planted_slowdown_is_a_regression_on_exactly_that_operation() -> None:
    cmp = compare(results(1), results(3, tx_submission=1.3), noise=NOISE)
    regressed = {(c.row, c.stat, c.scenario) for c in cmp.regressions()}
    assert regressed == {("tx_submission", "mean", "sustained"), ("tx_submission", "p95", "sustained"),
                         ("tx_submission", "p99", "sustained")}
    mean = next(c for c in cmp.changes if c.label == "tx_submission.mean [sustained]")
    assert mean.ci is not None and 1.0 < mean.ci[0] <= mean.ratio <= mean.ci[1]  # type: ignore[operator]
    assert mean.ratio == pytest.approx(1.3, abs=0.06)
    assert mean.p_adjusted is not None and mean.p_adjusted < 0.05
    assert cmp.counts()["improvement"] == 0


@pytest.mark.parametrize(("base_seed", "head_seed"), [(1, 2), (4, 5)])
def test_a_a_pair_shows_no_significant_change(base_seed: int, head_seed: int) -> None:
    cmp = compare(results(base_seed), results(head_seed), noise=NOISE)
    assert cmp.counts()["regression"] == 0 and cmp.counts()["improvement"] == 0
    assert cmp.counts()["no_change"] == len(cmp.changes) == len(_compared(results(1)))


def test_speedup_is_an_improvement() -> None:
    cmp = compare(results(1, price_fetch=1.4), results(2), noise=NOISE)
    improved = {c.label for c in cmp.changes if c.verdict == "improvement"}
    assert "price_fetch.mean [sustained]" in improved
    assert cmp.regressions() == ()


def _with_value(doc: dict[str, Any], row: str, stat: str, value: float, ci: tuple[float, float]) -> dict[str, Any]:
    for v in doc["verdicts"]:
        if v["row"] == row and v["stat"] == stat:
            v["value"], v["ci"] = value, list(ci)
    return doc


def test_direction_follows_the_threshold_for_summary_rows() -> None:
    base = results(1)
    head = _with_value(results(1), "transactions_per_sec", "target", 600.0, (580.0, 620.0))  # was 800
    head = _with_value(head, "memory_rss", "steady", 60.0, (59.5, 60.5))  # was ~92.5: lower is better
    cmp = compare(base, head, noise=NOISE)
    by = {c.label: c for c in cmp.changes}
    assert by["transactions_per_sec.target [stress]"].verdict == "regression"
    assert by["memory_rss.steady [sustained]"].verdict == "improvement"
    assert by["api_calls_per_sec.target [sustained]"].verdict == "no_change"


def test_rows_missing_on_one_side_are_not_comparable_and_do_not_count_in_holm() -> None:
    base = results(1)
    head = results(2)
    head["status"] = "partial"
    head["verdicts"] = [v for v in head["verdicts"] if v["table"] != "quality"]
    cmp = compare(base, head, noise=NOISE)
    nc = [c for c in cmp.changes if c.verdict == "not_comparable"]
    assert {c.row for c in nc} == {"error_rate", "uptime", "memory_leak"}
    assert all(c.head is None and c.p_adjusted is None and "head run" in c.note for c in nc)


def test_summary_estimate_handles_zero_and_sign_changing_values() -> None:
    doc = parse_results(results(1))
    b = next(v for v in doc.verdicts if v.row == "memory_leak")
    est, p = summary_estimate(b, b, 0.95)
    assert est is not None and est.value == 1.0 and not est.has_ci and p == 1.0
    tp = next(v for v in doc.verdicts if v.row == "transactions_per_sec")
    est, p = summary_estimate(tp, tp, 0.95)
    assert est is not None and est.has_ci and est.lo < 1.0 < est.hi and p == 1.0


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.imgs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "tr" and "change-row" in a.get("class", ""):
            self.rows.append(a)
        if tag == "img":
            self.imgs.append(a["src"])


def test_comparison_page_lists_every_row_and_base_vs_head_spectra(tmp_path: Path) -> None:
    dirs = []
    for doc in (results(1), results(3, tx_submission=1.3)):
        doc["scenarios"] = doc["scenarios"][1:2]  # sustained only: keeps the test quick
        d = tmp_path / doc["run_id"]
        d.mkdir()
        (d / "results.json").write_text(json.dumps(doc), encoding="utf-8")
        dirs.append(d)
    index = write_comparison(dirs[0], dirs[1], noise=NOISE)
    assert index.parent.name == f"compare-{dirs[0].name}-{dirs[1].name}"
    page = _Rows()
    page.feed(index.read_text(encoding="utf-8"))
    assert len(page.rows) == len(_compared(results(1)))
    assert sum(r["data-verdict"] == "regression" for r in page.rows) == 3
    assert len(page.imgs) == 4 and all((index.parent / s).exists() for s in page.imgs)
    html = index.read_text(encoding="utf-8")
    assert "Mann-Whitney" in html and "Holm" in html
    assert "report</a>" not in html  # the run pages were never rendered: no dead links


def test_comparison_links_to_rendered_run_pages_relative_to_its_folder(tmp_path: Path) -> None:
    from harness.report import write_run_report

    dirs = []
    for seed in (1, 2):
        doc = results(seed)
        doc["scenarios"] = []
        d = tmp_path / "runs" / doc["run_id"]
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps(doc), encoding="utf-8")
        write_run_report(doc, d)
        dirs.append(d)
    index = write_comparison(dirs[0], dirs[1], tmp_path / "elsewhere" / "cmp", noise=NOISE)
    html = index.read_text(encoding="utf-8")
    for d in dirs:
        href = f"../../runs/{d.name}/index.html"
        assert f'href="{href}"' in html and (index.parent / href).exists()


def _on_another_machine(doc: dict[str, Any], speed: float) -> dict[str, Any]:
    cal = doc["conditions"]["calibration"]
    for key in ("cpu_ref_per_s", "sign_per_s", "node_accept_per_s"):
        cal[key] *= speed
    return doc


def test_a_change_between_different_machines_is_never_called_a_regression(tmp_path: Path) -> None:
    base, head = results(1), _on_another_machine(results(3, tx_submission=1.3), 0.4)
    cmp = compare(base, head, noise=NOISE)
    assert cmp.machine_shift is not None
    for name in ("CPU reference", "signing", "node ceiling"):
        assert name in cmp.machine_shift
    assert cmp.regressions() == () and cmp.counts()["regression"] == cmp.counts()["improvement"] == 0
    differs = {c.label for c in cmp.changes if c.verdict == "machine_differs"}
    assert differs == {"tx_submission.mean [sustained]", "tx_submission.p95 [sustained]",
                       "tx_submission.p99 [sustained]"}
    assert all(c.statistical == "regression" for c in cmp.changes if c.verdict == "machine_differs")
    text = comparison_text(cmp)
    assert text.splitlines()[1].startswith("MACHINE DIFFERS: CPU reference")
    assert "machine differs (statistically: regression)" in text and "  regression " not in text

    dirs = []
    for doc in (base, head):
        doc["scenarios"] = doc["scenarios"][1:2]
        d = tmp_path / doc["run_id"]
        d.mkdir()
        (d / "results.json").write_text(json.dumps(doc), encoding="utf-8")
        dirs.append(d)
    index = write_comparison(dirs[0], dirs[1], noise=NOISE)
    html = index.read_text(encoding="utf-8")
    assert 'id="machine-banner"' in html and "The machines differ:" in html
    page = _Rows()
    page.feed(html)
    verdicts = [r["data-verdict"] for r in page.rows]
    assert "regression" not in verdicts and "improvement" not in verdicts and verdicts.count("machine_differs") == 3
    assert (index.parent / "summary.txt").read_text(encoding="utf-8") == comparison_text(compare(
        parse_results(json.loads((dirs[0] / "results.json").read_text())),
        parse_results(json.loads((dirs[1] / "results.json").read_text())), noise=NOISE))


def test_machines_within_their_noise_keep_the_statistical_verdicts() -> None:
    cmp = compare(results(1), _on_another_machine(results(3, tx_submission=1.3), 1.1), noise=NOISE)
    assert cmp.machine_shift is None and cmp.calibrated == (True, True)
    assert len(cmp.regressions()) == 3 and cmp.counts()["machine_differs"] == 0
    text = comparison_text(cmp)
    assert "MACHINE" not in text and "not calibrated" not in text and text.count("regression ") == 3


def test_an_uncalibrated_run_is_said_to_leave_the_machine_unknown(tmp_path: Path) -> None:
    from harness.report.compare import write_comparison_page

    base, head = results(1), results(2)
    del head["conditions"]["calibration"]
    for doc in (base, head):
        doc["scenarios"] = []
    cmp = compare(base, head, noise=NOISE)
    assert cmp.machine_shift is None and cmp.calibrated == (True, False)
    assert "the head run was not calibrated" in comparison_text(cmp)
    html = write_comparison_page(parse_results(base), parse_results(head), tmp_path, cmp).read_text(encoding="utf-8")
    assert 'id="uncalibrated-banner"' in html and 'id="machine-banner"' not in html


def test_calibration_figures_are_not_reported_as_differing_conditions() -> None:
    from harness.report.compare import condition_diffs

    base, head = parse_results(results(1)), parse_results(results(2))
    assert base.conditions["calibration"] != head.conditions["calibration"]
    assert [k for k, _, _ in condition_diffs(base, head)] == ["git_commit"]


def test_the_default_model_adds_an_absolute_floor_that_an_explicit_noise_replaces() -> None:
    from harness.stats.noise import RUN_TO_RUN_NOISE, with_floor

    # A 1 ms mean must move by 25% + 1 ms, a 40 ms one by 25% + 2.5%: jitter is additive.
    assert with_floor(RUN_TO_RUN_NOISE, 1.0, "mean") == pytest.approx(1.25)
    assert with_floor(RUN_TO_RUN_NOISE, 40.0, "mean") == pytest.approx(0.275)
    assert with_floor(RUN_TO_RUN_NOISE, 40.0, "p99") == pytest.approx(0.5)
    assert with_floor(RUN_TO_RUN_NOISE, None, "mean") == RUN_TO_RUN_NOISE
    # price_fetch at 1.7 ms (mean) to 3.5 ms (p99), 1.55x slower: beyond 25%, inside the floors.
    base, head = results(1), results(3, price_fetch=1.6)
    assert not [c for c in compare(base, head).changes if c.row == "price_fetch" and c.verdict != "no_change"]
    assert {c.stat for c in compare(base, head, noise=0.25).regressions() if c.row == "price_fetch"} == {
        "mean", "p95", "p99"}
    # The same slowdown of a 34 ms trade_execution clears 25% + 1 ms (28%) on its mean.
    slow = compare(base, results(3, trade_execution=1.6))
    assert ("trade_execution", "mean") in {(c.row, c.stat) for c in slow.regressions()}
