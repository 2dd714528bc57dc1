"""Waiting on a condition with a deadline: the one way tests wait (never a fixed sleep).

The deadline bounds how long a test waits before it fails, not how fast the code must be: it is
generous so that a machine 2-3x slower still passes, and a condition met early ends the wait at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def until(cond: Callable[[], bool], within: float = 30.0, what: str = "condition",
                every: float = 0.005) -> None:
    """Polls ``cond`` every ``every`` seconds until it holds; AssertionError naming ``what`` after ``within``."""
    try:
        async with asyncio.timeout(within):
            while not cond():
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"{what} not reached within {within:g} s") from None


async def value(fetch: Callable[[], Awaitable[T | None]], within: float = 30.0, what: str = "value",
                every: float = 0.02) -> T:
    """``until`` for a condition that must be awaited (an RPC): polls ``fetch`` until it returns something
    other than None, and returns that; AssertionError naming ``what`` after ``within``."""
    try:
        async with asyncio.timeout(within):
            while (got := await fetch()) is None:
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"{what} not reached within {within:g} s") from None
    return got
