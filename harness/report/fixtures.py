"""A realistic, seeded, synthetic results.json document (schema_version 1) for tests and demos.

``synthetic_results(seed)`` builds what a quick run of the four scenarios (burst, sustained, stress,
soak) would write: interval histograms encoded with hdrh (microseconds, ``HdrHistogram(1, 60_000_000,
3)``), both corrected and service time; counters; resource
samples; health probes; scenario annotations; and a verdict for every SLO row with pass, fail and
inconclusive outcomes. Latency verdicts are computed from the generated histograms, so a planted
``slowdown`` moves them as it would in a real run. The same seed gives the same document.

Histogram keys follow the bot: ``tx_submission``, ``price_fetch`` and ``balance_check`` hold the
operation's own time (service) under the bare key and the time from the tick under ``.from_tick``;
``trade_execution`` holds the corrected time under the bare key and ``.service`` beside it. Each
scenario's summary carries what the runner adds (settle time, quiescence, carry-over, generator lag),
and the conditions a machine calibration; ``machine_speed`` scales the calibration's figures (2.5 reads
as a machine 2.5x faster) without touching the measurements, for comparisons across machines.

It is test data, not a measurement: nothing here should ever be presented as a result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from harness.report import histograms as H
from harness.results import FROM_TICK_SUFFIX, OWN_TIME_OPERATIONS, SERVICE_SUFFIX
from harness.run.figures import cpu_per_trade

MB = 1_000_000
OWN_TIME_QUEUE_SHARE = 0.6


@dataclass(frozen=True)
class _Op:
    """Service-time model of one operation: lognormal around ``median_ms``; ``per_tx`` samples per tx."""

    median_ms: float
    sigma: float
    per_tx: float


_OPS: dict[str, _Op] = {
    "tx_submission": _Op(7.0, 0.45, 1.0),
    "price_fetch": _Op(1.4, 0.35, 1.0),
    "balance_check": _Op(0.8, 0.35, 1.0),
    "trade_execution": _Op(42.0, 0.40, 1.0),
}


def _encode(samples_us: np.ndarray) -> str:
    h = HdrHistogram(1, 60_000_000, 3)
    values, counts = np.unique(np.clip(samples_us, 1, 60_000_000).astype(np.int64), return_counts=True)
    for v, c in zip(values.tolist(), counts.tolist(), strict=True):
        h.record_value(v, c)
    encoded: bytes = h.encode()
    return encoded.decode("ascii")


def _interval(
    rng: np.random.Generator,
    start: float,
    *,
    end: float,
    n_tx: int,
    queue_ms: float,
    slowdown: Mapping[str, float],
    error_rate: float,
) -> dict[str, Any]:
    hists: dict[str, str] = {}
    for name, op in _OPS.items():
        n = max(1, round(n_tx * op.per_tx))
        factor = slowdown.get(name, 1.0)
        service = rng.lognormal(np.log(op.median_ms * factor), op.sigma, n)
        # Queueing (waiting behind earlier work) is what the intended-start histogram adds on top.
        queue = rng.exponential(queue_ms, n) if queue_ms > 0 else np.zeros(n)
        corrected = service + queue
        if name in OWN_TIME_OPERATIONS:
            # The bot times these from their own start, which still includes waiting for a pooled
            # connection and the node: part of a burst's queueing shows in the operation's own time.
            hists[name] = _encode(np.round((service + OWN_TIME_QUEUE_SHARE * queue) * 1000.0))
            hists[name + FROM_TICK_SUFFIX] = _encode(np.round(corrected * 1000.0))
        else:
            hists[name] = _encode(np.round(corrected * 1000.0))
            hists[name + SERVICE_SUFFIX] = _encode(np.round(service * 1000.0))
    errors = int(rng.binomial(n_tx, error_rate)) if n_tx else 0
    return {
        "start": round(start, 3),
        "end": round(end, 3),
        "histograms": hists,
        "counters": {"sent": n_tx, "ok": n_tx - errors, "errors": errors, "dropped": 0},
    }


def _resources(
    rng: np.random.Generator, duration: float, step: float, *, rss_mb: float, cpu: float, growth_mb: float = 0.0
) -> list[dict[str, Any]]:
    out = []
    for t in np.arange(0.0, duration + 1e-9, step):
        frac = t / duration if duration else 0.0
        out.append({
            "t": round(float(t), 3),
            "rss_bytes": int((rss_mb + growth_mb * frac + rng.normal(0, 0.6)) * MB),
            "cpu_percent": round(float(max(0.0, rng.normal(cpu, cpu * 0.08))), 2),
            "net_bytes_per_s": round(float(max(0.0, rng.normal(cpu * 6_000, 15_000))), 1),
            "disk_bytes_per_s": round(float(max(0.0, rng.normal(4_000, 1_500))), 1),
        })
    return out


@dataclass(frozen=True)
class _Isolation:
    """What the runner writes about a scenario's start: the wait for quiet, and earlier scenarios' work."""

    settle_s: float
    in_flight: int = 0
    cpu: float = 4.0
    carry: Mapping[str, int] | None = None  # operation -> samples caused by an earlier scenario
    carried_from: tuple[str, ...] = ()
    lag_max_ms: float = 2.0
    behind: bool = False

    def summary(self) -> dict[str, Any]:
        carry = dict(self.carry or {})
        return {
            "generator_lag_max_ms": self.lag_max_ms,
            "generator_behind": self.behind,
            "settle_s": self.settle_s,
            "quiescence": {"in_flight": self.in_flight, "queue_depth": 0, "txpool_pending": 0, "txpool_queued": 0,
                           "bot_cpu_percent": self.cpu, "idle_cpu_percent": 3.5, "timed_out": False, "busy": []},
            "carry_over": {"tags": list(self.carried_from), "histograms": carry,
                           "counters": {"trades_ok": carry["trade_execution"]} if "trade_execution" in carry else {}},
            "node": {"reset": bool(self.carried_from), "block_start": 40, "block_end": 1240, "blocks_since_snapshot": 0,
                     "reset_reason": "reverted to the post-deployment snapshot, fresh bot" if self.carried_from
                     else "chain as deployed", "rss_mb_start": 90.0, "rss_mb_end": 610.0, "rss_mb_max": 640.0,
                     "cpu_percent_mean": 31.5, "samples": 60},
        }


def _scenario(
    sid: str, t0: float, duration: float, schedule: dict[str, Any], *, annotations: list[dict[str, Any]],
    intervals: list[dict[str, Any]], resources: list[dict[str, Any]], target_rate: float, lag_ms: float,
    isolation: _Isolation,
) -> dict[str, Any]:
    sent = sum(iv["counters"]["sent"] for iv in intervals)
    probes = int(duration)
    return {
        "id": sid,
        "started_at": t0,
        "duration_s": duration,
        "schedule": schedule,
        "annotations": annotations,
        "intervals": intervals,
        "resources": resources,
        "health": {"probes": probes, "ok": probes},
        "summary": {
            "target_rate": target_rate,
            "achieved_rate": round(sent / duration, 2) if duration else 0.0,
            "dropped": 0,
            "generator_lag_p99_ms": lag_ms,
            **isolation.summary(),
        },
    }


def _scenarios(rng: np.random.Generator, t0: float, slow: Mapping[str, float]) -> list[dict[str, Any]]:
    burst_iv = [
        _interval(rng, i, end=i + 1.0, n_tx=1000 if i == 0 else 5,
                  queue_ms=90.0 if i == 0 else (15.0 if i == 1 else 0.3), slowdown=slow, error_rate=0.0005)
        for i in range(10)
    ]
    burst = _scenario(
        "burst", t0, 10.0, {"kind": "burst", "count": 1000, "seconds": 1.0},
        annotations=[{"t": 0.0, "label": "burst: 1000 tx within 1 s"}, {"t": 2.0, "label": "queue drained"}],
        intervals=burst_iv, resources=_resources(rng, 10.0, 1.0, rss_mb=96.0, cpu=38.0, growth_mb=14.0),
        target_rate=100.0, lag_ms=0.4, isolation=_Isolation(0.5),
    )
    sus_iv = [_interval(rng, i, end=i + 1.0, n_tx=int(rng.poisson(100)), queue_ms=0.4, slowdown=slow,
                        error_rate=0.0004) for i in range(60)]
    sustained = _scenario(
        "sustained", t0 + 20, 60.0, {"kind": "constant", "rate": 100.0, "seconds": 60.0}, annotations=[],
        intervals=sus_iv, resources=_resources(rng, 60.0, 1.0, rss_mb=92.0, cpu=31.0, growth_mb=1.0),
        target_rate=100.0, lag_ms=0.2,
        isolation=_Isolation(6.3, carry={"trade_execution": 14, "tx_submission": 2}, carried_from=("burst",)),
    )
    steps = (100, 200, 400, 800, 1600)
    stress_iv = []
    for k, rate in enumerate(steps):
        # Queueing grows sharply as the rate nears the (synthetic) capacity of ~1900/s.
        queue = 2.0 * (1.0 / max(0.05, 1.0 - rate / 1900.0)) ** 2
        stress_iv += [_interval(rng, k * 10 + i, end=k * 10 + i + 1.0, n_tx=int(rng.poisson(rate)), queue_ms=queue,
                                slowdown=slow, error_rate=0.0008) for i in range(10)]
    stress_notes = [{"t": k * 10.0, "label": f"step {k + 1}: {r}/s"} for k, r in enumerate(steps)]
    stress_notes.append({"t": 40.0, "label": "breaking point at 1600/s: tx_submission p99 > 200 ms"})
    stress = _scenario(
        "stress", t0 + 100, 50.0, {"kind": "steps", "steps": [{"rate": r, "seconds": 10.0} for r in steps]},
        annotations=stress_notes,
        intervals=stress_iv, resources=_resources(rng, 50.0, 1.0, rss_mb=110.0, cpu=55.0, growth_mb=30.0),
        target_rate=1600.0, lag_ms=1.8,
        # The last step asks more of the generator than it can give: a run must say so, not blame the bot.
        isolation=_Isolation(2.1, lag_max_ms=31.0, behind=True),
    )
    stress["summary"].update(breaking_point=1600.0, first_broken="tx_submission p99 > 200 ms",
                             search={"last_good": 800.0, "breaking_point": 1600.0},
                             steps=[{"rate": float(r), "start": k * 10.0 + 2.0, "end": k * 10.0 + 10.0,
                                     "achieved": float(r), "error_rate": 0.0008, "latency_ok": r < 1600,
                                     "cpu_per_trade": cpu_per_trade(
                                 stress_iv, stress["resources"], k * 10.0, k * 10.0 + 10.0, warmup_s=2.0)}
                                 for k, r in enumerate(steps)])
    sustained["summary"]["cpu_per_trade"] = cpu_per_trade(sus_iv, sustained["resources"], 0.0, 60.0)
    soak_iv = [_interval(rng, i * 60.0, end=(i + 1) * 60.0, n_tx=int(rng.poisson(600)), queue_ms=0.3,
                         slowdown=slow, error_rate=0.0003) for i in range(30)]
    soak = _scenario(
        "soak", t0 + 200, 1800.0, {"kind": "constant", "rate": 10.0, "seconds": 1800.0},
        annotations=[{"t": 300.0, "label": "warm-up over"}],
        intervals=soak_iv, resources=_resources(rng, 1800.0, 30.0, rss_mb=90.0, cpu=9.0, growth_mb=0.5),
        target_rate=10.0, lag_ms=0.2,
        isolation=_Isolation(11.8, in_flight=1, cpu=6.0, carry={"trade_execution": 212, "tx_submission": 9},
                             carried_from=("stress",)),
    )
    return [burst, sustained, stress, soak]


def _judge(value: float, ci: tuple[float, float], op: str, thr: float) -> tuple[str, float]:
    lower_better = op in ("<", "<=")
    margin = (thr - value) / thr if lower_better else (value - thr) / thr
    ok_side = ci[1] < thr if lower_better else ci[0] > thr
    bad_side = ci[0] >= thr if lower_better else ci[1] <= thr
    return ("pass" if ok_side else "fail" if bad_side else "inconclusive"), round(margin, 4)


def _verdict(
    ident: tuple[str, str, str, str, str],
    measured: tuple[float, tuple[float, float]],
    rule: tuple[str, float, str],
    note: str,
    more_time_s: float = 600.0,
) -> dict[str, Any]:
    """``ident`` = (table, row, stat, unit, scenario); ``rule`` = (op, threshold, level)."""
    table, row, stat, unit, scenario = ident
    value, ci = measured
    op, thr, level = rule
    verdict, margin = _judge(value, ci, op, thr)
    return {
        "row": row, "table": table, "stat": stat, "unit": unit, "scenario": scenario,
        "value": round(value, 4), "ci": [round(ci[0], 4), round(ci[1], 4)], "confidence": 0.95,
        "threshold": {"op": op, "value": thr, "level": level}, "verdict": verdict, "margin": margin,
        "more_time_s": more_time_s if verdict == "inconclusive" else None,
        "note": note,
    }


_LATENCY_TARGETS = {
    "tx_submission": (50.0, 100.0, 200.0),
    "price_fetch": (10.0, 20.0, 50.0),
    "balance_check": (5.0, 10.0, 25.0),
    "trade_execution": (100.0, 200.0, 500.0),
}


_LATENCY_NOTES = {
    True: "the operation's own time (service, as the bot records it); block bootstrap over 1 s intervals",
    False: "from the tick's scheduled time (corrected); block bootstrap over 1 s intervals",
}


def _latency_verdicts(scen: Mapping[str, Any], stats: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for op, targets in _LATENCY_TARGETS.items():
        merged = H.merge(H.decode(iv["histograms"][op]) for iv in scen["intervals"])
        if merged is None:
            continue
        for stat, thr in zip(("mean", "p95", "p99"), targets, strict=True):
            if stat not in stats:
                continue
            value = H.stat_ms(merged, stat)
            rel = {"mean": 0.03, "p95": 0.06, "p99": 0.12}[stat]
            out.append(_verdict(
                ("latency", op, stat, "ms", scen["id"]), (value, (value * (1 - rel), value * (1 + rel))),
                ("<", thr, "target"), _LATENCY_NOTES[op in OWN_TIME_OPERATIONS],
            ))
    return out


def _verdicts(scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    burst, sustained = scenarios[0], scenarios[1]
    v = _latency_verdicts(sustained, ("mean", "p95", "p99"))
    v += [x for x in _latency_verdicts(burst, ("p99",)) if x["row"] == "tx_submission"]
    tp = [
        ("transactions_per_sec", "tx/s", "stress", 800.0, (772.0, 826.0), 1000.0, 500.0,
         "highest step with error rate < 0.1% and latency rows met"),
        ("concurrent_operations", "ops", "stress", 112.0, (104.0, 121.0), 100.0, 50.0,
         "peak in-flight operations across 120 pairs while latency rows held"),
        # Its interval straddles the target: an inconclusive row the report must explain.
        ("websocket_messages_per_sec", "msg/s", "stress", 9_700.0, (9_150.0, 10_240.0), 10_000.0, 5_000.0,
         "ticks and chain events handled per second, none dropped"),
        ("api_calls_per_sec", "req/s", "sustained", 1_630.0, (1_575.0, 1_690.0), 500.0, 250.0,
         "Locust FastHttpUser against the control API, error rate < 0.1%"),
    ]
    for row, unit, scen, value, ci, target, minimum, note in tp:
        v.append(_verdict(("throughput", row, "target", unit, scen), (value, ci), (">=", target, "target"), note,
                          900.0))
        v.append(_verdict(("throughput", row, "minimum", unit, scen), (value, ci), (">=", minimum, "minimum"), note))
    res = sustained["resources"]
    rss = np.array([r["rss_bytes"] for r in res]) / MB
    cpu = np.array([r["cpu_percent"] for r in res])
    net = float(np.mean([r["net_bytes_per_s"] for r in res])) / MB
    disk = float(np.mean([r["disk_bytes_per_s"] for r in res])) / MB
    peak_rss, peak_cpu = float(rss.max()), float(cpu.max())
    v += [
        _verdict(("resources", "memory_rss", "peak", "MB", "sustained"), (peak_rss, (peak_rss - 1, peak_rss + 1)),
                 ("<=", 512.0, "maximum"), "psutil RSS, bot + children"),
        _verdict(("resources", "memory_rss", "steady", "MB", "sustained"),
                 (float(np.median(rss)), (float(np.percentile(rss, 25)), float(np.percentile(rss, 75)))),
                 ("<=", 256.0, "target"), "median RSS after warm-up"),
        _verdict(("resources", "cpu", "mean", "%", "stress"), (48.5, (45.9, 51.2)), ("<=", 50.0, "target"),
                 "CPU time as % of one core", 1200.0),
        _verdict(("resources", "cpu", "peak", "%", "sustained"), (peak_cpu, (peak_cpu - 2, peak_cpu + 2)),
                 ("<=", 80.0, "maximum"), "1 s samples"),
        _verdict(("resources", "network_bandwidth", "mean", "MB/s", "sustained"), (net, (net * 0.95, net * 1.05)),
                 ("<=", 10.0, "target"), "bytes counted by the bot's transports"),
        _verdict(("resources", "disk_io", "mean", "MB/s", "sustained"), (disk, (disk * 0.9, disk * 1.1)),
                 ("<=", 1.0, "target"), "psutil io_counters read+write"),
    ]
    sent = sum(iv["counters"]["sent"] for iv in sustained["intervals"])
    errs = sum(iv["counters"]["errors"] for iv in sustained["intervals"])
    rate = 100.0 * errs / max(sent, 1)
    hi = 100.0 * (errs + 2.0 * np.sqrt(errs + 1) + 1) / max(sent, 1)
    v += [
        _verdict(("quality", "error_rate", "ratio", "%", "sustained"), (rate, (rate * 0.5, hi)),
                 ("<", 0.1, "maximum"), "failed / sent operations"),
        _verdict(("quality", "uptime", "ratio", "%", "sustained"), (100.0, (99.95, 100.0)),
                 (">=", 99.9, "minimum"), "health probes answered"),
        _verdict(("quality", "memory_leak", "slope", "bytes/h", "soak"), (180_000.0, (-420_000.0, 760_000.0)),
                 ("<", 1_000_000.0, "maximum"), "RSS slope after warm-up; sensitivity 1 MB/h"),
        _verdict(("quality", "regression", "max_slowdown", "ratio", "sustained"), (1.02, (0.97, 1.07)),
                 ("<", 1.10, "maximum"), "largest benchmark slowdown against the baseline"),
    ]
    return v


def _calibration(seed: int, machine_speed: float) -> dict[str, Any]:
    # Its own generator: drawing from the main one would change every other number of the fixture.
    rng = np.random.default_rng(10_000 + seed)

    def jitter() -> float:
        return float(1.0 + rng.normal(0.0, 0.03))

    return {
        "cpu_ref_per_s": round(5.2e6 * machine_speed * jitter(), 1),
        "cpu_ref_spread": round(float(rng.uniform(0.05, 0.15)), 4),
        "sign_per_s": round(11_800.0 * machine_speed * jitter(), 1),
        "sign_spread": round(float(rng.uniform(0.05, 0.15)), 4),
        "node_accept_per_s": round(2_450.0 * machine_speed * jitter(), 1),
        "node_accept_spread": round(float(rng.uniform(0.05, 0.15)), 4),
        "node_mined": True,
        "seconds": round(float(rng.uniform(1.8, 2.6)), 2),
    }


def synthetic_results(
    seed: int = 0,
    *,
    run_id: str | None = None,
    status: str = "complete",
    started_at: datetime | None = None,
    slowdown: Mapping[str, float] | None = None,
    machine_speed: float = 1.0,
) -> dict[str, Any]:
    """A complete results.json document; ``slowdown`` multiplies operations' service times (1.3 = +30%)."""
    rng = np.random.default_rng(seed)
    start = started_at or datetime(2026, 11, 25, 11, 0, 0, tzinfo=UTC) + timedelta(hours=seed)
    t0 = start.timestamp()
    scenarios = _scenarios(rng, t0, slowdown or {})
    return {
        "schema_version": 1,
        "run_id": run_id or f"{start:%Y%m%d-%H%M%S}-s{seed:03d}",
        "status": status,
        "started_at": start.isoformat(),
        "finished_at": (start + timedelta(seconds=2100)).isoformat() if status == "complete" else None,
        "profile": "quick",
        "conditions": {
            "machine": {"cores": 2, "memory_bytes": 24 * 1024**3, "cpu_model": "x86_64 (synthetic fixture)",
                        "python": "3.11.2", "os": "Linux 6.1 x86_64"},
            "node": {"kind": "anvil", "version": "1.7.1", "url": "http://127.0.0.1:8545",
                     "mining": "interval:1s"},
            "network_profile": "loopback",
            "bot": {"pairs": 120, "accounts": 8, "signer": "process:2", "max_in_flight": 256, "uvloop": True},
            "calibration": _calibration(seed, machine_speed),
            "harness_version": "0.1.0",
            "git_commit": f"{seed:07x}fixture",
        },
        "scenarios": scenarios,
        "verdicts": _verdicts(scenarios),
        "artifacts": {"profiles": ["profiles/sustained.speedscope.json"], "memray": ["memray/soak-flamegraph.html"],
                      "logs": ["logs/bot.log"]},
    }
