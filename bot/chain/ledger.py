"""The transaction ledger's pure core: record states, allowed transitions, error classification.

Every intent the sender accepts becomes a ``TxRecord`` that ends in exactly one terminal state:

``mined_ok`` | ``reverted`` | ``dropped`` | ``rejected`` | ``failed``

Non-terminal states: ``created`` (nonce assigned, not yet signed), ``signed``, ``submitted``
(the node acknowledged the hash), ``unacked`` (every send attempt hit a transport error: the node
may or may not hold the transaction, so it is still watched by hash until its deadline).

``Ledger.transition`` refuses any move the table below does not allow, so a second terminal
state (a transaction counted twice) is a loud bug, not a silent miscount. Terminal records are
kept in a bounded ring (``keep_recent``) for inspection; the counts are kept forever, and so are
per-account tallies (``bot.chain.tally``: states, mined and may-land nonce ranges, doubled
nonces) so that a run longer than the ring can still be reconciled against the chain.

``classify_send_error`` turns a node's refusal into a decision: retry the *same bytes*, or a
definite rejection, and what the rejection means for the nonce (free again, or taken by another
transaction). It matches the messages geth-family nodes and anvil use.
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import StrEnum

from bot.chain.errors import InsufficientFunds, NonceConflict, TxDropped, TxError, TxFailed, TxRejected, TxReverted
from bot.chain.tally import AccountTally
from bot.rpc import codec
from bot.rpc.errors import NodeError, RateLimited, RpcError


class TxState(StrEnum):
    CREATED = "created"
    SIGNED = "signed"
    SUBMITTED = "submitted"
    UNACKED = "unacked"
    MINED_OK = "mined_ok"
    REVERTED = "reverted"
    DROPPED = "dropped"
    REJECTED = "rejected"
    FAILED = "failed"


TERMINAL = frozenset({TxState.MINED_OK, TxState.REVERTED, TxState.DROPPED, TxState.REJECTED, TxState.FAILED})
_SETTLE_AFTER_SEND = frozenset({TxState.MINED_OK, TxState.REVERTED, TxState.DROPPED, TxState.FAILED})
ALLOWED: dict[TxState, frozenset[TxState]] = {
    TxState.CREATED: frozenset({TxState.SIGNED, TxState.FAILED}),
    TxState.SIGNED: frozenset({TxState.SUBMITTED, TxState.UNACKED, TxState.REJECTED, TxState.FAILED}),
    TxState.SUBMITTED: _SETTLE_AFTER_SEND,
    TxState.UNACKED: _SETTLE_AFTER_SEND,
}


class NonceFate(StrEnum):
    """What the sender did with the record's nonce once its lifecycle decided (None: nothing yet)."""

    RELEASED = "released"  # the bot concluded no endpoint holds the bytes: the nonce is free again
    CONFIRMED = "confirmed"  # the chain took it (a receipt, or a refusal naming another holder)
    HELD = "held"  # the outcome is unknown: kept, and watched in case the bytes land late


class LedgerError(RuntimeError):
    """A transition the ledger forbids: a bug in the sender, never a node condition."""


@dataclass(slots=True)
class TxRecord:
    id: int
    sender: str
    label: str
    created_ns: int
    state: TxState = TxState.CREATED
    nonce: int | None = None
    hash: str | None = None
    attempts: int = 0
    error_kind: str | None = None
    reason: str | None = None
    acked_ns: int | None = None
    settled_ns: int | None = None
    block: int | None = None
    gas_used: int | None = None
    history: list[TxState] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)  # every signed hash sent for it (replacements too)
    nonce_fate: NonceFate | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def may_land(self) -> bool:
        """Ended failed with bytes that were never declared gone: a late inclusion is explained."""
        return self.state is TxState.FAILED and self.hash is not None and self.nonce_fate is not NonceFate.RELEASED


@dataclass(frozen=True, slots=True)
class LedgerStatistics:
    opened: int
    in_flight: int
    by_state: dict[str, int]  # terminal counts since start plus live non-terminal counts
    keep_recent: int


