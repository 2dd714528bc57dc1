"""The interface every RPC client of the bot implements (one endpoint or a failover pool)."""

# The per-call ``timeout`` is part of the RpcClient contract (DESIGN.md); it bounds the request
# at the transport (aiohttp ClientTimeout), which is what ASYNC109 asks for.
# ruff: noqa: ASYNC109
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from bot.rpc.errors import RpcError


@runtime_checkable
class RpcClient(Protocol):
    async def call(self, method: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> Any: ...

    async def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout: float | None = None
    ) -> list[Any | RpcError]: ...

    async def send_raw_transaction(self, raw: bytes, *, timeout: float | None = None) -> str: ...

    async def aclose(self) -> None: ...
