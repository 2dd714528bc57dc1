"""The latest base fee, read from the node and shared by all concurrent senders.

The base fee changes at most once per block, so one ``eth_getBlockByNumber("latest")`` serves
every transaction built within ``max_age`` seconds (default 0.25 s, shorter than any block
interval this project mines at); a new-head notification (``on_head``) invalidates it at once.
Concurrent callers on a stale cache share one request. If a refresh fails, the last known
value is used for up to ``stale_limit`` seconds (fees carry 2x headroom, see ``fees.py``) and
the error is raised after that, so a dead node cannot make the bot price blind forever.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bot.chain.fees import FeePolicy, Fees, price
from bot.rpc import shapes
from bot.rpc.errors import RpcError
from bot.rpc.protocol import RpcClient


@dataclass(frozen=True, slots=True)
class FeeOracleStatistics:
    base_fee: int | None
    age_s: float | None
    refreshes: int
    refresh_errors: int
    served: int


class FeeOracle:
    def __init__(
        self,
        rpc: RpcClient,
        policy: FeePolicy | None = None,
        *,
        max_age: float = 0.25,
        stale_limit: float = 10.0,
        timeout: float = 5.0,
    ) -> None:
        self._rpc = rpc
        self.policy = policy if policy is not None else FeePolicy()
        self.max_age = max_age
        self.stale_limit = stale_limit
        self.timeout = timeout
        self._base_fee: int | None = None
        self._at = 0.0  # when _base_fee was learned (monotonic)
        self._stale = True  # a new head arrived without its base fee
        self._inflight: asyncio.Task[int] | None = None
        self._refreshes = self._errors = self._served = 0

    def on_head(self, base_fee: int | None = None) -> None:
        """A new block: use its base fee if the notification carried it, else refetch next time."""
        if base_fee is not None:
            self._base_fee, self._at, self._stale = base_fee, time.monotonic(), False
        else:
            self._stale = True

    async def fees(self) -> Fees:
        now = time.monotonic()
        if self._base_fee is None or self._stale or now - self._at > self.max_age:
            if self._inflight is None:
                self._inflight = asyncio.create_task(self._fetch())
            task = self._inflight
            try:
                await asyncio.shield(task)
            except RpcError:
                if self._base_fee is None or now - self._at > self.stale_limit:
                    raise
            finally:
                if task.done() and self._inflight is task:
                    self._inflight = None
        assert self._base_fee is not None
        self._served += 1
        return price(self._base_fee, self.policy)

    async def _fetch(self) -> int:
        try:
            block = await self._rpc.call("eth_getBlockByNumber", ["latest", False], timeout=self.timeout)
            base = shapes.block_base_fee(block, "eth_getBlockByNumber")  # garbage: InvalidResponse, counted
        except RpcError:
            self._errors += 1
            raise
        self._refreshes += 1
        self._base_fee, self._at, self._stale = base, time.monotonic(), False
        return base

    def statistics(self) -> FeeOracleStatistics:
        return FeeOracleStatistics(
            base_fee=self._base_fee,
            age_s=None if self._base_fee is None else time.monotonic() - self._at,
            refreshes=self._refreshes,
            refresh_errors=self._errors,
            served=self._served,
        )

    def __repr__(self) -> str:
        return f"FeeOracle(base_fee={self._base_fee}, max_age={self.max_age}s)"
