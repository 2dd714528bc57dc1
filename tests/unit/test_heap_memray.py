"""memray's aggregated capture, for real: the soak's command line, its size per hour, and the summary and both
flame graphs still rendering from the aggregated format (``memray stats`` refuses it; we do not use it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.probes.profilers import memray_capture, memray_wrap, render_memray_flamegraph, summarize_memray

SCRIPT = """
import time
kept = []
def leak():
    kept.append(b"\\xa5" * 100_000)
for _ in range(50):
    leak()
    time.sleep(0.002)
"""


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("memray")
    (folder / "leaky.py").write_text(SCRIPT)
    out = folder / "bot.memray.bin"
    # the soak's own wrapping, with a module in place of the bot
    cmd = memray_wrap([sys.executable, "-m", "leaky"], out)
    assert "--aggregate" in cmd and "--trace-python-allocators" in cmd
    subprocess.run(cmd, cwd=folder, check=True, capture_output=True, timeout=120)
    return out


def test_the_aggregated_capture_is_summarised_and_sized(capture: Path) -> None:
    info = memray_capture(capture)
    assert info.file_format == "AGGREGATED_ALLOCATIONS" and info.size_bytes == capture.stat().st_size > 0
    assert info.tracked_s > 0 and info.bytes_per_hour == pytest.approx(info.size_bytes * 3600 / info.tracked_s)
    summary = summarize_memray(capture)
    where, size = summary.top_leaks[0]
    assert "leaky.py:5" in where and size >= 50 * 100_000 and summary.file_format == "AGGREGATED_ALLOCATIONS"


@pytest.mark.parametrize("leaks", [True, False], ids=["at-exit", "at-peak"])
def test_both_flame_graphs_render_from_it(capture: Path, tmp_path: Path, leaks: bool) -> None:
    page = render_memray_flamegraph(capture, tmp_path / "flame.html", leaks=leaks)
    assert page.stat().st_size > 10_000 and "leaky.py" in page.read_text()


def test_an_empty_capture_says_the_bot_was_killed(tmp_path: Path) -> None:
    empty = tmp_path / "bot.memray.bin"
    empty.write_bytes(b"")
    with pytest.raises(HarnessError, match="killed before it could"):
        memray_capture(empty)
