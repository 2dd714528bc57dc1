"""One intent's transaction, from its signature to exactly one terminal state: a pure state machine.

Sans-I/O in the h11 / httpcore style (as ``bot.rpc.backoff`` and ``bot.engine.scheduler``): the
machine never sends, sleeps or reads a clock. ``TxSender`` feeds it events (what an endpoint
answered, that a wait ran out, that the receipt tracker saw the receipt) together with ``now``
(monotonic seconds) and performs the actions it returns, in order. Every interleaving can
therefore be replayed without a network (tests/unit/test_chain_lifecycle.py drives it with a
hypothesis state machine).

**Exposure.** For every signed candidate (the intent's bytes, plus any same-nonce replacement) and
every endpoint, the machine keeps whether that endpoint *may hold* the bytes: a send is in
flight there, a send there timed out or lost its connection (the bytes may have arrived with only
the answer lost), it acknowledged them, or a lookup found them pending or mined. Only a lookup
answered "unknown" clears an exposure: a refusal says nothing about an earlier copy still in
transit. The bytes *could still land* while any pair is exposed.

**Rules** (the invariants the hypothesis test checks):

1. A nonce whose bytes could still land is never released. Release needs an "unknown" from every
   endpoint that may have seen any candidate after its last ambiguous outcome.
2. After an ambiguous outcome the machine asks *every* exposed endpoint (``Lookup``), never just
   the best-ranked one; an endpoint that cannot be asked keeps the nonce held.
3. Every machine emits exactly one ``Finish``; afterwards every event is ignored (no actions).
   While it is not finished exactly one thing is outstanding (a send, a lookup round or a
   wait), so an intent cannot be stranded: when events stop, the shell is waiting on it.
4. The nonce is released only together with a ``Finish`` that says the node does not hold it
   (rejected, dropped, failed-and-not-held); it is confirmed (taken) on a receipt, on a refusal
   that says another transaction holds it, or when a lookup saw it mined; otherwise (max pending
   wait, abandonment) it stays held, with ``WatchLate`` so a late inclusion takes it.
5. A same-nonce replacement (``Replaced``) is a second candidate of the *same* intent: it is sent
   and tracked with the original, so no nonce ever belongs to two live intents, and the intent's
   one terminal state covers both (the mined candidate's hash is in ``Finish``).

Ledger states the machine drives (``Record`` / ``Finish``): ``signed`` (sending) -> ``submitted``
(acknowledged, or found after an ambiguity) | ``unacked`` (may be held, never acknowledged) ->
``mined_ok`` | ``reverted`` | ``dropped`` | ``failed``; ``signed`` -> ``rejected`` | ``failed``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from bot.chain.errors import TxDropped, TxFailed, TxReverted
from bot.chain.ledger import NonceEffect, Reject, TxState, classify_send_error
from bot.chain.receipts import Receipt
from bot.rpc.errors import RateLimited, RpcError


class LookupStatus(StrEnum):
    UNKNOWN = "unknown"  # the endpoint does not hold the bytes (clears its exposure)
    PENDING = "pending"
    MINED = "mined"
    UNREACHABLE = "unreachable"  # no evidence either way


# -- events in -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """The endpoint accepted the bytes (or already had them)."""

    endpoint: str
    tx_hash: str


@dataclass(frozen=True, slots=True)
class Refused:
    """A definite refusal, classified by ``ledger.classify_send_error``."""

    endpoint: str
    tx_hash: str
    error_kind: str
    nonce: NonceEffect
    reason: str


@dataclass(frozen=True, slots=True)
class SendFailed:
    """No usable answer. ``maybe_delivered``: the bytes may have reached the endpoint (timeout,
    reset, garbage); only a rate limit proves they were not processed. ``retry_in``: seconds to
    wait before the next attempt, None when another attempt would not help (a client bug)."""

    endpoint: str
    tx_hash: str
    error_kind: str
    reason: str
    maybe_delivered: bool = True
    retry_in: float | None = 0.0


@dataclass(frozen=True, slots=True)
class LookedUp:
    """The answer of one endpoint about one hash; ``receipt`` when mined and asked for."""

    endpoint: str
    tx_hash: str
    status: LookupStatus
    receipt: Receipt | None = None


@dataclass(frozen=True, slots=True)
class Mined:
    """The receipt tracker saw the receipt of one of the candidates."""

    receipt: Receipt


@dataclass(frozen=True, slots=True, repr=False)
class Replaced:
    """A same-nonce replacement of this intent was signed: send and track it with the original."""

    tx_hash: str
    raw: bytes

    def __repr__(self) -> str:
        return f"Replaced(tx_hash={self.tx_hash!r}, raw=<{len(self.raw)} bytes>)"


@dataclass(frozen=True, slots=True)
class Elapsed:
    """The last ``Wait`` ran out (early ones are answered with the remaining wait)."""


@dataclass(frozen=True, slots=True)
class Abandoned:
    """The shell stops (closing, or a bug): finish ``failed`` without freeing the nonce."""

    reason: str
    error_kind: str = TxFailed.kind


Event = Acknowledged | Refused | SendFailed | LookedUp | Mined | Replaced | Elapsed | Abandoned


# -- actions out -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class Send:
    tx_hash: str
    raw: bytes
    endpoints: tuple[str, ...]
    attempt: int

    def __repr__(self) -> str:
        return (
            f"Send({self.tx_hash[:10]}…, to={list(self.endpoints)}, attempt={self.attempt}, raw=<{len(self.raw)} B>)"
        )


@dataclass(frozen=True, slots=True)
class Lookup:
    """Ask each endpoint for the hash; fetch the receipt too when ``receipt`` and it is mined."""

    tx_hash: str
    endpoints: tuple[str, ...]
    receipt: bool


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait ``seconds`` for a receipt (feed ``Mined``), else feed ``Elapsed``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Record:
    """A non-terminal ledger transition; ``submitted`` is the acknowledgement (``tx_submission`` ends)."""

    state: TxState
    error_kind: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    state: TxState
    error_kind: str | None = None
    reason: str | None = None
    tx_hash: str | None = None  # the candidate the outcome is about (a replacement may be the one mined)
    receipt: Receipt | None = None


@dataclass(frozen=True, slots=True)
class ReleaseNonce:
    nonce: int


@dataclass(frozen=True, slots=True)
class ConfirmNonce:
    """The chain took the nonce; ``resync``: someone else took it, re-read the account's count."""

    nonce: int
    resync: bool = False


