"""The end-to-end tier's schedule (pure): which bot trades in which window, for how long, on which ticks.

Windows come in *quartets* ordered ABBA or BAAB (chosen at random per quartet, seeded), so a load
that rises or falls steadily over a quartet lands on both revisions alike: with positions 1-4 and a
linear drift, base gets 1 + 4 and head 2 + 3 (or the reverse), the same sum. Each quartet is two
*pairs* of adjacent windows, one of each revision: a pair is the unit of the paired comparison (as a
process pair is in the micro tier). Both windows of a pair last the same time and replay the same
ticks (one tick seed per pair); the length is drawn per quartet around the nominal one, so that no
periodic disturbance on the machine (a cron job, another tenant's loop) keeps falling on one side
(Abedi and Brecht, ICPE 2017: randomized multiple interleaved trials).

The two middle windows of a quartet belong to the same revision: they are an A/A pair measured in
the same job, under the same conditions as the A/B pairs, and their spread is the noise floor of the
comparison (``harness.gate.e2estats``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

SideName = Literal["base", "head"]
ORDERS: tuple[tuple[SideName, SideName, SideName, SideName], ...] = (
    ("base", "head", "head", "base"),  # ABBA
    ("head", "base", "base", "head"),  # BAAB
)


@dataclass(frozen=True)
class Window:
    index: int  # 0.. in the order they run
    quartet: int
    pair: int  # 0.. over the whole run: quartet q holds pairs 2q (positions 0, 1) and 2q + 1 (2, 3)
    position: int  # 0..3 within the quartet
    side: SideName
    seconds: float  # measured length (after the warm-up)
    tick_seed: int  # the feed's seed: the same for both windows of a pair

    @property
    def tag(self) -> str:
        """The feed tag of the measured ticks: the bot's telemetry keeps them apart by it."""
        return f"gate/{self.index}"

    @property
    def warm_tag(self) -> str:
        return f"gate-warm/{self.index}"


def quartet_windows(quartet: int, order: tuple[SideName, ...], seconds: float, seed: int) -> list[Window]:
    """The four windows of one quartet, given its order and length (pure)."""
    if len(order) != 4 or sorted(order) != ["base", "base", "head", "head"]:
        raise ValueError(f"a quartet holds two windows of each revision, got {order}")
    out = []
    for pos, side in enumerate(order):
        pair = 2 * quartet + pos // 2
        out.append(Window(index=4 * quartet + pos, quartet=quartet, pair=pair, position=pos, side=side,
                          seconds=seconds, tick_seed=seed * 100_003 + pair))
    return out


def plan(quartets: int, *, seconds: float, jitter: float = 0.25, seed: int = 0) -> list[Window]:
    """``quartets`` ABBA/BAAB quartets; each quartet's window length is ``seconds * U(1 - jitter, 1 + jitter)``."""
    if quartets < 1:
        raise ValueError(f"quartets must be >= 1, got {quartets}")
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    if not 0 <= jitter < 1:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")
    rng = random.Random(seed)
    out: list[Window] = []
    for q in range(quartets):
        order = ORDERS[rng.randrange(2)]
        length = round(seconds * rng.uniform(1 - jitter, 1 + jitter), 2)
        out.extend(quartet_windows(q, order, length, seed))
    return out


def next_quartet(done: int, *, seconds: float, jitter: float = 0.25, seed: int = 0) -> list[Window]:
    """Quartet number ``done`` of ``plan(...)``, for a run that decides quartet by quartet whether
    another one fits its time budget (the same windows ``plan`` would have given)."""
    return plan(done + 1, seconds=seconds, jitter=jitter, seed=seed)[-4:]
