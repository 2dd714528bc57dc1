"""Open-loop arrival schedules: the intended start time of every operation, computed up front.

A schedule is pure data. It says *when* each operation should start (seconds from the
scenario start) and never looks at how long earlier operations took: that is what makes the
load open-loop, and what lets latency be measured from the intended start (free of
coordinated omission).

Every schedule is exact and bounded:

- ``count`` is known before the run and ``times()`` yields exactly that many offsets;
- offsets are non-decreasing, start at ``0.0`` and stay below ``duration``;
- over any window the number of arrivals differs from the integral of the rate by less than
  one (arrival ``i`` is placed where the cumulative rate reaches ``i``).

Kinds (the ``kind`` in ``results.json`` ``scenarios[].schedule``):

- ``constant``: ``rate`` per second for ``duration`` seconds;
- ``ramp``: rate moving linearly from ``start_rate`` to ``end_rate`` over ``duration``;
- ``steps``: constant segments ``[(rate, duration), ...]`` one after another (stress tests);
- ``burst``: ``count`` operations spread evenly within ``within`` seconds.

``schedule_from_spec`` parses the dict form (as written in scenario files and results.json)
and names the offending field on bad input.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from harness.errors import ConfigError

# A schedule beyond this many operations is almost certainly a typo (100k/s for 1 h is 3.6e8):
# refusing it is better than a generator that runs for a day.
MAX_SCHEDULE_COUNT = 50_000_000
MAX_RATE = 1_000_000.0
MAX_DURATION_S = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Annotation:
    """A labelled instant of the schedule (seconds from the start), shown on report charts."""

    t: float
    label: str


class Schedule(Protocol):
    """What the generator and the feed need from a schedule."""

    @property
    def kind(self) -> str: ...

    @property
    def count(self) -> int: ...

    @property
    def duration(self) -> float: ...

    def times(self) -> Iterator[float]:
        """The intended start offsets in seconds, non-decreasing, exactly ``count`` of them."""
        ...

    def spec(self) -> dict[str, Any]:
        """The JSON form, which ``schedule_from_spec`` turns back into an equal schedule."""
        ...

    def annotations(self) -> list[Annotation]: ...


def _check_positive(name: str, value: float, *, upper: float, allow_zero: bool = False) -> float:
    # bool is an int: a `True` rate is a config mistake, not 1/s.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    if v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")
    if v > upper:
        raise ConfigError(f"{name}={value!r} is above the limit {upper:g}; split the run or lower it")
    return v


def _check_count(count: int) -> int:
    if count > MAX_SCHEDULE_COUNT:
        raise ConfigError(
            f"schedule has {count} operations, above the limit {MAX_SCHEDULE_COUNT}; "
            "lower the rate or the duration"
        )
    return count


def _fmt_rate(rate: float) -> str:
    return f"{rate:g}/s"


@dataclass(frozen=True)
class ConstantRate:
    """``rate`` operations per second for ``duration`` seconds: ``t_i = i / rate``."""

    rate: float
    duration: float

    def __post_init__(self) -> None:
        _check_positive("rate", self.rate, upper=MAX_RATE)
        _check_positive("duration", self.duration, upper=MAX_DURATION_S)
        _check_count(self.count)

    @property
    def kind(self) -> str:
        return "constant"

    @property
    def count(self) -> int:
        # Arrival i sits at i/rate and must be < duration; the epsilon keeps 0.1*30 = 3.0000000004
        # from losing the last arrival to floating-point rounding.
        return max(1, math.ceil(self.rate * self.duration - 1e-9))

    def times(self) -> Iterator[float]:
        rate = float(self.rate)
        for i in range(self.count):
            yield i / rate

    def spec(self) -> dict[str, Any]:
        return {"kind": "constant", "rate": self.rate, "duration": self.duration}

    def annotations(self) -> list[Annotation]:
        return [Annotation(0.0, f"constant {_fmt_rate(self.rate)}")]


@dataclass(frozen=True)
class RampingRate:
    """Rate moving linearly from ``start_rate`` to ``end_rate`` over ``duration`` seconds.

    With ``r(t) = r0 + (r1 - r0) t / D`` the cumulative arrivals are
    ``N(t) = r0 t + (r1 - r0) t^2 / (2 D)``; arrival ``i`` is at the ``t`` where ``N(t) = i``.
    """

    start_rate: float
    end_rate: float
    duration: float

    def __post_init__(self) -> None:
        _check_positive("start_rate", self.start_rate, upper=MAX_RATE, allow_zero=True)
        _check_positive("end_rate", self.end_rate, upper=MAX_RATE, allow_zero=True)
        _check_positive("duration", self.duration, upper=MAX_DURATION_S)
        if self.start_rate == 0 and self.end_rate == 0:
            raise ConfigError("ramp needs start_rate or end_rate > 0; both are 0")
        _check_count(self.count)

    @property
    def kind(self) -> str:
        return "ramp"

    @property
    def count(self) -> int:
        total = (self.start_rate + self.end_rate) * self.duration / 2.0
        return max(1, math.ceil(total - 1e-9))

    def time_of(self, i: int) -> float:
        """The offset where the cumulative rate reaches ``i``."""
        r0, d = float(self.start_rate), float(self.duration)
        a = (float(self.end_rate) - r0) / (2.0 * d)
        # 2i / (b + sqrt(b^2 + 4ai)) is the root of a t^2 + b t - i = 0 without the
        # cancellation of the textbook form; it also covers a < 0 (ramp down) and a == 0.
        disc = max(0.0, r0 * r0 + 4.0 * a * i)
        denom = r0 + math.sqrt(disc)
        if denom <= 0.0:
            return 0.0
        return min(2.0 * i / denom, math.nextafter(d, 0.0))

    def times(self) -> Iterator[float]:
        for i in range(self.count):
            yield self.time_of(i)

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "ramp",
            "start_rate": self.start_rate,
            "end_rate": self.end_rate,
            "duration": self.duration,
        }

    def annotations(self) -> list[Annotation]:
        return [Annotation(0.0, f"ramp {_fmt_rate(self.start_rate)} -> {_fmt_rate(self.end_rate)}")]


@dataclass(frozen=True)
class Steps:
    """Constant-rate segments one after another: ``[(rate, duration), ...]`` (stress tests)."""

    steps: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.steps:
            raise ConfigError("steps must list at least one [rate, duration] pair")
        for k, step in enumerate(self.steps):
            if len(step) != 2:
                raise ConfigError(f"steps[{k}] must be [rate, duration], got {step!r}")
            _check_positive(f"steps[{k}].rate", step[0], upper=MAX_RATE)
            _check_positive(f"steps[{k}].duration", step[1], upper=MAX_DURATION_S)
        if self.duration > MAX_DURATION_S:
            raise ConfigError(f"steps last {self.duration:g} s in total, above the limit {MAX_DURATION_S:g}")
        _check_count(self.count)

    @property
    def kind(self) -> str:
        return "steps"

    def _segments(self) -> list[ConstantRate]:
        return [ConstantRate(rate, dur) for rate, dur in self.steps]

    @property
    def count(self) -> int:
        return sum(seg.count for seg in self._segments())

    @property
    def duration(self) -> float:
        return float(sum(d for _, d in self.steps))

    def times(self) -> Iterator[float]:
        offset = 0.0
        for seg in self._segments():
            for t in seg.times():
                yield offset + t
            offset += seg.duration

    def spec(self) -> dict[str, Any]:
        return {"kind": "steps", "steps": [[r, d] for r, d in self.steps]}

    def annotations(self) -> list[Annotation]:
        out: list[Annotation] = []
        offset = 0.0
        for k, (rate, dur) in enumerate(self.steps, start=1):
            out.append(Annotation(offset, f"step {k}: {_fmt_rate(rate)}"))
            offset += dur
        return out


@dataclass(frozen=True)
class Burst:
    """``count`` operations spread evenly within ``within`` seconds: ``t_i = i * within / count``."""

    n: int
    within: float

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ConfigError(f"burst count must be an integer >= 1, got {self.n!r}")
        _check_positive("within", self.within, upper=MAX_DURATION_S)
        _check_count(self.n)

    @property
    def kind(self) -> str:
        return "burst"

    @property
    def count(self) -> int:
        return self.n

    @property
    def duration(self) -> float:
        return float(self.within)

    def times(self) -> Iterator[float]:
        step = float(self.within) / self.n
        for i in range(self.n):
            yield i * step

    def spec(self) -> dict[str, Any]:
        return {"kind": "burst", "count": self.n, "within": self.within}

    def annotations(self) -> list[Annotation]:
        return [Annotation(0.0, f"burst: {self.n} in {self.within:g} s")]


AnySchedule = ConstantRate | RampingRate | Steps | Burst

_FIELDS: dict[str, tuple[str, ...]] = {
    "constant": ("rate", "duration"),
    "ramp": ("start_rate", "end_rate", "duration"),
    "steps": ("steps",),
    "burst": ("count", "within"),
}


def schedule_from_spec(spec: Mapping[str, Any]) -> AnySchedule:
    """Build a schedule from its JSON form, e.g. ``{"kind": "constant", "rate": 100, "duration": 60}``."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"schedule must be a table/object, got {type(spec).__name__}")
    kind = spec.get("kind")
    if kind not in _FIELDS:
        raise ConfigError(f"schedule.kind must be one of {sorted(_FIELDS)}, got {kind!r}")
    expected = _FIELDS[kind]
    missing = [f for f in expected if f not in spec]
    if missing:
        raise ConfigError(f"schedule of kind {kind!r} is missing {', '.join('schedule.' + m for m in missing)}")
    extra = sorted(set(spec) - set(expected) - {"kind"})
    if extra:
        raise ConfigError(
            f"schedule of kind {kind!r} has unknown field(s) {extra}; expected {list(expected)}"
        )
    if kind == "constant":
        return ConstantRate(spec["rate"], spec["duration"])
    if kind == "ramp":
        return RampingRate(spec["start_rate"], spec["end_rate"], spec["duration"])
    if kind == "burst":
        return Burst(spec["count"], spec["within"])
    raw = spec["steps"]
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ConfigError(f"schedule.steps must be a list of [rate, duration] pairs, got {raw!r}")
    pairs: list[tuple[float, float]] = []
    for k, step in enumerate(raw):
        if not isinstance(step, Sequence) or isinstance(step, str) or len(step) != 2:
            raise ConfigError(f"schedule.steps[{k}] must be [rate, duration], got {step!r}")
        pairs.append((step[0], step[1]))
    return Steps(tuple(pairs))
