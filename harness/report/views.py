"""What the run page plots, computed from the model (pure: no matplotlib, no files).

Each function turns a parsed ``Scenario`` into plain arrays: merged latency histograms per operation,
per-interval p50/p99, throughput per interval and the schedule's target rate over time, resource
series and their limit lines. Keeping this apart from plotting means the numbers can be tested
exactly, and the plotting code stays a thin shell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.probes.calibration import Calibration
from harness.report import histograms as H
from harness.report.format import fmt_value, sig
from harness.results import (
    FROM_TICK_SUFFIX,
    OWN_TIME_OPERATIONS,
    SERVICE_SUFFIX,
    THROUGHPUT_UNITS,
    ResultsError,
    Scenario,
    Verdict,
)

MB = 1_000_000.0


@dataclass(frozen=True)
class OpKeys:
    """Which histogram keys hold an operation's corrected and service time, and what to call them.

    Two conventions meet in results.json: the bot records tx_submission, price_fetch and
    balance_check as their own time under the bare key and from the tick under ``.from_tick``;
    trade_execution and the load generators record the corrected time under the bare key and the
    service time under ``.service``. The SLO rows judge the bare key in both.
    """

    corrected: str | None
    service: str | None
    corrected_label: str
    service_label: str
    judged: str  # the bare key: what the operation's SLO row judges

    @property
    def judges_service(self) -> bool:
        return self.judged == self.service


FROM_TICK_LABELS = ("from tick (corrected)", "operation (service)")
INTENDED_LABELS = ("from intended start (corrected)", "from actual start (service)")


def op_keys(scenario: Scenario, op: str) -> OpKeys:
    tick = op + FROM_TICK_SUFFIX
    if scenario.has_key(tick):
        return OpKeys(tick, op, *FROM_TICK_LABELS, judged=op)
    if scenario.has_key(op + SERVICE_SUFFIX):
        # A closed-loop tool (Locust) records only the time from the actual start: no corrected key.
        return OpKeys(op if scenario.has_key(op) else None, op + SERVICE_SUFFIX, *INTENDED_LABELS, judged=op)
    if op in OWN_TIME_OPERATIONS:
        # No tick caused any (API orders only, say): the bare key is still the operation's own time.
        return OpKeys(None, op, *FROM_TICK_LABELS, judged=op)
    return OpKeys(op, None, *INTENDED_LABELS, judged=op)


@dataclass(frozen=True)
class OpView:
    """One operation in one scenario."""

    op: str
    corrected: H.Dense | None
    service: H.Dense | None
    t: H.Floats  # interval mid-points, seconds from the scenario start
    p50: H.Floats  # of the corrected histogram when there is one, else of the service one
    p99: H.Floats
    count: int  # samples of the corrected histogram (of the service one when there is no corrected)
    keys: OpKeys

    @property
    def service_count(self) -> int:
        return 0 if self.service is None else self.service.total

    def stat(self, stat: str) -> float:
        return float("nan") if self.corrected is None else H.stat_ms(self.corrected, stat)

    def service_stat(self, stat: str) -> float:
        return float("nan") if self.service is None else H.stat_ms(self.service, stat)


def _add(acc: H.Dense | None, d: H.Dense) -> H.Dense:
    """``acc + d``, in place into ``acc``'s vector (``acc`` is a private running sum)."""
    if acc is None:
        return H.Dense(d.counts.copy(), d.layout)
    if d.layout is not acc.layout:
        raise ResultsError("histograms", ["cannot merge histograms of different configurations"])
    np.add(acc.counts, d.counts, out=acc.counts)
    return acc


def op_view(scenario: Scenario, op: str) -> OpView:
    """Merged corrected and service histograms of ``op`` plus its per-interval p50/p99 series.

    Intervals are decoded one at a time and summed as they come: a 24 h soak has 86,400 intervals,
    and keeping their dense vectors (140 kB each) would take gigabytes.
    """
    keys = op_keys(scenario, op)
    series_key = keys.corrected or keys.service
    t: list[float] = []
    p50: list[float] = []
    p99: list[float] = []
    corrected: H.Dense | None = None
    service: H.Dense | None = None
    for iv in scenario.intervals:
        for key in (keys.corrected, keys.service):
            enc = None if key is None else iv.histograms.get(key)
            if enc is None:
                continue
            d = H.decode(enc, f"scenario {scenario.id!r}, histogram {key!r} at t={iv.start:g}s")
            if key == keys.corrected:
                corrected = _add(corrected, d)
            else:
                service = _add(service, d)
            if key == series_key and d.total:
                q = H.percentiles_ms(d, [50.0, 99.0])
                t.append((iv.start + iv.end) / 2)
                p50.append(float(q[0]))
                p99.append(float(q[1]))
    counted = corrected if corrected is not None else service
    return OpView(
        op=op,
        corrected=corrected,
        service=service,
        t=np.asarray(t, dtype=np.float64),
        p50=np.asarray(p50, dtype=np.float64),
        p99=np.asarray(p99, dtype=np.float64),
        count=0 if counted is None else counted.total,
        keys=keys,
    )


