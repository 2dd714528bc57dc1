"""A real Prometheus scrapes a real bot trading on anvil: the series arrive, the shipped alert rules
evaluate on them, a test-only copy of the memory rule with a lowered threshold fires, every
Grafana query names only metrics the bot really exports, and ``harness monitor`` does all this in
one command and leaves nothing behind when stopped.

One bot and one Prometheus for the module (starting anvil, deploying and trading costs seconds
that each test would pay again). Waits are bounded conditions, never fixed sleeps. A missing
``prometheus`` binary fails here with the install hint; it is never a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import psutil
import pytest
import pytest_asyncio
import yaml
from aiohttp import web

from bot.api import OrderRequest
from bot.app import Bot
from bot.config import load
from bot.telemetry.prometheus import make_registry, render
from bot.telemetry.recorder import Telemetry
from harness.errors import ConfigError, HarnessError
from harness.load.feed import MarketFeed
from harness.load.schedules import schedule_from_spec
from harness.monitor import SHIPPED_ALERTS, MonitorOptions, Prometheus, PrometheusClient
from harness.monitor.config import JOB, SHIPPED_DASHBOARD
from harness.node.anvil import Anvil, AnvilOptions
from harness.node.mining import MiningMode
from harness.run.botconfig import KEYS_ENV, bot_keys_env, write_bot_config
from harness.run.deployment import ensure_deployment
from harness.run.options import free_port
from tests.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

T = TypeVar("T")
PAUSED = "T000/USD"  # paused with a 2-slot mailbox: its trade signals are dropped, so bot_drops_total exists
UNPAYABLE = "T001/USD"  # gets one manual order larger than the account's balance: errors{kind=insufficient_balance}
WITHIN = 60.0  # seconds for any one condition: generous for a machine 2-3x slower, met in ~1-3 s here


@dataclass(frozen=True)
class LiveBot:
    bot: Bot
    url: str
    instance: str  # Prometheus's instance label: host:port as scraped


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


async def eventually(check: Callable[[], Awaitable[T | None]], what: str, within: float = WITHIN) -> T:
    """``await check()`` until it returns something truthy; AssertionError naming ``what`` after ``within``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        got = await check()
        if got:
            return got
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {within:g} s (last: {got!r})")
        await asyncio.sleep(0.1)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveBot]:
    tmp = tmp_path_factory.mktemp("live-bot")
    with _env(KEYS_ENV, bot_keys_env(2)[KEYS_ENV]):
        async with Anvil(tmp, AnvilOptions(mining=MiningMode.interval(0.05), disable_block_gas_limit=True,
                                           quiet=True)) as node:
            dep = await ensure_deployment(node.url, 6, 2, tmp, None)
            pairs = [p["id"] for p in dep["pairs"]]
            async with MarketFeed(pairs, seed=5) as feed:
                port = free_port()
                cfg, _ = write_bot_config(tmp, node_http=node.url, node_ws=node.ws_url,
                                          deployment=tmp / "deployment.json", feed_url=feed.url, api_port=port,
                                          extra={"engine": {"mailbox_size": 2}})
                bot = Bot(load(cfg))
                await bot.start()
                trading: asyncio.Task[Any] | None = None
                try:
                    assert bot.engine is not None
                    bot.engine.pause(PAUSED)
                    await feed.wait_for_client(WITHIN)
                    # Bounded (20/s for at most 60 s) and cancelled at teardown: trades keep coming
                    # while the tests look, so rates over the last minutes are not zero.
                    trading = asyncio.create_task(feed.run(trades=schedule_from_spec(
                        {"kind": "constant", "rate": 20.0, "duration": 60.0})))
                    # An order the account cannot pay for: a real error, so bot_errors_total has a series.
                    # (Before its first error or drop the bot exports no series of either family, and
                    # Prometheus would not know the names the dashboard's error and drop panels use.)
                    await bot.submit_order(OrderRequest(UNPAYABLE, "buy", 10**36))
                    totals = bot.telemetry.counter_totals

                    def ready() -> bool:
                        t = totals()
                        return (t.get("trades_ok", 0) >= 5 and any(k.startswith("drops") for k in t)
                                and "errors{kind=insufficient_balance}" in t)

                    await until(ready, WITHIN, "5 trades confirmed, a drop and an error counted")
                    yield LiveBot(bot, f"http://127.0.0.1:{port}", f"127.0.0.1:{port}")
                finally:
                    if trading is not None:
                        trading.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await trading
                    await bot.stop()


