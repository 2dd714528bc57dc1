"""``Recent``: the last answer of an async fetch, reused for a short time, one fetch at a time.

The gateway's ``/status`` and ``/metrics`` each cost a call to every child (and ``/metrics`` a parse and
merge of every exposition), while a single bot answers them from memory. Under the harness's API load
(hundreds of requests a second, a third of them ``/status``) that would multiply the children's load by
the request rate; a fresh-enough answer shared by the requests of a fraction of a second does not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Recent(Generic[T]):
    def __init__(self, fetch: Callable[[], Awaitable[T]], ttl_s: float) -> None:
        self._fetch = fetch
        self.ttl_s = ttl_s
        self._value: tuple[float, T] | None = None
        self._pending: asyncio.Future[T] | None = None
        self.fetches = 0

    def __repr__(self) -> str:
        return f"<Recent ttl={self.ttl_s:g}s fetches={self.fetches}>"

    async def get(self) -> T:
        """An answer at most ``ttl_s`` old; concurrent callers wait for the same fetch."""
        if self._value is not None and time.monotonic() - self._value[0] < self.ttl_s:
            return self._value[1]
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._refresh())
        # shield: one caller's cancellation (a client that went away) must not cancel the others' fetch
        return await asyncio.shield(self._pending)

    async def _refresh(self) -> T:
        try:
            self.fetches += 1
            value = await self._fetch()
            self._value = (time.monotonic(), value)
            return value
        finally:
            self._pending = None
