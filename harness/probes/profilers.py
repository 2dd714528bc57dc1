"""py-spy and memray, driven as external tools around the bot process.

- py-spy attaches by PID (``record --pid``) rather than launching the bot: with ``--duration`` it
  kills a child it launched when time is up (machine-facts.md), and we want the bot to outlive
  the profile.
- memray wraps the bot's command line (``python -m memray run``). Soaks use the aggregated file
  format: tiny even after 24 h, and it still supports ``flamegraph --leaks``. Python allocators are
  traced because small Python allocations are otherwise invisible, at 35-67% overhead; the
  resources rows of a memray run are therefore not comparable with a plain run, and the report
  says so.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError


def pyspy_binary() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise HarnessError("py-spy is not installed: run ./dev setup (it is a Python dependency)")
    return found


def pyspy_record_command(pid: int, out: Path, duration_s: int, rate: int = 100, fmt: str = "flamegraph") -> list[str]:
    if fmt not in {"flamegraph", "speedscope", "raw"}:
        raise HarnessError(f"py-spy format {fmt!r}: use flamegraph, speedscope or raw")
    if duration_s <= 0:
        raise HarnessError("profile duration must be a positive number of seconds")
    return [
        pyspy_binary(), "record", "--pid", str(pid), "--duration", str(duration_s), "--rate", str(rate),
        "--format", fmt, "--output", str(out), "--nonblocking",
    ]


def start_pyspy(pid: int, out: Path, duration_s: int, fmt: str = "flamegraph") -> subprocess.Popen[bytes]:
    log = out.with_suffix(out.suffix + ".log").open("wb")
    return subprocess.Popen(pyspy_record_command(pid, out, duration_s, fmt=fmt), stdout=log, stderr=subprocess.STDOUT)


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
    peak_memory_bytes: int
    total_allocations: int
    leaked_bytes: int
    top_leaks: list[tuple[str, int]]  # (location, bytes)

    def as_dict(self) -> dict[str, object]:
        return {
            "peak_memory_bytes": self.peak_memory_bytes,
            "total_allocations": self.total_allocations,
            "leaked_bytes": self.leaked_bytes,
            "top_leaks": [{"where": w, "bytes": b} for w, b in self.top_leaks],
        }


def summarize_memray(capture: Path, top: int = 10) -> MemraySummary:
    """Peak memory and what was still allocated at exit (the leak candidates), by location."""
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
        )
    finally:
        reader.close()


def render_memray_flamegraph(capture: Path, out_html: Path, leaks: bool = True) -> Path:
    cmd = [sys.executable, "-m", "memray", "flamegraph", "--force", "-o", str(out_html)]
    if leaks:
        cmd.append("--leaks")
    subprocess.run([*cmd, str(capture)], check=True, capture_output=True, timeout=600)
    return out_html
