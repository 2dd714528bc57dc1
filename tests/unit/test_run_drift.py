from __future__ import annotations

import numpy as np
from hdrh.histogram import HdrHistogram

from harness.run.drift import drift


def _ivs(seconds: int, mean_ms: float, slow_from: int | None = None, factor: float = 1.0,
         seed: int = 0) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    out: list[dict[str, object]] = []
    for k in range(seconds):
        h = HdrHistogram(1, 60_000_000, 3)
        m = mean_ms * (factor if slow_from is not None and k >= slow_from else 1.0)
        for v in rng.exponential(m * 1000, 100):
            h.record_value(max(1, int(v)))
        out.append({"start": float(k), "end": float(k + 1),
                    "histograms": {"trade_execution": h.encode().decode()}, "counters": {}})
    return out


def test_a_steady_scenario_has_not_drifted() -> None:
    d = drift(_ivs(40, 30.0), 40.0)
    assert d["checked"] and d["drifted"] == []


def test_a_late_slowdown_is_caught() -> None:
    d = drift(_ivs(40, 30.0, slow_from=21, factor=1.6), 40.0)
    assert d["drifted"] == ["trade_execution"] and d["ops"]["trade_execution"]["ratio"] > 1.3


def test_a_scenario_too_short_to_tell_says_so() -> None:
    d = drift(_ivs(8, 30.0), 8.0)
    assert not d["checked"] and "too short" in d["note"]
