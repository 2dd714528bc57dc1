"""The live terminal dashboard of ``run``, ``soak`` and ``load``: a frozen snapshot from plain data, drawn two ways.

``run_figures`` and ``load_figures`` are pure: from closed intervals (``_dashwindow.Closed``, each
decoded once by its source), the bot's gauges, a resource sample and the generator's counters
they build the ``Figures`` of one frame: rates, per-operation p50/p95/p99 over the last
``WINDOW_S`` seconds (load: over the whole run so far), the backlog, RSS and CPU, and the
generator's lag with its "behind" warning. ``snapshot`` adds the step in progress and the verdicts
decided so far; ``render`` draws it for rich ``Live``, ``plain_line`` as one line without ANSI codes
for CI logs. The sources that read live objects are in ``_dashsources``; the Ui
(``harness.run.progress``) owns the ``Live`` and refreshes.

Verdicts: a finished scenario's rows are judged by the run's own judge (``judge_finished``) on the
results document as written after the scenario, in a worker thread: ~0.3 s of CPU for a quick
profile's document. The scenario in progress is not judged (its bootstrap intervals would cost CPU
while the bot is measured); its window is only compared with the SLO targets (``OpFigures.over``),
a hint without a confidence interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.load.feed import LAG_KEY as FEED_LAG_KEY
from harness.load.recorder import LAG_KEY as GENERATOR_LAG_KEY
from harness.load.recorder import LagPolicy
from harness.run._dashmodel import (
    DashboardSnapshot,
    Figures,
    LagFigures,
    OpFigures,
    StepProgress,
    VerdictLine,
    VerdictTally,
)
from harness.run._dashrender import plain_line, render
from harness.run._dashwindow import (
    Closed,
    decode_bot_interval,
    max_us,
    merged,
    peak,
    per_second,
    percentiles_us,
    total,
    window,
)
from harness.run.collect import BOT_CONFLATED
from harness.stats.histograms import IntArray

__all__ = [
    "FEED_LAG_KEY", "GENERATOR_LAG_KEY", "RUN_OPS", "WINDOW_S", "Closed", "DashboardSnapshot", "Figures",
    "LagFigures", "OpFigures", "StepProgress", "VerdictLine", "VerdictTally", "decode_bot_interval",
    "judge_finished", "lag_figures", "load_figures", "op_figures", "plain_line", "render", "run_figures",
    "snapshot", "verdicts_so_far",
]

WINDOW_S = 10.0
# The SLO operations (slo-tables.md), in the order a reader looks for them.
RUN_OPS = ("trade_execution", "tx_submission", "price_fetch", "balance_check")
TRADE_ERRORS = ("trades_reverted", "trades_failed", "trades_rejected", "trades_dropped")
_QS = (50.0, 95.0, 99.0)
DEFAULT_LAG = LagPolicy()  # the generators' own rule for "behind" (harness.load.recorder)
_ORDER = {"fail": 0, "inconclusive": 1, "pass": 2}


def op_figures(op: str, counts: IntArray, limits: Mapping[str, float] | None = None) -> OpFigures:
    """p50/p95/p99 (ms) of a counts array, with the SLO targets to hold them against."""
    p50, p95, p99 = percentiles_us(counts, _QS)
    return OpFigures(op, int(counts.sum()), p50 / 1000, p95 / 1000, p99 / 1000,
                     tuple(sorted((limits or {}).items())))


def lag_figures(source: str, win: Sequence[Closed], key: str, policy: LagPolicy = DEFAULT_LAG) -> LagFigures | None:
    """The generator's lag p99 and max over ``win`` (None: nothing was sent in it)."""
    counts = merged(win, key)
    n = int(counts.sum())
    if n == 0:
        return None
    (p99,) = percentiles_us(counts, (99.0,))
    p99_ms, max_ms = p99 / 1000, max_us(counts) / 1000
    return LagFigures(source, p99_ms, max_ms, policy.behind(p99_ms, max_ms), n)


