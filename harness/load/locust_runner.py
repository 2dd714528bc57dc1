"""Run Locust as separate processes, and read back our HdrHistograms and Locust's own figures.

Locust monkeypatches with gevent on import, so it only ever runs as its own process(es):
``locust -f harness/load/locustfile.py --headless``; with workers, one ``--master`` plus that many
local ``--worker`` processes, and ``remote_workers`` more expected from other machines
(``harness locust-worker --master HOST:PORT``, ``worker_command``). The master binds 127.0.0.1
unless the plan names another address, which needs an explicit permission (``allow_remote_bind``).

The locustfile records every request into HdrHistograms per wall-clock second; workers ship them
to the master with each report and the master merges them exactly (``harness.load.locust_events``).
The run ends gracefully after ``run_time_s`` (``--tb-stop-after``): users finish the request in flight,
the master waits for every worker's final report, then writes ``locust_hdr.json``. Locust's
``--run-time`` stays as a backstop. The runner reads:

- ours (``locust_hdr.json``): per-second intervals with counters ``api_requests``/``api_failures``
  and the histogram ``api_request.service``, the merged total, per endpoint and per worker;
- Locust's (``--json-file``): its request counts, its rate and its rounded percentiles, shown beside ours.

Both see the same requests (a worker attaches both deltas in one synchronous call), so their
request counts agree exactly; ``counts_agree`` in the summary says so for every run.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.errors import ConfigError, HarnessError
from harness.load.jsonrpc import check_target, is_loopback_host
from harness.load.locust_hdr import ENV_OUT, ENV_USER_RATE, FINAL_REPORT_WAIT_S, OP
from harness.load.locust_merge import HdrRun, latency_ms, read_run, relative_intervals
from harness.load.locust_stats import (
    LatencySummary,
    locust_rate,
    parse_final_json,
    parse_stats_history,
)

__all__ = ["CLOSED_LOOP_NOTE", "LatencySummary", "LocustPlan", "LocustResult", "master_command", "parse_bind",
           "parse_final_json", "parse_stats_history", "plan", "run_locust", "worker_command"]

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
DEFAULT_USER_RATE = 10.0
DEFAULT_MASTER_PORT = 5557  # Locust's own default, for a bind given without a port
BACKSTOP_S = 60  # Locust's --run-time beyond our graceful stop: only if that stop never happens
LOCAL_EXPECT_WAIT_S = 30.0
REMOTE_EXPECT_WAIT_S = 600.0  # time for someone to start the workers on the other machines
CLOSED_LOOP_NOTE = (
    "Locust's user model is closed-loop: each user waits for its response before its next request, so a slow "
    "server lowers the offered rate instead of queueing more work. Our HdrHistograms time each request from its "
    "actual start, as Locust does, not from when it was due: exact, but not corrected for coordinated omission "
    "either (the harness's own generator, harness load without --locust, is open-loop and corrected).")


@dataclass(frozen=True)
class LocustPlan:
    host: str
    rate: float
    users: int
    user_rate: float
    run_time_s: int
    workers: int  # local worker processes (0 and no remote workers: one process runs the users)
    remote_workers: int = 0  # workers the master waits for from other machines
    master_host: str = "127.0.0.1"
    master_port: int | None = None  # None: a free port, chosen when the run starts
    path: str | None = None  # GET of this path (PathUser); None: the bot's control API mix (ControlApiUser)

    @property
    def distributed(self) -> bool:
        return self.workers + self.remote_workers > 0

    @property
    def expect_wait_s(self) -> float:
        return REMOTE_EXPECT_WAIT_S if self.remote_workers else LOCAL_EXPECT_WAIT_S

    @property
    def connect_host(self) -> str:
        """Where this machine's workers reach the master: a wildcard bind is reachable on loopback."""
        return "127.0.0.1" if self.master_host in ("0.0.0.0", "*", "::", "[::]") else self.master_host


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:5557`` for IPv6; a bare host takes Locust's port 5557)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or host.endswith(":"):  # "host" alone, or a bare IPv6 address
        host, port = text.strip(), str(DEFAULT_MASTER_PORT)
    host = host.strip("[]")
    if not host:
        raise ConfigError(f"--master-bind {text!r}: give HOST:PORT, e.g. 127.0.0.1:5557 or 0.0.0.0:5557")
    try:
        num = int(port)
    except ValueError:
        raise ConfigError(f"--master-bind {text!r}: the port must be a number, e.g. 127.0.0.1:5557") from None
    if not 1 <= num <= 65535:
        raise ConfigError(f"--master-bind {text!r}: the port must be in 1..65535")
    return host, num


