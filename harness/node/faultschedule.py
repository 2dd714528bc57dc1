"""Fault plans that change at run time: a schedule of ``(t, plan)`` changes, pure.

At ``t`` seconds after the proxy starts, the proxy's plan becomes ``plan`` (with a fresh RNG seeded
by its ``seed``); before the first change the proxy runs the plan it was started with. Outage
windows inside a scheduled plan count from the proxy's start too, like every time in a plan.

Two forms:
- text, entries ``T: PLAN`` separated by ``|`` (an empty plan is the clean one), e.g.
  ``10s: loss=0.05,5xx=0.01 | 30s: | 45s: outage=45s-50s``;
- a TOML file (``*.toml``) with an array of tables ``[[schedule]]``, each ``at`` (seconds, or a
  string with a unit) and ``plan`` (the text form).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.node import faulttext as T
from harness.node.faultplan import FaultPlan

MAX_CHANGES = 1000


@dataclass(frozen=True)
class FaultSchedule:
    changes: tuple[tuple[float, FaultPlan], ...] = ()

    def __post_init__(self) -> None:
        if len(self.changes) > MAX_CHANGES:
            raise ConfigError(f"fault schedule: {len(self.changes)} changes; at most {MAX_CHANGES}")
        previous = -math.inf
        for i, (t, _) in enumerate(self.changes, 1):
            if not (math.isfinite(t) and t >= 0):
                raise ConfigError(f"fault schedule: change {i} at {t!r} s; give a time >= 0 s from the proxy's start")
            if t <= previous:
                raise ConfigError(f"fault schedule: change {i} at {T.fmt_num(t)}s is not after the one before it; "
                                  "list the changes in time order, one per time")
            previous = t

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def plan_at(self, t: float) -> FaultPlan | None:
        """The plan the schedule sets by ``t`` (None: no change yet, the starting plan holds)."""
        current = None
        for at, plan in self.changes:
            if at > t:
                break
            current = plan
        return current

    def next_change(self, t: float) -> float | None:
        return next((at for at, _ in self.changes if at > t), None)

    def on_top_of(self, base: FaultPlan) -> FaultSchedule:
        """Every plan of the schedule combined with ``base`` (``FaultPlan.plus``): the network profile under it."""
        return FaultSchedule(tuple((t, base.plus(plan)) for t, plan in self.changes))

    @classmethod
    def parse(cls, text: str) -> FaultSchedule:
        changes = []
        for i, item in enumerate(filter(None, (p.strip() for p in text.split("|"))), 1):
            at, sep, plan = item.partition(":")
            if not sep:
                raise ConfigError(f"fault schedule: change {i} {item!r} has no time; write it as 'T: PLAN', "
                                  "e.g. '10s: loss=0.05 | 30s:'")
            changes.append((_time(at, i), _plan(plan, i, at)))
        return cls(tuple(changes))

    @classmethod
    def from_toml(cls, doc: dict[str, Any], where: str = "schedule file") -> FaultSchedule:
        entries = doc.get("schedule")
        if not isinstance(entries, list):
            raise ConfigError(f"{where}: no [[schedule]] tables; each needs at = SECONDS and plan = \"loss=0.01\"")
        changes = []
        for i, entry in enumerate(entries, 1):
            if not isinstance(entry, dict) or "at" not in entry or not isinstance(entry.get("plan", ""), str):
                raise ConfigError(f"{where}: [[schedule]] {i} needs at = SECONDS (or \"10s\") and plan = \"TEXT\"")
            extra = set(entry) - {"at", "plan"}
            if extra:
                raise ConfigError(f"{where}: [[schedule]] {i} has unknown keys {sorted(extra)}; only at and plan")
            at = entry["at"]
            t = float(at) if isinstance(at, int | float) and not isinstance(at, bool) else _time(str(at), i)
            changes.append((t, _plan(entry.get("plan", ""), i, str(at))))
        return cls(tuple(changes))

    @classmethod
    def load(cls, spec: str) -> FaultSchedule:
        """A path to a ``.toml`` file, else the text form."""
        if spec.strip().lower().endswith(".toml"):
            path = Path(spec.strip())
            try:
                doc = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"fault schedule {path}: {exc}") from None
            return cls.from_toml(doc, where=f"fault schedule {path}")
        return cls.parse(spec)

    def __str__(self) -> str:
        return " | ".join(f"{T.fmt_num(t)}s: {plan}" for t, plan in self.changes)

    def __repr__(self) -> str:
        return f"FaultSchedule('{self}')"


def _time(raw: str, i: int) -> float:
    try:
        return T.parse_duration(raw, T.SECONDS)
    except ValueError:
        raise ConfigError(
            f"fault schedule: change {i} time {raw.strip()!r} cannot be read; e.g. 10s, 1500ms, 2.5") from None


def _plan(text: str, i: int, at: str) -> FaultPlan:
    try:
        return FaultPlan.parse(text)
    except ConfigError as exc:
        raise ConfigError(f"fault schedule: change {i} (at {at.strip()}): {exc}") from None
