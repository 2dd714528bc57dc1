"""Resource sampling of the bot's process tree (psutil), for the resources table of the SLOs.

The sampler is a thin shell around a pure accumulator: ``ResourceSeries.add`` turns cumulative
counters (CPU seconds, disk bytes, network bytes) into per-interval rates, so the arithmetic is tested
without processes. CPU is reported as a percentage of ONE core (100% = one core busy), as the
SLO table defines it. Disk I/O is ``read_bytes + write_bytes`` from /proc/<pid>/io (bytes that
reached the storage layer). psutil has no per-process network counters, so network bytes come
from the bot's own transport counters (its ``/stats`` gauges) and are fed in by the caller.

Children that exit between two samples take their CPU and I/O with them; the bot spawns only
long-lived children (signing workers), so this is noted, not corrected.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import psutil

from harness.probes.periodic import Periodic


@dataclass(frozen=True)
class Cumulative:
    """Cumulative counters of a process tree at one instant."""

    t: float  # monotonic seconds
    rss_bytes: int
    cpu_seconds: float
    disk_bytes: int
    net_bytes: int | None = None


@dataclass(frozen=True)
class ResourceSample:
    t: float  # seconds since the series' origin
    rss_bytes: int
    cpu_percent: float
    disk_bytes_per_s: float
    net_bytes_per_s: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "t": round(self.t, 3),
            "rss_bytes": self.rss_bytes,
            "cpu_percent": round(self.cpu_percent, 2),
            "disk_bytes_per_s": round(self.disk_bytes_per_s, 1),
            "net_bytes_per_s": None if self.net_bytes_per_s is None else round(self.net_bytes_per_s, 1),
        }


@dataclass
class ResourceSeries:
    """Turns successive cumulative readings into rate samples (pure)."""

    origin: float
    samples: list[ResourceSample] = field(default_factory=list)
    _last: Cumulative | None = None

    def carry(self, earlier: ResourceSeries) -> None:
        """Put an earlier series' samples before this one's, on this series' clock (pure)."""
        shift = earlier.origin - self.origin
        self.samples[:0] = [replace(s, t=s.t + shift) for s in earlier.samples]

    def add(self, cur: Cumulative) -> ResourceSample | None:
        prev, self._last = self._last, cur
        if prev is None:
            return None
        dt = cur.t - prev.t
        if dt <= 0:
            return None
        net: float | None = None
        if cur.net_bytes is not None and prev.net_bytes is not None:
            net = max(0, cur.net_bytes - prev.net_bytes) / dt
        sample = ResourceSample(
            t=cur.t - self.origin,
            rss_bytes=cur.rss_bytes,
            # max(0, ...): a child that exited makes the tree's cumulative CPU go down.
            cpu_percent=max(0.0, cur.cpu_seconds - prev.cpu_seconds) / dt * 100.0,
            disk_bytes_per_s=max(0, cur.disk_bytes - prev.disk_bytes) / dt,
            net_bytes_per_s=net,
        )
        self.samples.append(sample)
        return sample


def read_tree(pid: int, net_bytes: int | None = None) -> Cumulative:
    """One reading of a process and all its descendants."""
    root = psutil.Process(pid)
    procs = [root]
    try:
        procs += root.children(recursive=True)
    except psutil.Error:
        pass
    rss = 0
    cpu = 0.0
    disk = 0
    for p in procs:
        try:
            with p.oneshot():
                rss += p.memory_info().rss
                ct = p.cpu_times()
                cpu += ct.user + ct.system
                io = p.io_counters()
                disk += io.read_bytes + io.write_bytes
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        except psutil.AccessDenied:
            continue
    return Cumulative(t=time.monotonic(), rss_bytes=rss, cpu_seconds=cpu, disk_bytes=disk, net_bytes=net_bytes)


class ProcessTreeSampler:
    """Samples a process tree every ``interval`` seconds until stopped (bounded by ``max_samples``)."""

    def __init__(self, pid: int, interval: float = 0.5, max_samples: int = 1_000_000,
                 net_bytes: Callable[[], int | None] | None = None) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        self.pid = pid
        self.interval = interval
        self.max_samples = max_samples
        self.series = ResourceSeries(origin=time.monotonic())
        # The bot's own transport byte counters (psutil has none per process), if available.
        self.net_bytes = net_bytes or (lambda: None)
        self._loop = Periodic(self.sample_now, interval, name=f"sampler-{pid}", max_runs=max_samples)

    def __repr__(self) -> str:
        return f"<ProcessTreeSampler pid={self.pid} every={self.interval}s samples={len(self.series.samples)}>"

    def sample_now(self) -> ResourceSample | None:
        try:
            return self.series.add(read_tree(self.pid, self.net_bytes()))
        except psutil.NoSuchProcess:
            return None

    def start(self) -> None:
        self.series = ResourceSeries(origin=time.monotonic())
        self._loop.start()

    async def stop(self) -> list[ResourceSample]:
        await self._loop.stop()
        self.sample_now()
        return list(self.series.samples)

    def take(self, since_t: float = 0.0) -> list[ResourceSample]:
        return [s for s in self.series.samples if s.t >= since_t]
