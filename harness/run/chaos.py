"""The chaos scenarios in a run: each one's own bot behind two fault proxies, faults on a timeline, verdict facts.

``run_chaos`` runs after every other scenario. The run's bot drains, is reconciled and stops; then
for each chaos scenario (``harness.run.chaosplan``): our anvil goes back to its snapshot, a
``ChaosRig`` puts proxies A and B in front of it, a fresh bot starts with both as its endpoints,
and the trades are offered (``run_scenario``, the same code as any trading scenario) while
``drive_faults`` performs the scenario's actions on the proxies, timed from the scenario's start.
After the drain the session is reconciled against the chain, the measurement of the scenario's
kind is taken from the proxies' own records and the bot's own counters, and the entry goes to
``results.json``'s ``chaos`` section (``harness.results.chaos``). At the end the run's own bot is
back, for the end-of-run reconciliation. A scenario that fails is recorded with its reason and the
next one runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from hdrh.histogram import HdrHistogram

from harness.errors import HarnessError
from harness.node.faultlog import SEND
from harness.node.faultplan import FaultPlan
from harness.results.chaos import (
    Ambiguous,
    ChaosAction,
    ChaosLedger,
    ChaosResults,
    ChaosScenario,
    Failover,
    Resubscribe,
    RetryAfterCheck,
    SlowNode,
)
from harness.results.ledger import LedgerCounts
from harness.results.writer import ResultsWriter
from harness.run import ledgercheck
from harness.run.botproc import BotProcess
from harness.run.chaosplan import ChaosSpec
from harness.run.chaosrig import ChaosRig, bot_gauges, chaos_config
from harness.run.ledgercheck import reconcile_session
from harness.run.progress import Ui
from harness.run.scenarios import Scenario
from harness.run.stack import BotSession, Stack
from harness.stats.failover import Outage, carrier, early_requests, failover_times, summarize

# Requests the bot had already sent when it read a 429 still reach the endpoint after it; a quarter
# second covers the loop lag of a loaded bot and harness on two shared cores.
GRACE_S = 0.25
WS_GAUGES = ("ws_connects", "ws_backfilled", "ws_reconnects", "receipts_fallbacks")
RESUBSCRIBE_WAIT_S = 15.0


@dataclass
class Driven:
    """What ``drive_faults`` did, in the proxies' clock (``time.monotonic()``)."""

    t0: float
    actions: list[ChaosAction] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)
    dropped: int = 0
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)  # proxy: its last plan set -> cleared
    gauges: dict[str, float] = field(default_factory=dict)  # the bot's, before the first action


async def drive_faults(spec: ChaosSpec, rig: ChaosRig, api_url: str, t0: float) -> Driven:
    """Perform ``spec.timeline()`` on the rig's proxies, each action at ``t0`` + its time."""
    done = Driven(t0, gauges=await bot_gauges(api_url))
    opened: dict[str, float] = {}
    late = 0.0  # a drop that waited for the bot to resubscribe moves the actions after it (its hold) as much
    for act in spec.timeline():
        delay = t0 + act.t + late - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.monotonic()
        target = (carrier(rig.replies, now) or "A") if act.target == "carrier" else act.target
        proxy = rig.proxies[target]
        if act.verb == "plan":
            proxy.set_plan(FaultPlan.parse(act.plan), source=f"chaos {spec.name}")
            detail = act.plan or "clean"
            if act.plan:
                opened[target] = now
            elif target in opened:
                done.windows[target] = (opened.pop(target), now)
        elif act.verb == "outage":
            proxy.start_outage(act.seconds)
            done.outages.append(Outage(now, target, act.seconds))
            detail = f"down {act.seconds:g} s (it carried the most requests in the last 0.5 s)"
        else:
            await _resubscribed(api_url, done.gauges.get("ws_connects", 0) + done.dropped)
            now = time.monotonic()
            late = max(late, now - (t0 + act.t))
            n = await proxy.drop_websockets(f"chaos {spec.name}")
            done.dropped += n
            detail = f"{n} WebSocket(s) closed"
        done.actions.append(ChaosAction(round(now - t0, 3), target, act.verb, detail))
    return done


async def _resubscribed(api_url: str, connects: float, within_s: float = RESUBSCRIBE_WAIT_S) -> None:
    """Until the bot's ``ws_connects`` reaches ``connects`` (bounded: a drop then still goes ahead, and the
    verdict sees the subscription that never came back)."""
    deadline = time.monotonic() + within_s
    while (await bot_gauges(api_url)).get("ws_connects", 0) < connects and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def run_chaos(scenarios: Sequence[Scenario], st: Stack, ui: Ui, writer: ResultsWriter,
                    settle_timeout_s: float) -> None:
    """Every chaos scenario in turn (see the module docstring); the run's bot is back at the end."""
    from harness.run.settle import settle

    await settle(st, timeout_s=settle_timeout_s)
    await reconcile_session(st, ui)  # the run's bot stops here: its ledger is checked first
    await st.session.stop()
    for scn in scenarios:
        assert scn.chaos is not None
        try:
            entry = await _one(scn, scn.chaos, st, ui, writer, settle_timeout_s)
        except (HarnessError, aiohttp.ClientError, OSError, TimeoutError) as exc:  # this scenario's, not the run's
            ui.log(f"chaos {scn.chaos.name} failed: {exc}")
            writer.add_error(scn.id, str(exc))
            entry = _entry(scn.chaos, error=str(exc))
        writer.set_chaos((writer.run.chaos or ChaosResults()).with_scenario(entry))
        ui.log(f"chaos {scn.chaos.name}: {headline(entry)}")
    st.session = st.new_session()
    await st.session.start()
    st.bot_starts += 1


