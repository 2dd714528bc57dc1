"""``harness soak`` for real: a SIGKILLed soak re-judged from its checkpoints (RSS and heap, its bot under
jemalloc); a planted leak caught on both signals with its allocation site named, a clean soak not called a
leak. Short soaks at a modest rate (10 trades/s, 5 pairs, no memray; the soak's heap tracing on, as by
default), so the bot keeps up on a machine 2-3x slower than this one; every wait is on a condition with a
generous deadline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

import bot.debug
from harness.report import load_results
from harness.results.journal import JOURNAL_NAME, load_journal
from tests.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SOAK = ("soak", "--pairs", "5", "--rate", "10", "--no-memray", "--no-progress")
PLANTED = 131_072  # bytes per trade: 4.7 GB/h at 10 trades/s, ~6x the short-window floor


def _harness(*args: str, out: Path) -> subprocess.Popen[str]:
    # Its own session: the test kills the harness's whole process group, as a CI runner's timeout would.
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args, "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "COLUMNS": "200"})


def _run_dir(out: Path) -> Path | None:
    runs = [p for p in out.iterdir() if p.is_dir() and (p / "results.json").exists()]
    return runs[0] if len(runs) == 1 else None


def _leak_row(doc: dict[str, Any], stat: str = "rss_slope") -> dict[str, Any]:
    return next(v for v in doc["verdicts"] if v["row"] == "memory_leak" and v["stat"] == stat)


def _bot_maps(harness_pid: int) -> str:
    """/proc/PID/maps of the bot process the harness started ('' until it runs)."""
    try:
        kids = psutil.Process(harness_pid).children(recursive=True)
    except psutil.Error:
        return ""
    for kid in kids:
        try:
            cmd = kid.cmdline()
            if "bot" in cmd and "run" in cmd and "-m" in cmd:
                return Path(f"/proc/{kid.pid}/maps").read_text()
        except (psutil.Error, OSError):
            continue
    return ""


def _leak_line() -> int:
    """The line of bot/debug.py that keeps the planted bytes."""
    lines = Path(bot.debug.__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if "self._kept.append(" in line)


def _covered(out: Path) -> float:
    """Seconds of the soak its checkpoints cover so far (0 until there are some)."""
    run = _run_dir(out)
    read = load_journal(run) if run is not None else None
    return max((float(r["t"]) for r in read.records if r["kind"] == "checkpoint"), default=0.0) if read else 0.0


async def test_a_killed_soak_is_rejudged_from_its_checkpoints(tmp_path: Path) -> None:
    proc = _harness(*SOAK, "--minutes", "1", "--bot-allocator", "jemalloc", out=tmp_path)
    try:
        # 20 s of checkpoints: ~40 RSS samples, enough after the 20% warm-up for a slope with a CI.
        await until(lambda: _covered(tmp_path) >= 20.0 or proc.poll() is not None, within=180, every=0.25,
                    what="20 s of soak checkpoints")
        assert proc.poll() is None, proc.communicate()[0]
        assert "libjemalloc.so.2" in _bot_maps(proc.pid)  # preloaded into the bot's process
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    run = _run_dir(tmp_path)
    assert run is not None
    assert json.loads((run / "results.json").read_text())["status"] == "partial"  # what the kill left
    res = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(run), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "re-judged" in res.stdout and "partial: first" in res.stdout, res.stdout
    doc = orjson.loads((run / "results.json").read_bytes())
    load_results(run / "results.json")  # valid against the schema
    assert doc["status"] == "interrupted" and doc["x_rejudged"]["cause"] == "killed"
    soak = next(s for s in doc["scenarios"] if s["id"] == "soak")
    part = soak["summary"]["partial"]
    assert 20.0 <= part["covered_s"] < part["planned_s"] == 60.0, part
    assert len(soak["resources"]) >= 30 and soak["health"]["probes"] > 0 and soak["intervals"]
    leak = _leak_row(doc)
    assert leak["verdict"] in ("pass", "fail", "inconclusive") and leak["value"] is not None, leak
    assert leak["note"].startswith("partial: first") and "(the run was killed)" in leak["note"], leak["note"]
    heap = _leak_row(doc, "heap_slope")  # the heap levels rode in the checkpoints too
    assert heap["value"] is not None and heap["x_leak"]["mde_bph"] is not None, heap
    assert heap["note"].startswith("partial: first"), heap["note"]
    assert doc["conditions"]["bot"]["allocator"]["name"] == "jemalloc"
    assert 'id="rejudged-banner"' in (run / "index.html").read_text()
    # the checkpoints' cost did not grow through the soak (each holds ~5 s of new data)
    cost = part["checkpoint_cost_ms"]
    assert cost["n"] >= 3 and cost["last"] < 100.0, cost
    assert (run / JOURNAL_NAME).exists()
    # nothing of the killed run outlives it (anvil dies with its parent; the bot was in the process group)
    await until(lambda: subprocess.run(["pgrep", "-f", str(run)], capture_output=True, check=False).returncode != 0,
                within=30, every=0.2, what="every process of the killed run gone")


@pytest.mark.parametrize("planted", [PLANTED, 0], ids=["planted-leak", "clean"])
def test_a_planted_leak_fails_memory_leak_and_a_clean_soak_does_not(tmp_path: Path, planted: int) -> None:
    extra = ("--bot", f"debug.leak_bytes_per_trade={planted}") if planted else ()
    proc = _harness(*SOAK, "--minutes", "0.75", *extra, out=tmp_path)
    output, _ = proc.communicate(timeout=280)
    run = _run_dir(tmp_path)
    assert run is not None, output
    doc = orjson.loads((run / "results.json").read_bytes())
    assert doc["status"] == "complete", output
    assert doc["conditions"]["bot"]["debug"]["leak_bytes_per_trade"] == planted
    soak = doc["scenarios"][0]
    assert soak["summary"]["saturation"]["saturated"] is False, soak["summary"]["saturation"]
    assert doc["conditions"]["bot"]["debug"]["heap_trace_frames"] == 1  # the soak's default
    trades_per_h = soak["summary"]["achieved_rate"] * 3600
    for stat in ("rss_slope", "heap_slope"):
        leak = _leak_row(doc, stat)
        figures = (f"{leak['verdict']}: {leak['value']:.4g} B/h, CI {leak['ci']}, smallest leak called "
                   f"{leak['x_leak']['mde_bph']:.4g} B/h; {leak['note']}")
        print(f"memory_leak {stat} ({'planted ' + str(planted) + ' B/trade' if planted else 'clean'}): {figures}")
        if planted:
            assert leak["verdict"] == "fail", figures
            assert 0.5 < leak["value"] / (planted * trades_per_h) < 2.0, figures  # the growth planted, measured
        else:
            assert leak["verdict"] != "fail", figures
        assert "smallest leak this window calls" in leak["note"], figures
    growth = soak["summary"]["heap_growth"]
    top = growth["sites"][0]
    print(f"top growth site: {top['file']}:{top['line']} +{top['bytes_grown']:,} B in {growth['span_s']:.0f} s "
          f"(snapshot {growth['snapshot_ms']:.0f} ms)")
    if planted:  # the leak's own line, not what was merely still allocated at exit
        assert (top["file"], top["line"]) == (bot.debug.__file__, _leak_line()), growth["sites"][:3]
        assert top["bytes_grown"] >= 0.5 * planted * trades_per_h * growth["span_s"] / 3600
        page = (run / "index.html").read_text()
        assert "bot/debug.py:" in page[page.index('id="growth-table"'):]
    else:
        assert all(s["file"] != bot.debug.__file__ for s in growth["sites"])
