"""The small value grammar of the fault plan's text form: numbers, durations, sizes, time windows.

Pure functions. Each ``fmt_*`` writes a value so that the matching ``parse_*`` reads back exactly
the same float (``parse(fmt(x)) == x``): results record plans as text, and a recorded plan must
reproduce the run.
"""

from __future__ import annotations

import math
import re

MS = {"ms": 1.0, "us": 1e-3, "s": 1e3}  # to milliseconds; the bare number is ms
SECONDS = {"ms": 1e-3, "us": 1e-6, "s": 1.0}  # to seconds; the bare number is seconds
# Longest suffix first: "mib" must not be read as "b" after "mi".
SIZES = {"gib": 2**30, "mib": 2**20, "kib": 2**10, "gb": 10**9, "mb": 10**6, "kb": 10**3, "b": 1}


def fmt_num(x: float) -> str:
    # Short when it reads back exactly, else the exact repr: parse(str(plan)) == plan.
    short = f"{x:g}"
    return short if float(short) == x else repr(x)


def parse_duration(raw: str, scales: dict[str, float]) -> float:
    """A number with an optional unit suffix; the unit whose scale is 1 is the default (exact)."""
    raw = raw.strip().lower()
    for suffix, scale in sorted(scales.items(), key=lambda kv: -len(kv[0])):
        if raw.endswith(suffix):
            number = float(raw[: -len(suffix)])
            return number if scale == 1.0 else number * scale
    return float(raw)


def parse_size(raw: str) -> int:
    """Bytes: ``20MB`` (10^6), ``512kB``, ``1MiB`` (2^20), or a bare integer."""
    raw = raw.strip().lower()
    for suffix, scale in SIZES.items():
        if raw.endswith(suffix):
            value = float(raw[: -len(suffix)]) * scale
            whole = round(value) if math.isfinite(value) else -1
            if whole < 0 or abs(value - whole) > 1e-6 * max(1.0, value):
                raise ValueError(raw)  # a fraction of a byte, or not a size
            return whole
    return int(raw)


def fmt_size(n: int) -> str:
    for suffix, scale in (("MB", 10**6), ("kB", 10**3)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{suffix}"
    return f"{n}B"


def parse_rate(raw: str) -> float:
    """A probability, ``0.01`` or ``1%``."""
    raw = raw.strip()
    return float(raw.removesuffix("%")) / (100 if raw.endswith("%") else 1)


def parse_windows(raw: str) -> tuple[tuple[float, float], ...]:
    """``5s-8s;20s-22.5s`` -> ((5.0, 8.0), (20.0, 22.5)), in seconds (bare numbers are seconds)."""
    out = []
    for part in filter(None, (p.strip() for p in raw.split(";"))):
        ends = re.split(r"(?<![eE])-", part)  # not the minus of an exponent (1e-05s)
        if len(ends) != 2:
            raise ValueError(part)
        out.append((parse_duration(ends[0], SECONDS), parse_duration(ends[1], SECONDS)))
    return tuple(out)


def fmt_windows(windows: tuple[tuple[float, float], ...]) -> str:
    return ";".join(f"{fmt_num(a)}s-{fmt_num(b)}s" for a, b in windows)
