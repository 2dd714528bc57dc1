"""How the node mines blocks, as a value: automine, interval mining, or manual (``evm_mine``).

The mode is part of every result's conditions (a latency measured under automine is not the
same number as one under 1 s blocks), so it has one canonical string form, ``str(mode)``:
``"automine"``, ``"interval:0.05s"``, ``"manual"``; ``MiningMode.parse`` reads it back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from harness.errors import ConfigError

MiningKind = Literal["automine", "interval", "manual"]


@dataclass(frozen=True)
class MiningMode:
    kind: MiningKind = "automine"
    interval_s: float | None = None

    def __post_init__(self) -> None:
        if self.kind == "interval":
            if self.interval_s is None or not math.isfinite(self.interval_s) or self.interval_s <= 0:
                raise ConfigError(
                    f"mining interval must be a positive number of seconds, got {self.interval_s!r}; "
                    "use e.g. MiningMode.interval(0.05) or 'interval:1s'"
                )
        elif self.interval_s is not None:
            raise ConfigError(f"mining mode {self.kind!r} takes no interval (got {self.interval_s!r})")

    @classmethod
    def automine(cls) -> MiningMode:
        return cls("automine")

    @classmethod
    def interval(cls, seconds: float) -> MiningMode:
        return cls("interval", float(seconds))

    @classmethod
    def manual(cls) -> MiningMode:
        return cls("manual")

    @classmethod
    def parse(cls, text: str) -> MiningMode:
        """Read ``automine``, ``manual``, ``interval:0.05s`` / ``interval:0.05`` / ``interval:50ms``."""
        s = text.strip().lower()
        if s in ("automine", "manual"):
            return cls(s)  # type: ignore[arg-type]
        if s.startswith("interval:"):
            value = s.removeprefix("interval:")
            scale = 1.0
            if value.endswith("ms"):
                value, scale = value[:-2], 0.001
            elif value.endswith("s"):
                value = value[:-1]
            try:
                seconds = float(value) * scale
            except ValueError:
                seconds = math.nan
            if not math.isfinite(seconds) or seconds <= 0:
                raise ConfigError(
                    f"mining: bad interval in {text!r}; write e.g. 'interval:1s', 'interval:0.05s' or 'interval:50ms'"
                )
            return cls.interval(seconds)
        raise ConfigError(f"mining: unknown mode {text!r}; use 'automine', 'manual' or 'interval:<seconds>s'")

    def anvil_args(self) -> list[str]:
        """The anvil command-line flags for this mode (anvil 1.7.1 accepts fractional --block-time)."""
        if self.kind == "interval":
            return ["--block-time", _fmt(self.interval_s)]
        if self.kind == "manual":
            return ["--no-mining"]
        return []

    def __str__(self) -> str:
        if self.kind == "interval":
            return f"interval:{_fmt(self.interval_s)}s"
        return self.kind


def _fmt(x: float | None) -> str:
    # Short form when it reads back exactly ("1", "0.05"), else the exact repr, so parse(str(m)) == m.
    assert x is not None
    short = f"{x:g}"
    return short if float(short) == x else repr(x)