def plan(host: str, rate: float, run_time_s: float, *, workers: int = 0, user_rate: float = DEFAULT_USER_RATE,
         allow_remote: bool = False, remote_workers: int = 0, master_bind: str | None = None,
         allow_remote_bind: bool = False, path: str | None = None) -> LocustPlan:
    """How many users at which per-user rate reach ``rate`` requests per second in total, and where.

    ``host`` is scheme://host:port; ``path`` (say ``/health?full=1``) makes every request a GET of it,
    else the users run the bot's control API mix."""
    check_target(host, allow_remote)
    if path is not None and not path.startswith("/"):
        raise ConfigError(f"locust path must start with '/', got {path!r}")
    if not (rate > 0 and math.isfinite(rate)):
        raise ConfigError(f"locust rate must be > 0 requests/s, got {rate}")
    if not 1 <= run_time_s <= 24 * 3600:
        raise ConfigError(f"locust run_time_s must be in [1, 86400], got {run_time_s}")
    if workers < 0 or remote_workers < 0:
        raise ConfigError(f"locust workers must be >= 0, got {workers} local and {remote_workers} remote")
    if not user_rate > 0:
        raise ConfigError(f"locust user_rate must be > 0, got {user_rate}")
    m_host, m_port = parse_bind(master_bind) if master_bind else ("127.0.0.1", None)
    if remote_workers and m_port is None:
        m_port = DEFAULT_MASTER_PORT  # a port the other machines can be told before the run starts
    if not is_loopback_host(m_host):
        if not allow_remote_bind:
            raise ConfigError(f"--master-bind {m_host}: the Locust master binds a loopback address unless you pass "
                              "--allow-remote (any machine that reaches the port can join as a worker)")
        if remote_workers and _loopback_url(host):
            raise ConfigError("--url is a loopback address, but the workers run on other machines: each would load "
                              "itself. Give the target's address as the workers reach it (with --allow-remote)")
    users = max(1, math.ceil(rate / user_rate), workers + remote_workers)
    # Locust joins host and path as given: "http://h/" + "/health" would request "//health".
    return LocustPlan(host.rstrip("/"), rate, users, rate / users, math.ceil(run_time_s), workers, remote_workers,
                      m_host, m_port, path)


def _loopback_url(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname or "")


def master_command(p: LocustPlan, csv_prefix: Path, json_path: Path, *, master_port: int | None = None) -> list[str]:
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", p.host,
            "-u", str(p.users), "-r", str(p.users), "--run-time", f"{p.run_time_s + BACKSTOP_S}s",
            "--tb-stop-after", str(p.run_time_s), "--tb-user-rate", repr(p.user_rate),
            "--csv", str(csv_prefix), "--json-file", str(json_path.with_suffix("")),
            "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0", "--stop-timeout", "2"]
    if p.path is not None:
        argv += ["--tb-path", p.path]
    if p.distributed:
        port = master_port if master_port is not None else p.master_port
        if port is None:
            raise ValueError("a distributed run needs master_port")
        argv += ["--master", "--master-bind-host", p.master_host, "--master-bind-port", str(port),
                 "--expect-workers", str(p.workers + p.remote_workers),
                 "--expect-workers-max-wait", f"{p.expect_wait_s:g}"]
    return [*argv, "ControlApiUser" if p.path is None else "PathUser"]


def worker_command(master_host: str, master_port: int) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
            "--master-host", master_host, "--master-port", str(master_port), "--loglevel", "WARNING"]