def run_figures(bot: Sequence[Closed], *, gauges: Mapping[str, Any], rss_bytes: int | None = None,
                cpu_percent: float | None = None, feed: Sequence[Closed] = (), feed_running: bool = False,
                limits: Mapping[str, Mapping[str, float]] | None = None, window_s: float = WINDOW_S,
                lag_policy: LagPolicy = DEFAULT_LAG) -> Figures:
    """A run's frame: the bot's closed intervals (``seq`` order), its last ``/stats`` gauges and resource
    sample, and the feed's closed intervals (this run's, or the last one's while none runs)."""
    win, fwin = window(bot, window_s), window(feed, window_s)
    rates = [("offered", per_second(fwin, "ws_sent") if feed_running else 0.0),
             ("accepted", per_second(win, "tx_accepted")), ("confirmed", per_second(win, "trades_ok"))]
    ticks = per_second(win, "ticks_handled", BOT_CONFLATED)
    if ticks:
        rates.append(("ticks handled", ticks))
    limits = limits or {}
    ops = tuple(op_figures(op, merged(win, op), limits.get(op)) for op in RUN_OPS)

    def gauge(name: str) -> float | None:
        v = gauges.get(name)
        return float(v) if isinstance(v, int | float) else None

    return Figures(window_s, tuple(rates), ops, f"last {window_s:g} s", in_flight=gauge("in_flight"),
                   in_flight_peak=peak(win, "in_flight_max"), queued=gauge("queue_depth"),
                   errors=int(total(win, *TRADE_ERRORS)),
                   dropped=int(total(fwin, "ws_dropped", "ws_undelivered")) if fwin else None,
                   counts_span=f"last {window_s:g} s", resource="bot",
                   rss_mb=None if rss_bytes is None else rss_bytes / 1e6, cpu_percent=cpu_percent,
                   lag=lag_figures("feed", fwin, FEED_LAG_KEY, lag_policy))


def load_figures(closed: Sequence[Closed], so_far: Mapping[str, IntArray], op: str, *, in_flight: int,
                 errors: int, dropped: int, rss_bytes: int | None = None, cpu_percent: float | None = None,
                 window_s: float = WINDOW_S, lag_policy: LagPolicy = DEFAULT_LAG) -> Figures:
    """``harness load``'s frame: the generator's closed seconds, its latency counts so far (``op`` from the
    intended start, ``op.service`` from the actual one) and its running totals."""
    win = window(closed, window_s)
    rates = (("offered", per_second(win, "sent")), ("completed", per_second(win, "ok")),
             ("errors", per_second(win, "errors")))
    pairs = ((f"{op} (corrected)", so_far.get(op)), ("service time", so_far.get(f"{op}.service")))
    ops = tuple(op_figures(label, counts) for label, counts in pairs if counts is not None)
    return Figures(window_s, rates, ops, "so far", in_flight=float(in_flight), errors=errors, dropped=dropped,
                   counts_span="so far", resource="generator", rss_mb=None if rss_bytes is None else rss_bytes / 1e6,
                   cpu_percent=cpu_percent, lag=lag_figures("generator", win, GENERATOR_LAG_KEY, lag_policy))


def verdicts_so_far(verdicts: Iterable[Mapping[str, Any]], finished: Iterable[str]) -> tuple[VerdictLine, ...]:
    """The rows of ``verdicts`` that finished scenarios decide (a row over several, ``a+b``, once all have
    run), fails first; ``regression`` (a comparison with another run) and rows of no scenario left out."""
    done = set(finished)
    out = [VerdictLine.from_json(v) for v in verdicts
           if v.get("scenario") and v.get("row") != "regression" and set(str(v["scenario"]).split("+")) <= done]
    return tuple(sorted(out, key=lambda v: (_ORDER.get(v.verdict, 3), v.scenario, v.row, v.stat)))


def judge_finished(doc: Mapping[str, Any], slo: Path | None) -> tuple[tuple[VerdictLine, ...], tuple[str, ...]]:
    """The finished scenarios of ``doc`` (results.json as written so far) judged by harness.slo.judge, without
    a baseline; returns their rows and the scenario ids. CPU-bound: call it off the event loop."""
    from harness.slo.judge import judge_run
    from harness.slo.spec import load_spec

    finished = tuple(str(s.get("id")) for s in doc.get("scenarios", []))
    return verdicts_so_far(judge_run(doc, load_spec(slo)), finished), finished


def snapshot(title: str, figures: Figures, *, step: StepProgress | None = None,
             verdicts: Sequence[VerdictLine] = (), judged: Sequence[str] = (), note: str = "") -> DashboardSnapshot:
    return DashboardSnapshot(title, step, figures, tuple(verdicts), tuple(judged), note)
