"""What the fault proxy does to traffic, as a pure, seeded plan.

A ``FaultPlan`` says how much latency to add and how often each fault happens; a
``FaultDecider`` turns it into per-request decisions with its own seeded RNG, so a run with
the same plan and the same request order injects the same faults. At most one fault per HTTP
request: a single uniform draw picks it by the cumulative rates, so the rates are exact
probabilities and must sum to at most 1.

The text form (``FaultPlan.parse`` / ``str``) is what results record as the network profile,
e.g. ``latency=5ms,jitter=2ms,error=0.01,5xx=0.01,429=0.01,drop=0.01,garbage=0.01,seed=7``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from harness.errors import ConfigError

FaultKind = Literal["pass", "rpc_error", "http_5xx", "rate_limited", "drop", "garbage"]
FAULT_KINDS: tuple[FaultKind, ...] = ("rpc_error", "http_5xx", "rate_limited", "drop", "garbage")

# text key -> field name, in the canonical order of the text form
_KEYS = {
    "latency": "latency_ms",
    "jitter": "jitter_ms",
    "error": "rpc_error_rate",
    "5xx": "http_5xx_rate",
    "429": "rate_limit_rate",
    "retry_after": "retry_after_s",
    "drop": "drop_rate",
    "garbage": "garbage_rate",
    "ws_drop_after": "ws_drop_after",
    "seed": "seed",
}
_MS_KEYS = {"latency", "jitter"}
_S_KEYS = {"retry_after"}


@dataclass(frozen=True)
class FaultPlan:
    """Latency is ``latency_ms`` plus a normal jitter of std ``jitter_ms``, clipped at zero."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rpc_error_rate: float = 0.0
    http_5xx_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after_s: float = 1.0
    drop_rate: float = 0.0
    garbage_rate: float = 0.0
    ws_drop_after: int | None = None  # close each WebSocket after this many messages (both ways)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("latency_ms", "jitter_ms", "retry_after_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"fault plan: {name} must be a finite number >= 0, got {value!r}")
        for kind in FAULT_KINDS:
            rate = self.rate(kind)
            if not (math.isfinite(rate) and 0 <= rate <= 1):
                raise ConfigError(f"fault plan: {kind} rate must be in [0, 1], got {rate!r}")
        total = sum(self.rate(k) for k in FAULT_KINDS)
        if total > 1 + 1e-12:
            raise ConfigError(f"fault plan: the fault rates add up to {total:g} > 1; lower some of them")
        if self.ws_drop_after is not None and self.ws_drop_after < 1:
            raise ConfigError(f"fault plan: ws_drop_after must be >= 1 (or unset), got {self.ws_drop_after}")

    def rate(self, kind: FaultKind) -> float:
        if kind == "pass":
            return max(0.0, 1 - sum(self.rate(k) for k in FAULT_KINDS))
        return {
            "rpc_error": self.rpc_error_rate,
            "http_5xx": self.http_5xx_rate,
            "rate_limited": self.rate_limit_rate,
            "drop": self.drop_rate,
            "garbage": self.garbage_rate,
        }[kind]

    @property
    def is_clean(self) -> bool:
        return self == FaultPlan(seed=self.seed)

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """``key=value`` pairs separated by commas; an empty string is the clean plan."""
        values: dict[str, object] = {}
        for item in filter(None, (p.strip() for p in text.split(","))):
            key, sep, raw = item.partition("=")
            key = key.strip().lower()
            if not sep or key not in _KEYS:
                raise ConfigError(f"fault plan: bad item {item!r}; known keys: {', '.join(_KEYS)} (as key=value)")
            raw = raw.strip().lower()
            try:
                if key in ("ws_drop_after", "seed"):
                    values[_KEYS[key]] = int(raw)
                elif key in _MS_KEYS:
                    values[_KEYS[key]] = _duration(raw, {"ms": 1.0, "us": 1e-3, "s": 1e3})
                elif key in _S_KEYS:
                    values[_KEYS[key]] = _duration(raw, {"ms": 1e-3, "us": 1e-6, "s": 1.0})
                else:
                    values[_KEYS[key]] = float(raw.removesuffix("%")) / (100 if raw.endswith("%") else 1)
            except ValueError:
                raise ConfigError(f"fault plan: {key}={raw!r} is not a number; e.g. latency=5ms, error=0.01") from None
        return cls(**values)  # type: ignore[arg-type]

    def __str__(self) -> str:
        default = FaultPlan()
        parts = []
        for key, name in _KEYS.items():
            value = getattr(self, name)
            if value == getattr(default, name) and key != "seed":
                continue
            if key in _MS_KEYS:
                parts.append(f"{key}={_num(value)}ms")
            elif key in _S_KEYS:
                parts.append(f"{key}={_num(value)}s")
            else:
                parts.append(f"{key}={_num(value)}" if isinstance(value, float) else f"{key}={value}")
        return ",".join(parts)


def _num(x: float) -> str:
    # Short when it reads back exactly, else the exact repr: parse(str(plan)) == plan.
    short = f"{x:g}"
    return short if float(short) == x else repr(x)


def _duration(raw: str, scales: dict[str, float]) -> float:
    """A number with an optional unit suffix; the unit whose scale is 1 is the default (exact)."""
    for suffix, scale in scales.items():
        if raw.endswith(suffix):
            number = float(raw[: -len(suffix)])
            return number if scale == 1.0 else number * scale
    return float(raw)


@dataclass(frozen=True)
class Decision:
    kind: FaultKind
    delay_s: float


class FaultDecider:
    """Draws decisions for a plan from its own RNG (seeded by ``plan.seed``)."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._rng = random.Random(plan.seed)
        edges: list[tuple[float, FaultKind]] = []
        acc = 0.0
        for kind in FAULT_KINDS:
            acc += plan.rate(kind)
            edges.append((acc, kind))
        self._edges = edges

    def delay(self) -> float:
        """One added latency, in seconds."""
        p = self.plan
        if p.jitter_ms == 0:
            return p.latency_ms / 1e3
        return max(0.0, self._rng.gauss(p.latency_ms, p.jitter_ms)) / 1e3

    def decide(self) -> Decision:
        u = self._rng.random()
        kind: FaultKind = "pass"
        for edge, k in self._edges:
            if u < edge:
                kind = k
                break
        return Decision(kind, self.delay())