@dataclass(frozen=True, slots=True)
class FillHoles:
    """A released nonce may sit below sent ones: fill it if no new intent reuses it soon."""


@dataclass(frozen=True, slots=True)
class WatchLate:
    """Finished without knowing: keep watching these hashes so a late inclusion takes the nonce."""

    nonce: int
    tx_hashes: tuple[str, ...]


Action = Send | Lookup | Wait | Record | Finish | ReleaseNonce | ConfirmNonce | FillHoles | WatchLate


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    send_attempts: int = 4
    confirm_timeout: float = 30.0
    pending_grace: float = 10.0
    max_pending_wait: float = 120.0

    def __post_init__(self) -> None:
        if self.send_attempts < 1:
            raise ValueError(f"lifecycle.send_attempts must be >= 1, got {self.send_attempts}")
        for name in ("confirm_timeout", "pending_grace", "max_pending_wait"):
            if getattr(self, name) <= 0:
                raise ValueError(f"lifecycle.{name} must be > 0, got {getattr(self, name)}")


def send_outcome(endpoint: str, tx_hash: str, exc: RpcError, attempt: int) -> Refused | SendFailed:
    """The event for a failed ``eth_sendRawTransaction`` (pure; ``attempt`` counts from 1)."""
    decision = classify_send_error(exc, attempt)
    if isinstance(decision, Reject):
        return Refused(endpoint, tx_hash, decision.error.kind, decision.nonce, str(exc))
    return SendFailed(
        endpoint,
        tx_hash,
        exc.kind,
        str(exc),
        maybe_delivered=not isinstance(exc, RateLimited),
        retry_in=decision.delay,
    )


class Activity(StrEnum):
    SENDING = "sending"
    BACKOFF = "backoff"
    CHECKING = "checking"  # a lookup round is out
    WAITING = "waiting"  # tracking: until the next lookup, or a receipt
    DONE = "done"


class _Exposure:
    __slots__ = ("exposed", "in_flight")

    def __init__(self) -> None:
        self.in_flight = 0
        self.exposed = False

    @property
    def could_land(self) -> bool:
        return self.in_flight > 0 or self.exposed