def lowered_memory_rule(rules_dir: Path) -> None:
    """A test-only copy of the shipped ``MemoryUsageHigh``: same expression and labels, a 1-byte
    threshold and no ``for``, in a group of its own with a ``copy`` label to tell it apart."""
    doc = yaml.safe_load(SHIPPED_ALERTS.read_text())
    (rule,) = [r for g in doc["groups"] for r in g["rules"] if r.get("alert") == "MemoryUsageHigh"]
    assert "> 512e6" in rule["expr"], "the shipped memory rule changed: update this test's copy"
    rule = {**rule, "expr": rule["expr"].replace("> 512e6", "> 1"), "for": "0s",
            "labels": {**rule["labels"], "copy": "test-lowered"}}
    rules_dir.mkdir(parents=True, exist_ok=True)
    (rules_dir / "lowered.yml").write_text(yaml.safe_dump({"groups": [{"name": "test-lowered", "rules": [rule]}]}))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def prom(live: LiveBot, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Prometheus]:
    tmp = tmp_path_factory.mktemp("prometheus")
    lowered_memory_rule(tmp / "rules")
    opts = MonitorOptions(scrape_interval_s=1.0, extra_rules_dir=tmp / "rules", work_dir=tmp / "work")
    async with Prometheus(live.url, opts) as p:
        yield p
    assert not p.running


async def test_prometheus_scrapes_the_bots_histograms_counters_and_gauges(live: LiveBot, prom: Prometheus) -> None:
    sel = f'job="{JOB}", instance="{live.instance}"'
    async with prom.client() as api:
        assert await api.value(f"up{{{sel}}}") == 1.0
        # Buckets and count of one histogram in one query: one scrape's samples, never two.
        hist = f'{{__name__=~"bot_operation_latency_seconds_(bucket|count)", op="trade_execution", {sel}}}'
        samples = await eventually(lambda: api.query(hist), "trade_execution's histogram in Prometheus")
        count = next(s.value for s in samples if s.name.endswith("_count"))
        buckets = sorted((float(s.labels["le"]), s.value) for s in samples if s.name.endswith("_bucket"))
        assert len(buckets) == 19, buckets  # the exposition's 18 bounds and +Inf
        assert all(a[1] <= b[1] for a, b in itertools.pairwise(buckets)), "buckets are cumulative"
        assert buckets[-1] == (math.inf, count)
        # Never more than the bot has recorded by now (a scrape is a moment of the past).
        assert 0 < count <= live.bot.telemetry.cumulative_counts("trade_execution")[1]
        for op in ("trade_execution", "tx_submission", "price_fetch", "balance_check"):
            assert (await api.value(f'bot_operation_latency_seconds_count{{op="{op}", {sel}}}') or 0) > 0, op
        # Counters: ticks the feed client took, and the paused pair's rejected signals.
        ticks = await api.value(f"bot_ticks_handled_total{{{sel}}}")
        assert ticks is not None and 0 < ticks <= live.bot.telemetry.counter_totals()["ticks_handled"]
        drops = await api.value(f'sum(bot_drops_total{{reason="entry.rejected", {sel}}})')
        assert drops is not None and drops > 0
        # A gauge: the bot's RSS (this process: the bot runs in the test's loop), as psutil sees it.
        rss = await api.value(f"bot_process_resident_memory_bytes{{{sel}}}")
        now = psutil.Process().memory_info().rss
        assert rss is not None and abs(rss - now) < 0.25 * now, (rss, now)


