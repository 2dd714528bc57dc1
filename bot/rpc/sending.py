"""The send rule both transports share: the hash is computed locally, "already known" is success,
and a node that names another hash is an ``InvalidResponse`` (DESIGN.md, RPC client protocol)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bot.rpc import codec
from bot.rpc.errors import InvalidResponse, NodeError

__all__ = ["send_raw"]


async def send_raw(name: str, raw: bytes, call: Callable[[str, Sequence[Any]], Awaitable[Any]]) -> tuple[str, bool]:
    """Send ``raw`` through ``call(method, params)``; returns (its hash, whether the node already knew it)."""
    expected = codec.tx_hash(raw)
    try:
        result = await call("eth_sendRawTransaction", ["0x" + raw.hex()])
    except NodeError as exc:
        if codec.is_already_known(exc):
            return expected, True
        raise
    if not isinstance(result, str) or result.lower() != expected:
        raise InvalidResponse(f"{name}: node returned hash {result!r}, local keccak is {expected}")
    return expected, False
