"""The ``ledger_reconciliation`` row: the harness's own check, not a row of slo-tables.md.

Judged from results.json's ``ledger`` section (``harness.results.ledger``, written by
``harness.run.ledgercheck``). The value is lost + doubled transactions, an exact count (no
sampling CI: every nonce of every session is checked through the bot's never-evicted tallies).
It fails on any lost or doubled transaction, and on an outcome the chain contradicts without
explanation or an intent not terminal after the drain, whatever the threshold; it is inconclusive
when a bot session could not be reconciled (the reasons are in the note), unless something failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.results.ledger import LedgerReconciliation
from harness.slo.spec import SloRow, SloThreshold
from harness.stats.intervals import Estimate
from harness.stats.verdict import Verdict, decide

OWN_CHECK = "the harness's own check (not a row of slo-tables.md)"


Judged = tuple[SloThreshold, Estimate | None, Verdict, str]


def judge_ledger(doc: Mapping[str, Any] | None, row: SloRow, confidence: float) -> list[Judged]:
    """(threshold, estimate, verdict, note) per threshold of ``row``."""
    raw = doc.get("ledger") if isinstance(doc, Mapping) else None
    if not isinstance(raw, Mapping):
        why = f"{OWN_CHECK}: not reconciled (no bot session's ledger was read before the run ended)"
        return [(t, None, Verdict("inconclusive", None, None, why), "") for t in row.thresholds]
    led = LedgerReconciliation.from_json(raw)
    c = led.counts
    value = float(c.lost_or_doubled)
    est = Estimate(value, value, value, confidence, "exact", len(led.sessions),
                   "an exact count over every bot session")
    facts = (f"{len(led.sessions)} bot session(s): {c.reported} intents reported, {c.mined_confirmed} mined confirmed "
             f"on chain, {c.lost} lost, {c.doubled} doubled, {c.unexplained} unexplained, {c.explained_late} landed "
             f"late (explained), {c.not_terminal} not terminal"
             + (f", {c.unchecked} records not looked up (sampled or past the deadline)" if c.unchecked else ""))
    extra = [why for n, why in ((c.unexplained, f"{c.unexplained} outcome(s) the chain contradicts"),
                                (c.not_terminal, f"{c.not_terminal} intent(s) not terminal after the drain")) if n]
    out: list[Judged] = []
    for t in row.thresholds:
        v = decide(est, t.op, t.value, duration_s=None)
        if v.verdict == "fail" or extra:
            v = Verdict("fail", v.margin, None, "; ".join(extra))
        elif not led.complete:
            v = Verdict("inconclusive", v.margin, None, "not every session reconciled: " + "; ".join(led.reasons()))
        out.append((t, est, v, f"{OWN_CHECK}; {facts}"))
    return out
