"""The bot's transaction ledger reconciled against the chain: ``results.json``'s top-level ``ledger`` (typed).

Written by ``harness.run.ledgercheck`` (one reconciliation per bot session: before each chain revert,
before a fresh bot, and at the end of the run), summed over sessions. The rules are in
``harness.run.reconcile``. ``from_json(to_json(x)) == x`` (tests/unit/test_run_reconcile.py).

Counts:

- ``reported``: intents the bot's ledger opened (every session);
- ``checked``: of the records the bot still held, those whose hashes were looked up on chain;
- ``mined_confirmed``: reported mined, found mined with the same receipt status, sender and nonce;
- ``lost``: reported mined, not on chain (by hash, or a nonce the ledger calls mined that the
  account's transaction count has not reached);
- ``doubled``: the chain holds a transaction of the bot's account at a nonce the ledger cannot
  account for, or two records claim one nonce mined;
- ``unexplained``: the chain contradicts the ledger's outcome with nothing to explain it (a record
  ended dropped / rejected / failed-and-released whose bytes landed; a receipt status, nonce or
  sender that differs from the record);
- ``explained_late``: a record ended ``failed`` while its bytes could still land (its nonce held), and
  they did: a finding, not an error;
- ``not_terminal``: intents still live after the drain;
- ``unchecked``: records not looked up (sampled out beyond the cap, or the deadline ran out).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

MAX_DISCREPANCIES = 100

KINDS: dict[str, str] = {
    "lost": "reported mined, not on chain",
    "doubled": "a nonce of the bot's account used by a transaction the ledger does not account for",
    "unexplained": "the chain contradicts the ledger's outcome",
    "late": "ended failed with the outcome unknown; the transaction landed later (explained)",
    "not_terminal": "still live after the drain",
}


@dataclass(frozen=True)
class LedgerCounts:
    reported: int = 0
    checked: int = 0
    mined_confirmed: int = 0
    lost: int = 0
    doubled: int = 0
    unexplained: int = 0
    explained_late: int = 0
    not_terminal: int = 0
    unchecked: int = 0

    def __add__(self, other: LedgerCounts) -> LedgerCounts:
        return LedgerCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def lost_or_doubled(self) -> int:
        return self.lost + self.doubled

    @property
    def problems(self) -> int:
        """Everything that fails the reconciliation (explained late landings and unchecked ones do not)."""
        return self.lost + self.doubled + self.unexplained + self.not_terminal

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LedgerCounts:
        return cls(**{f.name: int(d.get(f.name, 0)) for f in fields(cls)})

    def to_json(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Discrepancy:
    kind: str  # a key of KINDS
    session: int
    account: str
    nonce: int | None
    hashes: tuple[str, ...]
    state: str | None  # the record's terminal state (None: no record, a nonce-level finding)
    detail: str

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Discrepancy:
        nonce = d.get("nonce")
        return cls(kind=str(d["kind"]), session=int(d["session"]), account=str(d["account"]),
                   nonce=None if nonce is None else int(nonce), hashes=tuple(str(h) for h in d.get("hashes", ())),
                   state=d.get("state"), detail=str(d.get("detail", "")))

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "session": self.session, "account": self.account, "nonce": self.nonce,
                "hashes": list(self.hashes), "state": self.state, "detail": self.detail}


@dataclass(frozen=True)
class AccountBalance:
    """One account's transaction count: the chain's (since each session began) against the ledger's."""

    account: str
    chain_txs: int  # eth_getTransactionCount(latest) minus the session's start nonce, summed
    mined: int  # records ended mined_ok or reverted (nonce fillers included)
    fillers: int
    late: int  # non-mined records whose transaction landed

    def __add__(self, other: AccountBalance) -> AccountBalance:
        return AccountBalance(self.account, self.chain_txs + other.chain_txs, self.mined + other.mined,
                              self.fillers + other.fillers, self.late + other.late)

    @property
    def balanced(self) -> bool:
        return self.chain_txs == self.mined + self.late

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> AccountBalance:
        return cls(str(d["account"]), int(d["chain_txs"]), int(d["mined"]), int(d.get("fillers", 0)),
                   int(d.get("late", 0)))

    def to_json(self) -> dict[str, Any]:
        return {"account": self.account, "chain_txs": self.chain_txs, "mined": self.mined,
                "fillers": self.fillers, "late": self.late}