def ceiling_context(verdict: Verdict, calibration: Calibration | None) -> str | None:
    """A throughput verdict beside what this machine can do at all, e.g.
    ``201 tx/s = 8.2% of this node's ceiling``; None for rows that are not throughput rates."""
    if verdict.unit not in THROUGHPUT_UNITS or verdict.value is None:
        return None
    if calibration is None:
        return "machine not calibrated: an absolute figure only"
    value = fmt_value(verdict.value, verdict.unit)
    if verdict.unit == "tx/s":
        share = verdict.value / calibration.node_accept_per_s
        return f"{value} = {sig(share * 100, 2)}% of this node's ceiling"
    # No node ceiling bounds ticks or API requests: the bot's CPU does, so set it against the CPU reference.
    per_m = verdict.value / calibration.cpu_ref_per_s * 1e6
    return f"{value} = {sig(per_m)} per million CPU-reference iterations"

def _steps(spec: Any) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s in spec if isinstance(spec, list) else []:
        if isinstance(s, Mapping):
            out.append((float(s.get("rate", 0.0)), float(s.get("seconds", s.get("duration", 0.0)))))
        elif isinstance(s, list | tuple) and len(s) == 2:
            out.append((float(s[0]), float(s[1])))
    return out


def target_rate_at(schedule: Mapping[str, Any], t: H.Floats, fallback: float | None) -> H.Floats | None:
    """The schedule's intended arrival rate at times ``t`` (per second); ``None`` if it cannot say.

    Accepts both spellings in use (``seconds`` or ``duration``/``within``; steps as objects or pairs).
    """
    kind = schedule.get("kind")
    try:
        if kind == "constant" and "rate" in schedule:
            return np.full_like(t, float(schedule["rate"]))
        if kind == "ramp":
            a, b = float(schedule["start_rate"]), float(schedule["end_rate"])
            dur = float(schedule.get("duration", schedule.get("seconds", 0.0)))
            return np.where(t <= dur, a + (b - a) * np.clip(t / dur, 0, 1), np.nan) if dur > 0 else None
        if kind == "steps":
            steps = _steps(schedule.get("steps"))
            if steps:
                edges = np.cumsum([d for _, d in steps])
                idx = np.searchsorted(edges, t, side="right")
                rates = np.array([r for r, _ in steps] + [np.nan])
                return rates[np.minimum(idx, len(steps))]
        if kind == "burst":
            within = float(schedule.get("within", schedule.get("seconds", schedule.get("within_s", 1.0))))
            rate = float(schedule["count"]) / within if within > 0 else float("nan")
            return np.where(t < within, rate, 0.0)
    except (KeyError, TypeError, ValueError):
        pass
    return None if fallback is None else np.full_like(t, fallback)


def describe_schedule(schedule: Mapping[str, Any]) -> str:
    """The schedule in words, e.g. ``steps 100 → 200 → 400/s, 10 s each``; falls back to its JSON keys."""
    kind = schedule.get("kind")
    try:
        if kind == "constant":
            dur = schedule.get("seconds", schedule.get("duration"))
            return f"constant {float(schedule['rate']):g}/s" + (f" for {float(dur):g} s" if dur is not None else "")
        if kind == "ramp":
            return (f"ramp {float(schedule['start_rate']):g} → {float(schedule['end_rate']):g}/s over "
                    f"{float(schedule.get('duration', schedule.get('seconds', 0.0))):g} s")
        if kind == "steps":
            steps = _steps(schedule.get("steps"))
            if steps:
                rates = " → ".join(f"{r:g}" for r, _ in steps)
                durs = {d for _, d in steps}
                each = f", {durs.pop():g} s each" if len(durs) == 1 else ""
                return f"steps {rates}/s{each}"
        if kind == "burst":
            within = schedule.get("within", schedule.get("seconds", schedule.get("within_s")))
            return f"burst of {int(schedule['count'])}" + (f" within {float(within):g} s" if within is not None else "")
    except (KeyError, TypeError, ValueError):
        pass
    return ", ".join(f"{k}={v}" for k, v in schedule.items())


