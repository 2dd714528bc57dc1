"""What the price and balance readers share: an RPC client, a latency hook, a per-call timeout, and
a bounded LRU of reads pinned to a block number (immutable, so safe to keep; reads at ``latest``
are never cached)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from bot.rpc.protocol import RpcClient

LatencyHook = Callable[[str, int], None]
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class ReaderStatistics:
    reads: int
    cache_hits: int
    cache_size: int
    cached: int
    errors: int


class CachedReader(Generic[K, V]):
    setting: ClassVar[str] = "reader"  # the config prefix named in errors

    def __init__(
        self,
        rpc: RpcClient,
        *,
        on_latency: LatencyHook | None = None,
        cache_size: int = 4096,
        timeout: float = 5.0,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        if cache_size < 0:
            raise ValueError(f"{self.setting}.cache_size must be >= 0, got {cache_size}")
        self._rpc = rpc
        self._on_latency = on_latency
        self.cache_size = cache_size
        self.timeout = timeout
        self._clock = clock_ns
        self._cache: OrderedDict[K, V] = OrderedDict()
        self._reads = self._hits = self._errors = 0

    def _cache_get(self, key: K) -> V | None:
        value = self._cache.get(key)
        if value is not None:
            self._cache.move_to_end(key)
            self._hits += 1
        return value

    def _cache_put(self, key: K, value: V) -> None:
        if self.cache_size:
            self._cache[key] = value
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def statistics(self) -> ReaderStatistics:
        return ReaderStatistics(reads=self._reads, cache_hits=self._hits, cache_size=self.cache_size,
                                cached=len(self._cache), errors=self._errors)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cached={len(self._cache)}/{self.cache_size}, reads={self._reads})"
