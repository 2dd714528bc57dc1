"""Run Locust against the bot's control API as separate processes, and read back what it measured.

Locust monkeypatches with gevent on import, so it only ever runs as its own process(es):
``locust -f harness/load/locustfile.py --headless`` with a bounded ``--run-time``; with
``workers > 0``, one ``--master`` (bound to 127.0.0.1) plus that many ``--worker`` processes on
this machine. ``worker_command`` gives the line to start more workers on other machines.

Locust writes ``--csv`` files (kept as artifacts) and ``--json-file`` (the final per-endpoint
stats). The runner reads:

- per-interval counters ``api_requests`` / ``api_failures`` from the JSON's per-second counts
  (``num_reqs_per_sec``), which are complete; the CSV stats history is a once-per-second
  snapshot that misses the last second of a run, so it is parsed (``parse_stats_history``)
  as a cross-check only;
- a latency summary from the JSON's response-time buckets (Locust rounds times above 100 ms to
  2 significant digits, so percentiles are approximate to that precision).

Parsing is pure and tested; ``run_locust`` is the thin process shell, bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import os
import signal
import socket
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from harness.errors import ConfigError, HarnessError
from harness.load.jsonrpc import check_target

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
DEFAULT_USER_RATE = 10.0


@dataclass(frozen=True)
class LocustPlan:
    host: str
    rate: float
    users: int
    user_rate: float
    run_time_s: int
    workers: int


def plan(host: str, rate: float, run_time_s: float, *, workers: int = 0, user_rate: float = DEFAULT_USER_RATE,
         allow_remote: bool = False) -> LocustPlan:
    """How many users at which per-user rate reach ``rate`` requests per second in total."""
    check_target(host, allow_remote)
    if not (rate > 0 and math.isfinite(rate)):
        raise ConfigError(f"locust rate must be > 0 requests/s, got {rate}")
    if not 1 <= run_time_s <= 24 * 3600:
        raise ConfigError(f"locust run_time_s must be in [1, 86400], got {run_time_s}")
    if workers < 0:
        raise ConfigError(f"locust workers must be >= 0, got {workers}")
    if not user_rate > 0:
        raise ConfigError(f"locust user_rate must be > 0, got {user_rate}")
    users = max(1, math.ceil(rate / user_rate))
    # Locust joins host and path as given: "http://h/" + "/health" would request "//health".
    return LocustPlan(host.rstrip("/"), rate, users, rate / users, math.ceil(run_time_s), workers)


def master_command(p: LocustPlan, csv_prefix: Path, json_path: Path, *, master_port: int | None = None) -> list[str]:
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", p.host,
            "-u", str(p.users), "-r", str(p.users), "--run-time", f"{p.run_time_s}s",
            "--csv", str(csv_prefix), "--json-file", str(json_path.with_suffix("")),
            "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0", "--stop-timeout", "2"]
    if p.workers:
        if master_port is None:
            raise ValueError("a distributed run needs master_port")
        argv += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
                 "--expect-workers", str(p.workers), "--expect-workers-max-wait", "30"]
    return argv


def worker_command(master_host: str, master_port: int) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
            "--master-host", master_host, "--master-port", str(master_port), "--loglevel", "WARNING"]


@dataclass(frozen=True)
class LatencySummary:
    requests: int
    failures: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class LocustResult:
    plan: LocustPlan
    intervals: list[dict[str, Any]]  # {"start", "end", "counters": {"api_requests", "api_failures"}}
    total: LatencySummary
    by_endpoint: dict[str, LatencySummary]
    achieved_rate: float
    artifacts: list[str]

    def summary_json(self) -> dict[str, Any]:
        return {"target_rate": self.plan.rate, "achieved_rate": self.achieved_rate, "users": self.plan.users,
                "workers": self.plan.workers, "total": self.total.__dict__,
                "by_endpoint": {k: v.__dict__ for k, v in self.by_endpoint.items()}}


def _percentile(times: Mapping[float, int], q: float) -> float:
    n = sum(times.values())
    if n == 0:
        return 0.0
    rank = max(1, math.ceil(q * n))
    seen = 0
    for value in sorted(times):
        seen += times[value]
        if seen >= rank:
            return float(value)
    return float(max(times))


def _summary(entries: Sequence[Mapping[str, Any]]) -> LatencySummary:
    times: Counter[float] = Counter()
    reqs = fails = 0
    total_ms = 0.0
    max_ms = 0.0
    for e in entries:
        reqs += int(e["num_requests"])
        fails += int(e["num_failures"])
        total_ms += float(e["total_response_time"])
        max_ms = max(max_ms, float(e.get("max_response_time") or 0.0))
        for k, v in e.get("response_times", {}).items():
            times[float(k)] += int(v)
    return LatencySummary(reqs, fails, total_ms / reqs if reqs else 0.0, _percentile(times, 0.50),
                          _percentile(times, 0.95), _percentile(times, 0.99), max_ms)


def parse_final_json(text: str | bytes, *, t0: float | None = None) -> tuple[list[dict[str, Any]], LatencySummary,
                                                                          dict[str, LatencySummary]]:
    """Intervals (seconds since ``t0``, default the first second seen) and latency summaries."""
    try:
        entries = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise HarnessError(f"Locust's JSON stats are not JSON ({exc})") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "num_requests" in e for e in entries):
        raise HarnessError("Locust's JSON stats are not a list of per-endpoint stats")
    reqs: Counter[int] = Counter()
    fails: Counter[int] = Counter()
    for e in entries:
        for sec, n in e.get("num_reqs_per_sec", {}).items():
            reqs[int(float(sec))] += int(n)
        for sec, n in e.get("num_fail_per_sec", {}).items():
            fails[int(float(sec))] += int(n)
    intervals: list[dict[str, Any]] = []
    if reqs or fails:
        first = min(reqs.keys() | fails.keys())
        last = max(reqs.keys() | fails.keys())
        base = math.floor(t0) if t0 is not None else first
        for sec in range(min(first, base), last + 1):
            if sec < base:
                continue
            intervals.append({"start": float(sec - base), "end": float(sec - base + 1),
                              "counters": {"api_requests": reqs.get(sec, 0), "api_failures": fails.get(sec, 0)}})
    by_endpoint = {f"{e.get('method') or ''} {e.get('name')}".strip(): _summary([e]) for e in entries}
    return intervals, _summary(entries), by_endpoint


def parse_stats_history(text: str) -> list[tuple[int, int, int]]:
    """``(unix_second, requests, failures)`` per snapshot of the Aggregated row, as deltas."""
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r.get("Name") == "Aggregated"]
    out: list[tuple[int, int, int]] = []
    prev_r = prev_f = 0
    for r in rows:
        try:
            ts, tr, tf = int(r["Timestamp"]), int(r["Total Request Count"]), int(r["Total Failure Count"])
        except (KeyError, TypeError, ValueError) as exc:
            raise HarnessError(f"Locust stats history row is malformed ({exc!r}): {r}") from None
        out.append((ts, tr - prev_r, tf - prev_f))
        prev_r, prev_f = tr, tf
    return out


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
    """Run the plan; returns when Locust exits (or kills it ``grace_s`` after its run time)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_prefix, json_path = out_dir / "locust", out_dir / "locust_final.json"
    env = {**os.environ, "TB_LOCUST_USER_RATE": repr(p.user_rate)}
    port = _free_port() if p.workers else None
    log = (out_dir / "locust.log").open("ab")
    procs: list[asyncio.subprocess.Process] = []
    try:
        master = await asyncio.create_subprocess_exec(*master_command(p, csv_prefix, json_path, master_port=port),
                                                      env=env, stdout=log, stderr=log, cwd=out_dir)
        procs.append(master)
        for _ in range(p.workers):
            assert port is not None
            procs.append(await asyncio.create_subprocess_exec(*worker_command("127.0.0.1", port), env=env,
                                                              stdout=log, stderr=log, cwd=out_dir))
        try:
            rc = await asyncio.wait_for(master.wait(), p.run_time_s + grace_s)
        except TimeoutError:
            raise HarnessError(f"Locust did not finish within {p.run_time_s + grace_s:g} s; "
                               f"see {out_dir / 'locust.log'}") from None
        if rc != 0 or not json_path.exists():
            raise HarnessError(f"Locust exited with code {rc} without results; see {out_dir / 'locust.log'}")
    finally:
        for proc in procs:
            await _stop(proc)
        log.close()
    intervals, total, by_endpoint = parse_final_json(json_path.read_bytes(), t0=t0)
    if total.requests == 0:
        raise HarnessError(f"Locust sent no requests to {p.host}; see {out_dir / 'locust.log'}")
    # Users all start at once (spawn rate = users), so the run time is the load's span.
    span = float(p.run_time_s)
    artifacts = sorted(str(f.relative_to(out_dir)) for f in out_dir.iterdir() if f.name.startswith("locust"))
    return LocustResult(p, intervals, total, by_endpoint, total.requests / span, artifacts)
