"""Balances: native (``eth_getBalance``) and ERC-20 (``balanceOf`` via ``eth_call``).

Each single read is timed as ``balance_check`` through ``on_latency`` (microseconds), as
slo-tables.md defines. ``many()`` reads any mix in one JSON-RPC batch; every item in the batch
gets the batch's duration as its sample (that is how long each of those reads took to answer).

Caching follows the price reader's rule: reads at an explicit block number are immutable and
kept in a bounded LRU; reads at ``"latest"``/``"pending"`` are never cached, because a balance a
trade is about to depend on must be current.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.chain import abi
from bot.market._reader import CachedReader, ReaderStatistics
from bot.rpc import shapes
from bot.rpc.errors import InvalidResponse, RpcError

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
            try:
                return shapes.quantity(result, "eth_getBalance")
            except InvalidResponse as exc:
                raise abi.AbiDecodeError(str(exc)) from None
        if not isinstance(result, str | bytes):
            raise abi.AbiDecodeError(f"balanceOf: expected hex data, got {result!r:.50}")
        return abi.decode_uint256(result, "balanceOf(address)")


BalanceReaderStatistics = ReaderStatistics


class BalanceReader(CachedReader[tuple[str, str, int], int]):
    setting = "balances"

    def _cached(self, q: BalanceQuery, block: int | str) -> int | None:
        if not isinstance(block, int):
            return None
        return self._cache_get((q.owner.lower(), q.token.lower(), block))

    def _store(self, q: BalanceQuery, block: int | str, value: int) -> None:
        if isinstance(block, int):
            self._cache_put((q.owner.lower(), q.token.lower(), block), value)

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

    def accept(self, q: BalanceQuery, result: object, micros: int, block: int | str = "latest") -> int:
        """Decode the answer to ``q.call(block)`` that a caller's batch got, recording its ``balance_check``
        sample (``micros``: the round trip it shared); an ``RpcError`` in its slot is raised."""
        self._reads += 1
        if isinstance(result, RpcError):
            self._errors += 1
            raise result
        try:
            value = q.decode(result)
        except abi.AbiDecodeError:
            self._errors += 1
            raise
        if self._on_latency is not None:
            self._on_latency("balance_check", micros)
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

