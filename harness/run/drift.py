"""Drift within a scenario: the same rate judged early and late (pure).

A bot that slows down as a scenario goes on (a growing queue, a cache that stops hitting, a node
whose state grows) shows as a late half slower than the early half at the same offered rate. The
halves are compared per latency operation with the same test the regression row uses (interval
means, Mann-Whitney U, Holm over the operations, a bootstrap CI of the late/early ratio, a noise
threshold), so "drifted" means what "regressed" means between runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.slo.extract import latency_series
from harness.stats.change import compare_series

OPERATIONS = ("tx_submission", "price_fetch", "balance_check", "trade_execution")
WARMUP_S = 2.0
MIN_INTERVALS = 6  # per half: fewer interval means cannot show a difference at alpha 0.05


def drift(intervals: Sequence[Mapping[str, Any]], schedule_s: float, *, noise: float = 0.10,
          alpha: float = 0.05, n_boot: int = 300) -> dict[str, Any]:
    """``{"checked": bool, "early": [a, b], "late": [c, d], "ops": {op: {...}}, "drifted": [ops]}``."""
    start, end = WARMUP_S, schedule_s
    mid = (start + end) / 2
    early = [iv for iv in intervals if start <= float(iv["start"]) and float(iv["end"]) <= mid]
    late = [iv for iv in intervals if mid <= float(iv["start"]) and float(iv["end"]) <= end]
    out: dict[str, Any] = {"checked": False, "early": [start, mid], "late": [mid, end], "ops": {}, "drifted": [],
                           "noise": noise}
    if len(early) < MIN_INTERVALS or len(late) < MIN_INTERVALS:
        out["note"] = f"too short to check drift (needs {MIN_INTERVALS} s per half after a {WARMUP_S:g} s warm-up)"
        return out
    pairs = {}
    for op in OPERATIONS:
        a, b = latency_series(early, op, "early"), latency_series(late, op, "late")
        if a.total and b.total:
            pairs[op] = (a, b)
    if not pairs:
        return out
    comps = compare_series(pairs, alpha=alpha, noise=noise, n_boot=n_boot)
    out["checked"] = True
    for c in comps:
        out["ops"][c.name] = {"ratio": round(c.ratio.value, 4),
                              "ci": [round(c.ratio.lo, 4), round(c.ratio.hi, 4)] if c.ratio.has_ci else None,
                              "p_adjusted": c.p_adjusted, "change": c.change}
        if c.change == "regression":
            out["drifted"].append(c.name)
    return out
