"""Judge a run: every SLO row -> verdicts, exactly in the ``results.json`` "verdicts" format.

``judge_run(results, spec)`` returns one verdict per threshold of every row of ``spec`` (a row
whose scenario is missing still appears, as inconclusive with the reason). How each row is
measured is in ``slo.toml`` (its ``source`` field) and in the functions below; the statistics are
in :mod:`harness.stats`. A malformed part of ``results`` makes only the rows that need it
inconclusive, with the error in the note.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from harness.errors import ConfigError
from harness.node.mining import MiningMode
from harness.probes.calibration import calibration_shift
from harness.probes.machine import busy_machine, machine_share_taken, steal_shift
from harness.probes.profilers import MEMRAY_OVERHEAD
from harness.results.capacity import MarketCapacity
from harness.slo import extract as X
from harness.slo.chaos_rows import CHAOS_ROWS, judge_chaos
from harness.slo.ledger_row import judge_ledger
from harness.slo.spec import SloRow, SloSpec, SloThreshold
from harness.stats.change import classify, compare_series
from harness.stats.histograms import BucketSeries, FloatArray, summarize_counts
from harness.stats.intervals import Estimate, latency_cis, mean_ci, median_ci, rate_ci, stat_key, wilson
from harness.stats.leak import LeakResult, detect_leak
from harness.stats.noise import (
    RUN_TO_RUN_NOISE,
    STRESS_RUN_TO_RUN_LOG_SD,
    between_runs,
    change_threshold,
    latency_floor_ms,
    widen_between_runs,
)
from harness.stats.verdict import Verdict, combine, decide, relative_margin

NAN = float("nan")
MB = 1e6


@dataclass(frozen=True)
class _Ctx:
    scenarios: dict[str, Mapping[str, Any]]
    baseline: Mapping[str, Any] | None
    confidence: float
    n_boot: int
    seed: int
    calibration: Mapping[str, Any] | None = None  # this run's machine calibration (conditions.calibration)
    doc: Mapping[str, Any] | None = None  # the whole results document being judged
    # Decoding is the dominant cost (~0.5 s per 1M-sample series); rows share decoded series.
    _series: dict[tuple[int, str], BucketSeries] = field(default_factory=dict)

    def series(self, scen: Mapping[str, Any], key: str, label: str) -> BucketSeries:
        cache_key = (id(scen), key)
        if cache_key not in self._series:
            self._series[cache_key] = X.latency_series(X.intervals(scen), key, label)
        return self._series[cache_key]

    def scenario(self, *ids: str) -> tuple[str, Mapping[str, Any]]:
        for sid in ids:
            if sid in self.scenarios:
                return sid, self.scenarios[sid]
        raise X.MissingScenario(" or ".join(ids))


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _exact(value: float, conf: float, note: str) -> Estimate:
    return Estimate(value, value, value, conf, "exact", 1, note)


def _run_to_run(est: Estimate) -> Estimate:
    """A stress search's figure with its CI widened to the measured spread between runs of one
    build (``STRESS_RUN_TO_RUN_LOG_SD``): the within-run CI says how well this run measured the
    machine it had, not what the next run will find."""
    z = NormalDist().inv_cdf((1 + est.confidence) / 2)
    lo, hi = widen_between_runs(est.value, est.lo, est.hi, log_sd=STRESS_RUN_TO_RUN_LOG_SD, z=z)
    factor = math.exp(z * STRESS_RUN_TO_RUN_LOG_SD)
    note = (f"CI widened to the run-to-run spread of a stress search (x/÷ {factor:.2f} at "
            f"{est.confidence:.0%}; within-run CI {_ci_text(est)})")
    return Estimate(est.value, lo, hi, est.confidence, est.method + "+run-to-run", est.n, note)


def _ci_text(est: Estimate) -> str:
    return f"[{est.lo:.4g}, {est.hi:.4g}]" if est.has_ci and est.lo != est.hi else "none"


def _run_to_run_verdict(est: Estimate, thr: SloThreshold) -> Verdict:
    v = decide(est, thr.op, thr.value, duration_s=None)
    if v.verdict != "inconclusive":
        return v
    return Verdict("inconclusive", v.margin, None,
                   "the threshold lies inside the run-to-run spread of a stress search: one run cannot "
                   "decide it, and a longer one would not either; repeat the run (python -m harness.proof.aa) "
                   "and judge the spread, or run on a quieter machine")


def _emit(row: SloRow, thr: SloThreshold, scenario: str | None, est: Estimate | None, *,
          duration: float | None, note: str = "", verdict: Verdict | None = None,
          shrink: float = 0.5, stat: str | None = None, confidence: float = 0.95) -> dict[str, Any]:
    if verdict is None:
        verdict = (decide(est, thr.op, thr.value, duration_s=duration, shrink_exponent=shrink) if est is not None
                   else Verdict("inconclusive", None, None, "no measurement"))
    has_ci = est is not None and est.has_ci and math.isfinite(est.lo) and math.isfinite(est.hi)
    notes = [n for n in (note, est.note if est is not None else "", verdict.note) if n]
    return {
        # a proportion threshold (k6 "rate < x") is a ratio whatever the row's own unit
        "row": row.id, "table": row.table, "stat": stat or thr.stat,
        "unit": "ratio" if thr.expr.aggregate == "rate" else row.unit, "scenario": scenario,
        "value": _num(est.value) if est is not None else None,
        "ci": [float(est.lo), float(est.hi)] if est is not None and has_ci else None,
        "confidence": est.confidence if est is not None else confidence,
        "threshold": {"op": thr.op, "value": thr.value, "level": thr.level},
        "verdict": verdict.verdict, "margin": _num(verdict.margin), "more_time_s": _num(verdict.more_time_s),
        "note": "; ".join(notes),
    }


def _undecided(row: SloRow, scenario: str | None, note: str, conf: float) -> list[dict[str, Any]]:
    return [_emit(row, t, scenario, None, duration=None, confidence=conf,
                  verdict=Verdict("inconclusive", None, None, note)) for t in row.thresholds]


def _duration(scen: Mapping[str, Any], ivs: list[Mapping[str, Any]], sid: str) -> float | None:
    d = X.duration_s(scen)
    return d if d is not None else (float(X.durations(ivs, sid).sum()) if ivs else None)


# ------------------------------------------------------------------------------------------ latency
def _latency_key(t: SloThreshold) -> tuple[str, float | None]:
    """(key in latency_cis' result, percentile or None for the mean)."""
    if t.expr.aggregate == "avg":
        return "mean", None
    q = 50.0 if t.expr.aggregate == "med" else float(t.expr.percentile or 50.0)
    return stat_key(q), q


def _latency(ctx: _Ctx, row: SloRow) -> list[dict[str, Any]]:
    sid, scen = ctx.scenario("sustained", "soak")
    ivs = X.intervals(scen)
    series = ctx.series(scen, row.id, sid)
    if series.total == 0:
        return _undecided(row, sid, f"no '{row.id}' samples recorded in scenario {sid}", ctx.confidence)
    keys = {id(t): _latency_key(t) for t in row.thresholds}
    pcts = sorted({q for _, q in keys.values() if q is not None})
    cis = latency_cis(series, pcts, confidence=ctx.confidence, n_boot=ctx.n_boot, seed=ctx.seed)
    # Two conventions (docs/DESIGN.md): trade_execution is timed from the tick's intended start, with
    # its service time under ".service"; the bot's own operations are timed as what they are (the SLO
    # definitions), with the time from the tick under ".from_tick".
    from_tick = ctx.series(scen, f"{row.id}.from_tick", sid)
    if from_tick.total:
        extra = f"{series.total} samples in {series.n_intervals} intervals, the operation's own time"
        s = summarize_counts(from_tick.merged_full())
        extra += (f"; from the tick's intended start (queueing included, not judged): mean {s.mean_us / 1e3:.3g} ms,"
                  f" p99 {s.p99_us / 1e3:.3g} ms")
    else:
        extra = f"{series.total} samples in {series.n_intervals} intervals, from intended start"
        service = ctx.series(scen, f"{row.id}.service", sid)
        if service.total:
            s = summarize_counts(service.merged_full())
            extra += (f"; service time (from actual start, not judged): mean {s.mean_us / 1e3:.3g} ms, "
                      f"p99 {s.p99_us / 1e3:.3g} ms")
    duration = _duration(scen, ivs, sid)
    out = []
    for t in row.thresholds:
        est = cis[keys[id(t)][0]].scaled(1e-3)
        out.append(_emit(row, t, sid, est, duration=duration, note=extra,
                         verdict=_latency_verdict(est, t, duration)))
    return out


def _latency_verdict(est: Estimate, thr: SloThreshold, duration: float | None) -> Verdict:
    """The within-run verdict, unless the threshold lies within the run-to-run spread of the figure.

    Two runs of one build move a latency figure by more than its within-run CI (the A/A proof: a
    balance_check p95 read 10.6 ms [10.1, 11.1] in one smoke run and 7.3 ms [6.7, 7.8] in the next,
    steady within each run). A verdict that the next run would reverse is not one to act on, so
    a figure within the relative run-to-run spread (``RUN_TO_RUN_NOISE``) of its threshold is
    inconclusive with that reason; the reported CI stays the within-run one."""
    v = decide(est, thr.op, thr.value, duration_s=duration)
    if v.verdict == "inconclusive" or not (est.value > 0 and math.isfinite(est.value)):
        return v
    f = 1.0 + RUN_TO_RUN_NOISE
    wide = Estimate(est.value, min(est.lo, est.value / f), max(est.hi, est.value * f), est.confidence,
                    est.method, est.n, est.note)
    if decide(wide, thr.op, thr.value, duration_s=None).verdict == v.verdict:
        return v
    return Verdict("inconclusive", v.margin, None,
                   f"within the run-to-run spread (±{RUN_TO_RUN_NOISE:.0%}) of the threshold: the within-run CI "
                   f"says {v.verdict}, but runs of one build move this figure by more, so one run cannot decide "
                   "it; repeat the run (python -m harness.proof.aa) and judge the spread")


# --------------------------------------------------------------------------------------- throughput
def _tps(ctx: _Ctx, row: SloRow) -> list[dict[str, Any]]:
    sid, scen = ctx.scenario("stress")
    steps = X.steps(scen)
    max_err = row.param("max_error_rate", 0.001)
    # An undecided step (too few samples to judge its latency) is neither good nor broken.
    decided = [s for s in steps if not s.get("undecided")]
    ok = [s for s in decided if float(s["error_rate"]) < max_err and s["latency_ok"]]
    broken = [s for s in decided if s not in ok]
    first_broken = (f"; first step that broke: offered {broken[0]['rate']:g}/s "
                    f"({broken[0].get('broken') or 'error rate or latency'})" if broken else "; no step broke")
    search = scen.get("summary", {}).get("search") if isinstance(scen.get("summary"), Mapping) else None
    if isinstance(search, Mapping) and search.get("breaking_point") is not None:
        lo, hi = search.get("bracket") or [search.get("last_good"), search.get("breaking_point")]
        # No rate held (the search stopped at its floor): there is no lower end to quote.
        held = f"held {float(lo):g}/s, " if lo is not None else "no rate held down to the search's floor, "
        within = "" if search.get("resolved") else f", not resolved to {float(search.get('resolution') or 0.1):.0%}"
        first_broken += (f"; breaking point {float(search['breaking_point']):g}/s ({held}broke {float(hi):g}/s"
                         f"{within}) by {search.get('broken_by') or '?'}")
    if isinstance(search, Mapping) and search.get("disturbed_rates"):
        first_broken += ("; broke on a busy machine and ran again: "
                         + ", ".join(f"{float(r):g}/s" for r in search["disturbed_rates"]))
    if not ok:
        est = _exact(0.0, ctx.confidence, f"no step kept error rate < {max_err:g} with latency met")
        return [_emit(row, t, sid, est, duration=None, note=first_broken.lstrip("; ")) for t in row.thresholds]
    best = max(ok, key=lambda s: float(s["achieved"]))
    sub = X.within(X.intervals(scen), float(best["start"]), float(best["end"]))
    note = (f"best step meeting error rate and latency: offered {best['rate']:g}/s, achieved "
            f"{float(best['achieved']):.1f}/s over {best['start']:g}-{best['end']:g} s{first_broken}")
    if sub and X.has_counter(sub, "tx_accepted"):
        est = rate_ci(X.counter(sub, "tx_accepted", sid), X.durations(sub, sid), confidence=ctx.confidence)
    else:
        est = Estimate(float(best["achieved"]), NAN, NAN, ctx.confidence, "summary", 0,
                       "no per-interval 'tx_accepted' counters in that step: no CI")
    dur = float(best["end"]) - float(best["start"])
    est = _run_to_run(est)
    return [_emit(row, t, sid, est, duration=dur, note=note, verdict=_run_to_run_verdict(est, t))
            for t in row.thresholds]


def _concurrency(ctx: _Ctx, row: SloRow) -> list[dict[str, Any]]:
    present = [s for s in ("stress", "burst") if s in ctx.scenarios]
    if not present:
        raise X.MissingScenario("stress and burst")
    values: list[float] = []
    notes: list[str] = []
    if "stress" in ctx.scenarios:
        scen = ctx.scenarios["stress"]
        ivs = X.intervals(scen)
        held = [s for s in X.steps(scen) if s["latency_ok"] and not s.get("undecided")]
        for st in held:
            values += list(X.counter(X.within(ivs, float(st["start"]), float(st["end"])), "in_flight_max", "stress"))
        notes.append(f"stress: {len(held)} of {len(X.steps(scen))} steps held latency")
    if "burst" in ctx.scenarios:
        scen = ctx.scenarios["burst"]
        summary = scen.get("summary", {})
        if isinstance(summary, Mapping) and summary.get("latency_ok") is True:
            values += list(X.counter(X.intervals(scen), "in_flight_max", "burst"))
            notes.append("burst: latency held")
        else:
            notes.append("burst: excluded (latency did not hold, or summary.latency_ok not recorded)")
    value = max(values) if values else 0.0
    est = _run_to_run(_exact(value, ctx.confidence, "an observed maximum of counter in_flight_max"))
    return [_emit(row, t, "+".join(present), est, duration=None, note="; ".join(notes),
                  verdict=_run_to_run_verdict(est, t)) for t in row.thresholds]


# A market tick is handled when the pair's actor looked at it, or at a newer tick of its pair that
# superseded it (bot.market.conflation); runs from before conflation have ws_handled only.
_WS_HANDLED = ("ws_handled", "ws_conflated")


def _handled(ivs: Sequence[Mapping[str, Any]], sid: str) -> FloatArray:
    out: FloatArray = np.zeros(len(ivs))
    for k in _WS_HANDLED:
        out += X.counter(ivs, k, sid)
    return out


def _capacity_note(ctx: _Ctx) -> str:
    """The market-data stress's ceiling, as extra information beside the row (never judged by it)."""
    summary = ctx.scenarios.get("websocket_stress", {}).get("summary")
    raw = summary.get("capacity") if isinstance(summary, Mapping) else None
    if not isinstance(raw, Mapping):
        return ""
    cap = MarketCapacity.from_json(raw)
    top = cap.top_step
    cpu = (f"; bot CPU {top.bot_cpu_percent:.0f}% of a core at {top.rate:,.0f}/s offered"
           if top is not None and top.bot_cpu_percent is not None else "")
    return f"capacity (websocket_stress, not judged): {cap.describe()}{cpu}"


def _websocket(ctx: _Ctx, row: SloRow) -> list[dict[str, Any]]:
    capacity = _capacity_note(ctx)
    try:
        sid, scen = ctx.scenario("websocket")
    except X.MissingScenario:
        if not capacity:
            raise
        return _undecided(row, None, f"not measured in this run (scenario websocket missing); {capacity}",
                          ctx.confidence)
    ivs = X.intervals(scen)
    handled = _handled(ivs, sid)
    conflated = X.counter(ivs, "ws_conflated", sid).sum()
    # Ticks the feed could not even send (the bot read too slowly and the feed's queue filled, or
    # the bot was not connected) are dropped as surely as ticks sent and never handled.
    unsent = sum(float(X.counter(ivs, k, sid).sum()) for k in ("ws_dropped", "ws_undelivered")
                 if X.has_counter(ivs, k))
    dropped = float(X.counter(ivs, "ws_sent", sid).sum() - handled.sum()) + unsent
    live = X.within_schedule(scen, ivs)
    est = rate_ci(_handled(live, sid), X.durations(live, sid), confidence=ctx.confidence)
    cond = Verdict("fail" if dropped > 0 else "pass", None, None, "")
    why = f"{dropped:.0f} messages sent were not handled (none may be dropped)"
    note = (f"{handled.sum():.0f} messages handled ({conflated:.0f} of them conflated: superseded by a newer "
            f"tick of their pair that the actor looked at), {max(dropped, 0):.0f} dropped")
    if capacity:
        note += f"; {capacity}"
    return [_emit(row, t, sid, est, duration=_duration(scen, ivs, sid), note=note,
                  verdict=combine(decide(est, t.op, t.value, duration_s=_duration(scen, ivs, sid)), cond, why))
            for t in row.thresholds]


def _api(ctx: _Ctx, row: SloRow) -> list[dict[str, Any]]:
    sid, scen = ctx.scenario("api")
    ivs = X.intervals(scen)
    req = X.counter(ivs, "api_requests", sid)
    fail = X.counter(ivs, "api_failures", sid)
    dur = _duration(scen, ivs, sid)
    live = X.within_schedule(scen, ivs)
    served = rate_ci(np.maximum(X.counter(live, "api_requests", sid) - X.counter(live, "api_failures", sid), 0.0),
                     X.durations(live, sid), confidence=ctx.confidence)
    err = wilson(int(fail.sum()), int(req.sum()), confidence=ctx.confidence)
    err_thr = [t for t in row.thresholds if t.expr.aggregate == "rate"]
    err_v = decide(err, err_thr[0].op, err_thr[0].value, duration_s=dur) if err_thr else None
    out = []
    for t in row.thresholds:
        if t.expr.aggregate == "rate":
            out.append(_emit(row, t, sid, err, duration=dur, note="failure ratio api_failures/api_requests"))
            continue
        v = decide(served, t.op, t.value, duration_s=dur)
        if err_v is not None:
            v = combine(v, err_v, f"the failure ratio {err.value:.2g} must be {err_thr[0].op} {err_thr[0].value:g}")
        out.append(_emit(row, t, sid, served, duration=dur, verdict=v,
                         note=f"requests served (api_requests - api_failures), {req.sum():.0f} requests"))
    return out


# ---------------------------------------------------------------------------------------- resources
_RESOURCE_FIELDS: dict[str, tuple[str, float, bool]] = {
    "memory_rss": ("rss_bytes", 1 / MB, True),
    "cpu": ("cpu_percent", 1.0, True),
    "network_bandwidth": ("net_bytes_per_s", 1 / MB, False),
    "disk_io": ("disk_bytes_per_s", 1 / MB, False),
}


def _resources(ctx: _Ctx, row: SloRow) -> list[dict[str, Any]]:
    sid, scen = ctx.scenario("sustained", "soak")
    field, scale, required = _RESOURCE_FIELDS[row.id]
    t, v = X.resource_column(scen, field, required=required)
    if len(v) == 0:
        return _undecided(row, sid, f"no resource samples with '{field}' in scenario {sid}", ctx.confidence)
    v = v * scale
    dur = X.duration_s(scen) or float(t[-1] - t[0])
    out = []
    for thr in row.thresholds:
        agg = thr.expr.aggregate
        if agg == "max":
            est = _exact(float(v.max()), ctx.confidence, f"observed maximum of {len(v)} samples: no sampling CI")
            note = "peak"
        elif agg == "med":
            half = v[t >= t[0] + (t[-1] - t[0]) / 2.0]
            est = median_ci(half, confidence=ctx.confidence, seed=ctx.seed)
            note = f"steady: median of the second half ({len(half)} samples)"
        elif agg == "avg":
            est = mean_ci(v, confidence=ctx.confidence)
            note = f"mean of {len(v)} samples"
        else:
            raise ConfigError(f"row {row.id}: aggregate {agg!r} is not supported for resources: use max, med or avg")
        out.append(_emit(row, thr, sid, est, duration=dur, note=note))
    return out


# ------------------------------------------------------------------------------------------ quality
def _error_rate(ctx: _Ctx, row: SloRow) -> list[dict[str, Any]]:
    sid, scen = ctx.scenario("sustained", "soak")
    ivs = X.intervals(scen)
    errors, ok = int(X.counter(ivs, "errors", sid).sum()), int(X.counter(ivs, "ok", sid).sum())
    if errors + ok == 0:
        return _undecided(row, sid, f"no operations counted (counters ok/errors) in scenario {sid}", ctx.confidence)
    est = wilson(errors, errors + ok, confidence=ctx.confidence)
    return [_emit(row, t, sid, est, duration=_duration(scen, ivs, sid), note="errors / (ok + errors)")
            for t in row.thresholds]


def _uptime(ctx: _Ctx, row: SloRow) -> list[dict[str, Any]]:
    probes = ok = 0
    used: list[str] = []
    for sid, scen in ctx.scenarios.items():
        if scen.get("kind") == "chaos":
            continue  # faults on purpose: judged by the chaos rows, not against the uptime target
        h = scen.get("health")
        if isinstance(h, Mapping) and int(h.get("probes", 0)) > 0:
            probes += int(h["probes"])
            ok += int(h.get("ok", 0))
            used.append(sid)
    if probes == 0:
        return _undecided(row, None, "not measured in this run (no scenario recorded health probes)", ctx.confidence)
    if ok > probes:
        raise ConfigError(f"health: {ok} ok probes out of {probes}: 'ok' cannot exceed 'probes'")
    est = wilson(ok, probes, confidence=ctx.confidence)
    dur = sum(X.duration_s(ctx.scenarios[s]) or 0.0 for s in used) or None
    return [_emit(row, t, "+".join(used), est, duration=dur, note="health probes answered, all scenarios")
            for t in row.thresholds]


def _trades_per_hour(scen: Mapping[str, Any], sid: str) -> float | None:
    ivs = X.intervals(scen)
    dur = X.duration_s(scen)
    ok = float(X.counter(ivs, "ok", sid).sum()) if ivs else 0.0
    return ok / dur * 3600.0 if dur and ok > 0 else None


def _saturated(scen: Mapping[str, Any]) -> str | None:
    """Why the bot could not keep up during the scenario (``summary.saturation``), or None."""
    summary = scen.get("summary")
    sat = summary.get("saturation") if isinstance(summary, Mapping) else None
    if isinstance(sat, Mapping) and sat.get("saturated") is True:
        return str(sat.get("reason") or "the backlog grew")
    return None


def _leak(ctx: _Ctx, row: SloRow) -> list[dict[str, Any]]:
    sid, scen = ctx.scenario("soak", "sustained")
    series = {"rss_slope": ("rss", X.resource_column(scen, "rss_bytes"))}
    heap = X.resource_column(scen, "x_heap_bytes", required=False)
    if len(heap[0]):
        series["heap_slope"] = ("heap", heap)
    thresholds = [(t, t.stat) for t in row.thresholds]
    if "heap_slope" in series and not any(s == "heap_slope" for _, s in thresholds):
        thresholds.append((row.thresholds[0], "heap_slope"))  # judge the heap with the RSS sensitivity
    # A short window calls a leak only above what a clean bot grows per trade while its caches fill
    # (harness.stats.leak), scaled by this scenario's trade rate.
    per_trade = row.param("short_floor_bytes_per_trade", 0.0)
    rate_h = _trades_per_hour(scen, sid)
    floor = max(per_trade * rate_h, row.param("short_floor_bph", 0.0)) if per_trade > 0 and rate_h else None
    saturated = _saturated(scen)
    out = []
    for thr, stat in thresholds:
        name, (t, v) = series.get(stat, series["rss_slope"])
        res = detect_leak(t, v, sensitivity_bph=thr.value, series=name, confidence=ctx.confidence,
                          warmup_fraction=row.param("warmup_fraction", 0.2),
                          warmup_max_s=row.param("warmup_max_s", 1800.0),
                          min_analysed_s=row.param("min_analysed_s", 1800.0), short_floor_bph=floor)
        est = res.estimate() if math.isfinite(res.slope_bph) else None
        outcome = {"no leak": "pass", "leak": "fail"}.get(res.verdict, "inconclusive")
        verdict = Verdict(outcome, relative_margin(res.slope_bph, thr.op, thr.value),  # type: ignore[arg-type]
                          res.more_time_s, f"leak detector: {res.verdict}")
        if saturated is not None:
            # The backlog's memory grows with the backlog: that growth says nothing about a leak.
            verdict = Verdict("inconclusive", verdict.margin, None,
                              f"not judged as a leak: the bot was saturated ({saturated}), so memory grew with "
                              f"its backlog; soak at a rate it sustains (--rate)")
        note = res.note
        if est is not None:
            smallest = (f"{res.detectable_bph:.3g} bytes/h" if math.isfinite(res.detectable_bph)
                        else "none in a window this short")
            per = (f" ({res.detectable_bph / rate_h:,.0f} bytes per trade at {rate_h / 3600:.3g} trades/s)"
                   if rate_h and math.isfinite(res.detectable_bph) else "")
            # the detector's own account (res.note) follows, as the estimate's note
            note = (f"sensitivity achieved {res.resolution_bph:.3g} bytes/h; smallest leak this window calls: "
                    f"{smallest}{per}")
        emitted = _emit(row, thr, sid, est, duration=res.analysed_s, verdict=verdict, stat=stat, note=note,
                        confidence=ctx.confidence)
        emitted["x_leak"] = _leak_figures(res, len(t))
        out.append(emitted)
    return out


def _leak_figures(res: LeakResult, samples: int) -> dict[str, Any]:
    """One signal's slope, CI and minimum detectable leak (bytes/h) for the JSON and the page; each signal
    has its own verdict row, so ``memory_leak`` fails when either signal shows a leak its window can call."""
    return {"series": res.series, "slope_bph": _num(res.slope_bph),
            "ci_bph": [float(res.lo_bph), float(res.hi_bph)] if math.isfinite(res.lo_bph) else None,
            "mde_bph": _num(res.detectable_bph), "resolution_bph": _num(res.resolution_bph),
            "sensitivity_bph": res.sensitivity_bph, "warmup_s": _num(res.warmup_s), "analysed_s": res.analysed_s,
            "points": res.n, "samples": samples, "detector": res.verdict}


def _regression(ctx: _Ctx, row: SloRow, spec: SloSpec) -> list[dict[str, Any]]:
    if ctx.baseline is None:
        return _undecided(row, None, "no baseline", ctx.confidence)
    base_scen = X.scenarios_by_id(ctx.baseline).get("sustained")
    sid, scen = ctx.scenario("sustained")
    if base_scen is None:
        return _undecided(row, sid, "the baseline has no sustained scenario to compare with", ctx.confidence)
    pairs = {}
    for r in spec.rows:
        if r.table != "latency":
            continue
        base = ctx.series(base_scen, r.id, "baseline sustained")
        head = ctx.series(scen, r.id, sid)
        if base.total and head.total:
            pairs[r.id] = (base, head)
    if not pairs:
        return _undecided(row, sid, "no latency row has samples in both this run and the baseline", ctx.confidence)
    thr = row.thresholds[0]
    alpha = row.param("alpha", 0.05)
    # Between two single runs, within-run intervals are not replicates of the build: a change inside
    # the measured run-to-run spread is not called (harness.stats.noise).
    explicit = row.param("noise", math.nan)
    noise = max(thr.value - 1.0, between_runs(None if math.isnan(explicit) else explicit))
    corr = row.param_str("correction", "holm")
    if corr not in ("holm", "bh", "none"):
        raise ConfigError(f"row regression params.correction={corr!r}: use 'holm', 'bh' or 'none'")
    comps = compare_series(pairs, alpha=alpha, noise=noise, correction=corr,  # type: ignore[arg-type]
                           confidence=ctx.confidence, n_boot=ctx.n_boot, seed=ctx.seed)
    dur = X.duration_s(scen)
    base_id = ctx.baseline.get("run_id", "?")
    # A baseline taken on a machine that measures differently (2-3x between boxes of one kind) cannot
    # tell a slower build from a slower box: say so instead of calling it a regression.
    shift = calibration_shift(_calibration(ctx.baseline), ctx.calibration) or steal_shift(ctx.baseline, ctx.doc)
    out = []
    floor_text = f"{noise:.0%} + {latency_floor_ms('mean'):g} ms = " if math.isnan(explicit) else ""
    for c in comps:
        v = decide(c.ratio, thr.op, thr.value, duration_s=dur)
        c_noise = change_threshold(noise, pairs[c.name][0].mean_us() / 1000, "mean", latency=True,
                                   measured=not math.isnan(explicit))
        change = classify(c.ratio, c.p_adjusted, alpha=alpha, noise=c_noise)
        if shift is not None:
            v = Verdict("inconclusive", v.margin, None, f"machine differs from the baseline's ({shift}): "
                        f"a change here cannot be told from the machine's; not judged as a regression")
        elif change == "regression":
            v = Verdict("fail", v.margin, None, f"significant slowdown (adjusted p {c.p_adjusted:.2g})")
        elif v.verdict == "fail":
            v = Verdict("inconclusive", v.margin, v.more_time_s,
                        f"slower, but not significant after correction (adjusted p {c.p_adjusted:.2g})")
        out.append(_emit(row, thr, sid, c.ratio, duration=dur, verdict=v, stat=f"{c.name}.{thr.stat}",
                         note=f"{c.name} vs baseline run {base_id}: {change} (changes within the run-to-run "
                              f"spread, {floor_text}{c_noise:.0%} here, are not called); {c.note}"))
    return out


def _ledger(ctx: _Ctx, row: SloRow) -> list[dict[str, Any]]:
    return [_emit(row, t, None, est, duration=None, verdict=v, note=note, confidence=ctx.confidence)
            for t, est, v, note in judge_ledger(ctx.doc, row, ctx.confidence)]


def _chaos(ctx: _Ctx, row: SloRow) -> list[dict[str, Any]]:
    return [_emit(row, t, sid, est, duration=None, verdict=v, note=note, confidence=ctx.confidence)
            for t, sid, est, v, note in judge_chaos(ctx.doc, row, ctx.confidence, n_boot=ctx.n_boot, seed=ctx.seed)]


_JUDGES: dict[str, Callable[[_Ctx, SloRow], list[dict[str, Any]]]] = {
    "transactions_per_sec": _tps,
    "concurrent_operations": _concurrency,
    "websocket_messages_per_sec": _websocket,
    "api_calls_per_sec": _api,
    "memory_rss": _resources,
    "cpu": _resources,
    "network_bandwidth": _resources,
    "disk_io": _resources,
    "error_rate": _error_rate,
    "uptime": _uptime,
    "memory_leak": _leak,
    "ledger_reconciliation": _ledger,
    **dict.fromkeys(CHAOS_ROWS, _chaos),
}


def _calibration(doc: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    cond = doc.get("conditions") if isinstance(doc, Mapping) else None
    cal = cond.get("calibration") if isinstance(cond, Mapping) else None
    return cal if isinstance(cal, Mapping) else None


def judge_run(
    results: Mapping[str, Any],
    spec: SloSpec,
    *,
    baseline: Mapping[str, Any] | None = None,
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The ``verdicts`` list for ``results`` (a results.json document) judged against ``spec``."""
    ctx = _Ctx(X.scenarios_by_id(results), baseline, confidence, n_boot, seed,
               calibration=_calibration(results), doc=results)
    out: list[dict[str, Any]] = []
    for row in spec.rows:
        try:
            if row.id == "regression":
                out += _regression(ctx, row, spec)
            elif row.table == "latency":
                out += _latency(ctx, row)
            else:
                out += _JUDGES[row.id](ctx, row)
        except X.MissingScenario as exc:
            out += _undecided(row, None, f"not measured in this run (scenario {exc.args[0]} missing)", confidence)
        except (ConfigError, KeyError, TypeError, ValueError) as exc:
            out += _undecided(row, None, f"could not judge: {exc}", confidence)
    for doubt in _DOUBTS:
        out = [doubt(v, results) for v in out]
    return out


def _inconclusive(v: dict[str, Any], why: str) -> dict[str, Any]:
    """``v`` made inconclusive, ``why`` leading its note."""
    return {**v, "verdict": "inconclusive", "note": f"{why}. {v['note']}" if v.get("note") else why}


# Rows whose figure includes waiting for the trade's block: with blocks this slow, the wait alone
# can be the row's whole budget (trade_execution: mean < 100 ms).
_WAITS_FOR_BLOCKS = ("trade_execution",)
SLOW_BLOCK_S = 0.25


def _block_interval_s(results: Mapping[str, Any]) -> float | None:
    """The node's mining interval; None for automine, manual mining or a node that did not say."""
    mining = ((results.get("conditions") or {}).get("node") or {}).get("mining")
    try:
        return MiningMode.parse(mining).interval_s if isinstance(mining, str) else None
    except ConfigError:
        return None


def _not_under_slow_blocks(v: dict[str, Any], results: Mapping[str, Any]) -> dict[str, Any]:
    """A trade_execution fail on a node that mined a block only every 0.25 s or more (a long soak mines
    1-s blocks: harness.run.options.default_block_time) is the node's block time as much as the bot's."""
    if v["verdict"] != "fail" or v["row"] not in _WAITS_FOR_BLOCKS:
        return v
    interval = _block_interval_s(results)
    if interval is None or interval < SLOW_BLOCK_S:
        return v
    why = (f"failed on a node mining a block every {interval:g} s: each trade waits up to that for its block "
           "(a long soak mines slow blocks to keep anvil from slowing as its chain grows); judge latency "
           "with `harness run`")
    return _inconclusive(v, why)


# What memray costs the bot (harness.probes.profilers.MEMRAY_OVERHEAD): ~3.5x the CPU per trade,
# ~1.75x the trade p99 and ~190 MB of RSS of its own (85 against 276 MB). A leak is growth, which memray's aggregated
# capture does not add, so ``memory_leak`` is judged under it as without.
_MEMRAY_BLURS = ("latency", "throughput", "memory_rss", "cpu")


def _under_memray(results: Mapping[str, Any]) -> bool:
    instrumented = (results.get("conditions") or {}).get("instrumented") or {}
    # Runs written before the condition existed carry memray's findings instead.
    return bool(instrumented.get("memray")) or "x_memray" in results


def _not_under_memray(v: dict[str, Any], results: Mapping[str, Any]) -> dict[str, Any]:
    """A latency, throughput, RSS or CPU fail measured with memray in the bot is memray's as much as
    the bot's: inconclusive, naming the cost and the run that would judge it. A pass stands (memray
    only adds)."""
    if v["verdict"] != "fail" or not (v["table"] in _MEMRAY_BLURS or v["row"] in _MEMRAY_BLURS):
        return v
    if not _under_memray(results):
        return v
    m = MEMRAY_OVERHEAD
    why = (f"failed under memray, which costs the bot ~{m.cpu_per_trade_ratio:.1f}x the CPU per trade, "
           f"~{m.p99_ms_with / m.p99_ms_without:.2f}x the trade p99 and ~{m.rss_mb_with - m.rss_mb_without:.0f} MB "
           "of RSS of its own: "
           "rerun with --no-memray to judge the bot itself")
    return _inconclusive(v, why)


def _not_the_bots(v: dict[str, Any], results: Mapping[str, Any]) -> dict[str, Any]:
    """A fail that the machine may have caused is not the bot's verdict to carry: steal (the host
    taking CPU) or other processes on the same cores only make the bot look worse, so a pass stands,
    but a latency or throughput fail measured while either was above its limit is inconclusive.

    A throughput fail stands when crediting the bot with every cycle the machine lost would not
    reach the threshold: a rate bound by CPU grows at most in proportion to the CPU it gets, so
    200 tx/s [111, 360] with 22% taken is under 500 even at 360 / 0.78. Latency gets no such credit:
    queueing behind another process's work can cost far more than its share."""
    if v["verdict"] != "fail" or v["table"] not in ("latency", "throughput") or not v.get("scenario"):
        return v
    sids = str(v["scenario"]).split("+")
    busy = busy_machine(results, sids)
    if busy is None:
        return v
    thr = v.get("threshold") or {}
    best = (v.get("ci") or [None, v.get("value")])[1]
    share = machine_share_taken(results, sids)
    if (v["table"] == "throughput" and thr.get("op") in (">", ">=") and isinstance(best, int | float)
            and share < 100.0 and best / (1.0 - share / 100.0) < float(thr["value"])):
        credit = (f"fails even crediting the {share:.0f}% of the CPU the machine lost "
                  f"({best:,.4g} / {1 - share / 100:.2f} = {best / (1 - share / 100):,.4g})")
        return {**v, "note": f"{v['note']}; {credit}" if v.get("note") else credit}
    return _inconclusive(v, f"failed while {busy}: not the bot's verdict on this machine; rerun when it is quiet")


# Applied in this order to every verdict: each turns a fail the machine or the instrumentation may
# have caused into inconclusive, naming the cause (the busy-machine rule last: it credits throughput).
_DOUBTS = (_not_under_memray, _not_under_slow_blocks, _not_the_bots)
