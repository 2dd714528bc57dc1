"""The bot's measurements: what ``/stats`` and ``/metrics`` serve.

Modules (import from them directly; this package re-exports nothing, to keep imports acyclic):

- ``recorder``: ``Telemetry``, per-second interval HdrHistograms (microseconds), counters and
  gauges; ``payload(since)`` is the ``/stats`` body of docs/DESIGN.md.
- ``prometheus``: ``make_registry(telemetry)`` and ``render(registry)`` on a dedicated registry.
- ``observer``: ``TelemetryObserver``, the engine's events as counters.
- ``alerts.yml`` / ``alerts_test.yml``: the SLO alert rules and their promtool unit tests.
- ``dashboard.json``: a Grafana dashboard over the exported metrics.
"""
