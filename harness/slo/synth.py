"""Synthetic ``results.json`` documents drawn from known distributions (for tests and demos).

The judge's tests need runs whose true values are known: a latency that is lognormal with a
given median, a throughput with a given mean, RSS that grows at a planted rate. ``synth_results``
builds a complete document in the results.json format (schema_version 1) with every scenario
the judge reads; each field of :class:`Synth` says what it plants. Seeded: the same ``Synth``
gives the same document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.stats.histograms import encode, new_histogram

# operation -> (median ms, lognormal sigma); medians chosen well inside the shipped SLOs.
DEFAULT_LATENCY: dict[str, tuple[float, float]] = {
    "tx_submission": (8.0, 0.5),
    "price_fetch": (1.5, 0.4),
    "balance_check": (0.8, 0.4),
    "trade_execution": (30.0, 0.5),
}


@dataclass(frozen=True)
class Synth:
    seed: int = 0
    scenarios: tuple[str, ...] = ("sustained", "stress", "burst", "websocket", "api")
    sustained_s: int = 120
    samples_per_interval: int = 100
    latency: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_LATENCY))
    slowdown: float = 1.0  # multiplies every latency sample (a planted regression when > 1)
    error_prob: float = 0.0  # chance each sustained operation fails
    rss_mb: float = 120.0
    rss_noise_mb: float = 2.0
    leak_mb_per_h: float = 0.0
    cpu_percent: float = 30.0
    net_mb_s: float = 1.0
    disk_mb_s: float = 0.1
    stress_rates: tuple[float, ...] = (200.0, 400.0, 800.0, 1600.0)
    stress_capacity: float = 900.0  # steps offered above this break (latency fails)
    stress_step_s: int = 20
    in_flight_per_100tps: float = 10.0
    ws_rate: float = 12000.0
    ws_dropped: int = 0
    api_rate: float = 800.0
    api_failure_prob: float = 0.0
    health_probes_per_s: float = 1.0
    health_fail_prob: float = 0.0
    soak_s: int = 3600  # the soak scenario carries resource samples only (1 per second)


def _hist(rng: np.random.Generator, median_ms: float, sigma: float, n: int, scale: float) -> str:
    us = np.maximum(np.rint(rng.lognormal(np.log(median_ms * 1e3), sigma, n) * scale), 1).astype(np.int64)
    h = new_histogram()
    vals, counts = np.unique(us, return_counts=True)
    for v, c in zip(vals, counts, strict=True):
        h.record_value(int(v), int(c))
    return encode(h)


def _scenario(sid: str, duration: float, kind: str, intervals: list[dict[str, Any]], *,
              resources: list[dict[str, Any]], probes: int, ok: int, summary: dict[str, Any]) -> dict[str, Any]:
    return {"id": sid, "started_at": 1_764_068_400.0, "duration_s": duration, "schedule": {"kind": kind},
            "annotations": [], "intervals": intervals, "resources": resources,
            "health": {"probes": probes, "ok": ok}, "summary": summary}


def _health(rng: np.random.Generator, s: Synth, duration: float) -> tuple[int, int]:
    probes = int(duration * s.health_probes_per_s)
    return probes, probes - int(rng.binomial(probes, s.health_fail_prob))


def _resources(rng: np.random.Generator, s: Synth, seconds: int) -> list[dict[str, Any]]:
    t = np.arange(seconds, dtype=np.float64)
    rss = (s.rss_mb + s.leak_mb_per_h * t / 3600.0 + rng.normal(0, s.rss_noise_mb, len(t))) * 1e6
    return [{"t": float(ti), "rss_bytes": int(max(r, 0)), "cpu_percent": float(max(c, 0)),
             "net_bytes_per_s": float(max(n, 0)), "disk_bytes_per_s": float(max(d, 0))}
            for ti, r, c, n, d in zip(t, rss, rng.normal(s.cpu_percent, 5, len(t)),
                                      rng.normal(s.net_mb_s * 1e6, s.net_mb_s * 1e5, len(t)),
                                      rng.normal(s.disk_mb_s * 1e6, s.disk_mb_s * 1e5, len(t)), strict=True)]


def _sustained(rng: np.random.Generator, s: Synth) -> dict[str, Any]:
    ivs = []
    for i in range(s.sustained_s):
        hists = {}
        for op, (med, sig) in s.latency.items():
            hists[op] = _hist(rng, med, sig, s.samples_per_interval, s.slowdown)
            hists[f"{op}.service"] = _hist(rng, med * 0.8, sig, s.samples_per_interval, s.slowdown)
        errors = int(rng.binomial(s.samples_per_interval, s.error_prob))
        ivs.append({"start": float(i), "end": float(i + 1), "histograms": hists,
                    "counters": {"sent": s.samples_per_interval, "ok": s.samples_per_interval - errors,
                                 "errors": errors, "dropped": 0}})
    res = _resources(rng, s, s.sustained_s)
    probes, ok = _health(rng, s, s.sustained_s)
    return _scenario("sustained", float(s.sustained_s), "constant", ivs, resources=res, probes=probes, ok=ok,
                     summary={"target_rate": float(s.samples_per_interval),
                              "achieved_rate": float(s.samples_per_interval), "dropped": 0,
                              "generator_lag_p99_ms": 0.1})


def _stress(rng: np.random.Generator, s: Synth) -> dict[str, Any]:
    ivs, steps = [], []
    t0 = 0
    for rate in s.stress_rates:
        achieved_rate = min(rate, s.stress_capacity)
        accepted = rng.poisson(achieved_rate, s.stress_step_s)
        for k, acc in enumerate(accepted):
            ivs.append({"start": float(t0 + k), "end": float(t0 + k + 1), "histograms": {},
                        "counters": {"tx_accepted": int(acc),
                                     "in_flight_max": int(achieved_rate / 100 * s.in_flight_per_100tps
                                                          + rng.integers(0, 3))}})
        ok = rate <= s.stress_capacity
        steps.append({"rate": rate, "start": float(t0), "end": float(t0 + s.stress_step_s),
                      "achieved": float(accepted.mean()), "error_rate": 0.0 if ok else 0.01, "latency_ok": ok,
                      "broken": None if ok else "trade_execution p99"})
        t0 += s.stress_step_s
    probes, okp = _health(rng, s, t0)
    return _scenario("stress", float(t0), "steps", ivs, resources=[], probes=probes, ok=okp, summary={"steps": steps})


def _rate_scenario(rng: np.random.Generator, sid: str, counters: dict[str, np.ndarray], s: Synth,
                   duration: int) -> dict[str, Any]:
    ivs = [{"start": float(i), "end": float(i + 1), "histograms": {},
            "counters": {k: int(v[i]) for k, v in counters.items()}} for i in range(duration)]
    probes, ok = _health(rng, s, duration)
    return _scenario(sid, float(duration), "constant", ivs, resources=[], probes=probes, ok=ok, summary={})


def synth_results(s: Synth | None = None) -> dict[str, Any]:
    """A complete results.json document with the planted values of ``s``."""
    s = s or Synth()
    rng = np.random.default_rng(s.seed)
    scenarios: list[dict[str, Any]] = []
    for sid in s.scenarios:
        if sid == "sustained":
            scenarios.append(_sustained(rng, s))
        elif sid == "stress":
            scenarios.append(_stress(rng, s))
        elif sid == "burst":
            inflight = np.array([int(s.in_flight_per_100tps * 10)])
            sc = _rate_scenario(rng, "burst", {"in_flight_max": inflight, "tx_accepted": np.array([1000])}, s, 1)
            sc["summary"] = {"latency_ok": False}
            scenarios.append(sc)
        elif sid == "websocket":
            handled = rng.poisson(s.ws_rate, 30)
            sent = handled.copy()
            sent[-1] += s.ws_dropped
            scenarios.append(_rate_scenario(rng, "websocket", {"ws_handled": handled, "ws_sent": sent}, s, 30))
        elif sid == "api":
            req = rng.poisson(s.api_rate, 30)
            fail = rng.binomial(req, s.api_failure_prob)
            scenarios.append(_rate_scenario(rng, "api", {"api_requests": req, "api_failures": fail}, s, 30))
        elif sid == "soak":
            probes, ok = _health(rng, s, s.soak_s)
            scenarios.append(_scenario("soak", float(s.soak_s), "constant", [],
                                       resources=_resources(rng, s, s.soak_s), probes=probes, ok=ok, summary={}))
    return {"schema_version": 1, "run_id": f"synth-{s.seed}", "status": "complete",
            "started_at": "2026-11-25T11:00:00Z", "finished_at": "2026-11-25T12:00:00Z", "profile": "custom",
            "conditions": {"machine": {"cores": 2, "memory_bytes": 0, "cpu_model": "synthetic", "python": "3.11",
                                       "os": "linux"},
                           "node": {"kind": "anvil", "version": "synthetic", "url": "", "mining": "automine"},
                           "network_profile": "loopback", "bot": {}, "harness_version": "", "git_commit": ""},
            "scenarios": scenarios, "verdicts": [], "artifacts": {"profiles": [], "memray": [], "logs": []}}
