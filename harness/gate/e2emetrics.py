"""One end-to-end window's figures from the bot's own telemetry (pure): latency per operation, CPU per trade.

The bot tags everything a tick causes with the tick's tag (``bot.telemetry.recorder``), so a
window's figures are its measured ticks' own: the warm-up ticks before it carry another tag, and an
interval that straddles the start counts only this window's slices (``harness.run.collect.own_view``).
A bot without tags (an old base revision) is read whole from the intervals that ended after the
measured part began; the warm-up was drained before it, so those hold only this window's work.

CPU per trade is the bot process tree's CPU time over the measured part (from just before its first
tick to the moment its last trade was confirmed) divided by its confirmed trades, as
``harness.perf.cpu`` defines the figure for whole runs.

The machine's speed moves under that figure. On this project's 2-core VM a fixed loop ran 7-14M
iterations per CPU second minutes apart, and adjacent windows of identical code differed 6.7% in CPU
per trade (root mean square over 20 pairs). Beside the bot, in the same seconds, the node mines the
same transactions and the harness sends the same ticks: their CPU over the window (the *reference*)
is a workload the code under test does not change, and it slows with the machine. Bot CPU per trade
divided by reference CPU per trade spread 2.6% over the same pairs (``harness.gate.e2estats`` uses
it; ``node_cpu_per_trade`` is judged on its own, so a revision that moves work onto the node shows).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from scipy import stats as sps

from harness.run.collect import own_view, tag_filter
from harness.stats.histograms import merge_encoded

OPERATIONS = ("trade_execution", "tx_submission", "price_fetch", "balance_check")
STATS = ("mean", "p99")
CPU_METRIC = "bot_cpu_per_trade"
NODE_CPU_METRIC = "node_cpu_per_trade"
# The order of the table: the whole trade first, then what it is made of, then its CPU.
METRICS: tuple[str, ...] = (*(f"{op}.{s}" for op in OPERATIONS for s in STATS), CPU_METRIC, NODE_CPU_METRIC)
ERROR_COUNTERS = ("trades_reverted", "trades_failed", "trades_rejected", "trades_dropped")


@dataclass(frozen=True)
class OpStats:
    count: int
    mean_us: float
    p99_us: float


@dataclass(frozen=True)
class WindowMetrics:
    """What one bot measured in one window, and the conditions it ran in."""

    index: int
    side: str
    quartet: int
    pair: int
    position: int
    seconds: float  # the measured schedule's length
    ops: dict[str, OpStats] = field(default_factory=dict)
    trades_ok: int = 0
    errors: int = 0
    skipped: int = 0
    sent: int = 0  # the measured trade signals the feed wrote to the bot's socket
    cpu_s: float = 0.0
    node_cpu_s: float = 0.0  # the node's CPU over the same span (0: not measured, an old gate.json)
    harness_cpu_s: float = 0.0  # this process's (the feed's, the polls') over the same span
    cpu_wall_s: float = 0.0  # how long the CPU clock ran (schedule + drain)
    blocks_at_start: int | None = None  # the chain's age when the measured ticks began
    revert_ok: bool = True
    phases_s: dict[str, float] = field(default_factory=dict)  # where the window's wall time went

    @property
    def unaccounted(self) -> int:
        """Signals sent that reached no outcome counter by the time the window was read."""
        return max(0, self.sent - self.trades_ok - self.errors - self.skipped)

    def _per_trade_us(self, cpu_s: float, measured: bool) -> float | None:
        return cpu_s * 1e6 / self.trades_ok if self.trades_ok > 0 and measured else None

    @property
    def cpu_per_trade_us(self) -> float | None:
        return self._per_trade_us(self.cpu_s, self.cpu_s > 0)

    @property
    def node_cpu_per_trade_us(self) -> float | None:
        return self._per_trade_us(self.node_cpu_s, self.node_cpu_s > 0)

    @property
    def reference_cpu_per_trade_us(self) -> float | None:
        """The node's and the harness's CPU per trade: work the bot's code does not change."""
        return self._per_trade_us(self.node_cpu_s + self.harness_cpu_s, self.node_cpu_s > 0)

    def value(self, metric: str) -> float | None:
        """The window's figure for ``metric`` (``trade_execution.mean``, ``bot_cpu_per_trade``...)."""
        if metric == CPU_METRIC:
            return self.cpu_per_trade_us
        if metric == NODE_CPU_METRIC:
            return self.node_cpu_per_trade_us
        op, _, stat = metric.rpartition(".")
        s = self.ops.get(op)
        if s is None or s.count == 0:
            return None
        v = s.mean_us if stat == "mean" else s.p99_us
        return v if v > 0 else None

    def samples(self, metric: str) -> int:
        if metric in (CPU_METRIC, NODE_CPU_METRIC):
            return self.trades_ok
        s = self.ops.get(metric.rpartition(".")[0])
        return 0 if s is None else s.count


