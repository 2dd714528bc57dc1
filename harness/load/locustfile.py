"""Locust users for the bot's HTTP control API. Run by ``harness.load.locust_runner`` only.

Locust monkeypatches the process with gevent when imported: never import this module from an
asyncio process (the runner starts ``locust -f`` on this file as a separate process).

Weights follow how the API is really used: health probes most often (orchestrators and the
harness's uptime prober), status pages next, Prometheus scrapes least. Each user runs at a
constant throughput (``constant_throughput``): it starts a task every ``1 / rate`` seconds,
whatever the last one took (up to the point where a response takes longer than the period;
the runner gives enough users that one slow response does not lower the total rate).

Settings come from the environment (set by the runner):
``TB_LOCUST_USER_RATE`` tasks per second per user (default 10).
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant_throughput, task

USER_RATE = float(os.environ.get("TB_LOCUST_USER_RATE", "10"))


class ControlApiUser(FastHttpUser):
    wait_time = constant_throughput(USER_RATE)

    @task(6)
    def health(self) -> None:
        self.client.get("/health")

    @task(3)
    def status(self) -> None:
        self.client.get("/status")

    @task(1)
    def metrics(self) -> None:
        self.client.get("/metrics")