def _entry(spec: ChaosSpec, **kw: Any) -> ChaosScenario:
    return ChaosScenario(spec.id, spec.name, spec.form, spec.describe(), spec.rate, spec.rate_source, spec.seconds,
                         **kw)


async def _one(scn: Scenario, spec: ChaosSpec, st: Stack, ui: Ui, writer: ResultsWriter,
               settle_timeout_s: float) -> ChaosScenario:
    from harness.run.scenario_exec import run_scenario
    from harness.run.settle import settle

    if st.chain is not None and st.chain.enabled and not st.chain.one_bot:
        block = await st.chain.revert()  # no bot is up: the previous one stopped
        ui.log(f"chaos {spec.name}: chain reverted to block {block}")
    async with ChaosRig(st.node_url, st.run_dir, spec) as rig:
        cfg = chaos_config(st.run_dir, st.run_dir / "bot.toml", spec, rig)
        connects = st.feed.connects
        st.session = BotSession(BotProcess(cfg, st.run_dir / "bot.log", st.api_url, token=st.token,
                                           env=dict(st.bot.env)))
        try:
            await st.session.start()
            st.bot_starts += 1
            ui.log(f"chaos {spec.name}: bot pid {st.bot.pid}, endpoints A {rig.proxies['A'].url} and "
                   f"B {rig.proxies['B'].url} (WebSocket through B)")
            await _feed_connected(st, connects)
            await settle(st, timeout_s=settle_timeout_s)
            t0 = time.monotonic()
            faults = asyncio.create_task(drive_faults(spec, rig, st.api_url, t0))
            try:
                doc = await run_scenario(dataclasses.replace(scn, kind="trades", chaos=None), st, ui, writer)
            except BaseException:
                faults.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):  # the scenario's error is the one to tell
                    await faults
                raise
            driven = await faults  # normally done: its timeline ends with the load, before the drain
            after = await _ws_after(st, spec, driven)
            measured_end = time.monotonic()
            _annotate(doc, driven)
            writer.upsert_scenario(doc)
            await reconcile_session(st, ui)
            for name in ("A", "B"):
                writer.add_artifact("logs", st.run_dir / rig.log_name(name))
            return _measure(spec, rig, driven, doc, after, measured_end, _ledger(st))
        finally:
            await st.session.stop()


async def _feed_connected(st: Stack, before: int, within_s: float = 30.0) -> None:
    """Until the new bot is the feed's client: ticks sent before would be undelivered."""
    deadline = time.monotonic() + within_s
    while st.feed.connects <= before:
        if time.monotonic() > deadline:
            raise HarnessError(f"the chaos bot did not connect to the feed within {within_s:g} s; "
                               f"log {st.bot.log_path}")
        await asyncio.sleep(0.05)


async def _ws_after(st: Stack, spec: ChaosSpec, driven: Driven) -> dict[str, float]:
    """The bot's WebSocket counters once it resubscribed after every drop (bounded wait)."""
    if spec.name != "wsdrop":
        return {}
    deadline = time.monotonic() + RESUBSCRIBE_WAIT_S
    while True:
        now = await bot_gauges(st.api_url)
        if now.get("ws_connects", 0) - driven.gauges.get("ws_connects", 0) >= driven.dropped:
            return now
        if time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.1)


def _annotate(doc: dict[str, Any], driven: Driven) -> None:
    doc["kind"] = "chaos"
    doc["annotations"] = [*doc.get("annotations", []),
                          *({"t": a.t, "label": f"{a.proxy}: {a.action} {a.detail}"} for a in driven.actions)]


def _ledger(st: Stack) -> ChaosLedger | None:
    rec = ledgercheck.load(st.run_dir)
    if rec is None or not rec.sessions:
        return None
    s = rec.sessions[-1]
    return ChaosLedger(s.session, s.reconciled, s.counts, s.note)


def _trade_mean_ms(doc: dict[str, Any]) -> float | None:
    merged: HdrHistogram | None = None
    for iv in doc.get("intervals", []):
        enc = iv.get("histograms", {}).get("trade_execution")
        if enc:
            h = HdrHistogram.decode(enc)
            if merged is None:
                merged = h
            else:
                merged.add(h)
    return None if merged is None or merged.get_total_count() == 0 else merged.get_mean_value() / 1000.0


