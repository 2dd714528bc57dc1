"""The shards' Prometheus expositions merged: shard labels, the process tree summed, still valid."""

from __future__ import annotations

import shutil
import subprocess

from prometheus_client.parser import text_string_to_metric_families

from bot.shard.metrics import merge_expositions
from bot.telemetry.prometheus import make_registry, render
from bot.telemetry.recorder import Telemetry


def _exposition(trades: int, errors: int) -> str:
    t = Telemetry()
    for i in range(trades):
        t.record("trade_execution", 20_000 + i)
        t.count("trades_ok")
    for _ in range(errors):
        t.error("timeout")
    t.set_gauge("loop_lag_ms", 2.0)
    t.rotate()
    return render(make_registry(t)).decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_each_shards_series_is_labelled_and_the_process_figures_are_summed() -> None:
    a, b = _exposition(3, 1), _exposition(5, 0)
    own = _exposition(0, 0)
    merged = merge_expositions([a, b, None], own=own).decode()
    got = _samples(merged)
    assert got[("bot_trades_ok_total", (("shard", "0"),))] == 3
    assert got[("bot_trades_ok_total", (("shard", "1"),))] == 5
    assert got[("bot_errors_total", (("kind", "timeout"), ("shard", "0")))] == 1
    count = ("bot_operation_latency_seconds_count", (("op", "trade_execution"), ("shard", "1")))
    assert got[count] == 5
    assert got[("bot_shard_up", (("shard", "2"),))] == 0 and got[("bot_shard_up", (("shard", "0"),))] == 1
    # One unlabelled series for the process tree: the sum of the three processes' readings.
    rss = [v for (name, labels), v in got.items() if name == "bot_process_resident_memory_bytes"]
    assert len(rss) == 1
    parts = [_samples(x)[("bot_process_resident_memory_bytes", ())] for x in (a, b, own)]
    assert rss[0] == sum(parts)
    assert not any(dict(labels).get("shard") for (name, labels) in got if name.startswith("bot_process_"))
    # The dashboard and alert queries aggregate these with sum by (le) / (job, instance): a family is
    # written once, so Prometheus accepts the page.
    assert merged.count("# TYPE bot_operation_latency_seconds histogram") == 1


def test_the_merged_page_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install the Debian package prometheus (./dev setup_system)"
    page = merge_expositions([_exposition(2, 1), _exposition(1, 2)], own=_exposition(0, 0))
    res = subprocess.run([promtool, "check", "metrics"], input=page, capture_output=True, timeout=60, check=False)
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()
