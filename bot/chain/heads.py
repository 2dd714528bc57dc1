"""Adapt a newHeads event stream to what the chain layer consumes: block numbers.

``ReceiptTracker.start(heads)`` wants an async iterator of block numbers, and ``FeeOracle`` is
best fed the base fee carried by each header (so no transaction is priced from a stale block
and no extra ``eth_getBlockByNumber`` is needed). ``head_numbers`` does both for any event
source with ``.kind`` and ``.data`` (``bot.rpc.ws.WsSubscriber`` events), skipping log events
and malformed headers (counted by the subscriber itself, which validates them first).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Protocol

from bot.chain.fee_oracle import FeeOracle


class HeadEvent(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def data(self) -> Any: ...


async def head_numbers(events: AsyncIterable[HeadEvent], fees: FeeOracle | None = None) -> AsyncIterator[int]:
    async for event in events:
        if event.kind != "newHeads" or not isinstance(event.data, dict):
            continue
        try:
            number = int(event.data["number"], 16)
        except (KeyError, TypeError, ValueError):
            continue
        if fees is not None:
            base = event.data.get("baseFeePerGas")
            fees.on_head(int(base, 16) if isinstance(base, str) else None)
        yield number
