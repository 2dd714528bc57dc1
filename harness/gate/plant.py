"""A deliberate, exactly sized slowdown of one benchmark, for proving that the gate catches regressions.

``TRADEBENCH_PLANT_SLOWDOWN=<case>:<fraction>`` (for example ``codec.encode_request:0.10``) makes the
benchmark worker run that case's hot-path call ``fraction`` more often than asked: every
``1/fraction``-th operation calls the hot path twice. That is exactly ``fraction`` extra work *in the
project's own code* (no sleeps, nothing timing-dependent), so both tiers see it: the instruction
count rises by ``fraction`` of the loop, and the wall-clock time by the same share.

The bot's code is never touched: the benchmark harness wraps the hot path it calls. The module is
standard-library only because the gate copies it beside the worker and runs it against another
revision's code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

ENV_VAR = "TRADEBENCH_PLANT_SLOWDOWN"


class PlantSpecError(ValueError):
    """The plant specification is malformed; the message names the variable and the fix."""


@dataclass(frozen=True)
class Plant:
    case: str
    fraction: float

    @property
    def every(self) -> int:
        """One extra call after every ``every`` calls gives ``1/every`` extra work."""
        return min(256, max(1, round(1.0 / self.fraction)))

    @property
    def exact_fraction(self) -> float:
        """The extra work actually planted (``1/every``; equals ``fraction`` when it divides 1)."""
        return 1.0 / self.every


def parse_plant(spec: str | None) -> Plant | None:
    """Parse ``<case>:<fraction>``; ``None`` or an empty string means no plant."""
    if spec is None or not spec.strip():
        return None
    case, sep, frac_text = spec.strip().rpartition(":")
    if not sep or not case:
        raise PlantSpecError(
            f"{ENV_VAR}={spec!r}: expected '<case>:<fraction>', e.g. 'codec.encode_request:0.10'"
        )
    try:
        fraction = float(frac_text)
    except ValueError:
        raise PlantSpecError(
            f"{ENV_VAR}={spec!r}: fraction {frac_text!r} is not a number; use e.g. 0.10 for +10%"
        ) from None
    if not 1 / 256 <= fraction <= 1.0:
        raise PlantSpecError(f"{ENV_VAR}={spec!r}: fraction must be in [1/256, 1], e.g. 0.10 for +10%")
    return Plant(case=case, fraction=fraction)


def plant_from_env(environ: dict[str, str] | None = None) -> Plant | None:
    env = os.environ if environ is None else environ
    return parse_plant(env.get(ENV_VAR))


def planted(fn: Callable[[], object], plant: Plant | None) -> Callable[[], object]:
    """Wrap ``fn`` so that, per call, it does ``1 + plant.exact_fraction`` calls' worth of work on average.

    The extra call is made on a fixed schedule (every ``plant.every``-th call), so the extra work is
    exact over any multiple of ``every`` calls and never depends on timing or randomness. Every
    benchmark is wrapped, planted or not, so the wrapper's own small cost is the same on both sides
    of a comparison and only the planted work differs.
    """
    # The counter wraps on both paths: an ever-growing counter would leave CPython's small-int cache
    # (< 257) and allocate an int per call, making the *unplanted* wrapper the slower one.
    every = plant.every if plant is not None else 100
    extra = plant is not None
    counter = 0

    def wrapper() -> object:
        nonlocal counter
        counter += 1
        if counter == every:
            counter = 0
            if extra:
                fn()
        return fn()

    return wrapper
