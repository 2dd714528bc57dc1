"""The sender's view of its RPC client as named endpoints, and the I/O behind ``Send`` and ``Lookup``.

The lifecycle must know which endpoint received which signed bytes, so a send or a lookup goes to
a *named* endpoint. An ``EndpointPool`` offers that (``endpoint_names``, ``send_raw_transaction_on``,
``call_on``); any other ``RpcClient`` (one ``HttpTransport``, a test double) is one endpoint named
after its ``name`` attribute. Every failure here becomes an event: nothing raises but cancellation.
"""

# The per-call ``timeout`` is part of the RpcClient contract (DESIGN.md).
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from bot.chain.ledger import Reject, classify_send_error
from bot.chain.lifecycle import Acknowledged, LookedUp, LookupStatus, Refused, SendFailed, send_outcome
from bot.chain.receipts import Receipt
from bot.rpc.errors import RpcError
from bot.rpc.protocol import RpcClient

log = logging.getLogger(__name__)


@runtime_checkable
class EndpointRouting(Protocol):
    """What ``EndpointPool`` adds to ``RpcClient``: single attempts pinned to one endpoint."""

    def endpoint_names(self) -> tuple[str, ...]: ...

    async def send_raw_transaction_on(self, endpoint: str, raw: bytes, *, timeout: float | None = None) -> str: ...

    async def call_on(
        self, endpoint: str, method: str, params: Sequence[Any] = (), *, timeout: float | None = None
    ) -> Any: ...


class Routes:
    def __init__(self, rpc: RpcClient) -> None:
        self._rpc = rpc
        self._pool: EndpointRouting | None = rpc if isinstance(rpc, EndpointRouting) else None
        self._single = str(getattr(rpc, "name", None) or "rpc")

    def ranked(self) -> tuple[str, ...]:
        """Endpoint names, best first (the pool's health ranking at this moment)."""
        return self._pool.endpoint_names() if self._pool is not None else (self._single,)

    def __repr__(self) -> str:
        return f"Routes({list(self.ranked())})"

    async def send(
        self, endpoint: str, tx_hash: str, raw: bytes, attempt: int, timeout: float
    ) -> Acknowledged | Refused | SendFailed:
        """One attempt: ``Acknowledged`` | ``Refused`` | ``SendFailed`` (never raises but cancellation)."""
        event: Acknowledged | Refused | SendFailed
        try:
            if self._pool is not None:
                node_hash = await self._pool.send_raw_transaction_on(endpoint, raw, timeout=timeout)
            else:
                node_hash = await self._rpc.send_raw_transaction(raw, timeout=timeout)
        except RpcError as exc:
            event = send_outcome(endpoint, tx_hash, exc, attempt)
        except Exception as exc:
            # A bug in a client wrapper, after which the bytes may well be at the node: track, do not retry.
            log.warning("sending %s raised %r; tracking it as unacknowledged", tx_hash, exc)
            event = SendFailed(endpoint, tx_hash, "internal", f"send raised {exc!r}", retry_in=None)
        else:
            if str(node_hash).lower() != tx_hash:
                log.warning("node returned hash %s for our %s; tracking ours", node_hash, tx_hash)
            event = Acknowledged(endpoint, tx_hash)
        return event

    async def call(self, endpoint: str, method: str, params: Sequence[Any], timeout: float) -> Any:
        if self._pool is not None:
            return await self._pool.call_on(endpoint, method, params, timeout=timeout)
        return await self._rpc.call(method, params, timeout=timeout)

    async def lookup(self, endpoint: str, tx_hash: str, *, receipt: bool, attempts: int, timeout: float) -> LookedUp:
        """Ask one endpoint about one hash, up to ``attempts`` tries; UNREACHABLE when it never answered usably."""
        for attempt in range(1, attempts + 1):
            delay = 0.05
            try:
                status = _status(await self.call(endpoint, "eth_getTransactionByHash", [tx_hash], timeout))
            except RpcError as exc:
                decision = classify_send_error(exc, attempt)
                if isinstance(decision, Reject):
                    break  # the node refuses the question: no evidence either way
                delay = decision.delay
            except Exception as exc:
                # A malformed answer is no evidence either way, never "unknown".
                log.warning("looking up %s: unusable answer (%r)", tx_hash, exc)
            else:
                if status is LookupStatus.MINED and receipt:
                    return LookedUp(endpoint, tx_hash, status, await self._receipt(endpoint, tx_hash, timeout))
                return LookedUp(endpoint, tx_hash, status)
            if attempt < attempts:
                await asyncio.sleep(delay)
        return LookedUp(endpoint, tx_hash, LookupStatus.UNREACHABLE)

    async def _receipt(self, endpoint: str, tx_hash: str, timeout: float) -> Receipt | None:
        try:
            obj = await self.call(endpoint, "eth_getTransactionReceipt", [tx_hash], timeout)
            if obj is None:
                return None
            found = Receipt.from_json(obj)
        except Exception as exc:
            # Mined, but the receipt could not be read: the lifecycle looks again after its grace.
            log.warning("receipt of %s unusable: %r", tx_hash, exc)
            return None
        return found if found.tx_hash == tx_hash else None


def _status(tx: Any) -> LookupStatus:
    if tx is None:
        return LookupStatus.UNKNOWN
    if not isinstance(tx, Mapping):
        raise ValueError(f"eth_getTransactionByHash: expected an object or null, got {type(tx).__name__}")
    number = tx.get("blockNumber")
    if number is None:
        return LookupStatus.PENDING
    if not isinstance(number, str):
        raise ValueError(f"eth_getTransactionByHash: blockNumber {number!r:.40} is not a hex quantity")
    return LookupStatus.MINED
