"""py-spy and memray, driven as external tools around the bot process.

- py-spy: ``harness.probes.pyspy`` (its command line, its recording, a ptrace refusal explained).
- memray wraps the bot's command line (``python -m memray run``). Soaks use the aggregated file
  format: written once, when the bot exits, its size set by the distinct call stacks rather than by
  time, and it still supports ``flamegraph`` (with ``--leaks`` too) and the leaked-records summary.
  Python allocators are traced because small Python allocations are otherwise invisible; that costs
  ~3.5x the CPU per trade and ~1.75x the trade p99 at 15 trades/s (``MEMRAY_OVERHEAD``), so the
  resources rows of a memray run are not comparable with a plain run, and the report says so.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError


def memray_wrap(argv: list[str], capture: Path, *, aggregate: bool = True, python_allocators: bool = True) -> list[str]:
    """Return ``argv`` (a ``python -m ...`` command) wrapped so that memray tracks it."""
    if len(argv) < 3 or argv[1] != "-m":
        raise HarnessError("memray_wrap expects a 'python -m module ...' command line")
    cmd = [argv[0], "-m", "memray", "run", "--force", "-o", str(capture)]
    if aggregate:
        cmd.append("--aggregate")
    if python_allocators:
        cmd.append("--trace-python-allocators")
    return [*cmd, "-m", *argv[2:]]


@dataclass(frozen=True)
class MemraySummary:
    """What a capture says: its peak, and what was still allocated when the bot exited, by location.

    Still allocated at exit is not growth: its largest entries are import-time bytecode and caches. The
    sites that grew while the soak ran come from the bot's heap watch (``summary.heap_growth``)."""

    peak_memory_bytes: int
    total_allocations: int
    leaked_bytes: int
    top_leaks: list[tuple[str, int]]  # (location, bytes)
    file_format: str = "unknown"

    def as_dict(self) -> dict[str, object]:
        return {
            "peak_memory_bytes": self.peak_memory_bytes,
            "total_allocations": self.total_allocations,
            "leaked_bytes": self.leaked_bytes,
            "top_leaks": [{"where": w, "bytes": b} for w, b in self.top_leaks],
            "file_format": self.file_format,
        }


def summarize_memray(capture: Path, top: int = 10) -> MemraySummary:
    """Peak memory and what was still allocated at exit (the leak candidates), by location.

    Works on the aggregated format (``get_leaked_allocation_records`` and the flame graphs do; ``memray
    stats`` and the temporal reports refuse it: checked with memray 1.20)."""
    from memray import FileReader  # imported lazily: memray is heavy and only soaks need it

    reader = FileReader(str(capture))
    try:
        meta = reader.metadata
        by_where: dict[str, int] = {}
        for rec in reader.get_leaked_allocation_records(merge_threads=True):
            frames = rec.stack_trace(max_stacks=1)
            where = f"{frames[0][1]}:{frames[0][2]} ({frames[0][0]})" if frames else "<unknown>"
            by_where[where] = by_where.get(where, 0) + rec.size
        leaks = sorted(by_where.items(), key=lambda kv: kv[1], reverse=True)
        return MemraySummary(
            peak_memory_bytes=int(meta.peak_memory),
            total_allocations=int(meta.total_allocations),
            leaked_bytes=sum(by_where.values()),
            top_leaks=leaks[:top],
            file_format=getattr(meta.file_format, "name", str(meta.file_format)),
        )
    finally:
        reader.close()


@dataclass(frozen=True)
class MemrayCapture:
    """The capture file: its size, and its size per hour of tracking (the bot's lifetime under memray)."""

    size_bytes: int
    file_format: str
    tracked_s: float
    memray_version: str

    @property
    def bytes_per_hour(self) -> float | None:
        return self.size_bytes / (self.tracked_s / 3600.0) if self.tracked_s > 0 else None

    def as_dict(self) -> dict[str, object]:
        return {"size_bytes": self.size_bytes, "file_format": self.file_format, "tracked_s": round(self.tracked_s, 1),
                "bytes_per_hour": self.bytes_per_hour, "memray_version": self.memray_version}


def memray_capture(capture: Path) -> MemrayCapture:
    """Size and format of a finished capture. An aggregated capture is written when the tracked process
    exits: an empty file means the bot was killed first (SIGKILL, or the harness's death took it)."""
    import memray
    from memray import FileReader

    size = capture.stat().st_size
    if size == 0:
        raise HarnessError(f"{capture.name} is empty: memray writes an aggregated capture when the bot exits, and "
                           "this bot was killed before it could (the heap growth table in the journal survives)")
    reader = FileReader(str(capture))
    try:
        meta = reader.metadata
        tracked = (meta.end_time - meta.start_time).total_seconds()
        fmt = getattr(meta.file_format, "name", str(meta.file_format))
    finally:
        reader.close()
    return MemrayCapture(size, fmt, max(0.0, tracked), str(getattr(memray, "__version__", "unknown")))


@dataclass(frozen=True)
class MemrayOverhead:
    """memray's measured cost on the bot, for the soak page (a constant with its provenance: measuring it
    in every soak would need a second, untracked bot)."""

    rate_per_s: float
    throughput_ratio: float  # trades/s with memray / without (the rate was offered open loop)
    p99_ms_without: float
    p99_ms_with: float
    cpu_per_trade_ratio: float
    conditions: str
    source: str
    rss_mb_without: float = 0.0
    rss_mb_with: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {"rate_per_s": self.rate_per_s, "throughput_ratio": self.throughput_ratio,
                "p99_ms_without": self.p99_ms_without, "p99_ms_with": self.p99_ms_with,
                "cpu_per_trade_ratio": self.cpu_per_trade_ratio, "conditions": self.conditions,
                "source": self.source, "rss_mb_without": self.rss_mb_without, "rss_mb_with": self.rss_mb_with}


# Measured at 15 trades/s, not 100: under memray the bot costs ~23 ms of CPU per trade here, so 100/s
# would need 2.3 of this machine's 2 cores (saturated: the figures would be its backlog's). 15/s is the
# soak's own kind of rate (the calibration chooses 15-20/s under memray on this machine).
MEMRAY_OVERHEAD = MemrayOverhead(
    rate_per_s=15.0, throughput_ratio=1.0, p99_ms_without=64.1, p99_ms_with=112.0, cpu_per_trade_ratio=3.48,
    conditions="15 trades/s offered for 40 s, 10 pairs, heap tracing off, 2 runs each way interleaved "
               "(plain, memray, plain, memray) on the shared 2-core VM, CPU reference 3.0-6.3M it/s; both "
               "held 15.00 trades/s; trade_execution p99 55.1 and 73.0 ms plain, 99.1 and 124.9 ms under memray; "
               "CPU per trade 6.0 and 7.4 ms plain, 22.0 and 24.4 ms under memray; RSS 85 MB plain, 276 MB "
               "under memray",
    source="harness soak --minutes 0.67 --pairs 10 --rate 15 --bot debug.heap_trace_frames=0 [--no-memray], "
           "2026-12-07 (harness.probes.profilers.MEMRAY_OVERHEAD)",
    rss_mb_without=85.0, rss_mb_with=276.0)


def render_memray_flamegraph(capture: Path, out_html: Path, leaks: bool = True) -> Path:
    """memray's flame graph: of what was still allocated at exit (``leaks``) or at the peak."""
    cmd = [sys.executable, "-m", "memray", "flamegraph", "--force", "-o", str(out_html)]
    if leaks:
        cmd.append("--leaks")
    subprocess.run([*cmd, str(capture)], check=True, capture_output=True, timeout=600)
    return out_html
