"""``--budget``: the gate's time split between its tiers, and rounds fitted to what is left (pure).

A gate that takes 3.5 minutes on one machine took 9 on another: a fixed number of rounds has a
machine-dependent cost. Under a budget the gate fixes the *time* instead and measures as much as fits,
then reports what that bought: the minimum detectable effect per benchmark (``harness.gate.mde``).

- The budget is split between the tiers that run (``MICRO_SHARE``: why the micro tier gets the
  larger part); the micro tier's share is split again between the wall-clock rounds and the
  instruction counts.
- The micro tier times its first round of each case and gives the case as many rounds as fit in its
  part of what is left (between ``MIN_ROUNDS`` and ``MAX_ROUNDS``); a case not begun when its time is
  up is skipped, with that reason. Set-up dominates on a slow box (each of 24 worker processes
  imports what the cases need, and ``stats.verdict_1m`` builds 1M samples in each), which is why
  the registry's slowest cases come last.
- The instruction-count processes are stopped when their share is spent; the cases they finished
  are kept.
- The end-to-end tier runs quartets while the next one, at the mean cost so far, still ends in time
  (``harness.gate.e2e.quartets_fit``); a tier that finishes early leaves its time to the next.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from harness.errors import ConfigError

MIN_ROUNDS = 3  # the decision needs a median of several slots per process
MAX_ROUNDS = 64  # past this the between-process spread dominates: more rounds buy nothing
# Of the whole budget, when both tiers run. Measured 2026-12-07 on the 2-core VM (CPU reference
# 2.8-5.7M it/s): 4 end-to-end quartets (~150 s) resolved +4.7% of CPU per trade (median MDE over 40
# proof runs), while the instruction counts of all 15 cases took 101 s; the micro tier gets the
# larger share so that a machine 1.5x slower still finishes every count in a 10-minute gate.
MICRO_SHARE = 0.55
# Of the micro tier's share, when the instruction-count tier runs too: its three valgrind processes
# (base, base again, head) need 100 s here for every case together, set-up uninstrumented.
WALL_SHARE = 0.45
SLACK_S = 15.0  # reports, worktree removal, process exits: kept out of every tier's share
MIN_BUDGET_S = 60.0

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([hms]?)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}


def parse_duration(text: str) -> float:
    """``10m``, ``90s``, ``1h``, ``1m30s`` or plain seconds (``600``) -> seconds."""
    s = text.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None or m.end() == pos:
            raise ConfigError(f"--budget {text!r}: write a duration such as 10m, 90s, 1m30s or 600")
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if not s or total <= 0 or not math.isfinite(total):
        raise ConfigError(f"--budget {text!r}: write a duration such as 10m, 90s, 1m30s or 600")
    return total


@dataclass(frozen=True)
class Budget:
    total_s: float
    micro_wall_s: float
    micro_callgrind_s: float
    e2e_s: float

    @property
    def micro_s(self) -> float:
        return self.micro_wall_s + self.micro_callgrind_s

    def as_dict(self) -> dict[str, float]:
        return {"total_s": self.total_s, "micro_wall_s": round(self.micro_wall_s, 1),
                "micro_callgrind_s": round(self.micro_callgrind_s, 1), "e2e_s": round(self.e2e_s, 1)}


def split(total_s: float, *, micro: bool, e2e: bool, callgrind: bool) -> Budget:
    """Each tier's planned share of ``total_s`` (a tier that ends early passes its time on)."""
    if total_s < MIN_BUDGET_S:
        raise ConfigError(f"--budget {total_s:g} s is too short; give at least {MIN_BUDGET_S:g} s (e.g. 10m)")
    if not (micro or e2e):
        raise ConfigError("--budget: no tier to run")
    usable = total_s - SLACK_S
    micro_s = usable * (MICRO_SHARE if e2e else 1.0) if micro else 0.0
    wall_s = micro_s * (WALL_SHARE if callgrind else 1.0)
    return Budget(total_s, wall_s, micro_s - wall_s, usable - micro_s if e2e else 0.0)


def rounds_that_fit(remaining_s: float, cases_left: int, round_cost_s: float, *, min_rounds: int = MIN_ROUNDS,
                    max_rounds: int = MAX_ROUNDS) -> int:
    """Rounds for the next case: its even part of the time left, at ``round_cost_s`` a round."""
    if cases_left < 1:
        raise ValueError(f"cases_left must be >= 1, got {cases_left}")
    if round_cost_s <= 0:
        return max_rounds
    fit = math.floor(max(0.0, remaining_s) / cases_left / round_cost_s)
    return max(min_rounds, min(max_rounds, fit))
