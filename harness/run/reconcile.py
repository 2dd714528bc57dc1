"""The bot's ledger against the chain, for one bot session (pure): the rules of the ``ledger`` section.

Inputs: the ledger as the bot served it (``LedgerDump``: the records it still holds plus per-account
tallies that are never evicted) and what the node said (``ChainFacts``: each looked-up hash, each
account's ``latest`` transaction count). Both were read after a drain, with nothing moving.

Per record still held (hash level):

1. Reported ``mined_ok`` / ``reverted``: its hash must be mined, with receipt status 1 / 0, from
   the record's sender at the record's nonce. Not mined (unknown, or only pending): **lost**.
   Mined but differing: **unexplained**. Else confirmed.
2. Reported ``dropped`` / ``rejected`` / ``failed``: every candidate hash must be absent, unless its
   presence is explained. It is explained when the record ended ``failed`` without the bot
   releasing its nonce (the outcome was unknown: "outcome unknown", "still pending", "sender
   closed"): **explained_late**, a finding. Any other presence (the bot declared the bytes gone,
   and freed the nonce) is **unexplained**.
3. Still live after the drain: **not_terminal**.

Per account (nonce level, complete however long the run: from the tallies):

4. The chain used nonces ``[start, count)`` in this session (``start``: the count the bot seeded
   its allocator with; ``count``: ``eth_getTransactionCount(addr, "latest")`` now).
5. A nonce the ledger calls mined outside that span is **lost** (unless rule 1 already counted it).
6. A nonce in the span that no mined record and no landed record accounts for was used by a
   transaction the ledger does not know. If a failed record that may land held that nonce and was
   not itself found absent, it is **explained_late**; otherwise it is **doubled**. Two records
   mined at one nonce (the bot's own tally) are **doubled** too.
7. Hence, per account, ``count - start == mined + late`` exactly when nothing is lost or doubled
   (``AccountBalance.balanced``); mined counts nonce fillers, which are records like any other.

``mined_confirmed`` counts mined records confirmed by hash where the record was still held, and
by nonce (inside the span) where only the tally remembers it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from harness.results.ledger import AccountBalance, Discrepancy, LedgerCounts, SessionCheck
from harness.run import nonceset
from harness.run.ledgerdump import ChainFacts, DumpRecord, LedgerDump, TxFact

MAX_LISTED_PER_FINDING = 20  # nonces listed one by one for one account's nonce-level finding


@dataclass(frozen=True)
class SessionOutcome:
    check: SessionCheck
    accounts: tuple[AccountBalance, ...]
    discrepancies: tuple[Discrepancy, ...]

    def __repr__(self) -> str:
        return f"SessionOutcome({self.check!r}, discrepancies={len(self.discrepancies)})"


def unreconciled(session: int, why: str, *, final: bool = False) -> SessionOutcome:
    return SessionOutcome(SessionCheck(session, False, LedgerCounts(), final=final, note=why), (), ())


class _Tally:
    """Mutable counters while one session is reconciled."""

    def __init__(self, session: int) -> None:
        self.session = session
        self.n: Counter[str] = Counter()
        self.found: list[Discrepancy] = []

    def add(self, kind: str, count_as: str | None, account: str, nonce: int | None, hashes: Iterable[str],
            state: str | None, detail: str) -> None:
        if count_as is not None:
            self.n[count_as] += 1
        self.found.append(Discrepancy(kind, self.session, account, nonce, tuple(hashes), state, detail))


def _where(f: TxFact) -> str:
    return f"mined in block {f.block}" if f.block is not None else "pending in the node's pool"


def _check_mined(t: _Tally, r: DumpRecord, fact: TxFact | None, acct: str) -> bool:
    """Rule 1; True when confirmed."""
    h = r.hash or r.hashes[0]
    if fact is None or fact.block is None:
        what = "unknown to the node" if fact is None else "only pending in the node's pool"
        t.add("lost", "lost", acct, r.nonce, [h], r.state, f"reported {r.state}, but the transaction is {what}")
        return False
    wrong = []
    want = 1 if r.state == "mined_ok" else 0
    if fact.status != want:
        wrong.append(f"receipt status {fact.status}" if fact.status is not None else "no receipt")
    if r.nonce is not None and fact.nonce != r.nonce:
        wrong.append(f"nonce {fact.nonce} on chain, {r.nonce} in the ledger")
    if fact.sender.lower() != acct:
        wrong.append(f"sent by {fact.sender}")
    if wrong:
        t.add("unexplained", "unexplained", acct, r.nonce, [h], r.state,
              f"reported {r.state}, but {', '.join(wrong)}")
        return False
    return True


def reconcile(dump: LedgerDump, facts: ChainFacts, *, session: int, final: bool = False) -> SessionOutcome:
    """Rules 1-7 above for one bot session."""
    t = _Tally(session)
    landed: dict[str, list[int]] = defaultdict(list)  # nonces of non-mined records found mined
    record_lost: dict[str, set[int]] = defaultdict(set)
    checked_mined: dict[str, set[int]] = defaultdict(set)
    absent_may_land: dict[str, set[int]] = defaultdict(set)  # may-land nonces checked and not landed
    confirmed = 0
    for r in dump.records:
        acct = r.sender.lower()
        if not r.terminal:
            t.add("not_terminal", "not_terminal", acct, r.nonce, r.hashes, r.state,
                  f"still {r.state} after the drain")
        if not r.hashes:
            continue
        if any(h not in facts.txs for h in r.hashes):
            t.n["unchecked"] += 1
            continue
        t.n["checked"] += 1
        found = [f for h in r.hashes if (f := facts.txs[h]) is not None]
        mined_on_chain = [f for f in found if f.block is not None]
        if r.mined:
            fact = facts.txs.get(r.hash or r.hashes[0])
            if r.nonce is not None:
                checked_mined[acct].add(r.nonce)
            if _check_mined(t, r, fact, acct):
                confirmed += 1
            elif r.nonce is not None and (fact is None or fact.block is None):
                record_lost[acct].add(r.nonce)
            continue
        landed[acct] += [f.nonce for f in mined_on_chain]
        if not r.terminal:
            continue
        if not found:
            if r.may_land and r.nonce is not None:
                absent_may_land[acct].add(r.nonce)
            continue
        where = _where(mined_on_chain[0] if mined_on_chain else found[0])
        hashes = [f.hash for f in found]
        if r.may_land:
            t.add("late", "explained_late", acct, r.nonce, hashes, r.state,
                  f"ended failed with its nonce {r.nonce_fate or 'kept'} (outcome unknown); the transaction is {where}")
        else:
            fate = f", nonce {r.nonce_fate}" if r.nonce_fate else ""
            t.add("unexplained", "unexplained", acct, r.nonce, hashes, r.state,
                  f"reported {r.state} ({r.error_kind or 'no kind'}{fate}), but the transaction is {where}")
    balances: list[AccountBalance] = []
    notes: list[str] = []
    blind: list[str] = []  # accounts whose nonce level could not be checked: the session is not reconciled
    confirmed_by_nonce = 0
    for addr, a in sorted(dump.accounts.items()):
        acct = addr.lower()
        if a.start_nonce is None:
            if a.mined or a.doubled:
                blind.append(f"{addr}: mined records but no start nonce")
            continue
        count = facts.counts.get(addr)
        if count is None:
            blind.append(f"{addr}: no transaction count from the node")
            continue
        span = [(a.start_nonce, count - 1)] if count > a.start_nonce else []
        mined = list(a.mined_nonces)
        landed_set = nonceset.of(landed[acct])
        confirmed_by_nonce += nonceset.size(nonceset.intersect(mined, span)) - len(
            [n for n in checked_mined[acct] if a.start_nonce <= n < count])
        beyond = nonceset.minus(nonceset.minus(mined, span), nonceset.of(record_lost[acct]))
        for n in nonceset.first(beyond, MAX_LISTED_PER_FINDING):
            t.add("lost", None, acct, n, (), None,
                  f"the ledger calls nonce {n} mined; the chain's count for the account is {count} "
                  f"(this session began at {a.start_nonce})")
        t.n["lost"] += nonceset.size(beyond)
        gaps = nonceset.minus(nonceset.minus(span, mined), landed_set)
        may = nonceset.minus(a.may_land_nonces, nonceset.of(absent_may_land[acct]))
        explained = nonceset.intersect(gaps, may)
        unknown = nonceset.minus(gaps, explained)
        if explained:
            t.n["explained_late"] += nonceset.size(explained)
            t.add("late", None, acct, nonceset.first(explained, 1)[0], (), "failed",
                  f"{nonceset.size(explained)} nonce(s) of records ended failed with the outcome unknown were used on "
                  f"chain (the records are no longer in the bot's ring): {nonceset.first(explained, 10)}")
        for n in nonceset.first(unknown, MAX_LISTED_PER_FINDING):
            t.add("doubled", None, acct, n, (), None,
                  f"nonce {n} was used on chain by a transaction the ledger does not account for")
        t.n["doubled"] += nonceset.size(unknown) + a.doubled
        for n in a.doubled_nonces:
            t.add("doubled", None, acct, n, (), None, f"two records of the ledger claim nonce {n} mined")
        late = nonceset.size(landed_set) + nonceset.size(explained)
        balances.append(AccountBalance(acct, max(count - a.start_nonce, 0), a.mined, a.fillers, late))
    if facts.note:
        notes.append(facts.note)
    counts = LedgerCounts(
        reported=dump.opened, checked=t.n["checked"], mined_confirmed=confirmed + max(confirmed_by_nonce, 0),
        lost=t.n["lost"], doubled=t.n["doubled"], unexplained=t.n["unexplained"],
        explained_late=t.n["explained_late"], not_terminal=t.n["not_terminal"], unchecked=t.n["unchecked"])
    check = SessionCheck(session, not blind, counts, sampled=facts.sampled, final=final,
                         note="; ".join([*blind, *notes]))
    return SessionOutcome(check, tuple(balances), tuple(t.found))