@dataclass(frozen=True)
class ThroughputView:
    t: H.Floats
    rates: Mapping[str, H.Floats]  # counter name -> per-second rate per interval
    target: H.Floats | None


# Counters shown as throughput, in this order when present (names as the harness writes them).
THROUGHPUT_COUNTERS: tuple[str, ...] = (
    "sent", "ok", "tx_accepted", "errors", "dropped",
    "ws_sent", "ws_handled", "ws_conflated", "ws_dropped",
    "api_requests", "api_failures",
)


def throughput_view(scenario: Scenario) -> ThroughputView:
    ivs = [iv for iv in scenario.intervals if iv.duration > 0]
    t = np.asarray([(iv.start + iv.end) / 2 for iv in ivs], dtype=np.float64)
    names = [c for c in THROUGHPUT_COUNTERS if any(c in iv.counters for iv in ivs)]
    rates = {
        c: np.asarray([iv.counters.get(c, 0) / iv.duration for iv in ivs], dtype=np.float64) for c in names
    }
    fallback = scenario.summary.get("target_rate")
    target = target_rate_at(
        scenario.schedule, t, float(fallback) if isinstance(fallback, int | float) else None
    )
    return ThroughputView(t=t, rates=rates, target=target)


@dataclass(frozen=True)
class ResourcePanel:
    key: str
    title: str
    unit: str
    t: H.Floats
    values: H.Floats
    target: float | None
    maximum: float | None


# (sample field, verdict row, title, unit, scale, default target, default maximum) from slo-tables.md.
_RESOURCE_PANELS: tuple[tuple[str, str, str, str, float, float, float], ...] = (
    ("rss_bytes", "memory_rss", "RSS", "MB", MB, 256.0, 512.0),
    ("cpu_percent", "cpu", "CPU (% of one core)", "%", 1.0, 50.0, 80.0),
    ("net_bytes_per_s", "network_bandwidth", "Network (sent + received)", "MB/s", MB, 10.0, 50.0),
    ("disk_bytes_per_s", "disk_io", "Disk (read + written)", "MB/s", MB, 1.0, 10.0),
)


def _limits(verdicts: Sequence[Verdict], row: str, target: float, maximum: float) -> tuple[float, float]:
    """Target and maximum lines: the thresholds the run was judged against, else slo-tables.md's."""
    for v in verdicts:
        if v.row == row and v.threshold.level == "target":
            target = v.threshold.value
        if v.row == row and v.threshold.level == "maximum":
            maximum = v.threshold.value
    return target, maximum


def resource_panels(scenario: Scenario, verdicts: Sequence[Verdict]) -> list[ResourcePanel]:
    out = []
    for field, row, title, unit, scale, target, maximum in _RESOURCE_PANELS:
        pts = [(s.t, getattr(s, field)) for s in scenario.resources if getattr(s, field) is not None]
        tgt, mx = _limits(verdicts, row, target, maximum)
        out.append(ResourcePanel(
            key=field,
            title=title,
            unit=unit,
            t=np.asarray([p[0] for p in pts], dtype=np.float64),
            values=np.asarray([p[1] / scale for p in pts], dtype=np.float64),
            target=tgt,
            maximum=mx,
        ))
    return out


def log_bins(d: H.Dense, n_bins: int = 60) -> tuple[H.Floats, H.Floats]:
    """Counts of ``d`` regrouped into ``n_bins`` log-spaced bins (edges in ms) for a readable histogram."""
    nz = np.flatnonzero(d.counts)
    if nz.size == 0:
        return np.array([0.0, 1.0]), np.array([0.0])
    lo = max(d.layout.lowest[nz[0]], 1.0) / H.US_PER_MS
    hi = (d.layout.highest[nz[-1]] + 1) / H.US_PER_MS
    edges = np.geomspace(lo, max(hi, lo * 1.01), n_bins + 1)
    mids = d.layout.median[nz] / H.US_PER_MS
    counts, _ = np.histogram(mids, bins=edges, weights=d.counts[nz].astype(np.float64))
    return edges, counts