def _trades_ok_between(doc: dict[str, Any], start: float, end: float) -> int:
    """Trades confirmed in the scenario's whole seconds inside [start, end) (seconds from its start)."""
    return sum(int(iv.get("counters", {}).get("ok", 0)) for iv in doc.get("intervals", [])
               if float(iv["start"]) >= start and float(iv["end"]) <= end)


def _measure(spec: ChaosSpec, rig: ChaosRig, driven: Driven, doc: dict[str, Any], after: dict[str, float],
             end: float, ledger: ChaosLedger | None) -> ChaosScenario:
    totals = doc.get("summary", {}).get("totals", {})
    parts: dict[str, Any] = {}
    t0 = driven.t0
    if spec.name == "outage":
        times = failover_times(driven.outages, rig.replies, end)
        s = summarize(times)
        parts["failover"] = Failover(tuple(o.proxy for o in driven.outages),
                                     tuple(None if t is None else round(t * 1e3, 3) for t in times),
                                     s.n, s.unobserved, s.p50_ms, s.p99_ms, s.max_ms)
    elif spec.name == "ratelimit":
        hit, other = "A", "B"
        start, stop = driven.windows.get(hit, (t0 + spec.lead_s, t0 + spec.lead_s + spec.limit_s))
        at_hit = [r for r in rig.replies if r.proxy == hit]
        limited = sorted(r.answered for r in at_hit if r.status == 429)
        early = early_requests([r.arrived for r in at_hit if r.arrived >= start], limited, spec.cap_s, GRACE_S)
        parts["retry_after"] = RetryAfterCheck(
            spec.retry_after_s, spec.cap_s, GRACE_S, len(limited), len(early), tuple(round(t - t0, 3) for t in early),
            returns_s=tuple(round(b - a, 3) for a, b in itertools.pairwise(limited) if b - a > GRACE_S),
            ok_via_other=sum(1 for r in rig.replies if r.proxy == other and r.ok and start <= r.answered < stop),
            trades_ok=_trades_ok_between(doc, start - t0, stop - t0),
            log_limited=rig.proxies[hit].log.counts().get("rate_limited", 0))
    elif spec.name == "wsdrop":
        d = {k: int(after.get(k, 0) - driven.gauges.get(k, 0)) for k in WS_GAUGES}
        parts["resubscribe"] = Resubscribe(spec.drops, driven.dropped, d["ws_connects"], d["ws_backfilled"],
                                           d["ws_reconnects"], d["receipts_fallbacks"])
    elif spec.name == "slownode":
        start, stop = driven.windows.get("A", (t0 + spec.lead_s, t0 + spec.seconds))
        # From a second in: the first calls find A slow before the bot's ranking learns it.
        seen = [r for r in rig.replies if start + 1.0 <= r.arrived < stop]
        share = sum(r.proxy == "B" for r in seen) / len(seen) if seen else None
        parts["slow"] = SlowNode(spec.latency_ms, share, _trade_mean_ms(doc))
    else:
        lost = [e for e in rig.proxies["A"].log if e.kind == "loss" and e.method == SEND]
        parts["ambiguous"] = Ambiguous(spec.loss_rate, rig.proxies["A"].log.counts().get("loss", 0),
                                       tuple(e.tx_hash for e in lost[:5] if e.tx_hash))
    return _entry(spec, actions=tuple(driven.actions), proxies=(rig.traffic("A"), rig.traffic("B")),
                  trades_sent=int(totals.get("sent", 0)), trades_ok=int(totals.get("ok", 0)), ledger=ledger,
                  **parts)


def headline(e: ChaosScenario) -> str:
    """One line for the progress log: the scenario's measurement and its ledger."""
    if e.error:
        return f"failed: {e.error}"
    what = ""
    if e.failover is not None:
        f = e.failover
        what = (f"failover p50 {_ms(f.p50_ms)}, p99 {_ms(f.p99_ms)}, max {_ms(f.max_ms)} over {f.n} outage(s)"
                + (f", {f.unobserved} without a failover" if f.unobserved else ""))
    elif e.retry_after is not None:
        r = e.retry_after
        what = (f"{r.limited} answered 429, {r.early} request(s) inside the {r.cap_s:g} s park, "
                f"{r.ok_via_other} ok through B, {r.trades_ok} trades meanwhile")
    elif e.resubscribe is not None:
        w = e.resubscribe
        what = f"{w.dropped} socket(s) dropped, {w.connects} resubscribed, {w.backfilled} items backfilled"
    elif e.slow is not None:
        s = e.slow
        share = "-" if s.share_other is None else f"{s.share_other:.0%}"
        what = f"{share} of requests through B, trade_execution mean {_ms(s.trade_mean_ms)}"
    elif e.ambiguous is not None:
        what = f"{e.ambiguous.sends_lost} send replies lost after forwarding"
    led = e.ledger
    counts = led.counts if led is not None else LedgerCounts()
    ledger = ("ledger not reconciled" if led is None or not led.reconciled else
              f"ledger: {counts.reported} reported, {counts.lost} lost, {counts.doubled} doubled, "
              f"{counts.not_terminal} not terminal")
    return f"{what}; {e.trades_ok}/{e.trades_sent} trades ok; {ledger}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f} ms"
