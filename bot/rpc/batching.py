"""The pure part of auto-batching: which waiting calls leave together, and the batch-size histogram.

``BatchQueue`` holds calls that wait for the next flush, grouped by their timeout: one HTTP request
has one timeout, so calls with different timeouts never share a request, and each call keeps exactly
the deadline it asked for. ``add`` hands back a group the moment it reaches ``max_size``; ``drain``
hands back everything else. It performs no I/O; ``HttpTransport`` does (h11 style).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

# Upper bounds of the batch-size histogram buckets (the last is open-ended).
SIZE_BUCKETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True, slots=True)
class BatchQueueStatistics:
    waiting: int  # calls queued for the next flush
    groups: int  # distinct timeouts among them
    max_size: int


class BatchQueue(Generic[T]):
    """Calls waiting to leave, by timeout. ``max_size`` is the largest group a request may carry."""

    __slots__ = ("_groups", "_waiting", "max_size")

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError(f"max_size: must be >= 1, got {max_size}")
        self.max_size = max_size
        self._groups: dict[float, list[T]] = {}
        self._waiting = 0

    def __len__(self) -> int:
        return self._waiting

    def __repr__(self) -> str:
        return f"BatchQueue(waiting={self._waiting}, groups={len(self._groups)}, max_size={self.max_size})"

    def statistics(self) -> BatchQueueStatistics:
        return BatchQueueStatistics(self._waiting, len(self._groups), self.max_size)

    def add(self, timeout: float, item: T) -> list[T] | None:
        """Queue ``item``; returns its group, removed from the queue, if that made the group full."""
        group = self._groups.get(timeout)
        if group is None:
            group = self._groups[timeout] = []
        group.append(item)
        self._waiting += 1
        if len(group) < self.max_size:
            return None
        del self._groups[timeout]
        self._waiting -= len(group)
        return group

    def drain(self) -> Iterator[tuple[float, list[T]]]:
        """Every waiting group, oldest timeout group first; the queue is empty afterwards."""
        groups, self._groups, self._waiting = self._groups, {}, 0
        yield from groups.items()


def chunks(items: list[T], size: int) -> list[list[T]]:
    """``items`` in consecutive pieces of at most ``size`` (an explicit batch split at the limit)."""
    return [items[i:i + size] for i in range(0, len(items), size)]


class SizeHistogram:
    """Requests by how many calls they carried, in ``SIZE_BUCKETS`` (counts only: no allocation per record)."""

    __slots__ = ("_counts", "calls", "requests")

    def __init__(self) -> None:
        self._counts = [0] * (len(SIZE_BUCKETS) + 1)
        self.requests = 0
        self.calls = 0

    def record(self, size: int) -> None:
        i = 0
        while i < len(SIZE_BUCKETS) and size > SIZE_BUCKETS[i]:
            i += 1
        self._counts[i] += 1
        self.requests += 1
        self.calls += size

    def buckets(self) -> tuple[tuple[float, int], ...]:
        """Cumulative ``(le, count)`` pairs, Prometheus style, ending with ``(inf, requests)``."""
        out: list[tuple[float, int]] = []
        total = 0
        for le, c in zip((*SIZE_BUCKETS, float("inf")), self._counts, strict=True):
            total += c
            out.append((float(le), total))
        return tuple(out)
