"""``harness load --locust`` and ``harness locust-worker``: Locust, distributed, with our HdrHistograms.

- Without ``--url``: the bot's control API. The whole stack starts (anvil, contracts, the bot) and
  only the ``api`` scenario runs, through the ``run`` machinery, with ``--workers`` local Locust
  workers; it ends with the ``api_calls_per_sec`` verdict, its confidence interval and the report.
- With ``--url``: Locust against that HTTP target (GET of the URL, or the control API's mix with
  ``--api-mix``), loopback unless ``--allow-remote``; ours (HdrHistogram) and Locust's figures side
  by side, ``--json`` on request. ``--remote-workers M`` makes the master wait for M workers from
  other machines (``harness locust-worker --master HOST:PORT``); binding the master to anything but
  loopback (``--master-bind``) needs ``--allow-remote`` too.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from rich.console import Console
from rich.table import Table

from bot.redact import redact_url
from harness.errors import ConfigError
from harness.load.jsonrpc import is_loopback_host
from harness.load.locust_runner import (
    CLOSED_LOOP_NOTE,
    LocustPlan,
    LocustResult,
    parse_bind,
    plan,
    run_locust,
    worker_command,
)

DEFAULT_RATE, DEFAULT_DURATION_S = 700.0, 20.0  # the quick profile's api scenario
MAX_LOCAL_WORKERS = 64
API_ROWS = ("api_calls_per_sec",)
_MS_COLUMNS = (("mean", "mean_ms"), ("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"), ("max", "max_ms"))


def check_args(args: argparse.Namespace) -> None:
    """Options that make no sense together fail here, naming the fix."""
    if getattr(args, "get", False):
        raise ConfigError("--get is for the open-loop generator; Locust already GETs --url (drop --get, or --locust)")
    for flag, given in (("--steps", args.steps), ("--ramp-to", args.ramp_to is not None)):
        if given:
            raise ConfigError(f"{flag} is for the open-loop generator; Locust runs one constant rate (--rate)")
    if not 0 <= args.workers <= MAX_LOCAL_WORKERS:
        raise ConfigError(f"--workers: give 0..{MAX_LOCAL_WORKERS} local worker processes")
    if args.remote_workers < 0:
        raise ConfigError("--remote-workers: give a count >= 0")
    if args.url is None and (args.remote_workers or args.master_bind or args.api_mix):
        raise ConfigError("--remote-workers, --master-bind and --api-mix need --url: the bot started for you "
                          "listens on 127.0.0.1 only, where no other machine reaches it")


def cmd_load_locust(args: argparse.Namespace) -> int:
    check_args(args)
    rate = DEFAULT_RATE if args.rate is None else args.rate
    duration = DEFAULT_DURATION_S if args.duration is None else args.duration
    return _url_run(args, rate, duration) if args.url else _bot_run(args, rate, duration)


def _bot_run(args: argparse.Namespace, rate: float, duration: float) -> int:
    from harness.run.finalize import exit_code
    from harness.run.options import RunOptions
    from harness.run.runner import execute
    from harness.run.scenarios import Profile, Scenario, Step

    if not (rate > 0 and 1 <= duration <= 24 * 3600):
        raise ConfigError("--rate must be > 0 and --duration in [1, 86400] s")
    scn = Scenario("api", "api", (Step(rate, duration),), drain_s=1.0,
                   description=f"Locust against the bot's HTTP control API ({args.workers} local workers)")
    opts = RunOptions(profile="custom", out=args.out, locust_workers=args.workers,
                      progress=not getattr(args, "no_progress", False))
    run_dir, doc = asyncio.run(execute(opts, Profile("custom", (scn,))))
    console = _console()
    api = next((s for s in doc.get("scenarios", []) if s.get("id") == "api"), None)
    if api is not None:
        console.print(_figures_table("api @ the bot's control API", api.get("summary", {})))
        console.print(f"[dim]{CLOSED_LOOP_NOTE}[/]")
    rows = [v for v in doc.get("verdicts", []) if v.get("row") in API_ROWS or v.get("scenario") == "api"]
    console.print(_verdicts_table(rows))
    console.print(f"results: {run_dir / 'results.json'}")
    console.print(f"report:  {run_dir / 'index.html'}")
    if doc.get("status") == "interrupted":
        return 4
    return exit_code(rows) if rows else 2


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=160)  # a log keeps the table's columns whole


def _url_run(args: argparse.Namespace, rate: float, duration: float) -> int:
    parts = urlsplit(args.url)
    host = f"{parts.scheme}://{parts.netloc}"
    path = None if args.api_mix else (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    p = plan(host, rate, duration, workers=args.workers, remote_workers=args.remote_workers,
             master_bind=args.master_bind, allow_remote=args.allow_remote, allow_remote_bind=args.allow_remote,
             path=path)
    console = _console()
    out_dir = (args.out / f"locust-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    if p.remote_workers:
        console.print(_remote_instructions(p))
    # While remote workers are awaited a time bar would run ahead of the load: plain lines then.
    progress = not getattr(args, "no_progress", False) and not p.remote_workers
    result = asyncio.run(_run_with_progress(p, out_dir, progress))
    target = redact_url(args.url) + (" (control API mix)" if args.api_mix else "")
    console.print(_figures_table(f"{target}  ({p.users} users, {p.workers} local + {p.remote_workers} remote "
                                 f"workers, {p.run_time_s} s)", result.summary_json()))
    console.print(f"[dim]{CLOSED_LOOP_NOTE}[/]")
    workers = ", ".join(f"{k}: {w.requests:,}" for k, w in sorted(result.ours.workers.items()))
    console.print(f"requests per process: {workers}")
    for warning in _warnings(result):
        console.print(f"[yellow]{warning}[/]")
    console.print(f"Locust's files: {out_dir}")
    if args.json:
        doc: dict[str, Any] = {"url": redact_url(args.url), "scenario": {
            "intervals": result.intervals, "summary": result.summary_json()}}
        args.json.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        console.print(f"written: {args.json}")
    return 1 if result.ours.failures or not result.ours.complete else 0


async def _run_with_progress(p: LocustPlan, out_dir: Path, progress: bool) -> LocustResult:
    from harness.run.progress import Ui

    with Ui(enabled=progress) as ui:
        task = ui.task(f"Locust, {p.rate:g} req/s", p.run_time_s)
        run = asyncio.create_task(run_locust(p, out_dir))
        start = time.monotonic()
        while not run.done():
            await asyncio.wait({run}, timeout=0.5)
            ui.update(task, min(float(p.run_time_s), time.monotonic() - start))
        return run.result()


def _remote_instructions(p: LocustPlan) -> str:
    # A wildcard bind has no one address to show: the machine's name stands in for it.
    shown = socket.gethostname() if p.connect_host != p.master_host else p.master_host
    where = " (loopback: workers on this machine only)" if is_loopback_host(p.master_host) else ""
    return (f"waiting up to {p.expect_wait_s:g} s for {p.remote_workers} remote worker(s){where}; on each worker "
            f"machine run:\n  harness locust-worker --master {shown}:{p.master_port}")


def _warnings(result: LocustResult) -> list[str]:
    out = []
    if not result.ours.complete:
        missing = [k for k, w in result.ours.workers.items() if not w.final]
        out.append(f"no final report from {', '.join(missing) or 'any worker'}: their last samples are missing")
    if not result.counts_agree:
        out.append(f"our count ({result.ours.requests:,}) and Locust's ({result.total.requests:,}) differ")
    return out


def _ms(v: Any) -> str:
    return "-" if not isinstance(v, int | float) else f"{v:.3f}"


def _figures_table(title: str, summary: dict[str, Any]) -> Table:
    table = Table(title=title)
    for col in ("figures", "requests", "failures", "rate/s", *(c for c, _ in _MS_COLUMNS), "p99.9"):
        table.add_column(col, justify="left" if col == "figures" else "right")
    ours, locust = summary.get("ours") or {}, summary.get("locust") or {}
    for label, f, p999 in (("ours (HdrHistogram)", ours, _ms(ours.get("p99_9_ms"))),
                           ("Locust's (rounded)", locust, "-")):
        rate = f.get("rate")
        table.add_row(label, f"{f.get('requests', 0):,}", f"{f.get('failures', 0):,}",
                      f"{rate:,.1f}" if isinstance(rate, int | float) else "-",
                      *(_ms(f.get(k)) for _, k in _MS_COLUMNS), p999)
    for name, both in sorted((summary.get("by_endpoint") or {}).items()):
        for side in ("ours", "locust"):
            f = both.get(side) or {}
            table.add_row(f"  {name} ({side})", "", "", "", *(_ms(f.get(k)) for _, k in _MS_COLUMNS),
                          _ms(f.get("p99_9_ms")) if side == "ours" else "-")
    table.caption = ("latencies in ms; rate: requests over their span, first start to last end; ours merged "
                     "exactly from every process's HdrHistograms")
    return table


def _verdicts_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="verdicts (api rows)")
    for col in ("row", "stat", "value", "95% CI", "threshold", "verdict", "note"):
        table.add_column(col)
    colours = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
    for v in rows:
        ci = v.get("ci") or [None, None]
        th = v.get("threshold") or {}
        value = v.get("value")
        table.add_row(v["row"], str(v.get("stat", "")), "-" if value is None else f"{value:.4g} {v.get('unit', '')}",
                      "[-, -]" if ci[0] is None else f"[{ci[0]:.4g}, {ci[1]:.4g}]",
                      f"{th.get('op', '')} {th.get('value', '')} {th.get('level', '')}",
                      f"[{colours.get(v['verdict'], 'white')}]{v['verdict']}[/]", str(v.get("note", ""))[:70])
    return table


def cmd_locust_worker(args: argparse.Namespace) -> int:
    """A Locust worker with our locustfile: it records into HdrHistograms and ships them to the master."""
    host, port = parse_bind(args.master)
    argv = worker_command(host, port)
    print(f"locust worker: joining the master at {host}:{port} (the master sets target, rate and users; "
          "Ctrl-C stops this worker)", flush=True)
    try:
        return subprocess.run(argv, check=False).returncode
    except KeyboardInterrupt:
        return 4
