"""``harness load``: open-loop load against any JSON-RPC endpoint (or HTTP GET of a URL with ``--get``),
with the harness's statistics.

While it runs, the live dashboard (``harness.run.dashboard``) shows the achieved rate, the corrected
and service percentiles so far, errors, drops and the generator's lag; the table follows at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from bot.redact import redact_url
from harness.errors import ConfigError
from harness.load.generator import OpenLoopGenerator
from harness.load.httpget import run_http_get_load
from harness.load.jsonrpc import parse_params, run_jsonrpc_load
from harness.load.recorder import LoadResult
from harness.load.schedules import AnySchedule, schedule_from_spec
from harness.run._dashsources import LoadSource
from harness.run.progress import Ui


def parse_steps(text: str) -> list[list[float]]:
    """``'100x5,200x5'`` -> ``[[100, 5], [200, 5]]`` (rate x seconds)."""
    steps: list[list[float]] = []
    for k, part in enumerate(p.strip() for p in text.split(",") if p.strip()):
        rate, sep, secs = part.partition("x")
        try:
            if not sep:
                raise ValueError
            steps.append([float(rate), float(secs)])
        except ValueError:
            raise ConfigError(f"--steps item {k + 1} ({part!r}): write RATExSECONDS, e.g. 100x5") from None
    if not steps:
        raise ConfigError("--steps: give at least one RATExSECONDS item, e.g. 100x5,200x5")
    return steps


def schedule_from_args(args: argparse.Namespace) -> AnySchedule:
    if args.steps:
        return schedule_from_spec({"kind": "steps", "steps": parse_steps(args.steps)})
    if args.ramp_to is not None:
        return schedule_from_spec({"kind": "ramp", "start_rate": args.rate, "end_rate": args.ramp_to,
                                   "duration": args.duration})
    return schedule_from_spec({"kind": "constant", "rate": args.rate, "duration": args.duration})


def _ms(us: float) -> str:
    return f"{us / 1000:.3f}"


async def _load_live(args: argparse.Namespace, schedule: AnySchedule, params: list[Any] | dict[str, Any],
                     name: str) -> LoadResult:
    """The load, with the live dashboard (or a plain line every 10 s) while it runs."""
    ui = Ui(enabled=not getattr(args, "no_progress", False))
    title = f"harness load · {_what(args)} @ {redact_url(args.url)}"
    with ui:
        def watch(gen: OpenLoopGenerator) -> None:
            ui.watch(LoadSource(gen), title)

        if args.get:
            load = run_http_get_load(args.url, schedule, allow_remote=args.allow_remote,
                                     max_in_flight=args.max_in_flight, name=name, on_start=watch)
        else:
            load = run_jsonrpc_load(args.url, args.method, params, schedule, allow_remote=args.allow_remote,
                                    max_in_flight=args.max_in_flight, name=name, on_start=watch)
        run = asyncio.create_task(load)
        task = ui.task(f"{schedule.kind}, {schedule.count:,} requests", schedule.duration)
        start = time.monotonic()
        while not run.done():
            await asyncio.wait({run}, timeout=0.5)
            ui.update(task, min(schedule.duration, time.monotonic() - start))
        return run.result()


def _what(args: argparse.Namespace) -> str:
    return "GET" if args.get else str(args.method)


def cmd_load(args: argparse.Namespace) -> int:
    schedule = schedule_from_args(args)
    params = parse_params(args.params)
    name = "http_get" if args.get else re.sub(r"[^a-z0-9_]+", "_",
                                               re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", args.method).lower())
    result = asyncio.run(_load_live(args, schedule, params, name))
    s = result.summary
    console = Console()
    table = Table(title=f"{_what(args)} @ {redact_url(args.url)}  ({schedule.kind}, {s.duration_s:.1f} s)")
    for col in ("latency (ms)", "mean", "p50", "p90", "p99", "p99.9", "max"):
        table.add_column(col, justify="right")
    for key, label in ((name, "from intended start (corrected)"), (f"{name}.service", "service time (uncorrected)")):
        h = result.merged(key)
        if h.get_total_count() == 0:
            continue
        table.add_row(label, _ms(h.get_mean_value()), *(_ms(h.get_value_at_percentile(p)) for p in (50, 90, 99, 99.9)),
                      _ms(h.get_max_value()))
    console.print(table)
    console.print(f"target {s.target_rate:.1f}/s  achieved {s.achieved_rate:.1f}/s  "
                  f"completed {s.completed_rate:.1f}/s  ok {s.ok}  "
                  f"errors {s.errors} {dict(s.errors_by_kind) or ''}  dropped {s.dropped}")
    console.print(f"generator lag p99 {s.generator_lag_p99_ms:.3f} ms, max {s.generator_lag_max_ms:.3f} ms"
                  + ("  [red]the generator fell behind: its numbers understate the load[/]" if s.generator_behind
                     else ""))
    if args.json:
        doc: dict[str, Any] = {"url": redact_url(args.url), "method": _what(args), **result.to_scenario_json()}
        args.json.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        console.print(f"written: {args.json}")
    # A generator that fell behind is a warning about the run, not a verdict on the endpoint: the
    # latencies from intended start stay honest, and preemption alone trips it on a busy machine.
    return 1 if (s.errors or s.dropped) else 0
