"""memory_leak on two signals: RSS and the heap, each with its own verdict, slope, CI and minimum detectable
leak; the row fails when either shows a leak its window can call. And the page's memory section."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.report import render_from_results
from harness.results.validate import validate_results
from harness.slo.judge import judge_run
from harness.slo.spec import SloSpec, load_default
from harness.slo.synth import Synth, synth_results

HOUR = 3600


@cache
def _spec() -> SloSpec:
    return load_default()


def _soak(seed: int, seconds: int, rss_bph: float, heap_bph: float | None, heap_noise: float = 0.3e6) -> dict[str, Any]:
    doc = synth_results(Synth(seed=seed, scenarios=("soak",), soak_s=seconds, rss_noise_mb=2.0,
                              leak_mb_per_h=rss_bph / 1e6))
    rng = np.random.default_rng(seed)
    for r in doc["scenarios"][0]["resources"]:
        if heap_bph is not None and int(r["t"]) % 2 == 0:  # the heap comes once a second, RSS twice
            r["x_heap_bytes"] = int(40e6 + heap_bph * r["t"] / HOUR + rng.normal(0, heap_noise))
            r["x_heap_blocks"] = 300_000
    return doc


def _leak_rows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["stat"]: v for v in judge_run(doc, _spec(), n_boot=200) if v["row"] == "memory_leak"}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.booleans(), st.booleans())
def test_the_row_fails_when_either_signal_leaks_and_only_that_signal_fails(seed: int, rss_leaks: bool,
                                                                            heap_leaks: bool) -> None:
    big = 60e6  # bytes/h, far above the 1 MB/h sensitivity over 1.5 h
    rows = _leak_rows(_soak(seed, int(1.5 * HOUR), big if rss_leaks else 0.0, big if heap_leaks else 0.0))
    assert set(rows) == {"rss_slope", "heap_slope"}
    assert (rows["rss_slope"]["verdict"] == "fail") == rss_leaks
    assert (rows["heap_slope"]["verdict"] == "fail") == heap_leaks
    assert any(v["verdict"] == "fail" for v in rows.values()) == (rss_leaks or heap_leaks)
    for stat, v in rows.items():
        x = v["x_leak"]
        assert x["series"] == stat.split("_")[0] and x["ci_bph"] == v["ci"]
        assert x["ci_bph"][0] <= x["slope_bph"] <= x["ci_bph"][1]
        # the smallest leak this window calls: the threshold plus the CI half-width
        assert x["mde_bph"] == x["sensitivity_bph"] + x["resolution_bph"] > x["sensitivity_bph"]
        assert x["analysed_s"] > HOUR and x["warmup_s"] > 0 and x["samples"] > 0


def test_without_heap_bytes_only_rss_is_judged() -> None:
    rows = _leak_rows(_soak(3, HOUR, 0.0, None))
    assert set(rows) == {"rss_slope"} and rows["rss_slope"]["x_leak"]["series"] == "rss"


def test_the_heap_is_judged_in_a_short_window_by_its_floor_too() -> None:
    doc = _soak(5, 60, 0.0, 4.7e9, heap_noise=50e3)
    doc["scenarios"][0]["intervals"] = [{"start": float(k), "end": k + 1.0, "histograms": {}, "counters": {"ok": 10}}
                                        for k in range(60)]
    rows = _leak_rows(doc)
    assert rows["heap_slope"]["verdict"] == "fail" and rows["rss_slope"]["verdict"] != "fail"
    assert rows["heap_slope"]["x_leak"]["mde_bph"] >= 750e6  # the short-window floor, stated


def test_the_page_shows_both_signals_the_growth_sites_and_memray(tmp_path: Path) -> None:
    doc = _soak(7, 600, 0.0, 4.7e9)
    soak = doc["scenarios"][0]
    soak["intervals"] = [{"start": float(k), "end": k + 1.0, "histograms": {}, "counters": {"ok": 10}}
                         for k in range(600)]
    soak["summary"]["heap_growth"] = {
        "baseline_at": 10.0, "at": 40.0, "span_s": 30.0, "frames": 1, "traced_bytes_baseline": 1_000_000,
        "traced_bytes_now": 40_000_000, "sites_grown": 2, "snapshot_ms": 420.0, "seq": 3, "baseline_t": 9.5,
        "t": 39.5, "sites": [
            {"file": "/x/bot/debug.py", "line": 37, "stack": [], "bytes_grown": 39_000_000, "count_grown": 300,
             "bytes_now": 39_000_000, "count_now": 300},
            {"file": "/v/lib/python3.11/site-packages/aiohttp/x.py", "line": 5, "stack": ["/x/bot/a.py:3"],
             "bytes_grown": 1000, "count_grown": 2, "bytes_now": 2000, "count_now": 4}]}
    doc["conditions"]["bot"] = {"debug": {"heap_trace_frames": 1}}
    doc["x_memray"] = {"peak_memory_bytes": 90_000_000, "total_allocations": 1, "leaked_bytes": 5,
                       "top_leaks": [{"where": "f:1 (g)", "bytes": 5}], "file_format": "AGGREGATED_ALLOCATIONS",
                       "capture": {"size_bytes": 2_000_000, "file_format": "AGGREGATED_ALLOCATIONS",
                                   "tracked_s": 1800.0, "bytes_per_hour": 4_000_000.0, "memray_version": "1.20.0"},
                       "flamegraphs": {"leaks": "memray-leaks.html", "peak": "memray-peak.html"},
                       "overhead": {"rate_per_s": 20.0, "throughput_ratio": 1.0, "p99_ms_without": 40.0,
                                    "p99_ms_with": 90.0, "cpu_per_trade_ratio": 3.0, "conditions": "synthetic",
                                    "source": "a test"}}
    doc["verdicts"] = judge_run(doc, _spec(), n_boot=200)
    validate_results(doc, "results.json")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_bytes(orjson.dumps(doc))
    page = Path(render_from_results(run_dir)).read_text()
    section = page[page.index('<section id="memory">'):]
    section = section[:section.index("</section>")]
    assert 'data-signal="rss"' in section and 'data-signal="heap"' in section
    assert 'data-signal="heap" data-verdict="fail"' in section
    growth = section[section.index('id="growth-table"'):]
    assert growth.index("bot/debug.py:37") < growth.index("aiohttp/x.py:5")  # largest first, paths shortened
    assert "4.68 GB/h" in growth  # 39 MB over 30 s
    assert 'href="memray-leaks.html"' in section and "4 MB per hour" in section
    assert 'id="memray-overhead"' in section and (run_dir / "plots" / "memory-soak.png").exists()
    assert "Tracing the heap has a price" in section and "roughly doubles the bot" in section