def _without_threshold(query: str) -> str:
    """A rule's expression without its final ``> N``: the live value the rule compares."""
    bare, n = re.subn(r"\s*>\s*[0-9.e+]+\s*$", "", query.strip())
    assert n == 1, query
    return bare


async def test_the_shipped_rules_evaluate_on_live_data_and_a_lowered_copy_fires(
        live: LiveBot, prom: Prometheus) -> None:
    async with prom.client() as api:
        async def shipped_evaluated() -> list[Any] | None:
            rules = [r for r in await api.rules() if r.group == "tradebench-bot"]
            return rules if rules and all(r.evaluated for r in rules) else None

        rules = await eventually(shipped_evaluated, "the shipped rules evaluated")
        assert {r.name for r in rules} == {"HighTransactionLatency", "MemoryUsageHigh", "HighErrorRate"}
        for r in rules:
            assert (r.kind, r.health, r.last_error) == ("alerting", "ok", ""), r
        by_name = {r.name: r for r in rules}
        # What each shipped rule compares, on the live data: a p95 in seconds, the RSS in bytes.
        # The p95 needs two scrapes with trades between them inside the rule's 5-minute rate.
        p95 = await eventually(lambda: api.value(_without_threshold(by_name["HighTransactionLatency"].query)),
                               "a live p95 of trade_execution")
        assert 0 < p95 < 60
        rss = await api.value(_without_threshold(by_name["MemoryUsageHigh"].query))
        assert rss is not None and rss > 1e6
        # No errors: the error-rate rule has no numerator series and is silent, by design.
        await api.query(_without_threshold(by_name["HighErrorRate"].query))

        async def lowered_firing() -> list[Any]:
            return [a for a in await api.alerts()
                    if a.name == "MemoryUsageHigh" and a.labels.get("copy") == "test-lowered" and a.state == "firing"]

        (alert,) = await eventually(lowered_firing, "the lowered MemoryUsageHigh copy firing")
        assert alert.labels["severity"] == "critical" and alert.labels["instance"] == live.instance
        assert alert.labels["job"] == JOB
        assert alert.annotations["description"].startswith(f"RSS of {live.instance} is ")
        # The firing came from the copy: the shipped rule (512 MB for 5 minutes) cannot have fired.
        shipped = next(r for r in await api.rules() if r.group == "tradebench-bot" and r.name == "MemoryUsageHigh")
        assert shipped.state != "firing"


_NOT_METRICS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords, label
    names (in ``{...}`` or ``by (...)``), durations (``[...]``) or numbers (``512e6``)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", s):
        if s[m.end():].lstrip().startswith("(") or m.group(0).lower() in _NOT_METRICS:
            continue
        names.add(m.group(0))
    return names


