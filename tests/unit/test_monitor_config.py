"""The monitor's pure parts: bad input is refused with the fix, the config is what Prometheus needs,
API answers parse strictly, and the watch loop reports changes. The real Prometheus runs in
tests/integration/test_prometheus_live.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from harness.errors import ConfigError, HarnessError
from harness.monitor.client import parse_alerts, parse_query, parse_rules, parse_targets, unwrap
from harness.monitor.command import Snapshot, changes
from harness.monitor.config import (
    PROMETHEUS_ENV,
    SHIPPED_ALERTS,
    MonitorOptions,
    find_prometheus,
    prometheus_config,
    render_config,
    scrape_target,
)
from harness.monitor.server import check_bot
from harness.run.options import free_port


def test_the_bot_url_becomes_a_scrape_target() -> None:
    t = scrape_target("http://127.0.0.1:8600")
    assert (t.scheme, t.address, t.metrics_path, t.url) == ("http", "127.0.0.1:8600", "/metrics",
                                                             "http://127.0.0.1:8600/metrics")
    assert scrape_target("http://localhost:8600/metrics/").metrics_path == "/metrics"
    assert scrape_target("http://[::1]:8600").address == "[::1]:8600"
    assert scrape_target("http://10.0.0.5:8600", allow_remote=True).address == "10.0.0.5:8600"


@pytest.mark.parametrize(("url", "says"), [
    ("http://10.0.0.5:8600", "--allow-remote"),
    ("http://bot.example.com:8600", "--allow-remote"),
    ("127.0.0.1:8600", "http://"),
    ("ftp://127.0.0.1:8600", "http://"),
    ("http://:8600", "no host"),
    ("http://127.0.0.1:99999", "port"),
    ("http://u:secret@127.0.0.1:8600", "credentials"),
    ("http://127.0.0.1:8600/metrics?key=1", "query"),
])
def test_a_bad_bot_url_is_refused_naming_the_fix(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match="--bot") as err:
        scrape_target(url)
    assert says in str(err.value)
    assert "secret" not in str(err.value)


@pytest.mark.parametrize("interval", [0.0, 0.05, -1.0, float("nan"), float("inf"), 7200.0])
def test_a_bad_scrape_interval_is_refused(interval: float) -> None:
    with pytest.raises(ConfigError, match="--scrape-interval"):
        MonitorOptions(scrape_interval_s=interval)


def test_a_bad_port_is_refused() -> None:
    with pytest.raises(ConfigError, match="--port"):
        MonitorOptions(port=70000)


def test_a_missing_binary_names_the_package_and_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(PROMETHEUS_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError) as err:
        find_prometheus()
    assert "apt-get install prometheus" in str(err.value) and PROMETHEUS_ENV in str(err.value)
    monkeypatch.setenv(PROMETHEUS_ENV, str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match=PROMETHEUS_ENV):
        find_prometheus()


def test_the_config_scrapes_the_bot_and_evaluates_as_often(tmp_path: Path) -> None:
    (tmp_path / "lowered.yml").write_text("groups: []\n")
    opts = MonitorOptions(scrape_interval_s=1.0, extra_rules_dir=tmp_path)
    rules = opts.all_rule_files()
    assert rules == [SHIPPED_ALERTS, (tmp_path / "lowered.yml").resolve()]
    cfg = prometheus_config(scrape_target("http://127.0.0.1:8600"), opts, rules)
    assert cfg["global"] == {"scrape_interval": "1000ms", "scrape_timeout": "1000ms", "evaluation_interval": "1000ms"}
    (job,) = cfg["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8600"]}] and job["metrics_path"] == "/metrics"
    assert json.loads(render_config(cfg)) == cfg  # JSON is the YAML we write
    # A long interval keeps Prometheus's 10 s scrape timeout: a timeout may not exceed the interval.
    slow = prometheus_config(scrape_target("http://127.0.0.1:8600"), MonitorOptions(scrape_interval_s=30), rules)
    assert slow["global"]["scrape_timeout"] == "10000ms"


def test_missing_rule_files_are_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        MonitorOptions(rule_files=(tmp_path / "none.yml",)).all_rule_files()
    with pytest.raises(ConfigError, match=r"no \*\.yml"):
        MonitorOptions(extra_rules_dir=tmp_path).all_rule_files()


def test_api_answers_parse_strictly() -> None:
    with pytest.raises(HarnessError, match="bad_data: parse error"):
        unwrap({"status": "error", "errorType": "bad_data", "error": "parse error"}, "query")
    vec = {"resultType": "vector", "result": [{"metric": {"__name__": "up", "job": "b"}, "value": [1.0, "1"]}]}
    (s,) = parse_query(vec)
    assert (s.name, s.labels["job"], s.value) == ("up", "b", 1.0)
    assert parse_query({"resultType": "scalar", "result": [1.0, "NaN"]})[0].value != 0.0
    with pytest.raises(HarnessError, match="value"):
        parse_query({"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "x"]}]})
    (t,) = parse_targets({"activeTargets": [{"scrapePool": "b", "scrapeUrl": "http://h/metrics", "health": "up",
                                             "lastError": "", "lastScrape": "0001-01-01T00:00:00Z", "labels": {}}]})
    assert t.health == "up" and not t.scraped
    (a,) = parse_alerts({"alerts": [{"labels": {"alertname": "X", "instance": "i"}, "annotations": {},
                                     "state": "firing", "activeAt": "t", "value": "1e+00"}]})
    assert (a.name, a.state) == ("X", "firing")
    (r,) = parse_rules({"groups": [{"name": "g", "rules": [{"name": "X", "type": "alerting", "query": "up > 1",
                                                            "health": "ok", "state": "inactive", "alerts": []}]}]})
    assert (r.group, r.kind, r.health, r.state, r.evaluated) == ("g", "alerting", "ok", "inactive", True)


def test_the_watch_loop_reports_each_change_once() -> None:
    up = Snapshot("up")
    down = Snapshot("down", "connection refused")
    assert changes(up, up, "b") == []
    assert changes(up, down, "b") == ["bot b DOWN: connection refused"]
    assert changes(down, up, "b") == ["bot b up again"]
    pending = Snapshot("up", alerts={("MemoryUsageHigh", "127.0.0.1:1"): "pending"})
    firing = Snapshot("up", alerts={("MemoryUsageHigh", "127.0.0.1:1"): "firing"})
    assert changes(up, pending, "b") == ["alert MemoryUsageHigh (127.0.0.1:1) PENDING"]
    assert changes(pending, firing, "b") == ["alert MemoryUsageHigh (127.0.0.1:1) FIRING"]
    assert changes(firing, up, "b") == ["alert MemoryUsageHigh (127.0.0.1:1) resolved"]


@pytest.fixture
async def not_a_bot() -> AsyncIterator[str]:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text="node_cpu_seconds_total 1\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_an_unreachable_or_wrong_bot_is_named_before_prometheus_starts(not_a_bot: str) -> None:
    with pytest.raises(HarnessError, match=r"no bot answers .*bot run --config"):
        await check_bot(scrape_target(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(HarnessError, match="HTTP 404"):
        await check_bot(scrape_target(not_a_bot + "/elsewhere"))
    with pytest.raises(HarnessError, match="no bot_ series"):
        await check_bot(scrape_target(not_a_bot))
