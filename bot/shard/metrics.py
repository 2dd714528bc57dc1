"""The shards' Prometheus expositions as one (pure).

Every series a shard exposes keeps its name and labels and gains ``shard="<index>"``: the dashboard's and
the alert rules' queries aggregate with ``sum by (le)`` / ``sum by (job, instance)``, so they read a sharded
bot as one, and per-series panels (in flight, loop lag, network) show a line per shard. The process
families (``bot_process_*``: RSS, CPU seconds, file descriptors) are the exception: they are summed over
the shards and the parent into one unlabelled series, because the bot's memory and CPU are those of its
whole process tree (as the harness measures them and as ``MemoryUsageHigh`` and the RSS/CPU panels read
them); ``bot_process_start_time_seconds`` and ``bot_process_max_fds`` are not amounts and take the minimum.
``bot_shard_up{shard}`` is 1 for each shard whose ``/metrics`` answered this scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

SHARD_LABEL = "shard"
PROCESS_PREFIX = "bot_process_"
PROCESS_RULES: dict[str, Callable[[Iterable[float]], float]] = {
    "bot_process_start_time_seconds": min, "bot_process_max_fds": min,
}

_LabelKey = tuple[str, tuple[tuple[str, str], ...]]


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self._families


class _Summed:
    """One process family's samples, combined across processes."""

    def __init__(self, fam: Metric) -> None:
        self.fam = fam
        self.values: dict[_LabelKey, list[float]] = {}

    def add(self, fam: Metric) -> None:
        for s in fam.samples:
            self.values.setdefault((s.name, tuple(sorted(s.labels.items()))), []).append(float(s.value))

    def metric(self) -> Metric:
        out = Metric(self.fam.name, self.fam.documentation, self.fam.type)
        rule = PROCESS_RULES.get(self.fam.name, sum)
        for (name, labels), values in self.values.items():
            out.add_sample(name, dict(labels), rule(values))
        return out


def merge_expositions(shards: Sequence[str | None], own: str | None = None) -> bytes:
    """``shards[i]``: shard i's exposition text (None: it did not answer); ``own``: the parent's, of which
    only the process families are taken. Returns one valid text exposition."""
    labelled: dict[str, Metric] = {}
    summed: dict[str, _Summed] = {}
    up = Metric("bot_shard_up", "1 if the shard's /metrics answered this scrape", "gauge")
    texts: list[tuple[str | None, str]] = [(str(i), t) for i, t in enumerate(shards) if t is not None]
    if own is not None:
        texts.append((None, own))
    for i, text in enumerate(shards):
        up.add_sample("bot_shard_up", {SHARD_LABEL: str(i)}, 0.0 if text is None else 1.0)
    for shard, text in texts:
        for fam in text_string_to_metric_families(text):
            if fam.name.startswith(PROCESS_PREFIX):
                summed.setdefault(fam.name, _Summed(fam)).add(fam)
                continue
            if shard is None:
                continue
            merged = labelled.get(fam.name)
            if merged is None:
                merged = labelled[fam.name] = Metric(fam.name, fam.documentation, fam.type)
            for s in fam.samples:
                merged.add_sample(s.name, {**s.labels, SHARD_LABEL: shard}, s.value, s.timestamp)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([*labelled.values(), *(s.metric() for s in summed.values()), up]))
    return bytes(generate_latest(registry))
