"""Retry timing (pure): exponential backoff with full jitter, and ``Retry-After`` parsing.

Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): the n-th retry waits a
uniform random time in ``[0, min(max_delay, base_delay * 2**n)]``. Randomising the whole
interval spreads the retries of many callers that failed together, so a recovering node is
not hit by a synchronised wave. A server's ``Retry-After`` replaces the computed delay: the
node knows better than our guess. The RNG is injected so schedules are reproducible in tests.
"""

from __future__ import annotations

import email.utils
import math
from dataclasses import dataclass
from typing import Protocol

from bot.rpc.config import RetryPolicy

# 2**62 * any sane base delay is already far past any cap; bounding the exponent avoids overflow.
_MAX_EXPONENT = 62


class Random(Protocol):
    """What we need of ``random.Random``: a uniform float in [0, 1)."""

    def random(self) -> float: ...


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Whether to try again, after how many seconds, and why (for logs and statistics)."""

    retry: bool
    delay: float
    reason: str


def backoff_ceiling(retry_index: int, base_delay: float, max_delay: float) -> float:
    """The upper bound of the ``retry_index``-th (0-based) retry's delay."""
    if retry_index < 0:
        raise ValueError(f"retry_index must be >= 0, got {retry_index}")
    return min(max_delay, base_delay * 2.0 ** min(retry_index, _MAX_EXPONENT))


def full_jitter(retry_index: int, base_delay: float, max_delay: float, rng: Random) -> float:
    """A delay drawn uniformly from ``[0, backoff_ceiling(...)]``."""
    return rng.random() * backoff_ceiling(retry_index, base_delay, max_delay)


def decide(
    policy: RetryPolicy,
    *,
    attempts: int,
    elapsed: float,
    retry_after: float | None,
    rng: Random,
) -> RetryDecision:
    """After ``attempts`` failed tries and ``elapsed`` seconds, should we try again, and when?"""
    if attempts < 1:
        raise ValueError(f"attempts counts tries already made and must be >= 1, got {attempts}")
    if attempts >= policy.max_attempts:
        return RetryDecision(False, 0.0, f"attempts exhausted ({attempts}/{policy.max_attempts})")
    if retry_after is not None:
        if retry_after > policy.max_retry_after:
            return RetryDecision(
                False, 0.0, f"Retry-After {retry_after:g}s exceeds max_retry_after {policy.max_retry_after:g}s"
            )
        delay = max(0.0, retry_after)
        reason = "retry-after"
    else:
        delay = full_jitter(attempts - 1, policy.base_delay, policy.max_delay, rng)
        reason = "backoff"
    if elapsed + delay > policy.budget:
        return RetryDecision(False, 0.0, f"budget exhausted ({elapsed + delay:.3f}s > {policy.budget:g}s)")
    return RetryDecision(True, delay, reason)


def schedule(policy: RetryPolicy, rng: Random) -> list[float]:
    """The delays a call that always fails would wait, ignoring the time budget."""
    return [full_jitter(i, policy.base_delay, policy.max_delay, rng) for i in range(policy.max_attempts - 1)]


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` (delay-seconds or an HTTP-date), else None.

    ``now`` is the current Unix time (wall clock: an HTTP-date is wall clock). A date in the
    past means "now" (0). Unparseable values give None, so the caller falls back to backoff.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
