"""``harness monitor``: production monitoring of a running bot in one command.

Starts Prometheus with the shipped alert rules against the bot's ``/metrics``, prints where its
UI, graphs and alerts are, then watches until Ctrl-C (or SIGTERM): a line whenever the bot's
target goes down or comes back, and whenever an alert becomes pending, fires or resolves, so the
terminal says what the alerts page would. Exit 0 on Ctrl-C; 3 (``HarnessError``) when Prometheus
cannot start, cannot scrape the bot, or dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from bot.redact import redact_text
from harness.errors import HarnessError
from harness.monitor.client import Alert, Target
from harness.monitor.config import SHIPPED_DASHBOARD, MonitorOptions
from harness.monitor.server import Prometheus

# A graph worth opening first: p95 of the bot's signal-to-receipt time, the SLO's headline.
FIRST_GRAPH = ('histogram_quantile(0.95, sum by (le) '
               '(rate(bot_operation_latency_seconds_bucket{op="trade_execution"}[1m])))')


@dataclass(frozen=True)
class Snapshot:
    """What the watch loop compares between two looks: target health and each alert's state."""

    target: str = "unknown"  # "up" | "down" | "unknown"
    target_error: str = ""
    alerts: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (alertname, instance) -> state


def snapshot(targets: Sequence[Target], alerts: Sequence[Alert], job: str) -> Snapshot:
    ours = [t for t in targets if t.job == job]
    target = ours[0] if ours else None
    return Snapshot(target="unknown" if target is None else target.health,
                    target_error="" if target is None else target.last_error,
                    alerts={(a.name, a.labels.get("instance", "")): a.state for a in alerts})


def changes(before: Snapshot, now: Snapshot, bot: str) -> list[str]:
    """Lines for what changed (pure): the target's health, and alerts appearing, moving or resolving."""
    out = []
    if now.target != before.target:
        if now.target == "down":
            out.append(f"bot {bot} DOWN: {now.target_error or 'scrape failed'}")
        elif now.target == "up":
            out.append(f"bot {bot} up" + (" again" if before.target == "down" else ""))
    for key in sorted(set(before.alerts) | set(now.alerts)):
        name, instance = key
        was, state = before.alerts.get(key), now.alerts.get(key)
        if was == state:
            continue
        who = f"{name} ({instance})" if instance else name
        out.append(f"alert {who} {state.upper()}" if state else f"alert {who} resolved")
    return out


def banner(prom: Prometheus, graph: str, alerts: str, targets: str) -> list[str]:
    opts = prom.options
    rules = ", ".join(str(p) for p in opts.rule_files)
    if opts.extra_rules_dir is not None:
        rules += f" and {opts.extra_rules_dir}"
    storage = "removed on exit" if opts.work_dir is None else "kept"
    return [
        f"Prometheus {prom.version} (pid {prom.pid}) scraping {prom.target.shown} (GET {prom.target.metrics_path}) "
        f"every {opts.scrape_interval_s:g} s, alert rules from {rules}",
        f"  UI:      {prom.url}/",
        f"  graphs:  {graph}?g0.expr={quote(FIRST_GRAPH)}&g0.tab=0&g0.range_input=15m",
        f"  alerts:  {alerts}",
        f"  targets: {targets}",
        f"  Grafana: import {SHIPPED_DASHBOARD} and point its Prometheus data source at {prom.url}",
        f"  storage: {prom.work_dir} ({storage}); Ctrl-C stops Prometheus",
    ]


def _say(line: str) -> None:
    # Lines, flushed: the output is often a pipe (a service manager, a test) and must not sit in a buffer.
    print(line, flush=True)


async def monitor(bot_url: str, options: MonitorOptions, *, allow_remote: bool = False) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGTERM (a service manager, `kill`) and Ctrl-C end the loop below through one event, not by
    # cancelling the task: Python 3.11's asyncio.wait_for could swallow a cancellation that landed as
    # its timeout fired, and `harness monitor` then ignored Ctrl-C (seen once in CI, 1 s scrapes).
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with Prometheus(bot_url, options, allow_remote=allow_remote) as prom:
            pages = await prom.pages()
            for line in banner(prom, pages.graph, pages.alerts, pages.targets):
                _say(line)
            before = Snapshot(target="up")  # start() returned only once the bot was scraped
            every = max(1.0, options.scrape_interval_s)
            async with prom.client(timeout_s=every + 5.0) as api:
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(every):
                            await stop.wait()
                    if stop.is_set():
                        break
                    prom.check_alive()
                    try:
                        now = snapshot(await api.targets(), await api.alerts(), options.job)
                    except HarnessError as exc:
                        prom.check_alive()  # a dead Prometheus is the error; a slow answer is not
                        _say(f"{time.strftime('%H:%M:%S')} Prometheus API: {exc}")
                        continue
                    for line in changes(before, now, prom.target.shown):
                        # Prometheus's scrape errors quote the URL: shown redacted, like every error.
                        _say(f"{time.strftime('%H:%M:%S')} {redact_text(line)}")
                    before = now
    except asyncio.CancelledError:
        pass  # Ctrl-C: the ``async with`` above has already stopped Prometheus
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    _say("Prometheus stopped")
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    options = MonitorOptions(scrape_interval_s=args.scrape_interval, port=args.port,
                             extra_rules_dir=args.extra_rules)
    return asyncio.run(monitor(args.bot, options, allow_remote=args.allow_remote))
