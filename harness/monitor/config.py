"""Pure parts of the monitor: the binary, the bot's scrape target, the options and ``prometheus.yml``.

Nothing here starts a process or opens a socket, so every bad input is refused (with the fix in
the message) before anything is started.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bot.telemetry
from bot.redact import redact_url
from harness.errors import ConfigError
from harness.load.jsonrpc import is_loopback_host

PROMETHEUS_ENV = "TRADEBENCH_PROMETHEUS"
SHIPPED_ALERTS = Path(bot.telemetry.__file__).resolve().parent / "alerts.yml"
SHIPPED_DASHBOARD = SHIPPED_ALERTS.with_name("dashboard.json")
JOB = "tradebench-bot"

MIN_SCRAPE_INTERVAL_S = 0.1
MAX_SCRAPE_INTERVAL_S = 3600.0
# Prometheus's own default; a scrape may never take longer than the interval between scrapes.
MAX_SCRAPE_TIMEOUT_S = 10.0

_INSTALL_HINT = (f"install the Debian package 'prometheus' (./dev setup does; as root: apt-get install "
                 f"prometheus), or set {PROMETHEUS_ENV} to the prometheus binary's path")


def find_prometheus() -> Path:
    """``$TRADEBENCH_PROMETHEUS`` if set, else ``prometheus`` on PATH; ``ConfigError`` naming the fix."""
    env = os.environ.get(PROMETHEUS_ENV)
    if env:
        path = Path(env)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ConfigError(f"{PROMETHEUS_ENV}={env!r} is not an executable file; point it at the prometheus "
                              "binary (Debian: /usr/bin/prometheus) or unset it")
        return path
    found = shutil.which("prometheus")
    if found is None:
        raise ConfigError(f"prometheus not found on PATH; {_INSTALL_HINT}")
    return Path(found)


@dataclass(frozen=True)
class ScrapeTarget:
    """The bot's ``/metrics`` as Prometheus's scrape config wants it."""

    scheme: str
    address: str  # host[:port] exactly as written: Prometheus's ``instance`` label
    metrics_path: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}{self.metrics_path}"

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.address}"

    @property
    def shown(self) -> str:
        """For messages: scheme, host and port (a path is masked by ``redact_url``, so it is left out)."""
        return redact_url(self.base)


def scrape_target(bot_url: str, *, allow_remote: bool = False, flag: str = "--bot") -> ScrapeTarget:
    """The bot's control API URL (``http://127.0.0.1:8600``, or its ``/metrics``) as a scrape target.

    Loopback only unless ``allow_remote``: the bot's API binds 127.0.0.1, so any other host is
    either a typo or another machine's bot, which its owner must opt into. Hostnames are not
    resolved (``localhost`` is accepted by name), as for every other target of the harness.
    """
    parts = urlsplit(bot_url)
    shown = redact_url(bot_url)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{flag} must start with http:// or https://, got {shown!r}; e.g. http://127.0.0.1:8600")
    if not parts.hostname:
        raise ConfigError(f"{flag} has no host: {shown!r}; e.g. http://127.0.0.1:8600 (the bot's [api] port)")
    try:
        parts.port  # noqa: B018 - property access validates the port
    except ValueError:
        raise ConfigError(f"{flag} has an invalid port: {shown!r} (give the bot's [api] port, 1-65535)") from None
    # The bot's /metrics needs neither: anything there is a credential that would end up in
    # prometheus.yml on disk and in Prometheus's target page.
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{flag} carries credentials ({shown!r}); the bot's /metrics needs none: give "
                          "scheme, host and port only")
    if parts.query or parts.fragment:
        raise ConfigError(f"{flag} has a query or fragment ({shown!r}); give scheme, host and port only")
    if not (allow_remote or is_loopback_host(parts.hostname)):
        raise ConfigError(f"{flag} host {parts.hostname!r} is not a loopback address; the bot's API listens on "
                          "127.0.0.1, so give e.g. http://127.0.0.1:8600 (the bot's [api] port), or pass "
                          "--allow-remote to scrape a bot on another machine that you run")
    path = parts.path.rstrip("/")
    if not path.endswith("/metrics"):
        path += "/metrics"
    return ScrapeTarget(parts.scheme, parts.netloc, path)


def duration(seconds: float) -> str:
    """A Prometheus duration in whole milliseconds (``1500ms``): exact for any interval we accept."""
    return f"{round(seconds * 1000)}ms"


@dataclass(frozen=True)
class MonitorOptions:
    """How to run Prometheus beside a bot.

    ``scrape_interval_s`` is also the rule evaluation interval, so an alert sees every scrape.
    ``extra_rules_dir``: every ``*.yml``/``*.yaml`` in it is loaded after ``rule_files`` (tests add
    a copy of a shipped rule with a lowered threshold this way; the shipped rules stay loaded).
    ``work_dir``: storage, config and log go here and are kept; None puts them in a temporary
    directory that ``stop`` removes. ``port``: None picks a free one (retried if taken meanwhile).
    """

    scrape_interval_s: float = 5.0
    port: int | None = None
    rule_files: tuple[Path, ...] = (SHIPPED_ALERTS,)
    extra_rules_dir: Path | None = None
    work_dir: Path | None = None
    start_timeout_s: float = 60.0
    stop_grace_s: float = 10.0
    job: str = JOB
    binary: Path | None = None
    extra_args: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        s = self.scrape_interval_s
        if not (math.isfinite(s) and MIN_SCRAPE_INTERVAL_S <= s <= MAX_SCRAPE_INTERVAL_S):
            raise ConfigError(f"--scrape-interval must be {MIN_SCRAPE_INTERVAL_S:g}-{MAX_SCRAPE_INTERVAL_S:g} "
                              f"seconds, got {s!r}")
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ConfigError(f"--port must be 1-65535 (or omitted for a free port), got {self.port}")
        if self.start_timeout_s <= 0 or self.stop_grace_s < 0:
            raise ConfigError("monitor start_timeout_s must be > 0 and stop_grace_s >= 0")

    def all_rule_files(self) -> list[Path]:
        """The rule files to load, checked to exist: Prometheus would otherwise refuse to start
        with a message about its own config, not about the file the user gave."""
        files = [Path(p).resolve() for p in self.rule_files]
        for path in files:
            if not path.is_file():
                raise ConfigError(f"rule file {path} does not exist; the shipped rules are {SHIPPED_ALERTS}")
        d = self.extra_rules_dir
        if d is not None:
            if not d.is_dir():
                raise ConfigError(f"extra rules directory {d} does not exist or is not a directory")
            extra = sorted([*d.glob("*.yml"), *d.glob("*.yaml")])
            if not extra:
                raise ConfigError(f"extra rules directory {d} holds no *.yml or *.yaml rule file")
            files += [p.resolve() for p in extra]
        return files


def prometheus_config(target: ScrapeTarget, options: MonitorOptions,
                      rule_files: Sequence[Path]) -> dict[str, Any]:
    interval = options.scrape_interval_s
    return {
        "global": {
            "scrape_interval": duration(interval),
            "scrape_timeout": duration(min(interval, MAX_SCRAPE_TIMEOUT_S)),
            "evaluation_interval": duration(interval),
        },
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{
            "job_name": options.job,
            "scheme": target.scheme,
            "metrics_path": target.metrics_path,
            "static_configs": [{"targets": [target.address]}],
        }],
    }


def render_config(config: Mapping[str, Any]) -> str:
    """``prometheus.yml`` text. JSON is YAML (1.2), and Prometheus reads it: the harness then needs
    no YAML library at run time (PyYAML is only a dev dependency)."""
    return json.dumps(config, indent=2, sort_keys=False) + "\n"
