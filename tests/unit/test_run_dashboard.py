"""The live dashboard: window math against hdrh, the snapshot builders, both renderings, the Ui, its sources."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from harness.load.feed import MarketFeed
from harness.load.generator import OpenLoopGenerator
from harness.load.schedules import schedule_from_spec
from harness.probes.resources import ProcessTreeSampler
from harness.run import _dashsources
from harness.run._dashsources import LoadSource, RunSource
from harness.run._dashwindow import Closed, Sparse, dense, max_us, percentiles_us, window
from harness.run.botproc import StatsPuller
from harness.run.dashboard import (
    FEED_LAG_KEY,
    RUN_OPS,
    Figures,
    LagFigures,
    OpFigures,
    StepProgress,
    VerdictLine,
    decode_bot_interval,
    judge_finished,
    load_figures,
    plain_line,
    render,
    run_figures,
    snapshot,
    verdicts_so_far,
)
from harness.run.progress import Ui
from harness.stats.histograms import encode, new_histogram
from tests.unit.report_data import results
from tests.waiting import until

ANSI = re.compile(r"\x1b\[")


def _hist(values: Sequence[int]) -> HdrHistogram:
    h = new_histogram()
    for v in values:
        h.record_value(v)
    return h


def _bot_interval(seq: int, us: int, n: int = 10, **counters: int) -> dict[str, Any]:
    hists = {op: encode(_hist([us] * n)) for op in RUN_OPS}
    return {"seq": seq, "start": 1000.0 + seq, "end": 1001.0 + seq, "histograms": hists,
            "counters": {"tx_accepted": n, "trades_ok": n - 1, "trades_reverted": 1, "in_flight_max": 3, **counters}}


def _feed_interval(i: int, lag_us: int, sent: int = 20) -> Closed:
    return Closed(i, float(i), i + 1.0, {"ws_sent": sent, "ws_dropped": 0, "ws_undelivered": 0},
                  {FEED_LAG_KEY: Sparse.of(_hist([lag_us] * sent))})


# ------------------------------------------------------------------------------------- window math
values = st.lists(st.integers(1, 60_000_000), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(st.lists(values, min_size=1, max_size=5), st.lists(st.floats(0.1, 100.0), min_size=1, max_size=4))
def test_percentiles_of_merged_sparse_counts_equal_hdrhs_of_the_merged_histogram(
        parts: list[list[int]], qs: list[float]) -> None:
    whole = _hist([v for p in parts for v in p])
    counts = dense(Sparse.of(_hist(p)) for p in parts)
    assert percentiles_us(counts, qs) == tuple(whole.get_value_at_percentile(q) for q in qs)
    assert max_us(counts) == whole.get_max_value()
    assert int(counts.sum()) == whole.get_total_count()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 40), st.integers(1, 15))
def test_a_window_holds_the_newest_seconds_only(n: int, seconds: int) -> None:
    closed = [Closed(i, float(i), i + 1.0, {}, {}) for i in range(n)]
    win = window(closed, seconds)
    assert [c.key for c in win] == list(range(max(0, n - seconds), n))


def test_empty_counts_read_as_zero() -> None:
    assert percentiles_us(dense(()), (50.0, 99.0)) == (0, 0) and max_us(dense(())) == 0


# ---------------------------------------------------------------------------------- run snapshot
def test_run_figures_cover_the_last_ten_seconds_and_hold_them_against_the_targets() -> None:
    # 5 old seconds at 900 ms, then 10 at 2 ms: the window must not see the old ones
    ivs = [_bot_interval(s, 900_000) for s in range(5)] + [_bot_interval(s, 2_000) for s in range(5, 15)]
    closed = [decode_bot_interval(iv, RUN_OPS) for iv in ivs]
    feed = [_feed_interval(i, 300) for i in range(12)]
    f = run_figures(closed, gauges={"in_flight": 7, "queue_depth": 2}, rss_bytes=85_000_000, cpu_percent=23.0,
                    feed=feed, feed_running=True, limits={"trade_execution": {"p99": 1.0, "mean": 0.5}})
    rates = dict(f.rates)
    assert rates["offered"] == 20.0 and rates["accepted"] == 10.0 and rates["confirmed"] == 9.0
    te = next(o for o in f.ops if o.op == "trade_execution")
    assert te.count == 100 and te.p50_ms == te.p99_ms == pytest.approx(2.0, rel=1e-3)
    assert te.over == ("p99",)  # p99 above 1 ms; the mean is not checked live
    assert (f.in_flight, f.queued, f.in_flight_peak, f.errors) == (7.0, 2.0, 3.0, 10)
    assert f.rss_mb == 85.0 and f.cpu_percent == 23.0
    assert f.lag is not None and f.lag.p99_ms == pytest.approx(0.3, rel=1e-2) and not f.lag.behind
    late = run_figures(closed, gauges={}, feed=[*feed, _feed_interval(12, 80_000)], feed_running=False)
    assert late.lag is not None and late.lag.behind  # a 80 ms max is beyond the generators' rule
    assert dict(late.rates)["offered"] == 0.0  # nothing is offered while the feed is idle


def test_load_figures_so_far_and_the_lag_window() -> None:
    closed = [Closed(i, float(i), i + 1.0, {"sent": 100, "ok": 99, "errors": 1},
                     {"load.generator_lag": Sparse.of(_hist([50] * 100))}) for i in range(12)]
    so_far = {"eth_call": dense([Sparse.of(_hist([1000] * 99))]), "eth_call.service": dense([Sparse.of(_hist([800]))])}
    f = load_figures(closed, so_far, "eth_call", in_flight=3, errors=12, dropped=0)
    assert dict(f.rates) == {"offered": 100.0, "completed": 99.0, "errors": 1.0}
    assert [o.op for o in f.ops] == ["eth_call (corrected)", "service time"] and f.ops[0].count == 99
    assert f.lag is not None and f.lag.samples == 1000 and f.lag.source == "generator"


# -------------------------------------------------------------------------------------- rendering
def _snapshot(**kw: Any) -> Any:
    ops = (OpFigures("trade_execution", 2000, 8.1, 12.0, 140.3, (("p99", 100.0),)),
           OpFigures("price_fetch", 0, 0.0, 0.0, 0.0))
    figures = Figures(10.0, (("offered", 20.0), ("accepted", 19.8), ("confirmed", 19.5)), ops, "last 10 s",
                      in_flight=3, queued=0, errors=0, dropped=0, counts_span="last 10 s", rss_mb=85.2,
                      cpu_percent=23.0, lag=LagFigures("feed", 3.21, 80.0, True, 200))
    verdicts = [VerdictLine(f"row{i}", "p99", "burst", "pass", 1.0 + i, "ms", "<", 50.0) for i in range(9)]
    verdicts.insert(0, VerdictLine("trade_execution", "p99", "burst", "fail", 123.0, "ms", "<", 100.0))
    return snapshot("harness quick · 20261207-0000", figures, step=StepProgress("sustained [ramp]", 12.0, 30.0),
                    verdicts=verdicts, judged=("burst",), **kw)


def test_render_shows_every_key_figure() -> None:
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(render(_snapshot()))
    text = console.export_text()
    for want in ("harness quick", "sustained [ramp]: 12 s of 30 s, 18 s left", "offered 20.0/s", "accepted 19.8/s",
                 "confirmed 19.5/s", "in flight 3, queued 0", "bot RSS 85 MB CPU 23%",
                 "feed lag p99 3.21 ms, max 80.0 ms", "BEHIND", "trade_execution", "140", "p99 < 100  over",
                 "verdicts so far (burst): 9 pass · 1 fail · 0 inconclusive", "123 ms", "< 100 ms", "fail",
                 "+ 2 more: 2 pass"):
        assert want in text, (want, text)
    assert max(len(line) for line in text.splitlines()) <= 120


def test_the_plain_line_has_the_key_figures_and_no_ansi() -> None:
    line = plain_line(_snapshot())
    assert not ANSI.search(line) and "\n" not in line
    for want in ("sustained [ramp] 12/30 s (18 s left)", "offered 20.0/s", "trade_execution 8.10/12.0/140 p99>100!",
                 "price_fetch -", "in flight 3", "bot RSS 85 MB CPU 23%", "feed lag p99 3.21 max 80.0 ms BEHIND",
                 "verdicts so far: 9 pass 1 fail 0 inconclusive"):
        assert want in line, (want, line)


# --------------------------------------------------------------------------------------- verdicts
def test_only_rows_of_finished_scenarios_count_fails_first() -> None:
    def v(row: str, scn: str | None, verdict: str) -> dict[str, Any]:
        return {"row": row, "stat": "p99", "scenario": scn, "verdict": verdict, "value": 1.0, "unit": "ms",
                "threshold": {"op": "<", "value": 2.0}}

    rows = [v("a", "burst", "pass"), v("b", "sustained", "fail"), v("c", "burst+sustained", "fail"),
            v("regression", "burst", "fail"), v("ledger", None, "pass"), v("d", "burst", "fail")]
    assert [(x.row, x.verdict) for x in verdicts_so_far(rows, ["burst"])] == [("d", "fail"), ("a", "pass")]
    assert [x.row for x in verdicts_so_far(rows, ["burst", "sustained"])] == ["d", "c", "b", "a"]


def test_judging_a_document_of_finished_scenarios_decides_their_rows_only() -> None:
    doc = results()
    doc["scenarios"] = [s for s in doc["scenarios"] if s["id"] in ("burst", "sustained")]
    lines, judged = judge_finished(doc, None)
    assert judged == ("burst", "sustained")
    assert lines and all(set(v.scenario.split("+")) <= {"burst", "sustained"} for v in lines)
    assert any(v.row == "trade_execution" and v.stat == "p99" and v.verdict in ("pass", "fail") for v in lines)


# ------------------------------------------------------------------------------------------ the Ui
def _figures() -> Figures:
    return _snapshot().figures  # type: ignore[no-any-return]


def test_the_plain_fallback_logs_the_verdicts_of_finished_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    err: list[str] = []

    def printed(what: str) -> bool:
        err.append(capsys.readouterr().err)
        return what in "".join(err)

    async def body() -> None:
        with Ui(enabled=False, plain_every_s=0.05) as ui:
            ui.watch(_figures, "t")
            ui.judge_finished(results(), None)
            await until(lambda: printed("verdicts so far ("), 60, "the finished scenarios judged")

    asyncio.run(body())
    text = "".join(err) + capsys.readouterr().err
    assert not ANSI.search(text)
    assert re.search(r"verdicts so far \(burst, sustained, stress, soak\): \d+ pass, \d+ fail", text), text


def test_plain_live_lines_carry_the_step_and_figures(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []

    async def body() -> None:
        with Ui(enabled=False, plain_every_s=0.05) as ui:
            ui.watch(_figures, "t")
            task = ui.task("sustained", 30.0)
            ui.update(task, 12.0)

            def got() -> bool:
                seen.extend(line for line in capsys.readouterr().err.splitlines() if "live: " in line)
                return bool(seen)

            await until(got, 10, "a plain live line")

    asyncio.run(body())
    assert not ANSI.search(seen[0])
    assert "sustained 12/30 s (18 s left)" in seen[0] and "offered 20.0/s" in seen[0] and "BEHIND" in seen[0]


def test_the_live_view_draws_the_dashboard_and_log_lines_stay_above_it() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, height=60)

    async def body() -> None:
        with Ui(console=console) as ui:
            assert ui.enabled
            ui.watch(_figures, "harness quick · live")
            ui.update(ui.task("sustained", 30.0), 12.0)
            ui.log("a log line")
            await until(lambda: ui._snapshot is not None, 10, "a snapshot")

    asyncio.run(body())
    text = ANSI.sub("", buf.getvalue())
    assert "a log line" in text and "harness quick · live" in text and "confirmed 19.5/s" in text
    assert text.index("a log line") < text.rindex("harness quick · live")  # the last frame is below the log


# -------------------------------------------------------------------------------------- the sources
def test_the_run_source_decodes_each_interval_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    def counting(iv: Any, ops: Any) -> Closed:
        calls.append(int(iv["seq"]))
        return decode_bot_interval(iv, ops)

    monkeypatch.setattr(_dashsources, "decode_bot_interval", counting)
    puller = StatsPuller("http://127.0.0.1:9")  # never started: its intervals are set by hand
    sampler = ProcessTreeSampler(os.getpid())
    sampler.sample_now()
    sampler.sample_now()
    stack = SimpleNamespace(puller=puller, sampler=sampler, feed=MarketFeed(["T000/USD"]))
    source = RunSource(stack, {"trade_execution": {"p99": 50.0}})  # type: ignore[arg-type]
    puller.intervals = [_bot_interval(s, 2_000) for s in range(3)]
    puller.gauges = {"in_flight": 4}
    first = source()
    puller.intervals.append(_bot_interval(3, 4_000))
    second, third = source(), source()
    assert calls == [0, 1, 2, 3]  # the refreshes decoded only the new second
    assert first.ops[0].count == 30 and second.ops[0].count == third.ops[0].count == 40
    assert second.in_flight == 4.0 and second.rss_mb is not None and second.rss_mb > 0
    stack.puller = StatsPuller("http://127.0.0.1:9")  # a fresh bot counts from 0 again
    stack.puller.intervals = [_bot_interval(0, 1_000)]
    assert source().ops[0].count == 10


def test_the_load_source_counts_every_completed_request_once_the_run_is_over() -> None:
    async def body() -> tuple[Figures, int]:
        async def op() -> None:
            await asyncio.sleep(0.001)

        gen = OpenLoopGenerator(op, schedule_from_spec({"kind": "constant", "rate": 100, "duration": 2.5}),
                                name="noop", drain_timeout_s=10)
        source = LoadSource(gen)
        run = asyncio.create_task(gen.run())
        while not run.done():  # refreshed while it runs, as the Ui does
            source()
            await asyncio.sleep(0.05)
        await run
        return source(), gen.statistics().ok

    figures, ok = asyncio.run(body())
    assert ok == 250 and figures.ops[0].count == ok and figures.ops[1].count == ok
    assert figures.lag is not None and figures.errors == 0 and figures.in_flight == 0


class _JsonRpc(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the load's client expects

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def jsonrpc_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JsonRpc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_harness_load_with_its_view_still_ends_with_its_table(jsonrpc_url: str, tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "harness.cli", "load", "--url", jsonrpc_url, "--rate", "50",
                          "--duration", "1", "--no-progress", "--json", str(tmp_path / "load.json")],
                         capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "COLUMNS": "200"})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "from intended start (corrected)" in res.stdout and "ok 50" in res.stdout
    assert json.loads((tmp_path / "load.json").read_text())["summary"]["ok"] == 50
    assert "constant, 50 requests ..." in res.stderr and not ANSI.search(res.stderr)
