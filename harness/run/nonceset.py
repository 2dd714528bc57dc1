"""Sets of nonces as sorted, disjoint closed ranges (pure): a run's nonces stay a few ranges, not millions of ints.

The harness keeps its own few lines rather than import the bot's ``NonceRanges``: a reconciliation
that shared code with what it checks could not catch that code's bugs.
"""

from __future__ import annotations

from collections.abc import Iterable

Range = tuple[int, int]  # [lo, hi], inclusive


def normalize(ranges: Iterable[Range]) -> list[Range]:
    """Sorted, merged (overlapping or adjacent joined), empty ranges dropped."""
    out: list[Range] = []
    for lo, hi in sorted(r for r in ranges if r[0] <= r[1]):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def of(values: Iterable[int]) -> list[Range]:
    return normalize((v, v) for v in values)


def size(ranges: Iterable[Range]) -> int:
    return sum(hi - lo + 1 for lo, hi in ranges)


def minus(a: Iterable[Range], b: Iterable[Range]) -> list[Range]:
    """Nonces in ``a`` and not in ``b``."""
    cut = normalize(b)
    out: list[Range] = []
    for lo, hi in normalize(a):
        cur = lo
        for blo, bhi in cut:
            if bhi < cur:
                continue
            if blo > hi:
                break
            if blo > cur:
                out.append((cur, blo - 1))
            cur = max(cur, bhi + 1)
            if cur > hi:
                break
        if cur <= hi:
            out.append((cur, hi))
    return out


def intersect(a: Iterable[Range], b: Iterable[Range]) -> list[Range]:
    na = normalize(a)
    return minus(na, minus(na, b))


def first(ranges: Iterable[Range], k: int) -> list[int]:
    """The lowest ``k`` nonces (for listing a few of many)."""
    out: list[int] = []
    for lo, hi in normalize(ranges):
        for n in range(lo, min(hi, lo + k - len(out) - 1) + 1):
            out.append(n)
        if len(out) >= k:
            break
    return out