class Ledger:
    def __init__(self, *, keep_recent: int = 1000) -> None:
        if keep_recent < 0:
            raise ValueError(f"ledger.keep_recent must be >= 0, got {keep_recent}")
        self.keep_recent = keep_recent
        self._ids = itertools.count(1)
        self._live: dict[int, TxRecord] = {}
        self._recent: deque[TxRecord] = deque(maxlen=keep_recent or None)
        self._terminal_counts: Counter[str] = Counter()
        self._tallies: dict[str, AccountTally] = {}
        self._opened = 0

    def open(self, sender: str, label: str, now_ns: int) -> TxRecord:
        rec = TxRecord(id=next(self._ids), sender=sender, label=label, created_ns=now_ns)
        rec.history.append(rec.state)
        self._live[rec.id] = rec
        self._opened += 1
        self._tallies.setdefault(sender, AccountTally())
        return rec

    def transition(
        self,
        rec: TxRecord,
        state: TxState,
        now_ns: int,
        *,
        error_kind: str | None = None,
        reason: str | None = None,
    ) -> None:
        allowed = ALLOWED.get(rec.state, frozenset())
        if state not in allowed:
            raise LedgerError(f"tx {rec.id} ({rec.hash}): {rec.state} -> {state} is not allowed")
        rec.state = state
        rec.history.append(state)
        if error_kind is not None:
            rec.error_kind = error_kind
        if reason is not None:
            rec.reason = reason
        if state is TxState.SUBMITTED:
            rec.acked_ns = now_ns
        if state in TERMINAL:
            rec.settled_ns = now_ns
            del self._live[rec.id]
            self._terminal_counts[state.value] += 1
            self._tallies[rec.sender].settle(state.value, rec.nonce, rec.label, may_land=rec.may_land)
            if self.keep_recent:
                self._recent.append(rec)

    def live(self) -> list[TxRecord]:
        return list(self._live.values())

    def recent(self) -> list[TxRecord]:
        return list(self._recent)

    def tallies(self) -> dict[str, AccountTally]:
        """Per-account aggregates, never evicted (``bot.chain.tally``)."""
        return dict(self._tallies)

    @property
    def opened(self) -> int:
        return self._opened

    @property
    def evicted(self) -> int:
        """Terminal records no longer held in the ring (only the tallies remember them)."""
        return self._terminal_counts.total() - len(self._recent)

    def statistics(self) -> LedgerStatistics:
        by_state = dict(self._terminal_counts)
        for rec in self._live.values():
            by_state[rec.state.value] = by_state.get(rec.state.value, 0) + 1
        return LedgerStatistics(
            opened=self._opened, in_flight=len(self._live), by_state=by_state, keep_recent=self.keep_recent
        )

    def __repr__(self) -> str:
        return f"Ledger(opened={self._opened}, in_flight={len(self._live)}, settled={self._terminal_counts.total()})"


def outcome_error(rec: TxRecord) -> TxError | None:
    """The exception matching a terminal record (None for ``mined_ok`` or a live record)."""
    msg = f"tx {rec.hash or rec.id} from {rec.sender} nonce {rec.nonce}: {rec.reason or rec.state}"
    if rec.state is TxState.REVERTED:
        return TxReverted(msg)
    if rec.state is TxState.DROPPED:
        return TxDropped(msg)
    if rec.state is TxState.FAILED:
        return TxFailed(msg)
    if rec.state is TxState.REJECTED:
        by_kind: dict[str | None, type[TxRejected]] = {
            InsufficientFunds.kind: InsufficientFunds,
            NonceConflict.kind: NonceConflict,
        }
        return by_kind.get(rec.error_kind, TxRejected)(msg)
    return None


class NonceEffect(StrEnum):
    FREE = "free"  # the node never held our transaction: reuse the nonce
    TAKEN = "taken"  # another transaction holds the nonce: never reuse it; resync


@dataclass(frozen=True, slots=True)
class Retry:
    delay: float


@dataclass(frozen=True, slots=True)
class Reject:
    error: TxRejected
    nonce: NonceEffect


_TAKEN_MARKERS = ("nonce too low", "replacement transaction underpriced", "already known", "known transaction")
_FUNDS_MARKERS = ("insufficient funds",)


def classify_send_error(
    exc: RpcError, attempt: int, *, base_delay: float = 0.05, max_delay: float = 1.0
) -> Retry | Reject:
    """Decide what a failed ``eth_sendRawTransaction`` means. ``attempt`` counts from 1.

    "already known" reaches here only when the rpc layer did not recognise it as our own hash
    (it returns success for an identical resend), so here it means a *different* transaction
    at this nonce. A transient node error ("internal error", "try again") is about the node, not
    the transaction: the same bytes are sent again (to the next endpoint, when there are several).
    """
    if isinstance(exc, NodeError) and not codec.is_transient(exc):
        msg = exc.message.lower()
        if any(m in msg for m in _TAKEN_MARKERS):
            return Reject(NonceConflict(exc.message), NonceEffect.TAKEN)
        if any(m in msg for m in _FUNDS_MARKERS):
            return Reject(InsufficientFunds(exc.message), NonceEffect.FREE)
        return Reject(TxRejected(exc.message), NonceEffect.FREE)
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        return Retry(min(max(exc.retry_after, 0.0), max_delay))
    return Retry(min(base_delay * 2 ** (attempt - 1), max_delay))
