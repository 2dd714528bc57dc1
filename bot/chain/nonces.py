"""Nonce allocation for one account: a pure state machine plus a thin async shell.

Every nonce below ``next_nonce`` is in exactly one of four states:

- **allocated**: handed to a submitter that has not yet sent it;
- **sent**: the node was asked to accept a transaction at this nonce and has not been
  shown to have lost it;
- **released**: definitely *not* held by the node (rejected before acceptance, or dropped),
  so it must be reused; ``allocate()`` always hands out the lowest released nonce first,
  because a hole below sent nonces would hold every later transaction in the node's queue;
- **taken**: consumed on chain (our transaction mined, reverted included) or used by somebody
  else (learned from "nonce too low" or from ``resync``).

Rules (``NonceStateError`` on a transition the rules do not allow: it is a bug in the caller):

- ``allocate()``: lowest released nonce, else ``next_nonce`` (then incremented).
- ``mark_sent(n)``: allocated -> sent.
- ``release(n)``: allocated|sent -> released. If the released nonces reach the top
  (``next_nonce - 1``), ``next_nonce`` shrinks instead, so no hole is left behind. Releasing
  a nonce the chain already took is a no-op returning False (e.g. our transaction was lost
  but another one, signed elsewhere, used the nonce).
- ``confirm(n)``: allocated|sent|released|untracked-below-next -> taken. Idempotent for taken.
- ``resync(chain_nonce)``: the node says every nonce below ``chain_nonce`` is used
  (``eth_getTransactionCount``). Released nonces below it become taken, ``next_nonce`` rises to
  it. A *lower* count than we know (a lagging node, or one that lost transactions) changes
  nothing: we never re-issue a nonce we handed out on the word of a node alone; lost
  transactions are found per transaction by the sender and ``release``d.

Invariants (checked by a hypothesis state machine in tests/unit/test_chain_nonces.py): no nonce
is ever held by two submitters; the four states partition ``[base, next_nonce)``; once every
allocated and sent nonce settles in chain order, nothing is released and ``next_nonce`` equals
the chain's nonce (no gap, no duplicate).

The shell needs no lock: the core is synchronous and every call into it runs to completion on
the event loop thread with no ``await`` in between, so no two coroutines can interleave inside
a transition. The only await (the first ``eth_getTransactionCount``) happens before the
allocator exists and is shared by concurrent first callers through one task.
"""

from __future__ import annotations

import asyncio
import heapq
from dataclasses import dataclass
from typing import Any

from bot.rpc import shapes
from bot.rpc.protocol import RpcClient


class NonceStateError(RuntimeError):
    """A transition the allocator's rules forbid (a caller bug, never a node condition)."""


@dataclass(frozen=True, slots=True)
class NonceStatistics:
    next_nonce: int
    floor: int
    allocated: int
    sent: int
    released: int
    allocations: int
    reuses: int
    releases: int
    confirms: int
    resyncs: int
    resync_jumps: int


