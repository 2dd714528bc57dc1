"""The nonce allocator's rules and invariants, against a model chain (no network)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bot.chain.nonces import NonceAllocator, NonceManager, NonceStateError
from bot.rpc.errors import RpcError


def test_allocates_sequentially_from_start() -> None:
    a = NonceAllocator(7)
    assert [a.allocate() for _ in range(3)] == [7, 8, 9]
    assert a.next_nonce == 10


def test_released_nonce_is_reused_first_lowest_first() -> None:
    a = NonceAllocator(0)
    for _ in range(5):
        a.mark_sent(a.allocate())
    a.release(3)
    a.release(1)
    assert a.holes() == [1, 3]
    assert a.allocate() == 1
    assert a.allocate() == 3
    assert a.allocate() == 5


def test_release_at_top_shrinks_instead_of_leaving_a_hole() -> None:
    a = NonceAllocator(0)
    n0, n1, n2 = a.allocate(), a.allocate(), a.allocate()
    a.release(n1)
    assert a.holes() == [1]
    a.release(n2)  # 2 then 1 are now at the top
    assert a.holes() == []
    assert a.next_nonce == 1
    a.mark_sent(n0)
    assert a.allocate() == 1


def test_confirm_advances_floor_even_out_of_order() -> None:
    a = NonceAllocator(0)
    for _ in range(3):
        a.mark_sent(a.allocate())
    assert a.confirm(1)
    assert a.floor == 0
    assert a.confirm(0)
    assert a.floor == 2
    assert not a.confirm(0)  # idempotent
    assert a.state_of(2) == "sent"


def test_confirm_of_released_removes_it_from_reuse() -> None:
    a = NonceAllocator(0)
    a.mark_sent(a.allocate())
    a.mark_sent(a.allocate())
    a.release(0)  # wrongly believed dropped, then mined after all
    a.confirm(0)
    assert a.holes() == []
    assert a.allocate() == 2


def test_forbidden_transitions_raise() -> None:
    a = NonceAllocator(0)
    n = a.allocate()
    a.mark_sent(n)
    with pytest.raises(NonceStateError, match="expected allocated"):
        a.mark_sent(n)
    a.confirm(n)
    assert a.release(n) is False  # consumed on chain: nothing to free
    assert a.holes() == []
    with pytest.raises(NonceStateError, match="unallocated"):
        a.release(n + 1)
    with pytest.raises(NonceStateError, match="never allocated"):
        a.confirm(5)


def test_resync_jumps_past_external_use_and_ignores_lagging_node() -> None:
    a = NonceAllocator(0)
    for _ in range(3):
        a.mark_sent(a.allocate())
    assert a.resync(1) == 0  # lagging: we know more than the node
    assert a.next_nonce == 3
    assert a.resync(10) == 7
    assert a.allocate() == 10
    assert a.statistics().resync_jumps == 1
    assert a.state_of(2) == "sent"


def test_resync_takes_released_nonces_the_chain_used() -> None:
    a = NonceAllocator(0)
    for _ in range(4):
        a.mark_sent(a.allocate())
    a.release(1)
    assert a.resync(2) == 1
    assert a.holes() == []
    assert a.allocate() == 4


def test_statistics_counts() -> None:
    a = NonceAllocator(0)
    a.mark_sent(a.allocate())
    a.allocate()
    s = a.statistics()
    assert (s.allocated, s.sent, s.allocations, s.next_nonce) == (1, 1, 2, 2)
    assert "next=2" in repr(a)


class NonceMachine(RuleBasedStateMachine):
    """Submitters, a node pool and a chain that mines strictly in nonce order."""

    @initialize(start=st.integers(0, 5))
    def setup(self, start: int) -> None:
        self.alloc = NonceAllocator(start)
        self.base = start
        self.chain = start  # the chain's nonce: every nonce below is mined
        self.held: set[int] = set()  # nonces a submitter currently owns (allocated or sent)
        self.pool: set[int] = set()  # nonces the node holds (sent and not lost)

    @rule()
    def allocate(self) -> None:
        n = self.alloc.allocate()
        assert n not in self.held, f"nonce {n} handed out twice"
        self.held.add(n)

    @precondition(lambda self: any(self.alloc.state_of(n) == "allocated" for n in self.held))
    @rule(data=st.data())
    def send(self, data: st.DataObject) -> None:
        n = data.draw(st.sampled_from(sorted(n for n in self.held if self.alloc.state_of(n) == "allocated")))
        if n < self.chain:  # the node answers "nonce too low": consumed by someone else
            assert self.alloc.confirm(n)
            self.held.discard(n)
            return
        self.alloc.mark_sent(n)
        self.pool.add(n)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def reject_or_drop(self, data: st.DataObject) -> None:
        n = data.draw(st.sampled_from(sorted(self.held)))
        self.alloc.release(n)
        self.held.discard(n)
        self.pool.discard(n)

    @precondition(lambda self: self.chain in self.pool)
    @rule()
    def mine(self) -> None:
        n = self.chain
        self.pool.discard(n)
        self.held.discard(n)
        self.chain += 1
        assert self.alloc.confirm(n)

    @precondition(lambda self: self.chain >= self.alloc.next_nonce)
    @rule()
    def external_tx(self) -> None:
        self.chain += 1  # another process signs with the same key

    @rule(lag=st.integers(0, 3))
    def resync(self, lag: int) -> None:
        self.alloc.resync(max(self.base, self.chain - lag))

    @rule()
    def drain(self) -> None:
        """Settle everything the way the sender does: send, refill holes, mine in order."""
        self.alloc.resync(self.chain)
        for _ in range(1000):
            for n in sorted(self.held):
                if self.alloc.state_of(n) == "allocated":
                    self.send_nonce(n)
            holes = self.alloc.holes()
            if holes and self.alloc.in_flight():
                n = self.alloc.allocate()
                assert n == holes[0]
                self.held.add(n)
                self.send_nonce(n)
                continue
            if self.chain in self.pool:
                self.mine()
                continue
            break
        assert self.alloc.in_flight() == 0
        assert self.alloc.holes() == []
        assert self.alloc.next_nonce == self.chain == self.alloc.floor

    def send_nonce(self, n: int) -> None:
        if n < self.chain:
            self.alloc.confirm(n)
            self.held.discard(n)
        else:
            self.alloc.mark_sent(n)
            self.pool.add(n)

    @invariant()
    def states_partition_the_range(self) -> None:
        if not hasattr(self, "alloc"):
            return
        counts: dict[str, int] = {}
        for n in range(self.base, self.alloc.next_nonce):
            s = self.alloc.state_of(n)
            assert s in {"allocated", "sent", "released", "taken"}, (n, s)
            counts[s] = counts.get(s, 0) + 1
        st_ = self.alloc.statistics()
        assert counts.get("allocated", 0) == st_.allocated
        assert counts.get("sent", 0) == st_.sent
        assert counts.get("released", 0) == st_.released
        live = {"allocated", "sent"}
        in_flight = {n for n in range(self.base, self.alloc.next_nonce) if self.alloc.state_of(n) in live}
        assert self.held == in_flight

    @invariant()
    def floor_never_passes_the_chain(self) -> None:
        if hasattr(self, "alloc"):
            # The allocator only marks taken what the chain has used: it never runs ahead of it.
            assert self.alloc.floor <= self.chain
            assert self.alloc.floor <= self.alloc.next_nonce


TestNonceMachine = NonceMachine.TestCase
TestNonceMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


class _CountRpc:
    def __init__(self, count: int, fail_first: bool = False) -> None:
        self.count = count
        self.calls = 0
        self.fail_first = fail_first

    async def call(self, method: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        assert method == "eth_getTransactionCount"
        self.calls += 1
        await asyncio.sleep(0)
        if self.fail_first and self.calls == 1:
            raise RpcError("boom")
        return hex(self.count)


async def test_manager_seeds_once_for_concurrent_first_callers() -> None:
    rpc = _CountRpc(42)
    mgr = NonceManager(rpc)  # type: ignore[arg-type]
    allocs = await asyncio.gather(*(mgr.allocator("0xabc") for _ in range(100)))
    assert rpc.calls == 1
    assert len({id(a) for a in allocs}) == 1
    nonces = [allocs[0].allocate() for _ in range(100)]
    assert nonces == list(range(42, 142))


async def test_manager_retries_seed_after_failure_and_resyncs() -> None:
    rpc = _CountRpc(5, fail_first=True)
    mgr = NonceManager(rpc)  # type: ignore[arg-type]
    with pytest.raises(RpcError):
        await mgr.allocator("0xabc")
    a = await mgr.allocator("0xabc")
    assert a.allocate() == 5
    rpc.count = 9
    assert await mgr.resync("0xabc") == 3
    assert mgr.statistics()["0xabc"].next_nonce == 9
