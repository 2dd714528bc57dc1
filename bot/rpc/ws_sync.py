"""The bookkeeping that lets a subscription survive a reconnect (pure, no I/O).

A WebSocket subscription is live only while its connection is: whatever the node pushed
while we were reconnecting is gone. So the subscriber remembers how far it got, asks for
the gap on reconnect, and filters out what it already delivered:

- ``SeenSet``: a bounded set of delivered keys (block hash; or ``(blockHash, logIndex,
  removed)`` for logs), so live pushes and backfilled items never deliver twice. Bounded:
  it remembers the last ``window`` keys, far more than one backfill can return.
- ``HeadCursor``: the highest block number delivered on a ``newHeads`` subscription;
  ``backfill_range`` gives the block numbers to fetch after a reconnect.
- ``LogCursor``: the lowest block whose logs may not all have been delivered. It stays on the
  last block that delivered a log (not +1): a drop can cut a block's logs in half, and the
  dedupe makes re-reading that block free.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.rpc.codec import from_hex
from bot.rpc.errors import InvalidResponse


class SeenSet:
    """Remembers the last ``window`` keys added."""

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"SeenSet window must be >= 1, got {window}")
        self._window = window
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys

    def add(self, key: Hashable) -> bool:
        """Add ``key``; False if it was already there (a duplicate)."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self._window:
            self._keys.popitem(last=False)
        return True


@dataclass(frozen=True, slots=True)
class BackfillRange:
    """Blocks ``start..end`` inclusive to fetch (empty when start > end); ``skipped`` older
    blocks were beyond the backfill limit and are reported, not fetched."""

    start: int
    end: int
    skipped: int

    def __len__(self) -> int:
        return max(0, self.end - self.start + 1)


def backfill_range(first_missing: int, head: int, limit: int) -> BackfillRange:
    """The newest ``limit`` blocks of ``first_missing..head``."""
    if limit < 1:
        raise ValueError(f"backfill limit must be >= 1, got {limit}")
    if first_missing > head:
        return BackfillRange(first_missing, head, 0)
    start = max(first_missing, head - limit + 1)
    return BackfillRange(start, head, start - first_missing)


def head_key(header: Any) -> tuple[str, int]:
    """(hash, number) of a newHeads header or a block; garbage -> ``InvalidResponse``."""
    if not isinstance(header, Mapping) or not isinstance(header.get("hash"), str):
        raise InvalidResponse(f"block header without a hash: {str(header)[:120]}")
    return header["hash"].lower(), from_hex(header.get("number"), "header.number")


def log_key(log: Any) -> tuple[tuple[str, int, bool], int]:
    """((blockHash, logIndex, removed), blockNumber) of a log; garbage -> ``InvalidResponse``."""
    if not isinstance(log, Mapping) or not isinstance(log.get("blockHash"), str):
        raise InvalidResponse(f"log without a blockHash: {str(log)[:120]}")
    index = from_hex(log.get("logIndex"), "log.logIndex")
    number = from_hex(log.get("blockNumber"), "log.blockNumber")
    return (log["blockHash"].lower(), index, bool(log.get("removed", False))), number


class HeadCursor:
    """Where a newHeads subscription stands."""

    def __init__(self) -> None:
        self.last: int | None = None

    def start_at(self, head: int) -> None:
        """First connection: nothing before ``head`` is owed to the consumer."""
        if self.last is None:
            self.last = head

    def delivered(self, number: int) -> None:
        self.last = number if self.last is None else max(self.last, number)

    def gap(self, head: int, limit: int) -> BackfillRange:
        if self.last is None:
            return BackfillRange(head + 1, head, 0)
        return backfill_range(self.last + 1, head, limit)


class LogCursor:
    """Where a logs subscription stands: ``next`` is the first block that may miss logs."""

    def __init__(self) -> None:
        self.next: int | None = None

    def start_at(self, head: int) -> None:
        # Logs of ``head`` itself were pushed before we subscribed: not owed.
        if self.next is None:
            self.next = head + 1

    def delivered(self, block_number: int) -> None:
        self.next = block_number if self.next is None else max(self.next, block_number)

    def gap(self, head: int, limit: int) -> BackfillRange:
        if self.next is None:
            return BackfillRange(head + 1, head, 0)
        return backfill_range(self.next, head, limit)

    def caught_up(self, head: int) -> None:
        """After a backfill through ``head``: only ``head`` may still gain logs from live pushes."""
        if self.next is not None:
            self.next = max(self.next, head)