def dashboard_queries() -> tuple[list[str], set[str]]:
    """The panels' PromQL, and the metrics the template variables read (``label_values(m, label)``,
    Grafana's, not PromQL)."""
    doc = json.loads(SHIPPED_DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", ())]
    variables = {m.group(1) for v in doc.get("templating", {}).get("list", ())
                 for m in [re.match(r"\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", str(v.get("query", "")))] if m}
    return exprs, variables


async def test_the_metric_name_parser_is_not_vacuous() -> None:
    assert metric_names('histogram_quantile(0.95, sum by (le) (rate(a_bucket{op="x", le=~"1"}[5m]))) > 512e6') == {
        "a_bucket"}
    assert metric_names("sum(rate(b_total[1m])) / (sum(rate(c_count[1m])) + sum(rate(b_total[1m])))") == {
        "b_total", "c_count"}
    assert metric_names('bot_in_flight{job=~"$job"} and on (instance) up') == {"bot_in_flight", "up"}


async def test_every_dashboard_query_names_only_metrics_of_the_live_scrape(live: LiveBot, prom: Prometheus) -> None:
    exprs, variables = dashboard_queries()
    used = variables.union(*(metric_names(e) for e in exprs))
    assert len(exprs) > 10 and {"bot_operation_latency_seconds_bucket", "bot_process_resident_memory_bytes",
                                "bot_in_flight"} <= used
    async with prom.client() as api:
        # The names Prometheus holds (what Grafana would query), not only the bot's text: the bot
        # had traded and dropped before Prometheus started, and start() returned after a scrape.
        live_names = set(await api.label_values("__name__"))
        assert used <= live_names, f"the dashboard queries metrics the bot does not export: {sorted(used - live_names)}"
        # ... and each query runs on this Prometheus, with Grafana's variables as it would fill them.
        for e in exprs:
            await api.query(e.replace("$job", ".*").replace("$instance", ".*"))


@contextlib.asynccontextmanager
async def _metrics_only_bot() -> AsyncIterator[str]:
    """A /metrics with the bot's exposition and nothing else: enough for start-up failures."""
    body = render(make_registry(Telemetry()))

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/plain")

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


async def test_a_bad_rule_file_or_a_taken_port_is_named_and_nothing_is_left_running(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "bad.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "bad", "rules": [{"alert": "Broken", "expr": "sum(("}]}]}))
    async with _metrics_only_bot() as url:
        bad = Prometheus(url, MonitorOptions(scrape_interval_s=1.0, extra_rules_dir=tmp_path / "rules"))
        with pytest.raises(HarnessError, match=r"(?s)exited with code.*bad\.yml.*Broken.*parse"):
            await bad.start()
        assert not bad.running and bad.work_dir is not None and not bad.work_dir.exists()
        async with _metrics_only_bot() as other:
            taken = int(other.rsplit(":", 1)[1])
            with pytest.raises(ConfigError, match=f"--port {taken} is in use"):
                await Prometheus(url, MonitorOptions(scrape_interval_s=1.0, port=taken)).start()


async def _read_until(stream: asyncio.StreamReader, marker: str, lines: list[str]) -> None:
    while not any(marker in line for line in lines):
        raw = await stream.readline()
        if not raw:
            raise AssertionError("harness monitor exited before printing " + marker + ":\n" + "".join(lines))
        lines.append(raw.decode())


async def test_harness_monitor_is_production_monitoring_in_one_command(live: LiveBot) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "harness.cli", "monitor", "--bot", live.url, "--scrape-interval", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    out: list[str] = []
    try:
        try:
            async with asyncio.timeout(WITHIN):
                await _read_until(proc.stdout, "storage:", out)
        except TimeoutError:
            raise AssertionError("harness monitor printed no URLs within 60 s:\n" + "".join(out)) from None
        text = "".join(out)
        pid = int(re.search(r"\(pid (\d+)\)", text).group(1))  # type: ignore[union-attr]
        ui = re.search(r"UI:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
        alerts = re.search(r"alerts:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
        graph = re.search(r"graphs:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
        storage = Path(re.search(r"storage:\s+(\S+)", text).group(1))  # type: ignore[union-attr]
        assert psutil.pid_exists(pid) and storage.is_dir()
        async with aiohttp.ClientSession() as s:
            for page in (alerts, graph):
                async with s.get(page, allow_redirects=False) as r:
                    assert r.status == 200, page
        async with PrometheusClient(ui) as api:
            (target,) = await api.targets()
            assert (target.health, target.labels["instance"]) == ("up", live.instance)
            names = {r.name for r in await api.rules()}
            assert names == {"HighTransactionLatency", "MemoryUsageHigh", "HighErrorRate"}
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            async with asyncio.timeout(WITHIN):
                rc = await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            err = (await proc.stderr.read()).decode()[-3000:]
            raise AssertionError(f"harness monitor ignored Ctrl-C for {WITHIN} s; its stderr:\n{err}") from None
        err = (await proc.stderr.read()).decode()
        assert rc == 0, err
        assert "Traceback" not in err
        # Nothing outlives the command: Prometheus is gone, and so is its temporary storage.
        assert not psutil.pid_exists(pid)
        assert not storage.exists()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
