"""The chaos rows: the harness's own checks of the bot under the chaos scenarios (not rows of slo-tables.md).

Judged from results.json's ``chaos`` section (``harness.results.chaos``, written by
``harness.run.chaos``); each row says "not measured" with the command that would measure it when
its scenario did not run, and is inconclusive, with the reason, when its scenario failed.

- ``failover_time`` (outage): a statistic of the failover times, from an outage's start to the first
  successful reply through the other endpoint; nearest rank, an exact figure over the outages (each
  outage is one observation: no sampling CI). Fails if any outage saw no failover at all.
- ``retry_after_honoured`` (ratelimit): requests that reached the rate-limited endpoint inside a park
  (its Retry-After capped at the bot's ``max_retry_after``). Fails too when no trade completed or
  nothing went through the other endpoint during the window: honouring a 429 by stopping is no pass.
- ``ws_resubscribed`` (wsdrop): drops the bot did not come back from (resubscribed and caught up);
  fails too when nothing was backfilled after any drop.
- ``slow_endpoint_avoided`` (slownode): ``trade_execution`` over the scenario, block-bootstrap CI as for
  the latency rows; fails too when most requests still went to the slow endpoint.
- ``no_trade_lost_or_doubled``: per chaos scenario, its own bot session's ledger against the chain;
  fails on any lost or doubled transaction, an outcome the chain contradicts or an intent not terminal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from harness.results.chaos import ChaosResults, ChaosScenario
from harness.slo import extract as X
from harness.slo.spec import SloRow, SloThreshold
from harness.stats.failover import percentile
from harness.stats.intervals import Estimate, latency_cis, stat_key
from harness.stats.verdict import Verdict, combine, decide

OWN_CHECK = "the harness's own check under chaos (not a row of slo-tables.md)"
ROW_SCENARIO = {"failover_time": "outage", "retry_after_honoured": "ratelimit", "ws_resubscribed": "wsdrop",
                "slow_endpoint_avoided": "slownode"}
CHAOS_ROWS = (*ROW_SCENARIO, "no_trade_lost_or_doubled")
NAN = float("nan")

Judged = tuple[SloThreshold, str | None, Estimate | None, Verdict, str]


def _exact(value: float, conf: float, note: str, n: int = 1) -> Estimate:
    return Estimate(value, value, value, conf, "exact", n, note)


def _undecided(row: SloRow, sid: str | None, why: str) -> list[Judged]:
    return [(t, sid, None, Verdict("inconclusive", None, None, why), "") for t in row.thresholds]


def judge_chaos(doc: Mapping[str, Any] | None, row: SloRow, confidence: float, *, n_boot: int = 1000,
                seed: int = 0) -> list[Judged]:
    """(threshold, scenario, estimate, verdict, note) per threshold (per chaos scenario for the ledger row)."""
    raw = doc.get("chaos") if isinstance(doc, Mapping) else None
    chaos = ChaosResults.from_json(raw) if isinstance(raw, Mapping) else ChaosResults()
    if row.id == "no_trade_lost_or_doubled":
        if not chaos.scenarios:
            return _undecided(row, None, "not measured in this run (no chaos scenario ran: harness run --chaos all)")
        return [j for s in chaos.scenarios for j in _ledger(row, s, confidence)]
    name = ROW_SCENARIO[row.id]
    scn = chaos.get(name)
    if scn is None:
        return _undecided(row, None, f"not measured in this run (chaos {name} did not run: harness run --chaos {name})")
    if scn.error:
        return _undecided(row, scn.id, f"chaos {name} did not complete: {scn.error}")
    if row.id == "failover_time":
        return _failover(row, scn, confidence)
    if row.id == "retry_after_honoured":
        return _retry_after(row, scn, confidence)
    if row.id == "ws_resubscribed":
        return _resubscribed(row, scn, confidence)
    return _slow(row, scn, doc or {}, confidence, n_boot, seed)


def _failover(row: SloRow, scn: ChaosScenario, conf: float) -> list[Judged]:
    f = scn.failover
    if f is None or f.n == 0:
        why = "no outage produced a failover to measure" if f is not None and f.unobserved else "no outage measured"
        return [(t, scn.id, None, Verdict("fail" if f is not None and f.unobserved else "inconclusive", None, None,
                                          why), "") for t in row.thresholds]
    seen = sorted(t for t in f.times_ms if t is not None)
    facts = (f"{len(f.times_ms)} outages, each of the endpoint then carrying the traffic ({', '.join(f.down)}): "
             f"p50 {f.p50_ms:.0f} ms, p99 {f.p99_ms:.0f} ms, max {f.max_ms:.0f} ms from the outage's start to the "
             f"first 2xx through the other proxy (nearest rank, each outage one observation); {OWN_CHECK}")
    out: list[Judged] = []
    for t in row.thresholds:
        agg = t.expr.aggregate
        value = (sum(seen) / len(seen) if agg == "avg" else seen[-1] if agg == "max" else seen[0] if agg == "min"
                 else percentile(seen, 50.0 if agg == "med" else float(t.expr.percentile or 50.0)))
        est = _exact(value, conf, "", len(seen))
        v = decide(est, t.op, t.value, duration_s=None)
        if f.unobserved:
            v = Verdict("fail", v.margin, None, f"{f.unobserved} outage(s) with no success through the other "
                                                 "endpoint before the next outage")
        out.append((t, scn.id, est, v, facts))
    return out


def _retry_after(row: SloRow, scn: ChaosScenario, conf: float) -> list[Judged]:
    r = scn.retry_after
    if r is None or r.limited == 0:
        return _undecided(row, scn.id, "the rate-limited endpoint answered no request with 429: nothing to honour")
    limited = next((a.proxy for a in scn.actions if a.action == "plan" and a.detail.startswith("429")), "A")
    facts = (f"{limited} answered {r.limited} request(s) 429 with Retry-After {r.retry_after_s:g} s "
             f"(the bot caps it at {r.cap_s:g} s); requests counted early arrived more than {r.grace_s:g} s after "
             f"a 429 and before its capped Retry-After ran out"
             + (f" (at {', '.join(f'{x:g}' for x in r.early_t[:5])} s)" if r.early_t else "")
             + (f"; it tried again {', '.join(f'{x:.2f}' for x in r.returns_s[:5])} s after a 429" if r.returns_s
                else "")
             + f"; meanwhile {r.ok_via_other} requests answered through the other endpoint, {r.trades_ok} trades done"
             f"; {OWN_CHECK}")
    est = _exact(float(r.early), conf, "")
    cond = Verdict("fail" if r.trades_ok == 0 or r.ok_via_other == 0 else "pass", None, None, "")
    return [(t, scn.id, est, combine(decide(est, t.op, t.value, duration_s=None), cond,
                                     "no trade completed through the other endpoint while the first was limited"),
             facts) for t in row.thresholds]


def _resubscribed(row: SloRow, scn: ChaosScenario, conf: float) -> list[Judged]:
    w = scn.resubscribe
    if w is None or w.dropped == 0:
        return _undecided(row, scn.id, "no WebSocket was open to drop")
    facts = (f"{w.dropped} socket(s) dropped in {w.drops} drop(s); the bot's own counters: {w.connects} "
             f"resubscriptions that caught up, {w.backfilled} items backfilled, {w.reconnects} reconnect attempts, "
             f"{w.fallbacks} switch(es) of receipts to polling; {OWN_CHECK}")
    est = _exact(float(w.unrecovered), conf, "")
    cond = Verdict("fail" if w.backfilled == 0 else "pass", None, None, "")
    return [(t, scn.id, est, combine(decide(est, t.op, t.value, duration_s=None), cond,
                                     "nothing was backfilled after any drop"), facts) for t in row.thresholds]


def _slow(row: SloRow, scn: ChaosScenario, doc: Mapping[str, Any], conf: float, n_boot: int,
          seed: int) -> list[Judged]:
    s = scn.slow
    scen = X.scenarios_by_id(doc).get(scn.id)
    if s is None or scen is None:
        return _undecided(row, scn.id, f"no trade_execution recorded in scenario {scn.id}")
    series = X.latency_series(X.intervals(scen), "trade_execution", scn.id)
    if series.total == 0:
        return _undecided(row, scn.id, f"no trade_execution samples in scenario {scn.id}")
    pcts = sorted({float(t.expr.percentile) for t in row.thresholds if t.expr.percentile is not None})
    cis = latency_cis(series, pcts, confidence=conf, n_boot=n_boot, seed=seed)
    share = "-" if s.share_other is None else f"{s.share_other:.0%}"
    facts = (f"{share} of the requests went to the other endpoint while one was {s.latency_ms:g} ms slower (after "
             f"the first second); trade_execution over {series.total} trades, from the tick's intended start; "
             f"{OWN_CHECK}")
    away = s.share_other is not None and s.share_other >= 0.5
    cond = Verdict("pass" if away else "fail", None, None, "")
    out: list[Judged] = []
    for t in row.thresholds:
        key = "mean" if t.expr.aggregate == "avg" else stat_key(float(t.expr.percentile or 50.0))
        est = cis[key].scaled(1e-3)
        if not math.isfinite(est.value):
            out.append((t, scn.id, None, Verdict("inconclusive", None, None, "no estimate"), facts))
            continue
        v = combine(decide(est, t.op, t.value, duration_s=None), cond,
                    "most requests still went to the slow endpoint")
        out.append((t, scn.id, est, v, facts))
    return out


def _ledger(row: SloRow, scn: ChaosScenario, conf: float) -> list[Judged]:
    if scn.error:
        return _undecided(row, scn.id, f"chaos {scn.name} did not complete: {scn.error}")
    led = scn.ledger
    if led is None or not led.reconciled:
        return _undecided(row, scn.id, f"its bot session was not reconciled: {led.note if led else 'no ledger read'}")
    c = led.counts
    facts = (f"bot session {led.session}: {c.reported} intents reported, {c.mined_confirmed} mined confirmed on "
             f"chain, {c.lost} lost, {c.doubled} doubled, {c.unexplained} unexplained, {c.explained_late} landed "
             f"late (explained), {c.not_terminal} not terminal; {OWN_CHECK}")
    extra = "; ".join(why for n, why in ((c.unexplained, f"{c.unexplained} outcome(s) the chain contradicts"),
                                         (c.not_terminal, f"{c.not_terminal} intent(s) not terminal")) if n)
    est = _exact(float(c.lost_or_doubled), conf, "")
    out: list[Judged] = []
    for t in row.thresholds:
        v = decide(est, t.op, t.value, duration_s=None)
        if extra:
            v = Verdict("fail", v.margin, None, extra)
        elif c.reported == 0:
            v = Verdict("inconclusive", v.margin, None, "the bot traded nothing in this scenario")
        out.append((t, scn.id, est, v, facts))
    return out
