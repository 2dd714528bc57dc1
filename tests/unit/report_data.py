"""Cached synthetic results documents for the report tests (generating one takes about a second)."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from harness.report.fixtures import synthetic_results


@cache
def _cached(seed: int, slow: tuple[tuple[str, float], ...]) -> dict[str, Any]:
    return synthetic_results(seed, slowdown=dict(slow))


def results(seed: int = 1, **slowdown: float) -> dict[str, Any]:
    """A fresh (deep-copied, safe to mutate) synthetic results document."""
    return copy.deepcopy(_cached(seed, tuple(sorted(slowdown.items()))))
