"""Prometheus exposition of ``Telemetry``, on a dedicated ``CollectorRegistry`` (never the global one).

Nothing is recorded twice: a custom collector reads the recorder's cumulative state at scrape time.

- ``bot_operation_latency_seconds{op}``: histogram for the four SLO operations. Bucket bounds
  include every SLO threshold (5, 10, 20, 25, 50, 100, 200, 500 ms). Bucket counts come from the
  HdrHistogram's counts, so a bound is exact to the histogram's 3 significant digits.
- ``bot_<name>_total{labels}``: one counter family per telemetry counter name, e.g.
  ``bot_errors_total{kind}``, ``bot_ticks_handled_total``, ``bot_trades_confirmed_total``,
  ``bot_drops_total{reason}``.
- Gauges: ``bot_in_flight``, ``bot_event_loop_lag_seconds`` (from ``loop_lag_ms``),
  ``bot_net_bytes_sent_total`` / ``bot_net_bytes_received_total`` (counters), any other gauge as
  ``bot_<name>``.
- ``bot_rpc_batch_size{endpoint}``: histogram of JSON-RPC calls per HTTP request (1 = a lone
  call), with ``bot_rpc_auto_batched_calls_total{endpoint}``: calls that left through the
  transport's auto-batching queue. Read from the transports' ``statistics()`` at scrape time.
- ``bot_process_resident_memory_bytes`` and friends from prometheus_client's process collector.
- Garbage collection (``bot.telemetry.gcwatch``): ``bot_gc_pause_seconds`` (histogram, every generation),
  ``bot_gc_collections_total{generation}``, ``bot_gc_collection_seconds_total{generation}`` (time paused),
  ``bot_gc_cpu_seconds_total{generation}`` (the collector's CPU time, which a busy neighbour does not inflate),
  ``bot_gc_objects_collected_total{generation}``, ``bot_gc_objects_uncollectable_total{generation}``; every
  generation is exposed from the start (at zero), so rates and the dashboard work before the first collection.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.telemetry.gcwatch import GC_PAUSE_OP, GENERATIONS
from bot.telemetry.recorder import SLO_OPERATIONS, Telemetry, parse_counter_key

if TYPE_CHECKING:
    from bot.rpc.transport import TransportStatistics

# (endpoint URL, its transport's statistics) for every HTTP endpoint, read at scrape time.
RpcStatistics = Callable[[], Iterable[tuple[str, "TransportStatistics"]]]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. Every SLO threshold is a bound, so "fraction under the target" is exact from buckets.
LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
# Seconds: a young collection takes tens of µs, a full one of a large heap tens of ms.
GC_PAUSE_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# gcwatch's counter name -> (metric name, help, scale to the metric's unit)
_GC_COUNTERS = {
    "gc_collections": ("bot_gc_collections_total", "Garbage collections, by generation", 1.0),
    "gc_pause_us": ("bot_gc_collection_seconds_total", "Time paused in garbage collection, by generation", 1e-6),
    "gc_cpu_us": ("bot_gc_cpu_seconds_total", "CPU time of the collecting thread in garbage collection, by generation",
                  1e-6),
    "gc_collected": ("bot_gc_objects_collected_total", "Objects freed by garbage collection, by generation", 1.0),
    "gc_uncollectable": ("bot_gc_objects_uncollectable_total", "Uncollectable objects found, by generation", 1.0),
}
_COUNTER_GAUGES = {"net_bytes_sent": "net_bytes_sent", "net_bytes_received": "net_bytes_received"}
_NAME_OK = re.compile(r"[^a-zA-Z0-9_]")


def _metric_name(name: str) -> str:
    return "bot_" + _NAME_OK.sub("_", name)


class TelemetryCollector(Collector):
    def __init__(self, telemetry: Telemetry) -> None:
        self._t = telemetry
        self._bucket_idx = [self._t.bucket_index(round(b * 1_000_000)) for b in LATENCY_BUCKETS_S]
        self._gc_idx = [self._t.bucket_index(round(b * 1_000_000)) for b in GC_PAUSE_BUCKETS_S]

    def collect(self) -> Iterator[Metric]:
        yield self._latency()
        totals = self._t.counter_totals()
        yield from self._counters(totals)
        yield self._gc_pause()
        yield from self._gc_counters(totals)
        yield from self._gauges()

    def _latency(self) -> HistogramMetricFamily:
        fam = HistogramMetricFamily(
            "bot_operation_latency_seconds", "Latency of the bot's SLO operations", labels=["op"]
        )
        ops = set(self._t.operations())
        for op in SLO_OPERATIONS:
            if op not in ops:
                continue
            counts, n, sum_us = self._t.cumulative_counts(op)
            cum = np.cumsum(counts)
            buckets = [(repr(b), float(cum[i])) for b, i in zip(LATENCY_BUCKETS_S, self._bucket_idx, strict=True)]
            buckets.append(("+Inf", float(n)))
            fam.add_metric([op], buckets, sum_value=sum_us / 1e6)
        return fam

    def _gc_pause(self) -> HistogramMetricFamily:
        fam = HistogramMetricFamily("bot_gc_pause_seconds", "Garbage-collection pauses, every generation")
        if GC_PAUSE_OP in set(self._t.operations()):
            counts, n, sum_us = self._t.cumulative_counts(GC_PAUSE_OP)
            cum = np.cumsum(counts)
            buckets = [(repr(b), float(cum[i])) for b, i in zip(GC_PAUSE_BUCKETS_S, self._gc_idx, strict=True)]
            fam.add_metric([], [*buckets, ("+Inf", float(n))], sum_value=sum_us / 1e6)
        else:
            fam.add_metric([], [*((repr(b), 0.0) for b in GC_PAUSE_BUCKETS_S), ("+Inf", 0.0)], sum_value=0.0)
        return fam

    def _gc_counters(self, totals: dict[str, int]) -> Iterator[CounterMetricFamily]:
        values: dict[tuple[str, str], float] = {}
        for key, value in totals.items():
            name, labels = parse_counter_key(key)
            if name in _GC_COUNTERS:
                values[(name, labels.get("generation", ""))] = float(value)
        for name, (metric, help_text, scale) in _GC_COUNTERS.items():
            fam = CounterMetricFamily(metric.removesuffix("_total"), help_text, labels=["generation"])
            for g in GENERATIONS:
                fam.add_metric([str(g)], values.get((name, str(g)), 0.0) * scale)
            yield fam

    def _counters(self, totals: dict[str, int]) -> Iterator[CounterMetricFamily]:
        families: dict[str, CounterMetricFamily] = {}
        label_names: dict[str, list[str]] = {}
        for key, value in sorted(totals.items()):
            name, labels = parse_counter_key(key)
            if name in _GC_COUNTERS:
                continue  # exposed by _gc_counters, in seconds and with every generation present
            names = sorted(labels)
            fam = families.get(name)
            if fam is None:
                fam = families[name] = CounterMetricFamily(
                    _metric_name(name), f"Count of {name} events", labels=names
                )
                label_names[name] = names
            if label_names[name] != names:
                continue  # inconsistent label sets under one name cannot be exposed; counter_key prevents it
            fam.add_metric([labels[k] for k in names], float(value))
        # The alert rules divide by these: expose them at zero before the first error.
        for name, label in (("errors", "kind"),):
            if name not in families:
                families[name] = CounterMetricFamily(_metric_name(name), f"Count of {name} events", labels=[label])
        yield from families.values()

    def _gauges(self) -> Iterator[Metric]:
        gauges = self._t.gauges()
        lag = GaugeMetricFamily("bot_event_loop_lag_seconds", "Event-loop lag (sleep drift), latest sample")
        lag.add_metric([], gauges.pop("loop_lag_ms", 0.0) / 1000.0)
        yield lag
        inflight = GaugeMetricFamily("bot_in_flight", "Operations in flight")
        inflight.add_metric([], gauges.pop("in_flight", 0.0))
        yield inflight
        for gname, cname in _COUNTER_GAUGES.items():
            if gname in gauges:
                help_text = f"Bytes {cname.rsplit('_', 1)[-1]} by the bot's transports"
                fam = CounterMetricFamily(_metric_name(cname), help_text)
                fam.add_metric([], gauges.pop(gname))
                yield fam
        for name, value in sorted(gauges.items()):
            g = GaugeMetricFamily(_metric_name(name), f"Gauge {name}")
            g.add_metric([], float(value))
            yield g


def endpoint_label(url: str) -> str:
    """``host:port`` of an endpoint URL: a provider's key often sits in its path or query, and a
    label is copied into every dashboard and alert."""
    parts = urlsplit(url)
    host = parts.hostname or "endpoint"
    return f"{host}:{parts.port}" if parts.port else host


class RpcCollector(Collector):
    def __init__(self, stats: RpcStatistics) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        sizes = HistogramMetricFamily("bot_rpc_batch_size", "JSON-RPC calls per HTTP request", labels=["endpoint"])
        auto = CounterMetricFamily("bot_rpc_auto_batched_calls", "Calls sent through the auto-batching queue",
                                   labels=["endpoint"])
        for name, st in self._stats():
            if not st.batch_sizes:
                continue
            buckets = [("+Inf" if math.isinf(le) else repr(le), float(n)) for le, n in st.batch_sizes]
            sizes.add_metric([endpoint_label(name)], buckets, sum_value=float(st.calls))
            auto.add_metric([endpoint_label(name)], float(st.auto_batched))
        yield sizes
        yield auto


def make_registry(telemetry: Telemetry, *, process: bool = True, rpc: RpcStatistics | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TelemetryCollector(telemetry))
    if rpc is not None:
        registry.register(RpcCollector(rpc))
    if process:
        ProcessCollector(namespace="bot", registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
