"""The end-to-end tier: both revisions' bots, in turn, under one open-loop feed; decisions per operation.

``run_e2e`` runs quartets of windows (``e2eplan``) on one rig (``e2erig``) until it has run
``settings.quartets`` of them, or, under a time budget, until the next quartet would not end before
the deadline (never fewer than ``MIN_QUARTETS``). The figures of every window go into the decision
(``e2estats``) and the report.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.gate.decision import Acknowledgement
from harness.gate.e2emetrics import WindowMetrics
from harness.gate.e2eplan import next_quartet
from harness.gate.e2erig import BotSide, E2ESettings, Rig
from harness.gate.e2estats import E2EDecision, compare_all, decide
from harness.gate.mde import DEFAULT_POWER

MIN_QUARTETS = 2  # four pairs: the fewest a t-test across pairs can use with df >= 3
MAX_QUARTETS_UNDER_BUDGET = 200
# Before any window has run: a bot start, the warm-up, a drain and a stop, besides the measured part.
GUESS_OVERHEAD_S = 6.0


@dataclass(frozen=True)
class E2EResult:
    windows: tuple[WindowMetrics, ...]
    decisions: tuple[E2EDecision, ...]
    settings: dict[str, Any]
    origins: dict[str, str]
    seconds: float  # the whole tier, node start to last bot stop
    window_wall_s: float  # mean wall time per window, start-up included
    revert_failures: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def failing(self) -> bool:
        return any(d.failing for d in self.decisions)


def quartets_fit(done: int, elapsed_s: float, remaining_s: float, guess_quartet_s: float) -> bool:
    """Whether another quartet should start: at least ``MIN_QUARTETS``; then while the mean quartet
    so far (or the guess, before the first) still ends within the time left (pure)."""
    if done < MIN_QUARTETS:
        return True
    per_quartet = elapsed_s / done if done else guess_quartet_s
    return done < MAX_QUARTETS_UNDER_BUDGET and per_quartet <= remaining_s


async def run_windows(rig: Rig, settings: E2ESettings, *, deadline: float | None,
                      progress: Callable[[str], None] | None) -> list[WindowMetrics]:
    windows: list[WindowMetrics] = []
    started = time.monotonic()
    guess = 4 * (settings.window_s + settings.warm_s + GUESS_OVERHEAD_S)
    q = 0
    while True:
        if deadline is None:
            if q >= settings.quartets:
                break
        elif not quartets_fit(q, time.monotonic() - started, deadline - time.monotonic(), guess):
            break
        for win in next_quartet(q, seconds=settings.window_s, jitter=settings.jitter, seed=settings.seed):
            t0 = time.monotonic()
            w = await rig.run_window(win)
            windows.append(w)
            if progress is not None:
                cpu = w.cpu_per_trade_us
                te = w.ops.get("trade_execution")
                progress(f"e2e window {win.index + 1} ({win.side}, {win.seconds:g} s): {w.trades_ok} trades, "
                         f"{'-' if cpu is None else f'{cpu:,.0f}'} µs CPU/trade, trade_execution mean "
                         f"{'-' if te is None else f'{te.mean_us / 1000:.1f}'} ms ({time.monotonic() - t0:.1f} s)")
        q += 1
    return windows


def run_e2e(sides: Mapping[str, BotSide], settings: E2ESettings, run_dir: Path, *,
            acknowledgements: Sequence[Acknowledgement] = (), alpha: float = 0.01, min_effect: float = 0.0,
            p99_max_ci: float = 0.25, power: float = DEFAULT_POWER, deadline: float | None = None,
            common: Mapping[str, Any] | None = None, progress: Callable[[str], None] | None = None,
            python: str = sys.executable) -> E2EResult:
    """Run the tier and decide. ``deadline`` (monotonic) replaces ``settings.quartets`` with a time budget."""
    t0 = time.monotonic()

    async def go() -> tuple[list[WindowMetrics], dict[str, str], int]:
        async with Rig(run_dir, settings, sides, common=common, python=python) as rig:
            windows = await run_windows(rig, settings, deadline=deadline, progress=progress)
            return windows, dict(rig.origins), rig.revert_failures

    windows, origins, reverts = asyncio.run(go())
    seconds = time.monotonic() - t0
    decisions = decide(compare_all(windows, p99_max_ci=p99_max_ci), acknowledgements, alpha=alpha,
                       min_effect=min_effect, power=power)
    notes = []
    if reverts:
        notes.append(f"{reverts} chain reverts did not take: those windows started on a longer chain "
                     "(see blocks_at_start in gate.json)")
    lost = sum(w.unaccounted for w in windows)
    if lost:
        notes.append(f"{lost} trade signals had no outcome when their window was read")
    quartets = len(windows) // 4
    return E2EResult(
        windows=tuple(windows), decisions=tuple(decisions),
        settings={**asdict(settings), "quartets_run": quartets, "p99_max_ci": p99_max_ci, "power": power,
                  "common_bot": dict(common or {}),
                  "sides": {n: {"root": str(s.root), "bot": dict(s.overrides)} for n, s in sides.items()}},
        origins=origins, seconds=round(seconds, 1),
        window_wall_s=round(seconds / max(1, len(windows)), 2), revert_failures=reverts, notes=tuple(notes),
    )  # fmt: skip
