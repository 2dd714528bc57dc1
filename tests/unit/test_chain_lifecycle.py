"""The transaction lifecycle machine (pure): targeted cases, then a hypothesis state machine.

The state machine drives several intents of one account over three endpoints through arbitrary
interleavings of send answers, lookups, timers, receipts, evictions and replacements, against
a model of what each endpoint really holds and what the chain mined. It checks the rules in
bot/chain/lifecycle.py: a nonce is never handed out while bytes signed with it could land; a
release needs an "unknown" from every endpoint that may have seen the bytes; lookups after an
ambiguity ask every such endpoint; every intent ends in exactly one terminal state (a real
``Ledger`` applies the transitions, so an illegal one fails loudly); the ledger never calls
rejected or dropped a transaction the chain mined.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bot.chain.ledger import Ledger, NonceEffect, TxRecord, TxState
from bot.chain.lifecycle import (
    Abandoned,
    Acknowledged,
    Action,
    ConfirmNonce,
    Elapsed,
    Event,
    FillHoles,
    Finish,
    LifecyclePolicy,
    LookedUp,
    Lookup,
    LookupStatus,
    Mined,
    Record,
    Refused,
    ReleaseNonce,
    Replaced,
    Send,
    SendFailed,
    TxLifecycle,
    Wait,
    WatchLate,
    send_outcome,
)
from bot.chain.nonces import NonceAllocator
from bot.chain.receipts import Receipt
from bot.rpc.errors import NodeError, RateLimited, RpcTimeout

POLICY = LifecyclePolicy(send_attempts=3, confirm_timeout=1.0, pending_grace=0.5, max_pending_wait=4.0)
H = "0x" + "aa" * 32
H2 = "0x" + "bb" * 32


def _receipt(h: str, status: int = 1) -> Receipt:
    return Receipt(tx_hash=h, block_number=7, status=status, gas_used=21_000, effective_gas_price=1)


def _machine(endpoints: tuple[str, ...] = ("a", "b"), nonce: int = 5) -> TxLifecycle:
    return TxLifecycle(tx_hash=H, raw=b"\x02raw", nonce=nonce, endpoints=endpoints, policy=POLICY)


def _kinds(actions: tuple[Action, ...]) -> list[str]:
    return [type(a).__name__ for a in actions]


# -- targeted cases --------------------------------------------------------------------------


def test_acknowledged_then_mined_confirms_the_nonce_and_finishes_once() -> None:
    m = _machine()
    (send,) = m.start(0.0)
    assert isinstance(send, Send) and send.endpoints == ("a",) and send.attempt == 1
    acts = m.handle(Acknowledged("a", H), 0.0)
    assert acts == (Record(TxState.SUBMITTED), Wait(POLICY.confirm_timeout))
    acts = m.handle(Mined(_receipt(H)), 0.5)
    assert acts[0] == ConfirmNonce(5)
    assert isinstance(acts[1], Finish) and acts[1].state is TxState.MINED_OK and acts[1].receipt == _receipt(H)
    assert m.done and m.handle(Mined(_receipt(H)), 0.6) == () and m.handle(Elapsed(), 9.0) == ()


def test_a_refusal_after_a_timeout_asks_the_endpoint_that_got_the_first_copy() -> None:
    # Defect: the question went to the best-ranked endpoint, which never saw the bytes.
    m = _machine(("a", "b"))
    m.start(0.0)
    assert m.handle(SendFailed("a", H, "timeout", "read timeout", retry_in=0.05), 0.0) == (Wait(0.05),)
    (send,) = m.handle(Elapsed(), 0.05)
    assert isinstance(send, Send) and send.endpoints == ("b",)
    refusal = Refused("b", H, "insufficient_funds", NonceEffect.FREE, "insufficient funds")
    assert m.handle(refusal, 0.06) == (Lookup(H, ("a",), receipt=False),)
    # The first copy arrived at "a" after all: the intent is submitted, the nonce stays held.
    record, wait = m.handle(LookedUp("a", H, LookupStatus.PENDING), 0.07)
    assert record == Record(TxState.SUBMITTED)
    assert isinstance(wait, Wait) and wait.seconds == pytest.approx(POLICY.confirm_timeout)


def test_a_refusal_is_final_once_every_exposed_endpoint_says_unknown() -> None:
    m = _machine(("a", "b"))
    m.start(0.0)
    m.handle(SendFailed("a", H, "timeout", "t", retry_in=0.0), 0.0)
    m.handle(Elapsed(), 0.0)
    m.handle(Refused("b", H, "insufficient_funds", NonceEffect.FREE, "poor"), 0.1)
    acts = m.handle(LookedUp("a", H, LookupStatus.UNKNOWN), 0.2)
    assert acts[:2] == (ReleaseNonce(5), FillHoles())
    assert isinstance(acts[2], Finish) and acts[2].state is TxState.REJECTED


def test_an_unreachable_exposed_endpoint_never_frees_the_nonce() -> None:
    m = _machine(("a", "b"))
    m.start(0.0)
    for t in range(3):  # a, b, a: every attempt times out
        acts = m.handle(SendFailed(m.endpoints[t % 2], H, "timeout", "t", retry_in=0.0), float(t))
        if t < 2:
            m.handle(Elapsed(), float(t))
    assert isinstance(acts[0], Record) and acts[0].state is TxState.UNACKED
    now, rounds = 2.0, 0
    while not m.done and rounds < 50:
        wait = acts[-1]
        assert isinstance(wait, Wait)
        now += wait.seconds
        (lookup,) = m.handle(Elapsed(), now)
        assert isinstance(lookup, Lookup)
        # Both may hold it, so both are asked, until b has said "unknown"; a never answers.
        assert lookup.endpoints == (("a", "b") if rounds == 0 else ("a",))
        rounds += 1
        for e in lookup.endpoints:
            status = LookupStatus.UNREACHABLE if e == "a" else LookupStatus.UNKNOWN
            acts = m.handle(LookedUp(e, H, status), now)
        assert not any(isinstance(a, ReleaseNonce) for a in acts)
    assert acts[0] == WatchLate(5, (H,))
    finish = m.final
    assert finish is not None and finish.state is TxState.FAILED and "outcome unknown" in (finish.reason or "")


def test_rate_limits_alone_prove_nothing_was_delivered() -> None:
    m = _machine(("a",))
    m.start(0.0)
    for t in range(3):
        ev = send_outcome("a", H, RateLimited("429", retry_after=0.2), t + 1)
        assert isinstance(ev, SendFailed) and not ev.maybe_delivered
        acts = m.handle(ev, float(t))
        if t < 2:
            m.handle(Elapsed(), float(t) + 0.2)
    assert acts[:2] == (ReleaseNonce(5), FillHoles())
    assert isinstance(acts[2], Finish) and acts[2].state is TxState.FAILED


def test_nonce_too_low_on_the_first_try_is_a_conflict_and_a_resync() -> None:
    m = _machine(("a",))
    m.start(0.0)
    ev = send_outcome("a", H, NodeError(-32003, "nonce too low"), 1)
    acts = m.handle(ev, 0.0)
    assert acts[0] == ConfirmNonce(5, resync=True)
    assert isinstance(acts[1], Finish) and (acts[1].state, acts[1].error_kind) == (TxState.REJECTED, "nonce_conflict")


def test_a_mined_lookup_without_a_readable_receipt_takes_the_nonce_at_the_deadline() -> None:
    m = _machine(("a",))
    m.start(0.0)
    m.handle(Acknowledged("a", H), 0.0)
    now, acts = 0.0, ()
    for _ in range(20):
        now += 1.0
        m.handle(Elapsed(), now)
        acts = m.handle(LookedUp("a", H, LookupStatus.MINED, receipt=None), now)
        if m.done:
            break
    assert acts[0] == ConfirmNonce(5)
    assert isinstance(acts[1], Finish) and acts[1].state is TxState.FAILED and "mined" in (acts[1].reason or "")


def test_a_replacement_is_tracked_with_the_original_and_either_may_finish_it() -> None:
    m = _machine(("a",))
    m.start(0.0)
    m.handle(Acknowledged("a", H), 0.0)
    (send,) = m.handle(Replaced(H2, b"\x02faster"), 0.2)
    assert isinstance(send, Send) and send.tx_hash == H2
    assert "raw=<" in repr(send) and "faster" not in repr(send)
    m.handle(Acknowledged("a", H2), 0.3)
    acts = m.handle(Elapsed(), 1.0)
    assert {a.tx_hash for a in acts if isinstance(a, Lookup)} == {H, H2}
    m.handle(LookedUp("a", H, LookupStatus.UNKNOWN), 1.0)
    acts = m.handle(LookedUp("a", H2, LookupStatus.MINED, _receipt(H2, status=0)), 1.0)
    assert acts[0] == ConfirmNonce(5)
    assert isinstance(acts[1], Finish) and (acts[1].state, acts[1].tx_hash) == (TxState.REVERTED, H2)


def test_abandoning_keeps_the_nonce_and_watches_for_a_late_inclusion() -> None:
    m = _machine(("a",))
    m.start(0.0)
    acts = m.handle(Abandoned("tracking cancelled"), 0.0)
    assert acts[0] == WatchLate(5, (H,))
    assert isinstance(acts[1], Finish) and (acts[1].state, acts[1].reason) == (TxState.FAILED, "tracking cancelled")


def test_stale_answers_are_ignored_and_repr_is_informative() -> None:
    m = _machine(("a", "b"))
    m.start(0.0)
    assert m.handle(Acknowledged("b", H), 0.0) == ()  # nothing was sent to b
    assert m.handle(LookedUp("a", H, LookupStatus.UNKNOWN), 0.0) == ()  # nobody asked
    assert "nonce=5" in repr(m) and "exposed_on=['a']" in repr(m)
    with pytest.raises(ValueError, match="send_attempts"):
        LifecyclePolicy(send_attempts=0)


# -- the hypothesis state machine ------------------------------------------------------------

ENDPOINTS = ("a", "b", "c")
SEND_OUTCOMES = ("ack", "refuse_free", "refuse_taken", "timeout_landed", "timeout_lost", "rate_limited", "internal")


@dataclass(eq=False)
class Intent:
    machine: TxLifecycle
    record: TxRecord
    nonce: int
    sends: list[tuple[str, str]] = field(default_factory=list)  # (hash, endpoint) awaiting an answer
    lookups: list[tuple[str, str, bool]] = field(default_factory=list)
    waiting: bool = False
    finishes: int = 0
    released: bool = False
    late: set[str] = field(default_factory=set)
    # The test's own account of exposure: (hash, endpoint) may hold the bytes, per the rules.
    may_hold: set[tuple[str, str]] = field(default_factory=set)
    in_flight: set[tuple[str, str]] = field(default_factory=set)


class LifecycleMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.alloc = NonceAllocator(0)
        self.ledger = Ledger(keep_recent=0)
        self.intents: list[Intent] = []
        self.held: dict[str, set[str]] = {e: set() for e in ENDPOINTS}  # what each mempool really holds
        self.mined: dict[int, str] = {}  # nonce -> our hash the chain mined
        self.external: set[int] = set()  # nonces somebody else used
        self.nonce_of: dict[str, int] = {}
        self.owner: dict[str, Intent] = {}
        self.receipts_due: list[str] = []
        self.hashes = 0

    # -- helpers ----------------------------------------------------------------------------

    def _new_hash(self) -> str:
        self.hashes += 1
        return "0x" + f"{self.hashes:064x}"

    def _consumed(self, nonce: int) -> bool:
        return nonce in self.mined or nonce in self.external

    def _truly_could_land(self, it: Intent) -> bool:
        ours = [h for h, n in self.nonce_of.items() if self.owner[h] is it]
        return any(h in pool for h in ours for pool in self.held.values()) or bool(it.sends)

    def _live(self) -> list[Intent]:
        return [it for it in self.intents if not it.machine.done]

    def _deliver(self, it: Intent, event: Event) -> None:
        was_done = it.machine.done
        acts = it.machine.handle(event, self.now)
        if was_done:
            assert acts == (), f"actions after the finish: {acts}"
        self._apply(it, acts)

    def _apply(self, it: Intent, acts: tuple[Action, ...]) -> None:
        looked = {(a.tx_hash, e) for a in acts if isinstance(a, Lookup) for e in a.endpoints}
        if looked:
            # Rule 2: every endpoint that may have seen the bytes is asked.
            assert it.may_hold | it.in_flight <= looked, (it.may_hold, looked)
        for a in acts:
            assert it.finishes == 0, f"{a!r} after the finish"
            if isinstance(a, Send):
                it.waiting = False  # one activity at a time: a send supersedes any wait
                for e in a.endpoints:
                    it.sends.append((a.tx_hash, e))
                    it.in_flight.add((a.tx_hash, e))
            elif isinstance(a, Lookup):
                it.waiting = False
                it.lookups.extend((a.tx_hash, e, a.receipt) for e in a.endpoints)
            elif isinstance(a, Wait):
                assert a.seconds >= 0
                it.waiting = True
            elif isinstance(a, Record):
                self.ledger.transition(it.record, a.state, 0)
            elif isinstance(a, Finish):
                self.ledger.transition(it.record, a.state, 0, error_kind=a.error_kind, reason=a.reason)
                it.finishes += 1
                it.waiting = False
            elif isinstance(a, ReleaseNonce):
                assert a.nonce == it.nonce
                # Rule 1, in the test's own terms and against the truth.
                assert not it.may_hold and not it.in_flight, f"release while {it.may_hold | it.in_flight} may hold it"
                assert not self._truly_could_land(it)
                assert it.nonce not in self.mined or self.owner[self.mined[it.nonce]] is not it
                it.released = True
                self.alloc.release(a.nonce)
            elif isinstance(a, ConfirmNonce):
                self.alloc.confirm(a.nonce)
                if a.resync:
                    floor = 0
                    while self._consumed(floor):
                        floor += 1
                    self.alloc.resync(floor)
            elif isinstance(a, FillHoles):
                pass  # the next submit reuses the lowest released nonce
            elif isinstance(a, WatchLate):
                it.late |= set(a.tx_hashes)
                if any(self.mined.get(it.nonce) == h for h in a.tx_hashes):
                    self.alloc.confirm(it.nonce)

    # -- rules ------------------------------------------------------------------------------

    @precondition(lambda self: len(self._live()) < 5)
    @rule(order=st.permutations(ENDPOINTS), count=st.integers(1, 3))
    def submit(self, order: list[str], count: int) -> None:
        n = self.alloc.allocate()
        # Never a nonce another live intent has, whose bytes could still land, or that we mined.
        # (One somebody else took may come back: its new intent is refused and resyncs.)
        for other in self.intents:
            if other.nonce == n:
                assert other.machine.done and not self._truly_could_land(other), "nonce reused while it could land"
        assert n not in self.mined
        self.alloc.mark_sent(n)
        h = self._new_hash()
        rec = self.ledger.open("me", "t", 0)
        rec.nonce, rec.hash = n, h
        self.ledger.transition(rec, TxState.SIGNED, 0)
        it = Intent(TxLifecycle(tx_hash=h, raw=h.encode(), nonce=n, endpoints=order[:count], policy=POLICY), rec, n)
        self.intents.append(it)
        self.nonce_of[h] = n
        self.owner[h] = it
        self._apply(it, it.machine.start(self.now))

    @precondition(lambda self: any(it.sends for it in self.intents))
    @rule(data=st.data())
    def answer_send(self, data: st.DataObject) -> None:
        it = data.draw(st.sampled_from([it for it in self.intents if it.sends]))
        h, e = it.sends.pop(data.draw(st.integers(0, len(it.sends) - 1)))
        it.in_flight.discard((h, e))
        n = self.nonce_of[h]
        if h in self.held[e]:
            allowed = ["ack", "timeout_lost", "rate_limited"]  # a resend of what it has: "already known"
        elif self._consumed(n):
            allowed = ["refuse_taken", "timeout_lost", "rate_limited"]
        else:
            allowed = list(SEND_OUTCOMES)
        outcome = data.draw(st.sampled_from(allowed))
        event: Event
        if outcome == "ack":
            self.held[e].add(h)
            it.may_hold.add((h, e))
            event = Acknowledged(e, h)
        elif outcome == "refuse_free":
            event = Refused(e, h, "insufficient_funds", NonceEffect.FREE, "insufficient funds")
        elif outcome == "refuse_taken":
            if not self._consumed(n):
                self.external.add(n)  # somebody else's transaction took the nonce
                for pool in self.held.values():
                    pool -= {x for x in pool if self.nonce_of[x] == n}
            event = Refused(e, h, "nonce_conflict", NonceEffect.TAKEN, "nonce too low")
        elif outcome == "rate_limited":
            event = SendFailed(e, h, "rate_limited", "429", maybe_delivered=False, retry_in=0.1)
        else:
            if outcome == "timeout_landed":
                self.held[e].add(h)
            it.may_hold.add((h, e))
            retry = None if outcome == "internal" else 0.1
            event = SendFailed(e, h, "timeout", "read timeout", maybe_delivered=True, retry_in=retry)
        self._deliver(it, event)

    @precondition(lambda self: any(it.lookups for it in self.intents))
    @rule(data=st.data())
    def answer_lookup(self, data: st.DataObject) -> None:
        it = data.draw(st.sampled_from([it for it in self.intents if it.lookups]))
        h, e, want = it.lookups.pop(data.draw(st.integers(0, len(it.lookups) - 1)))
        self._deliver(it, self._truthful_lookup(it, h, e, want, data.draw(st.booleans())))

    def _truthful_lookup(self, it: Intent, h: str, e: str, want: bool, flaky: bool) -> LookedUp:
        n = self.nonce_of[h]
        if flaky:
            return LookedUp(e, h, LookupStatus.UNREACHABLE)
        if self.mined.get(n) == h:
            it.may_hold.add((h, e))
            return LookedUp(e, h, LookupStatus.MINED, _receipt(h) if want else None)
        if h in self.held[e]:
            it.may_hold.add((h, e))
            return LookedUp(e, h, LookupStatus.PENDING)
        it.may_hold.discard((h, e))
        return LookedUp(e, h, LookupStatus.UNKNOWN)

    @precondition(lambda self: any(it.waiting for it in self.intents))
    @rule(data=st.data(), step=st.sampled_from([0.0, 0.05, 0.5, 1.0, 3.0]))
    def time_passes(self, data: st.DataObject, step: float) -> None:
        it = data.draw(st.sampled_from([it for it in self.intents if it.waiting]))
        self.now += step
        it.waiting = False
        self._deliver(it, Elapsed())

    @precondition(lambda self: any(pool for pool in self.held.values()))
    @rule(data=st.data())
    def mine(self, data: st.DataObject) -> None:
        h = data.draw(st.sampled_from(sorted({x for pool in self.held.values() for x in pool})))
        n = self.nonce_of[h]
        assert not self._consumed(n)
        self.mined[n] = h
        for pool in self.held.values():
            pool -= {x for x in pool if self.nonce_of[x] == n}
        owner = self.owner[h]
        assert not owner.released, "the chain mined bytes whose nonce was released"
        if h in owner.late:
            self.alloc.confirm(n)
        self.receipts_due.append(h)

    @precondition(lambda self: bool(self.receipts_due))
    @rule(data=st.data())
    def receipt_arrives(self, data: st.DataObject) -> None:
        h = self.receipts_due.pop(data.draw(st.integers(0, len(self.receipts_due) - 1)))
        self._deliver(self.owner[h], Mined(_receipt(h)))

    @precondition(lambda self: any(pool for pool in self.held.values()))
    @rule(data=st.data())
    def evict(self, data: st.DataObject) -> None:
        e = data.draw(st.sampled_from([e for e in ENDPOINTS if self.held[e]]))
        self.held[e].discard(data.draw(st.sampled_from(sorted(self.held[e]))))

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data())
    def replace(self, data: st.DataObject) -> None:
        it = data.draw(st.sampled_from(self._live()))
        h = self._new_hash()
        self.nonce_of[h] = it.nonce
        self.owner[h] = it
        self._deliver(it, Replaced(h, h.encode()))

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data())
    def abandon(self, data: st.DataObject) -> None:
        self._deliver(data.draw(st.sampled_from(self._live())), Abandoned("sender closed"))

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def one_owner_per_nonce_and_at_most_one_end(self) -> None:
        live = [it.nonce for it in self._live()]
        assert len(live) == len(set(live)), "two live intents share a nonce"
        for it in self.intents:
            assert it.finishes == (1 if it.machine.done else 0)
            if not it.machine.done:
                assert self.alloc.state_of(it.nonce) == "sent"
                # Rule 3: something is outstanding, so the intent cannot be stranded.
                assert it.sends or it.lookups or it.waiting, f"stranded: {it.machine!r}"

    @invariant()
    def mined_is_never_recorded_as_refused_or_dropped(self) -> None:
        for h in self.mined.values():
            state = self.owner[h].record.state
            assert state not in (TxState.REJECTED, TxState.DROPPED), f"{h} mined but recorded {state}"
            assert not self.owner[h].released

    def teardown(self) -> None:
        # Events stop arriving except the answers the machines wait for (truthful, reachable) and
        # time passing: every intent must reach exactly one terminal state.
        for _ in range(500):
            live = self._live()
            if not live:
                break
            it = live[0]
            if it.sends:
                h, e = it.sends.pop(0)
                it.in_flight.discard((h, e))
                n = self.nonce_of[h]
                if h in self.held[e] or not self._consumed(n):
                    self.held[e].add(h)
                    it.may_hold.add((h, e))
                    self._deliver(it, Acknowledged(e, h))
                else:
                    self._deliver(it, Refused(e, h, "nonce_conflict", NonceEffect.TAKEN, "nonce too low"))
            elif it.lookups:
                h, e, want = it.lookups.pop(0)
                self._deliver(it, self._truthful_lookup(it, h, e, want, flaky=False))
            else:
                assert it.waiting, f"stranded: {it.machine!r}"
                self.now += POLICY.max_pending_wait
                it.waiting = False
                self._deliver(it, Elapsed())
        assert not self._live(), [it.machine for it in self._live()]
        assert all(it.finishes == 1 and it.record.terminal for it in self.intents)
        assert self.ledger.statistics().in_flight == 0


TestLifecycleMachine = LifecycleMachine.TestCase
TestLifecycleMachine.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_send_outcome_classifies_with_the_ledger() -> None:
    assert isinstance(send_outcome("a", H, RpcTimeout("slow"), 1), SendFailed)
    refused = send_outcome("a", H, NodeError(-32003, "Insufficient funds for gas * price + value"), 2)
    assert isinstance(refused, Refused)
    assert (refused.error_kind, refused.nonce) == ("insufficient_funds", NonceEffect.FREE)
    transient = send_outcome("a", H, NodeError(-32603, "internal error"), 1)
    assert isinstance(transient, SendFailed) and transient.maybe_delivered
