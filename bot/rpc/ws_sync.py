"""The bookkeeping that lets a subscription survive a reconnect (pure, no I/O).

A WebSocket subscription is live only while its connection is: whatever the node pushed
while we were reconnecting is gone. So the subscriber remembers how far it got, asks for
the gap on reconnect, and filters out what it already delivered:

- ``SeenSet``: a bounded set of delivered keys (block hash; or ``(blockHash, logIndex,
  removed)`` for logs), so live pushes and backfilled items never deliver twice. Bounded:
  it remembers the last ``window`` keys, far more than one backfill can return. Full, it is
  the bot's largest structure of its own (16,384 keys: heads alone fill it in ~14 min at a
  block every 50 ms), so a key is packed into one bytes object (``seen_head``, ``seen_log``)
  and the order kept in a deque beside a set: ~110 bytes a key, against ~255 for a tuple
  holding the hash's hex string in an OrderedDict (full: 1.8 MB, was 4.2 MB; docs/PERFORMANCE.md,
  "Memory budget at 100 pairs").
- ``HeadCursor``: the highest block number delivered on a ``newHeads`` subscription;
  ``backfill_range`` gives the block numbers to fetch after a reconnect.
- ``LogCursor``: the lowest block whose logs may not all have been delivered. It stays on the
  last block that delivered a log (not +1): a drop can cut a block's logs in half, and the
  dedupe makes re-reading that block free.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.rpc.codec import from_hex
from bot.rpc.errors import InvalidResponse


class SeenSet:
    """Remembers the last ``window`` keys added (a duplicate does not refresh a key's place)."""

    __slots__ = ("_keys", "_order", "_window")

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"SeenSet window must be >= 1, got {window}")
        self._window = window
        self._keys: set[Hashable] = set()
        self._order: deque[Hashable] = deque()  # oldest first; the same keys as ``_keys``

    def __repr__(self) -> str:
        return f"<SeenSet {len(self._keys)}/{self._window}>"

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys

    def add(self, key: Hashable) -> bool:
        """Add ``key``; False if it was already there (a duplicate)."""
        if key in self._keys:
            return False
        self._keys.add(key)
        self._order.append(key)
        if len(self._order) > self._window:
            self._keys.remove(self._order.popleft())
        return True


def _hash_bytes(block_hash: str) -> bytes | None:
    """The 32 bytes of a lowercase ``0x`` + 64-hex-digit hash, else None. One-to-one: ``bytes.fromhex``
    would also read upper case and skip spaces, hence the case and length checks."""
    if len(block_hash) != 66 or not block_hash.startswith("0x") or not block_hash.islower():
        return None
    try:
        raw = bytes.fromhex(block_hash[2:])
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


def seen_head(sub_key: str, block_hash: str) -> Hashable:
    """The ``SeenSet`` key of a head delivered on subscription ``sub_key`` (``block_hash`` lowercased by
    ``head_key``). Packed as hash, b"h", sub key: the fixed-length hash first and a kind byte make the
    packing one-to-one; a hash of another shape keeps the plain tuple, which no packed key equals."""
    raw = _hash_bytes(block_hash)
    return (sub_key, block_hash) if raw is None else raw + b"h" + sub_key.encode()


def seen_log(sub_key: str, key: tuple[str, int, bool]) -> Hashable:
    """The ``SeenSet`` key of a log (``key`` from ``log_key``): hash, b"l", index (8 bytes), removed, sub key."""
    block_hash, index, removed = key
    raw = _hash_bytes(block_hash)
    if raw is None or not 0 <= index < 2**64:
        return (sub_key, key)
    return raw + b"l" + index.to_bytes(8, "big") + (b"\x01" if removed else b"\x00") + sub_key.encode()


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
