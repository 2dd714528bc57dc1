"""The pure part of auto-batching: which waiting calls leave together, and the batch-size histogram.

``BatchQueue`` holds the groups of calls that will leave together, one open group per timeout: one HTTP
request has one timeout, so calls with different timeouts never share a request, and each call keeps
exactly the deadline it asked for. It performs no I/O; ``HttpTransport`` does (h11 style).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

# Upper bounds of the batch-size histogram buckets (the last is open-ended).
SIZE_BUCKETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True, slots=True)
class BatchQueueStatistics:
    open_groups: int  # groups whose leader has not sent them yet (one per distinct timeout at most)
    waiting: int  # followers in those groups
    max_size: int


class BatchQueue(Generic[T]):
    """Open groups of calls, at most one per timeout, each led by the call that opened it.

    The first call of an iteration ``join``s and gets an empty group back: it is the leader. It yields
    to the loop once (or for the window), then ``close``s the group and sends itself plus whatever
    followers joined meanwhile (``join`` returned None to them). A group that reaches ``max_size``
    (leader included) is closed at once, so the next call opens a new one. The leader of a lone call
    therefore sends a plain request with no task and no future: batching costs a lone call one yield.
    """

    __slots__ = ("_open", "max_size")

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError(f"max_size: must be >= 1, got {max_size}")
        self.max_size = max_size
        self._open: dict[float, list[T]] = {}

    def __repr__(self) -> str:
        return f"BatchQueue(open={len(self._open)}, max_size={self.max_size})"

    def statistics(self) -> BatchQueueStatistics:
        return BatchQueueStatistics(len(self._open), sum(map(len, self._open.values())), self.max_size)

    def join(self, timeout: float, item: T) -> list[T] | None:
        """Follow the open group for ``timeout`` (returns None), or open one and lead it (returns its
        followers' list, empty now; ``item`` is then the leader's own and is not in it)."""
        group = self._open.get(timeout)
        if group is None:
            group = []
            if self.max_size > 1:
                self._open[timeout] = group
            return group
        group.append(item)
        if len(group) + 1 >= self.max_size:
            del self._open[timeout]  # full: the next call leads a new group
        return None

    def close(self, timeout: float, group: list[T]) -> list[T]:
        """The leader takes its group: no one joins it any more. Returns the followers."""
        if self._open.get(timeout) is group:
            del self._open[timeout]
        return group

    def drain(self) -> list[list[T]]:
        """Close every open group (the transport is closing): their followers, for failing them."""
        groups, self._open = list(self._open.values()), {}
        return groups


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