@dataclass(frozen=True)
class LocustResult:
    plan: LocustPlan
    intervals: list[dict[str, Any]]  # ours: {"start", "end", "counters", "histograms": {OP: b64}}
    ours: HdrRun
    total: LatencySummary  # Locust's own (rounded buckets)
    by_endpoint: dict[str, LatencySummary]  # Locust's own
    locust_rate: float | None  # Locust's own rate (its total_rps)
    achieved_rate: float  # ours: requests over their span (first start to last end, as Locust's own rate)
    artifacts: list[str]

    def __repr__(self) -> str:
        return (f"LocustResult({self.plan.host}, {self.ours.requests} requests ours / {self.total.requests} Locust's, "
                f"{self.achieved_rate:.1f}/s)")

    @property
    def counts_agree(self) -> bool:
        return self.ours.requests == self.total.requests and self.ours.failures == self.total.failures

    def summary_json(self) -> dict[str, Any]:
        ours_by = {n: latency_ms(e) for n, e in self.ours.by_name.items()}
        return {
            "target_rate": self.plan.rate, "achieved_rate": self.achieved_rate, "users": self.plan.users,
            "user_rate": self.plan.user_rate, "workers": self.plan.workers, "remote_workers": self.plan.remote_workers,
            "model": CLOSED_LOOP_NOTE, "counts_agree": self.counts_agree,
            "ours": {"requests": self.ours.requests, "failures": self.ours.failures, "rate": self.achieved_rate,
                     "histogram": OP, "complete": self.ours.complete, **latency_ms(self.ours.total),
                     "workers": {k: vars(w) for k, w in self.ours.workers.items()}},
            "locust": {"rate": self.locust_rate, **vars(self.total),
                       "note": "Locust's own figures: response times in rounded buckets (2 significant digits "
                               "above 100 ms)"},
            "by_endpoint": {n: {"ours": ours_by.get(n), "locust": vars(s)} for n, s in self.by_endpoint.items()},
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def run_locust(p: LocustPlan, out_dir: Path, *, t0: float | None = None, grace_s: float = 45.0) -> LocustResult:
    """Run the plan; returns when Locust exits (or kills it once its waits, run time and grace are over)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_prefix, json_path, hdr_path = out_dir / "locust", out_dir / "locust_final.json", out_dir / "locust_hdr.json"
    for stale in (json_path, hdr_path):
        stale.unlink(missing_ok=True)
    env = {**os.environ, ENV_USER_RATE: repr(p.user_rate), ENV_OUT: str(hdr_path)}
    port = (p.master_port or _free_port()) if p.distributed else None
    log = (out_dir / "locust.log").open("ab")
    procs: list[asyncio.subprocess.Process] = []
    limit = p.run_time_s + (p.expect_wait_s + FINAL_REPORT_WAIT_S if p.distributed else 0.0) + grace_s
    try:
        master = await asyncio.create_subprocess_exec(*master_command(p, csv_prefix, json_path, master_port=port),
                                                      env=env, stdout=log, stderr=log, cwd=out_dir)
        procs.append(master)
        for _ in range(p.workers):
            assert port is not None
            procs.append(await asyncio.create_subprocess_exec(*worker_command(p.connect_host, port), env=env,
                                                              stdout=log, stderr=log, cwd=out_dir))
        try:
            rc = await asyncio.wait_for(master.wait(), limit)
        except TimeoutError:
            raise HarnessError(f"Locust did not finish within {limit:g} s; see {out_dir / 'locust.log'}") from None
        if rc != 0 or not json_path.exists():
            raise HarnessError(f"Locust exited with code {rc} without results; see {out_dir / 'locust.log'}")
    finally:
        for proc in procs:
            await _stop(proc)
        log.close()
    raw = json_path.read_bytes()
    _, total, by_endpoint = parse_final_json(raw, t0=t0)
    ours = read_run(hdr_path)
    if total.requests == 0 and ours.requests == 0:
        raise HarnessError(f"Locust sent no requests to {p.host}; see {out_dir / 'locust.log'}")
    span = ours.span_s or ours.duration_s or float(p.run_time_s)
    artifacts = sorted(str(f.relative_to(out_dir)) for f in out_dir.iterdir() if f.name.startswith("locust"))
    return LocustResult(p, relative_intervals(ours, t0), ours, total, by_endpoint, locust_rate(raw),
                        ours.requests / span, artifacts)