class TxLifecycle:
    """The lifecycle of one intent's signed transaction at ``nonce`` (see the module docstring)."""

    def __init__(
        self, *, tx_hash: str, raw: bytes, nonce: int, endpoints: Sequence[str], policy: LifecyclePolicy
    ) -> None:
        if not endpoints:
            raise ValueError("TxLifecycle endpoints: give at least one endpoint name")
        self.nonce = nonce
        self.endpoints = tuple(endpoints)
        self.policy = policy
        self._raw: dict[str, bytes] = {tx_hash: raw}
        self._unsent: deque[str] = deque()
        self._exp: dict[tuple[str, str], _Exposure] = {}
        self._state = TxState.SIGNED
        self._activity = Activity.SENDING
        self._sending: tuple[str, int] | None = None  # (candidate, attempt)
        self._send_out: set[tuple[str, str]] = set()
        self._timer: float | None = None
        self._round: set[tuple[str, str]] = set()
        self._round_check = False  # the round follows a refusal (not tracking)
        self._round_found = False
        self._round_receipt: Receipt | None = None
        self._mined_seen = False
        self._refusal: Refused | None = None
        self._failure: SendFailed | None = None
        self._tracking_since: float | None = None
        self._check_at = 0.0
        self._final: Finish | None = None
        self._started = False

    # -- inspection -------------------------------------------------------------------------

    @property
    def state(self) -> TxState:
        return self._final.state if self._final is not None else self._state

    @property
    def activity(self) -> Activity:
        return self._activity

    @property
    def done(self) -> bool:
        return self._final is not None

    @property
    def final(self) -> Finish | None:
        return self._final

    @property
    def tx_hashes(self) -> tuple[str, ...]:
        return tuple(self._raw)

    def exposed(self) -> frozenset[tuple[str, str]]:
        """(hash, endpoint) pairs whose bytes could still land."""
        return frozenset(k for k, x in self._exp.items() if x.could_land)

    def could_land(self) -> bool:
        return any(x.could_land for x in self._exp.values())

    def __repr__(self) -> str:
        where = sorted({e for _, e in self.exposed()})
        return (
            f"TxLifecycle({next(iter(self._raw))[:10]}…, nonce={self.nonce}, state={self.state.value}, "
            f"activity={self._activity.value}, candidates={len(self._raw)}, exposed_on={where})"
        )

    # -- driving ----------------------------------------------------------------------------

    def start(self, now: float) -> tuple[Action, ...]:
        if self._started:
            raise RuntimeError("TxLifecycle.start called twice")
        self._started = True
        return (self._send(next(iter(self._raw)), 1),)

    def handle(self, event: Event, now: float) -> tuple[Action, ...]:
        """Apply one event; returns the actions to perform now, in order (none once finished)."""
        if self._final is not None or not self._started:
            return ()
        if isinstance(event, Acknowledged | Refused | SendFailed):
            key = (event.tx_hash, event.endpoint)
            if key not in self._send_out:
                return ()  # an answer to nothing outstanding: stale, or not ours
            self._send_out.discard(key)
            self._x(key).in_flight -= 1
            if isinstance(event, Acknowledged):
                return tuple(self._on_ack(event, now))
            if isinstance(event, Refused):
                return tuple(self._on_refused(event, now))
            return tuple(self._on_failed(event, now))
        if isinstance(event, LookedUp):
            return tuple(self._on_looked_up(event, now))
        if isinstance(event, Mined):
            if event.receipt.tx_hash not in self._raw:
                return ()
            return tuple(self._mined(event.receipt, now))
        if isinstance(event, Elapsed):
            return tuple(self._on_elapsed(now))
        if isinstance(event, Replaced):
            return tuple(self._on_replaced(event, now))
        return tuple(self._abandon(event))

    # -- event handlers ---------------------------------------------------------------------

    def _on_ack(self, ev: Acknowledged, now: float) -> list[Action]:
        self._x((ev.tx_hash, ev.endpoint)).exposed = True
        acts: list[Action] = []
        if self._state is TxState.SIGNED:
            acts += self._acknowledge(now)
        if self._send_out:
            return acts  # one Send to several endpoints: the others still owe an answer
        self._sending = None
        return acts + self._proceed(now)

    def _on_failed(self, ev: SendFailed, now: float) -> list[Action]:
        if ev.maybe_delivered:
            self._x((ev.tx_hash, ev.endpoint)).exposed = True
        self._failure = ev
        if self._send_out:
            return []
        assert self._sending is not None
        h, attempt = self._sending
        if ev.retry_in is not None and attempt < self.policy.send_attempts:
            self._sending = (h, attempt + 1)
            self._activity = Activity.BACKOFF
            self._timer = now + ev.retry_in
            return [Wait(ev.retry_in)]
        self._sending = None
        if self._state is not TxState.SIGNED or self._unsent or not self.could_land():
            return self._proceed(now)
        reason = ev.reason if ev.retry_in is None else f"no acknowledgement after {attempt} attempts: {ev.reason}"
        return self._unacked(now, ev.error_kind, reason)

    def _on_refused(self, ev: Refused, now: float) -> list[Action]:
        if self._send_out:
            return []
        self._sending = None
        if self._state is not TxState.SIGNED:
            return self._proceed(now)  # a replacement refused: the candidates already sent decide
        self._refusal = ev
        if self._unsent or not self.could_land():
            return self._proceed(now)
        # An earlier attempt may have reached an endpoint with only its answer lost, or still be
        # in transit: the refusal may be about that copy (anvil says "nonce too low" once it is
        # mined). Ask every endpoint that may hold it before concluding anything.
        return self._lookup_round(check=True)

    def _on_looked_up(self, ev: LookedUp, now: float) -> list[Action]:
        key = (ev.tx_hash, ev.endpoint)
        if key not in self._round:
            return []
        self._round.discard(key)
        x = self._x(key)
        if ev.status is LookupStatus.UNKNOWN:
            x.exposed = False
        elif ev.status in (LookupStatus.PENDING, LookupStatus.MINED):
            x.exposed = True
            self._round_found = True
            if ev.status is LookupStatus.MINED:
                self._mined_seen = True
                if ev.receipt is not None and ev.receipt.tx_hash == ev.tx_hash:
                    self._round_receipt = ev.receipt
        if self._round:
            return []
        if self._round_receipt is not None:
            return self._mined(self._round_receipt, now)
        if self._round_check:
            if self._round_found:
                return self._acknowledge(now) + self._proceed(now)
            if self._unsent or not self.could_land():
                return self._proceed(now)
            assert self._refusal is not None
            return self._unacked(
                now,
                self._refusal.error_kind,
                f"refused on retry ({self._refusal.reason}) but an endpoint that may hold the first try "
                "could not be asked",
            )
        if self._unsent or not self.could_land():
            return self._proceed(now)
        assert self._tracking_since is not None
        if now - self._tracking_since >= self.policy.max_pending_wait:
            return self._give_up()
        self._check_at = now + self.policy.pending_grace
        return self._proceed(now)

    def _on_elapsed(self, now: float) -> list[Action]:
        if self._activity not in (Activity.BACKOFF, Activity.WAITING):
            return []
        assert self._timer is not None
        if now < self._timer:
            return [Wait(self._timer - now)]
        self._timer = None
        if self._activity is Activity.BACKOFF:
            assert self._sending is not None
            return [self._send(*self._sending)]
        if self._unsent or not self.could_land():
            return self._proceed(now)
        return self._lookup_round(check=False)

    def _on_replaced(self, ev: Replaced, now: float) -> list[Action]:
        if ev.tx_hash in self._raw:
            return []
        self._raw[ev.tx_hash] = ev.raw
        self._unsent.append(ev.tx_hash)
        if self._activity is Activity.WAITING:
            self._timer = None
            return self._proceed(now)
        return []  # sent once the current send or lookup round is over

    def _abandon(self, ev: Abandoned) -> list[Action]:
        acts: list[Action] = []
        if self.could_land():
            acts.append(WatchLate(self.nonce, self._landing_hashes()))
        return [*acts, self._finish(TxState.FAILED, ev.error_kind, ev.reason)]

    # -- transitions ------------------------------------------------------------------------

    def _proceed(self, now: float) -> list[Action]:
        """Nothing is outstanding: send a queued replacement, conclude, or wait to look again."""
        if self._unsent:
            return [self._send(self._unsent.popleft(), 1)]
        if not self.could_land():
            return self._conclude(now)
        if self._state is TxState.SIGNED:
            # Not reached by the handlers above; kept so that no path can leave the record idle.
            return self._unacked(now, TxFailed.kind, "not acknowledged")
        self._activity = Activity.WAITING
        self._timer = self._check_at
        return [Wait(max(0.0, self._check_at - now))]

    def _acknowledge(self, now: float) -> list[Action]:
        self._state = TxState.SUBMITTED
        self._track_from(now)
        return [Record(TxState.SUBMITTED)]

    def _unacked(self, now: float, error_kind: str, reason: str) -> list[Action]:
        self._state = TxState.UNACKED
        self._track_from(now)
        return [Record(TxState.UNACKED, error_kind, reason), *self._proceed(now)]

    def _track_from(self, now: float) -> None:
        if self._tracking_since is None:
            self._tracking_since = now
            self._check_at = now + self.policy.confirm_timeout

    def _send(self, tx_hash: str, attempt: int) -> Send:
        endpoint = self.endpoints[(attempt - 1) % len(self.endpoints)]
        self._x((tx_hash, endpoint)).in_flight += 1
        self._sending = (tx_hash, attempt)
        self._send_out = {(tx_hash, endpoint)}
        self._activity = Activity.SENDING
        return Send(tx_hash, self._raw[tx_hash], (endpoint,), attempt)

    def _lookup_round(self, *, check: bool) -> list[Action]:
        pairs = sorted(self.exposed())
        self._round = set(pairs)
        self._round_check = check
        self._round_found = False
        self._round_receipt = None
        self._activity = Activity.CHECKING
        by_hash: dict[str, list[str]] = {}
        for h, e in pairs:
            by_hash.setdefault(h, []).append(e)
        # On the send path a found copy only proves acceptance; the receipt comes from tracking.
        return [Lookup(h, tuple(eps), receipt=not check) for h, eps in by_hash.items()]

    def _mined(self, receipt: Receipt, now: float) -> list[Action]:
        acts: list[Action] = []
        if self._state is TxState.SIGNED:
            acts += self._acknowledge(now)  # mined implies accepted (the ledger needs submitted first)
        acts.append(ConfirmNonce(self.nonce))
        if receipt.status == 1:
            return [*acts, self._finish(TxState.MINED_OK, tx_hash=receipt.tx_hash, receipt=receipt)]
        return [
            *acts,
            self._finish(TxState.REVERTED, TxReverted.kind, "status 0", tx_hash=receipt.tx_hash, receipt=receipt),
        ]

    def _conclude(self, now: float) -> list[Action]:
        """No endpoint may hold any candidate: the intent ends and the nonce is settled."""
        refusal = self._refusal
        if self._state is TxState.SIGNED and refusal is not None:
            rejected = self._finish(TxState.REJECTED, refusal.error_kind, refusal.reason)
            if refusal.nonce is NonceEffect.TAKEN:
                return [ConfirmNonce(self.nonce, resync=True), rejected]
            return [ReleaseNonce(self.nonce), FillHoles(), rejected]
        free: list[Action] = [ReleaseNonce(self.nonce), FillHoles()]
        if self._state is TxState.SIGNED:
            f = self._failure
            kind = f.error_kind if f is not None else TxFailed.kind
            why = f.reason if f is not None else "nothing was sent"
            return [*free, self._finish(TxState.FAILED, kind, f"never reached an endpoint: {why}")]
        if self._state is TxState.UNACKED:
            why = "node never acknowledged it and does not hold it"
            return [*free, self._finish(TxState.FAILED, TxFailed.kind, why)]
        since = self._tracking_since if self._tracking_since is not None else now
        return [
            *free,
            self._finish(TxState.DROPPED, TxDropped.kind, f"not mined within {now - since:.1f}s and not in the pool"),
        ]

    def _give_up(self) -> list[Action]:
        wait = f"{self.policy.max_pending_wait:.0f}s"
        if self._mined_seen:
            return [
                ConfirmNonce(self.nonce),
                self._finish(TxState.FAILED, TxFailed.kind, f"mined, but no valid receipt after {wait}"),
            ]
        why = "still pending" if self._round_found else "outcome unknown (no endpoint that may hold it answered)"
        return [
            WatchLate(self.nonce, self._landing_hashes()),
            self._finish(TxState.FAILED, TxFailed.kind, f"{why} after {wait}"),
        ]

    def _finish(
        self,
        state: TxState,
        error_kind: str | None = None,
        reason: str | None = None,
        *,
        tx_hash: str | None = None,
        receipt: Receipt | None = None,
    ) -> Finish:
        self._final = Finish(state, error_kind, reason, tx_hash or next(iter(self._raw)), receipt)
        self._activity = Activity.DONE
        self._timer = None
        self._round.clear()
        return self._final

    def _landing_hashes(self) -> tuple[str, ...]:
        landing = {h for h, _ in self.exposed()}
        return tuple(h for h in self._raw if h in landing)

    def _x(self, key: tuple[str, str]) -> _Exposure:
        x = self._exp.get(key)
        if x is None:
            x = self._exp[key] = _Exposure()
        return x
