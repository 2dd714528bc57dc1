"""Locust users for the bot's HTTP control API (or any HTTP target), with HdrHistogram recording.

Run by ``harness.load.locust_runner`` (and ``harness locust-worker``) only: Locust monkeypatches the
process with gevent when imported, so never import this module from an asyncio process.

Weights follow how the API is really used: health probes most often (orchestrators and the
harness's uptime prober), status pages next, Prometheus scrapes least. Each user runs at a
constant throughput: it starts a task every ``1 / rate`` seconds, whatever the last one took, up
to the point where a response takes longer than the period. The model stays closed-loop: a user
waits for its response before the next task, so a slow server lowers the offered rate; the runner
gives enough users that one slow response does not lower the total much.

Two user classes; the runner names one on Locust's command line: ``ControlApiUser`` (the bot's API
mix) or ``PathUser`` (GET of one path of any HTTP target). Every request is also recorded into
HdrHistograms (``harness.load.locust_events``); options: ``--tb-user-rate`` tasks per second per
user (default ``TB_LOCUST_USER_RATE`` or 10), ``--tb-path`` (PathUser's path), ``--tb-stop-after``
seconds (the graceful end). The master passes its values to every worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from locust import FastHttpUser, constant_throughput, events, task

from harness.load import locust_events


def _on_init(environment: Any, **_: Any) -> None:
    locust_events.install(environment)


# EventHook.add_listener carries no annotations.
events.init_command_line_parser.add_listener(locust_events.add_arguments)  # type: ignore[no-untyped-call]
events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]


class _PacedUser(FastHttpUser):
    abstract = True  # not a user class of its own: Locust runs the class the master names
    _pacer: Callable[[Any], float] | None = None

    def wait_time(self) -> float:
        # Read at the first wait, not at import: a worker learns the rate from the master's spawn message.
        if self._pacer is None:
            self._pacer = constant_throughput(float(self.environment.parsed_options.tb_user_rate))
        return float(self._pacer(self))


class ControlApiUser(_PacedUser):
    """The bot's control API, weighted as it is used."""

    @task(6)
    def health(self) -> None:
        self.client.get("/health")

    @task(3)
    def status(self) -> None:
        self.client.get("/status")

    @task(1)
    def metrics(self) -> None:
        self.client.get("/metrics")


class PathUser(_PacedUser):
    """Any HTTP target: GET of one path (``--tb-path``, passed on to the workers like the rate)."""

    @task
    def get(self) -> None:
        self.client.get(str(self.environment.parsed_options.tb_path))