class NonceAllocator:
    """Pure, synchronous nonce allocator for one account."""

    __slots__ = (
        "_allocated",
        "_allocations",
        "_base",
        "_confirms",
        "_floor",
        "_next",
        "_released",
        "_released_heap",
        "_releases",
        "_resync_jumps",
        "_resyncs",
        "_reuses",
        "_sent",
        "_taken",
    )

    def __init__(self, start: int) -> None:
        if start < 0:
            raise ValueError(f"start nonce must be >= 0, got {start}")
        self._base = start
        self._next = start
        self._floor = start  # every nonce below is taken
        self._allocated: set[int] = set()
        self._sent: set[int] = set()
        self._released: set[int] = set()
        self._released_heap: list[int] = []
        self._taken: set[int] = set()  # taken nonces at or above the floor (confirmed out of order)
        self._allocations = self._reuses = self._releases = 0
        self._confirms = self._resyncs = self._resync_jumps = 0

    @property
    def base(self) -> int:
        """The chain's count this allocator was seeded with: where this process's nonces begin."""
        return self._base

    @property
    def next_nonce(self) -> int:
        return self._next

    @property
    def floor(self) -> int:
        return self._floor

    def allocate(self) -> int:
        self._allocations += 1
        if self._released_heap:
            n = heapq.heappop(self._released_heap)
            self._released.discard(n)
            self._reuses += 1
        else:
            n = self._next
            self._next += 1
        self._allocated.add(n)
        return n

    def mark_sent(self, n: int) -> None:
        if n not in self._allocated:
            raise NonceStateError(f"mark_sent({n}): nonce is {self.state_of(n)}, expected allocated")
        self._allocated.remove(n)
        self._sent.add(n)

    def release(self, n: int) -> bool:
        """Free n for reuse. Returns False (and changes nothing) if the chain already took it."""
        if n in self._allocated:
            self._allocated.remove(n)
        elif n in self._sent:
            self._sent.remove(n)
        elif n < self._next and (n < self._floor or n in self._taken):
            return False  # the chain is the authority: a consumed nonce cannot be freed
        else:
            raise NonceStateError(f"release({n}): nonce is {self.state_of(n)}, expected allocated or sent")
        self._releases += 1
        self._released.add(n)
        heapq.heappush(self._released_heap, n)
        self._compact()
        return True

    def confirm(self, n: int) -> bool:
        """Mark n consumed on chain. Returns False if it already was."""
        if n >= self._next:
            raise NonceStateError(f"confirm({n}): never allocated (next nonce is {self._next})")
        if n < self._floor or n in self._taken:
            return False
        self._allocated.discard(n)
        self._sent.discard(n)
        if n in self._released:
            self._released.remove(n)
            self._released_heap.remove(n)
            heapq.heapify(self._released_heap)
        self._confirms += 1
        self._take(n)
        return True

    def resync(self, chain_nonce: int) -> int:
        """Apply the node's transaction count; returns how many nonces it newly marked taken."""
        self._resyncs += 1
        if chain_nonce <= self._floor:
            return 0
        newly = 0
        stale = [n for n in self._released if n < chain_nonce]
        for n in stale:
            self._released.remove(n)
            self._take(n)
            newly += 1
        if stale:
            self._released_heap = sorted(self._released)
        if chain_nonce > self._next:
            self._resync_jumps += 1
            for n in range(self._next, chain_nonce):
                self._take(n)
            newly += chain_nonce - self._next
            self._next = chain_nonce
        return newly

    def holes(self) -> list[int]:
        """Released nonces waiting for reuse; each blocks every higher sent nonce in the node."""
        return sorted(self._released)

    def in_flight(self) -> int:
        return len(self._allocated) + len(self._sent)

    def state_of(self, n: int) -> str:
        if n in self._allocated:
            return "allocated"
        if n in self._sent:
            return "sent"
        if n in self._released:
            return "released"
        if n < self._floor or n in self._taken:
            return "taken"
        if n >= self._next:
            return "unallocated"
        return "untracked"

    def statistics(self) -> NonceStatistics:
        return NonceStatistics(
            next_nonce=self._next,
            floor=self._floor,
            allocated=len(self._allocated),
            sent=len(self._sent),
            released=len(self._released),
            allocations=self._allocations,
            reuses=self._reuses,
            releases=self._releases,
            confirms=self._confirms,
            resyncs=self._resyncs,
            resync_jumps=self._resync_jumps,
        )

    def _take(self, n: int) -> None:
        self._taken.add(n)
        while self._floor in self._taken:
            self._taken.remove(self._floor)
            self._floor += 1

    def _compact(self) -> None:
        # A released nonce at the top is not a hole: shrinking next_nonce removes it.
        while self._next - 1 in self._released and self._next - 1 >= self._floor:
            top = self._next - 1
            self._released.remove(top)
            self._next = top
        if len(self._released_heap) != len(self._released):
            self._released_heap = sorted(self._released)

    def __repr__(self) -> str:
        return (
            f"NonceAllocator(next={self._next}, floor={self._floor}, allocated={len(self._allocated)}, "
            f"sent={len(self._sent)}, released={len(self._released)})"
        )


class NonceManager:
    """Per-account allocators, each seeded from the node's pending transaction count on first use."""

    def __init__(self, rpc: RpcClient, *, timeout: float = 5.0) -> None:
        self._rpc = rpc
        self._timeout = timeout
        self._allocators: dict[str, NonceAllocator] = {}
        self._seeding: dict[str, asyncio.Task[NonceAllocator]] = {}

    async def allocator(self, address: str) -> NonceAllocator:
        alloc = self._allocators.get(address)
        if alloc is not None:
            return alloc
        task = self._seeding.get(address)
        if task is None:
            task = asyncio.create_task(self._seed(address))
            self._seeding[address] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._seeding.pop(address, None)

    async def _seed(self, address: str) -> NonceAllocator:
        start = await self.chain_nonce(address)
        return self._allocators.setdefault(address, NonceAllocator(start))

    async def chain_nonce(self, address: str, block: str = "pending") -> int:
        result: Any = await self._rpc.call("eth_getTransactionCount", [address, block], timeout=self._timeout)
        return shapes.small_quantity(result, "eth_getTransactionCount")

    async def resync(self, address: str, block: str = "pending") -> int:
        alloc = await self.allocator(address)
        return alloc.resync(await self.chain_nonce(address, block))

    def get(self, address: str) -> NonceAllocator | None:
        """The allocator if already seeded (no I/O)."""
        return self._allocators.get(address)

    def statistics(self) -> dict[str, NonceStatistics]:
        return {addr: a.statistics() for addr, a in self._allocators.items()}

    def start_nonces(self) -> dict[str, int]:
        """Per seeded account, the pending count it was seeded with (for the ledger's reconciliation)."""
        return {addr: a.base for addr, a in self._allocators.items()}

    def __repr__(self) -> str:
        return f"NonceManager(accounts={len(self._allocators)})"
