"""Reconcile the running bot's ledger against the chain: once per bot session, summed into ``ledger``.

A chain revert erases a session's transactions and a fresh bot starts with an empty ledger, so each
session is reconciled while both still exist: before ``reset_if_grown`` reverts (and before a
``--fresh-bot`` restart), and at the end of the run (``final``). Steps, over the bot's API only:

1. ``POST /ledger/drain`` (bounded): wait until every intent is terminal;
2. ``GET /ledger``; the chain facts for it (``harness.run.chainfacts``); ``GET /ledger?records=0``
   again: if the ledger moved meanwhile (an intent opened or settled), repeat, at most ``ATTEMPTS``
   times, so that ledger and chain describe one moment;
3. ``harness.run.reconcile`` and the session appended to ``ledger.json`` in the run folder, which
   ``record_ledger`` puts into results.json at the end (also after an interrupted run).

Never raises: a session that cannot be reconciled is recorded as such, with the reason, and the
``ledger_reconciliation`` row is then inconclusive.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from bot.redact import redact_text
from harness.errors import HarnessError
from harness.results.ledger import LedgerCounts, LedgerReconciliation
from harness.run.chainfacts import DEFAULT_LIMITS, FactLimits, gather
from harness.run.ledgerdump import LedgerDump
from harness.run.reconcile import SessionOutcome, reconcile, unreconciled

if TYPE_CHECKING:
    from harness.results.writer import ResultsWriter
    from harness.run.progress import Ui
    from harness.run.stack import Stack

SESSIONS_FILE = "ledger.json"
ATTEMPTS = 3
DRAIN_S = 30.0
DEADLINE_S = 90.0  # one session, everything included: the run goes on without it after that


async def _api(http: aiohttp.ClientSession, method: str, base: str, path: str) -> Any:
    async with http.request(method, base + path) as r:
        if r.status != 200:
            raise HarnessError(f"the bot's {method} {path}: HTTP {r.status}: {(await r.text())[:200]}")
        return await r.json(loads=orjson.loads)


async def session_outcome(api_url: str, token: str, node_url: str, *, session: int, final: bool,
                          limits: FactLimits = DEFAULT_LIMITS, drain_s: float = DRAIN_S) -> SessionOutcome:
    """Steps 1-3 for the bot at ``api_url`` (raises on an unreachable bot or node)."""
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=drain_s + 10)
    notes: list[str] = []
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
        for attempt in range(1, ATTEMPTS + 1):
            drained = await _api(http, "POST", api_url, f"/ledger/drain?within={drain_s:g}")
            if not drained.get("drained"):
                notes.append(f"{drained.get('in_flight')} intent(s) still live after a {drain_s:g} s drain")
            dump = LedgerDump.from_json(await _api(http, "GET", api_url, "/ledger"))
            facts = await gather(node_url, dump, limits, seed=session)
            after = LedgerDump.from_json(await _api(http, "GET", api_url, "/ledger?records=0"))
            if after.fingerprint == dump.fingerprint:
                break
            if attempt == ATTEMPTS:
                return unreconciled(session, f"the bot's ledger kept moving during {ATTEMPTS} attempts "
                                             "(intents opened or settled while the chain was read)", final=final)
    out = reconcile(dump, facts, session=session, final=final)
    if notes:
        note = "; ".join([*notes, *([out.check.note] if out.check.note else [])])
        out = dataclasses.replace(out, check=dataclasses.replace(out.check, note=note))
    return out


def load(run_dir: Path) -> LedgerReconciliation | None:
    path = run_dir / SESSIONS_FILE
    if not path.exists():
        return None
    return LedgerReconciliation.from_json(orjson.loads(path.read_bytes()))


def _save(run_dir: Path, rec: LedgerReconciliation) -> None:
    path = run_dir / SESSIONS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(orjson.dumps(rec.to_json(), option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)


def describe(c: LedgerCounts) -> str:
    return (f"{c.reported} reported, {c.mined_confirmed} mined confirmed, {c.lost} lost, {c.doubled} doubled, "
            f"{c.unexplained} unexplained, {c.explained_late} late, {c.not_terminal} not terminal")


async def reconcile_session(st: Stack, ui: Ui, *, final: bool = False) -> None:
    """Reconcile the current bot session (see the module docstring); never raises but on cancellation."""
    prior = load(st.run_dir) or LedgerReconciliation(LedgerCounts())
    n = len(prior.sessions) + 1
    try:
        async with asyncio.timeout(DEADLINE_S):
            out = await session_outcome(st.api_url, st.token, st.node_url, session=n, final=final)
    except (HarnessError, aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
        # The message may quote the node's URL: what is shown of it is redacted, as everywhere else.
        out = unreconciled(n, redact_text(f"could not reconcile: {type(exc).__name__}: {exc}"), final=final)
    _save(st.run_dir, prior.with_session(out.check, out.accounts, out.discrepancies))
    c = out.check
    with contextlib.suppress(Exception):  # the progress line is a courtesy
        ui.log(f"ledger (bot session {n}): " + (describe(c.counts) if c.reconciled else c.note))


def record_ledger(writer: ResultsWriter) -> LedgerReconciliation | None:
    """``ledger.json`` of the run folder into results.json's ``ledger`` (nothing when no session was reconciled)."""
    rec = load(writer.run_dir)
    if rec is not None:
        writer.set_ledger(rec)
    return rec
