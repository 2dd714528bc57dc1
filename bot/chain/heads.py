"""Adapt a newHeads event stream to what the chain layer consumes: block numbers and base fees.

``ReceiptTracker`` wants block numbers, and ``FeeOracle`` is best fed the base fee carried by
each header (so no transaction is priced from a stale block and no extra
``eth_getBlockByNumber`` is needed). ``pump_heads`` hands every well-formed header to a
callback; ``head_numbers`` is the same as an async iterator of block numbers. Both work on any
event source with ``.kind`` and ``.data`` (``bot.rpc.ws.WsSubscriber`` events), skip log events,
and skip a malformed header (``bot.rpc.shapes.head``), reporting it through ``on_invalid``: one
bad push from the node must not end the stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, Protocol

from bot.chain.fee_oracle import FeeOracle
from bot.rpc import shapes
from bot.rpc.errors import InvalidResponse


class HeadEvent(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def data(self) -> Any: ...


def read_head(event: HeadEvent) -> shapes.Head | None:
    """The header a newHeads event carries; None for other events; ``InvalidResponse`` if malformed."""
    if event.kind != "newHeads":
        return None
    return shapes.head(event.data)


async def pump_heads(events: AsyncIterable[HeadEvent], on_head: Callable[[shapes.Head], None], *,
                     on_invalid: Callable[[str], None] | None = None) -> None:
    """Call ``on_head`` with every well-formed header until ``events`` ends."""
    async for event in events:
        try:
            head = read_head(event)
        except InvalidResponse:
            if on_invalid is not None:
                on_invalid("head")
            continue
        if head is not None:
            on_head(head)


async def head_numbers(events: AsyncIterable[HeadEvent], fees: FeeOracle | None = None) -> AsyncIterator[int]:
    async for event in events:
        try:
            head = read_head(event)
        except InvalidResponse:
            continue
        if head is None:
            continue
        if fees is not None:
            fees.on_head(head.base_fee)
        yield head.number
