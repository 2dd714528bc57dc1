"""A real Prometheus scraping the bot: ``harness monitor`` and the live alert/dashboard test.

- ``config`` (pure): where the binary and the shipped rules are, the bot's scrape target (loopback
  unless allowed), ``MonitorOptions`` and the generated ``prometheus.yml``.
- ``client``: a small async client for Prometheus's HTTP API (query, targets, rules, alerts,
  label values), every answer parsed into frozen records or ``HarnessError``.
- ``server``: ``Prometheus``, the process: a free 127.0.0.1 port, storage in a temporary
  directory, bounded waits until ready and until the bot was scraped, SIGTERM then SIGKILL, and
  ``harness.node.process``'s guarantees that it never outlives its owner.
- ``command``: the ``harness monitor`` verb.

A package of its own, not ``harness/run``: it needs nothing of a run (no chain, stack or
scenario), and anything that wants a Prometheus beside a bot (a test, a future ``run --monitor``)
imports it without the orchestration.
"""

from __future__ import annotations

from harness.monitor.client import Alert, PrometheusClient, Rule, Sample, Target
from harness.monitor.config import SHIPPED_ALERTS, MonitorOptions, ScrapeTarget, find_prometheus, scrape_target
from harness.monitor.server import Prometheus

__all__ = [
    "SHIPPED_ALERTS",
    "Alert",
    "MonitorOptions",
    "Prometheus",
    "PrometheusClient",
    "Rule",
    "Sample",
    "ScrapeTarget",
    "Target",
    "find_prometheus",
    "scrape_target",
]