@dataclass(frozen=True)
class SessionCheck:
    """One bot process's ledger against the chain, taken before the chain moved back under it."""

    session: int
    reconciled: bool  # False: it could not be reconciled (``note`` says why)
    counts: LedgerCounts
    sampled: bool = False  # more records than the cap: a sample was looked up
    final: bool = False  # the end-of-run reconciliation
    note: str = ""

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SessionCheck:
        return cls(int(d["session"]), bool(d["reconciled"]), LedgerCounts.from_json(d.get("counts", {})),
                   bool(d.get("sampled", False)), bool(d.get("final", False)), str(d.get("note", "")))

    def to_json(self) -> dict[str, Any]:
        return {"session": self.session, "reconciled": self.reconciled, "counts": self.counts.to_json(),
                "sampled": self.sampled, "final": self.final, "note": self.note}


@dataclass(frozen=True)
class LedgerReconciliation:
    counts: LedgerCounts
    sessions: tuple[SessionCheck, ...] = ()
    accounts: tuple[AccountBalance, ...] = ()
    discrepancies: tuple[Discrepancy, ...] = ()  # the first MAX_DISCREPANCIES
    discrepancies_total: int = 0

    def __repr__(self) -> str:
        c = self.counts
        return (f"LedgerReconciliation(sessions={len(self.sessions)}, complete={self.complete}, "
                f"reported={c.reported}, lost={c.lost}, doubled={c.doubled}, unexplained={c.unexplained}, "
                f"late={c.explained_late}, not_terminal={c.not_terminal})")

    @property
    def complete(self) -> bool:
        """Every bot session reconciled, the last one at the end of the run."""
        return bool(self.sessions) and all(s.reconciled for s in self.sessions) and self.sessions[-1].final

    @property
    def sampled(self) -> bool:
        return any(s.sampled for s in self.sessions)

    def reasons(self) -> list[str]:
        """Why the reconciliation is not complete (empty when it is)."""
        out = [f"session {s.session}: {s.note}" for s in self.sessions if not s.reconciled]
        if not self.sessions or not self.sessions[-1].final:
            out.append("the run stopped before the last bot session was reconciled")
        return out

    def with_session(self, session: SessionCheck, accounts: Iterable[AccountBalance],
                     discrepancies: Iterable[Discrepancy]) -> LedgerReconciliation:
        """This reconciliation with one more session: counts and accounts summed, discrepancies kept up
        to ``MAX_DISCREPANCIES`` and all of them counted."""
        by_addr = {a.account: a for a in self.accounts}
        for a in accounts:
            by_addr[a.account] = by_addr[a.account] + a if a.account in by_addr else a
        new = list(discrepancies)
        room = max(MAX_DISCREPANCIES - len(self.discrepancies), 0)
        return LedgerReconciliation(self.counts + session.counts, (*self.sessions, session),
                                    tuple(by_addr[k] for k in sorted(by_addr)),
                                    (*self.discrepancies, *new[:room]), self.discrepancies_total + len(new))

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LedgerReconciliation:
        return cls(LedgerCounts.from_json(d["counts"]),
                   tuple(SessionCheck.from_json(s) for s in d.get("sessions", ())),
                   tuple(AccountBalance.from_json(a) for a in d.get("accounts", ())),
                   tuple(Discrepancy.from_json(x) for x in d.get("discrepancies", ())),
                   int(d.get("discrepancies_total", 0)))

    def to_json(self) -> dict[str, Any]:
        return {"counts": self.counts.to_json(), "complete": self.complete, "sampled": self.sampled,
                "sessions": [s.to_json() for s in self.sessions], "accounts": [a.to_json() for a in self.accounts],
                "discrepancies": [x.to_json() for x in self.discrepancies],
                "discrepancies_total": self.discrepancies_total}
