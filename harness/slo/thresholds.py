"""k6-style threshold expressions: ``"p(95) < 100"``, ``"avg < 50"``, ``"rate < 0.001"``, ``"value >= 500"``.

Grammar (whitespace optional between tokens)::

    threshold  := aggregate op number
    aggregate  := "avg" | "min" | "max" | "med" | "count" | "rate" | "value" | "p(" number ")"
    op         := "<" | "<=" | ">" | ">="
    number     := decimal with optional sign, fraction and exponent (no units: the row has the unit)

``str()`` of a parsed threshold is its canonical text, and parsing it again gives the same value.
k6's ``==`` and ``!=`` are rejected: an equality cannot be judged with a confidence interval.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from harness.errors import ConfigError
from harness.stats.verdict import Op

AGGREGATES = ("avg", "min", "max", "med", "count", "rate", "value")
_STAT_NAME = {"avg": "mean", "med": "p50", "min": "min", "max": "max", "count": "count", "rate": "rate",
              "value": "value"}
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_PATTERN = re.compile(
    rf"^\s*(?:(?P<agg>[a-z]+)|p\s*\(\s*(?P<pct>{_NUMBER})\s*\))\s*(?P<op><=|>=|==|!=|<|>|=)\s*(?P<num>{_NUMBER})\s*$"
)
_BARE_PCT = re.compile(r"^\s*p(\d+(?:\.\d+)?)\s*[<>=!]")
EXAMPLES = '"p(95) < 100", "avg < 50", "rate < 0.001", "value >= 500"'


def format_number(value: float) -> str:
    """Shortest text that parses back to exactly ``value`` (integers without ``.0``)."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@dataclass(frozen=True)
class Threshold:
    """A parsed threshold. ``percentile`` is set only for ``p(N)``."""

    aggregate: str
    op: Op
    value: float
    percentile: float | None = None

    @property
    def stat(self) -> str:
        """The statistic's name in verdicts: ``avg -> "mean"``, ``p(95) -> "p95"``, ``med -> "p50"``."""
        if self.percentile is not None:
            return f"p{self.percentile:g}"
        return _STAT_NAME[self.aggregate]

    def __str__(self) -> str:
        left = f"p({format_number(self.percentile)})" if self.percentile is not None else self.aggregate
        return f"{left} {self.op} {format_number(self.value)}"


def parse_threshold(text: object, *, where: str = "threshold") -> Threshold:
    """Parse one expression; errors name ``where`` (e.g. ``"row tx_submission thresholds[1].expr"``)."""
    if not isinstance(text, str):
        raise ConfigError(f"{where}: expected a string like {EXAMPLES}, got {type(text).__name__}")
    m = _PATTERN.match(text)
    bare = _BARE_PCT.match(text)
    if m is None and bare is not None:
        raise ConfigError(f"{where}: {text!r}: write the percentile as p({bare.group(1)}), not p{bare.group(1)} "
                          f"(aggregates: {', '.join(AGGREGATES)}, p(N))")
    if m is None:
        raise ConfigError(
            f"{where}: cannot parse {text!r}: write '<aggregate> <op> <number>', e.g. {EXAMPLES} "
            f"(aggregates: {', '.join(AGGREGATES)}, p(N); ops: <, <=, >, >=; no units)"
        )
    op = m.group("op")
    if op in ("==", "!=", "="):
        raise ConfigError(f"{where}: {text!r} uses {op!r}: an equality cannot be judged with a confidence "
                          f"interval; use one of <, <=, >, >=")
    value = float(m.group("num"))
    if not math.isfinite(value):
        raise ConfigError(f"{where}: {text!r}: the threshold must be a finite number")
    pct_text = m.group("pct")
    if pct_text is not None:
        pct = float(pct_text)
        if not 0.0 < pct <= 100.0:
            raise ConfigError(f"{where}: {text!r}: the percentile must be in (0, 100], e.g. p(99)")
        return Threshold("p", op, value, pct)  # type: ignore[arg-type]
    agg = m.group("agg")
    if agg not in AGGREGATES:
        raise ConfigError(f"{where}: {text!r}: unknown aggregate {agg!r}: use one of "
                          f"{', '.join(AGGREGATES)} or p(N)")
    return Threshold(agg, op, value)  # type: ignore[arg-type]
