"""Balances: native (``eth_getBalance``) and ERC-20 (``balanceOf`` via ``eth_call``).

Each single read is timed as ``balance_check`` through ``on_latency`` (microseconds), as
slo-tables.md defines. ``many()`` reads any mix in one JSON-RPC batch; every item in the batch
gets the batch's duration as its sample (that is how long each of those reads took to answer).

Caching follows the price reader's rule: reads at an explicit block number are immutable and
kept in a bounded LRU; reads at ``"latest"``/``"pending"`` are never cached, because a balance a
trade is about to depend on must be current.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.chain import abi
from bot.rpc.errors import RpcError
from bot.rpc.protocol import RpcClient

LatencyHook = Callable[[str, int], None]
NATIVE = "native"


@dataclass(frozen=True, slots=True)
class BalanceQuery:
    owner: str
    token: str = NATIVE  # an ERC-20 address, or "native" for ETH

    def __post_init__(self) -> None:
        abi.address_bytes(self.owner, "balance owner")
        if self.token != NATIVE:
            abi.address_bytes(self.token, "balance token (an ERC-20 address or 'native')")

    def call(self, block: int | str) -> tuple[str, list[object]]:
        tag = hex(block) if isinstance(block, int) else block
        if self.token == NATIVE:
            return "eth_getBalance", [self.owner, tag]
        return "eth_call", [{"to": self.token, "data": "0x" + abi.encode_balance_of(self.owner).hex()}, tag]

    def decode(self, result: object) -> int:
        if self.token == NATIVE:
            if not isinstance(result, str):
                raise abi.AbiDecodeError(f"eth_getBalance: expected a hex quantity, got {result!r:.50}")
            return int(result, 16)
        if not isinstance(result, str | bytes):
            raise abi.AbiDecodeError(f"balanceOf: expected hex data, got {result!r:.50}")
        return abi.decode_uint256(result, "balanceOf(address)")


@dataclass(frozen=True, slots=True)
class BalanceReaderStatistics:
    reads: int
    cache_hits: int
    cache_size: int
    cached: int
    errors: int


class BalanceReader:
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
            raise ValueError(f"balances.cache_size must be >= 0, got {cache_size}")
        self._rpc = rpc
        self._on_latency = on_latency
        self.cache_size = cache_size
        self.timeout = timeout
        self._clock = clock_ns
        self._cache: OrderedDict[tuple[str, str, int], int] = OrderedDict()
        self._reads = self._hits = self._errors = 0

    def _cached(self, q: BalanceQuery, block: int | str) -> int | None:
        if not isinstance(block, int):
            return None
        key = (q.owner.lower(), q.token.lower(), block)
        value = self._cache.get(key)
        if value is not None:
            self._cache.move_to_end(key)
            self._hits += 1
        return value

    def _store(self, q: BalanceQuery, block: int | str, value: int) -> None:
        if isinstance(block, int) and self.cache_size:
            self._cache[(q.owner.lower(), q.token.lower(), block)] = value
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    async def get(self, owner: str, token: str = NATIVE, block: int | str = "latest") -> int:
        q = BalanceQuery(owner, token)
        hit = self._cached(q, block)
        if hit is not None:
            return hit
        t0 = self._clock()
        method, params = q.call(block)
        self._reads += 1
        try:
            result = await self._rpc.call(method, params, timeout=self.timeout)
        except RpcError:
            self._errors += 1
            raise
        value = q.decode(result)
        if self._on_latency is not None:
            self._on_latency("balance_check", max((self._clock() - t0) // 1000, 1))
        self._store(q, block, value)
        return value

    async def many(
        self, queries: Sequence[BalanceQuery], block: int | str = "latest"
    ) -> list[int | RpcError | abi.AbiDecodeError]:
        """Uncached queries in one batch; a failure is returned in the failing query's place."""
        out: list[int | RpcError | abi.AbiDecodeError | None] = [self._cached(q, block) for q in queries]
        todo = [i for i, v in enumerate(out) if v is None]
        if todo:
            t0 = self._clock()
            self._reads += len(todo)
            results = await self._rpc.batch([queries[i].call(block) for i in todo], timeout=self.timeout)
            micros = max((self._clock() - t0) // 1000, 1)
            for i, res in zip(todo, results, strict=True):
                if isinstance(res, RpcError):
                    self._errors += 1
                    out[i] = res
                    continue
                try:
                    value = queries[i].decode(res)
                except abi.AbiDecodeError as exc:
                    self._errors += 1
                    out[i] = exc
                    continue
                self._store(queries[i], block, value)
                out[i] = value
                if self._on_latency is not None:
                    self._on_latency("balance_check", micros)
        return [v for v in out if v is not None]

    def statistics(self) -> BalanceReaderStatistics:
        return BalanceReaderStatistics(
            reads=self._reads,
            cache_hits=self._hits,
            cache_size=self.cache_size,
            cached=len(self._cache),
            errors=self._errors,
        )

    def __repr__(self) -> str:
        return f"BalanceReader(cached={len(self._cache)}/{self.cache_size}, reads={self._reads})"