@dataclass(frozen=True)
class TradeCounts:
    ok: int
    errors: int
    skipped: int


def window_ops(intervals: Iterable[Mapping[str, Any]], tag: str, since_wall: float
               ) -> tuple[dict[str, OpStats], TradeCounts]:
    """Per-operation statistics and trade outcomes of ``tag``'s ticks.

    ``since_wall``: when the measured part began; intervals that ended earlier hold warm-up only.
    """
    own = tag_filter(tag)
    hists: dict[str, list[str]] = {}
    counters: dict[str, int] = {}
    for iv in intervals:
        if float(iv["end"]) <= since_wall:
            continue
        h, c = own_view(iv, own)
        for op in OPERATIONS:
            if op in h:
                hists.setdefault(op, []).append(h[op])
        for k, n in c.items():
            counters[k] = counters.get(k, 0) + int(n)
    ops = {}
    for op, texts in hists.items():
        merged = merge_encoded(texts, where=op)
        n = int(merged.get_total_count())
        if n:
            ops[op] = OpStats(n, float(merged.get_mean_value()), float(merged.get_value_at_percentile(99.0)))
    errors = sum(counters.get(k, 0) for k in ERROR_COUNTERS)
    return ops, TradeCounts(counters.get("trades_ok", 0), errors, counters.get("trades_skipped", 0))


@lru_cache(maxsize=4096)
def quantile_ci_ranks(n: int, q: float = 0.99, confidence: float = 0.95) -> tuple[int, int]:
    """1-based ranks of the order statistics that bound the ``q`` quantile's distribution-free CI.

    The number of samples below the true quantile is Binomial(n, q); the CI runs from the sample of
    rank ``lower`` to the one of rank ``upper``. A rank outside 1..n means that end is unbounded.
    """
    if n < 1:
        return 0, 1
    a = (1 - confidence) / 2
    lower = int(sps.binom.ppf(a, n, q))
    upper = int(sps.binom.ppf(1 - a, n, q)) + 1
    return lower, upper


def quantile_judgeable(n: int, q: float = 0.99, confidence: float = 0.95) -> bool:
    """Whether ``n`` samples pin the ``q`` quantile down: both CI ends inside the sample, and the upper
    one below the maximum, so that no single extreme sample sets it (about 560 samples for a p99)."""
    lower, upper = quantile_ci_ranks(n, q, confidence)
    return lower >= 1 and upper <= n - 1


def min_samples(q: float = 0.99, confidence: float = 0.95, limit: int = 1_000_000) -> int:
    """The fewest samples from which ``quantile_judgeable`` holds for every larger count too."""
    lo = 1
    # The rule is monotone except for the binomial's discreteness near the edge: search a bound,
    # then walk down while it still holds.
    hi = max(2, math.ceil(10 / (1 - q)))
    while not quantile_judgeable(hi, q, confidence):
        hi *= 2
        if hi > limit:
            raise ValueError(f"no sample count up to {limit} judges the {q} quantile")
    n = hi
    while n - 1 >= lo and quantile_judgeable(n - 1, q, confidence):
        n -= 1
    return n
