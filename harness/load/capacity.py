"""Capacity benchmark of the load tools themselves (a script, not a test).

    python -m harness.load.capacity [--quick] [--out capacity.json]

On a 2-core box: a trivial aiohttp server runs in its own process pinned to CPU 1; each load
tool runs pinned to CPU 0, one at a time, against it:

- the open-loop generator (``harness.load.jsonrpc``), with the default asyncio loop and with
  uvloop: rates are stepped up; a step *holds* when the generator started >= 99% of the
  schedule with no errors and its own scheduling lag p99 stayed under 1 ms, in the best of
  three short trials (noise from other processes only adds lag). The capacity is the highest
  rate that held;
- Locust (FastHttpUser, one process, 50 users, no pacing): its maximum request rate;
- wrk (1 thread, 50 connections): its maximum request rate, which is mostly the server's.

Then the market-data feed at 10k ticks/s to a consumer process: unbatched (one tick per frame),
batched (JSON arrays of the ticks due together), and batched with a 0.5 ms coalescing window,
to show which reaches the websocket target and at what lag.

Figures from a shared machine are noisy: the output records the load average beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OK_BODY = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'
SERVER_CPU, TOOL_CPU = 1, 0


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(0, {cpu})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(port: int) -> None:
    """The trivial server: every GET and POST answers a fixed JSON-RPC result."""
    from aiohttp import web

    _pin(SERVER_CPU)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=OK_BODY, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def generator_step(url: str, rate: float, duration: float, loop: str, spin_s: float = 0.0) -> dict[str, Any]:
    from harness.load.jsonrpc import run_jsonrpc_load
    from harness.load.schedules import ConstantRate

    _pin(TOOL_CPU)
    if loop == "uvloop":
        import uvloop

        uvloop.install()
    cpu0 = time.process_time()
    res = asyncio.run(run_jsonrpc_load(url, "eth_blockNumber", [], ConstantRate(rate, duration),
                                       connections=64, max_in_flight=2000, timeout_s=5.0, spin_s=spin_s))
    cpu_us = (time.process_time() - cpu0) * 1e6
    s = res.summary
    p99_ms = res.merged("eth_blockNumber").get_value_at_percentile(99) / 1000.0
    held = s.sent >= 0.99 * s.scheduled and s.errors == 0 and s.generator_lag_p99_ms < 1.0
    return {"loop": loop, "rate": rate, "achieved_rate": round(s.achieved_rate, 1), "errors": s.errors,
            "dropped": s.dropped, "lag_p99_ms": s.generator_lag_p99_ms, "lag_max_ms": s.generator_lag_max_ms,
            "latency_p99_ms": p99_ms, "held": held, "held_5ms": held or (
                s.sent >= 0.99 * s.scheduled and s.errors == 0 and s.generator_lag_p99_ms < 5.0),
            "cpu_us_per_op": round(cpu_us / max(s.sent, 1), 1)}


def _run_child(args: list[str], timeout: float) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "harness.load.capacity", *args], capture_output=True,
                         text=True, timeout=timeout, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def measure_generator(url: str, rates: list[float], duration: float, loop: str, trials: int) -> dict[str, Any]:
    """Each rate ``trials`` times; a rate holds if its best trial held.

    Other processes on a shared box only ever add lag (a preempted generator wakes late), so the
    best of a few short trials estimates what the generator itself can do; all trials are kept.
    """
    steps = []
    for rate in rates:
        runs = [_run_child(["--child", "generator", "--url", url, "--rate", str(rate),
                            "--duration", str(duration), "--loop", loop], timeout=duration + 60)
                for _ in range(trials)]
        best = min(runs, key=lambda r: (not r["held"], r["lag_p99_ms"]))
        steps.append({**best, "trials_lag_p99_ms": [r["lag_p99_ms"] for r in runs],
                      "trials_held": sum(r["held"] for r in runs)})
        print(f"  generator[{loop}] {rate:>6.0f}/s: achieved {best['achieved_rate']:>7.1f}/s "
              f"lag p99 {best['lag_p99_ms']:.3f} ms (trials {[r['lag_p99_ms'] for r in runs]}) "
              f"latency p99 {best['latency_p99_ms']:.2f} ms cpu {best['cpu_us_per_op']} us/op "
              f"{'held' if best['held'] else 'FAILED'}", flush=True)
        if not best["held"] and best["achieved_rate"] < 0.9 * rate:
            break  # far past capacity: higher steps only cost time
    capacity = max((s["rate"] for s in steps if s["held"]), default=0.0)
    relaxed = max((s["rate"] for s in steps if s["held_5ms"]), default=0.0)
    # CPU is charged only while the process runs, so CPU per operation survives a busy machine
    # better than any wall-clock figure; 1e6 / it is the rate one full core could sustain. It is
    # measured past saturation (8000/s), where the generator never waits and so never spins.
    cpu_runs = [_run_child(["--child", "generator", "--url", url, "--rate", "8000", "--duration", "1.5",
                            "--loop", loop, "--spin", "0"], timeout=120) for _ in range(2)]
    cpu_us = min(r["cpu_us_per_op"] for r in cpu_runs)
    print(f"  generator[{loop}] CPU per operation when saturated: {cpu_us} us "
          f"(trials {[r['cpu_us_per_op'] for r in cpu_runs]})", flush=True)
    return {"tool": f"open-loop generator ({loop})", "capacity_rate": capacity, "capacity_rate_lag_5ms": relaxed,
            "cpu_us_per_op": cpu_us, "one_core_rate_estimate": round(1e6 / cpu_us),
            "steps": steps}


def measure_locust(url: str, duration: int) -> dict[str, Any]:
    from harness.load.locust_runner import plan, run_locust

    # 50 users each allowed 1000 tasks/s: pacing never binds, so this is Locust's ceiling.
    p = plan(url, 50_000.0, duration, user_rate=1000.0)
    with tempfile.TemporaryDirectory() as tmp:
        _pin(TOOL_CPU)  # the Locust child inherits the affinity
        res = asyncio.run(run_locust(p, Path(tmp)))
    return {"tool": "Locust FastHttpUser (1 process, 50 users, closed loop)",
            "max_rate": round(res.achieved_rate, 1), "p99_ms": res.total.p99_ms, "failures": res.total.failures}


def measure_wrk(url: str, duration: int) -> dict[str, Any]:
    wrk = "/usr/bin/wrk"
    if not Path(wrk).exists():
        return {"tool": "wrk", "skipped": "wrk is not installed (apt-get install wrk)"}
    out = subprocess.run(["taskset", "-c", str(TOOL_CPU), wrk, "-t1", "-c50", f"-d{duration}s", "--latency",
                          url + "health"], capture_output=True, text=True, timeout=duration + 30, check=True)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out.stdout)
    p99_ms = None
    if p99:
        p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return {"tool": "wrk (1 thread, 50 connections, closed loop)", "max_rate": float(m.group(1)) if m else None,
            "p99_ms": p99_ms}


def consume(url: str, idle_s: float) -> dict[str, Any]:
    """Child: read the feed until it goes quiet; count ticks decoded."""
    import aiohttp

    from harness.load.ticks import decode_frame

    _pin(SERVER_CPU)

    async def run() -> dict[str, Any]:
        ticks = frames = 0
        cpu0 = time.process_time()
        async with aiohttp.ClientSession() as s, s.ws_connect(url, max_msg_size=0) as ws:
            while True:
                try:
                    msg = await ws.receive(timeout=idle_s)
                except TimeoutError:
                    break
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                frames += 1
                ticks += len(decode_frame(msg.data))
        # Includes the idle wait at the end (no CPU) and the connection set-up (little).
        cpu_us = (time.process_time() - cpu0) * 1e6
        return {"ticks": ticks, "frames": frames, "consumer_cpu_us_per_tick": round(cpu_us / max(ticks, 1), 2)}

    return asyncio.run(run())


async def _feed_run(batch_max: int, rate: float, duration: float, coalesce_s: float = 0.0) -> dict[str, Any]:
    from harness.load.feed import MarketFeed
    from harness.load.schedules import ConstantRate

    pairs = [f"T{i:03d}/USD" for i in range(100)]
    async with MarketFeed(pairs, batch_max=batch_max, coalesce_s=coalesce_s) as feed:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "harness.load.capacity", "--child", "consumer", "--url", feed.url,
            stdout=asyncio.subprocess.PIPE)
        await feed.wait_for_client(30)
        res = await feed.run(market=ConstantRate(rate, duration))
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    got = json.loads(out.decode().strip().splitlines()[-1])
    return {"batch_max": batch_max, "coalesce_ms": coalesce_s * 1000, "rate": rate,
            "ws_sent": res.ws_sent, "ws_dropped": res.ws_dropped,
            "sent_rate": round(res.achieved_rate, 1), "received": got["ticks"], "frames": got["frames"],
            "consumer_cpu_us_per_tick": got["consumer_cpu_us_per_tick"],
            "lag_p99_ms": res.lag_p99_ms, "behind": res.behind}


def measure_feed(rate: float, duration: float) -> list[dict[str, Any]]:
    _pin(TOOL_CPU)
    rows = []
    for batch, coalesce in ((1, 0.0), (64, 0.0), (64, 0.0005)):
        row = asyncio.run(_feed_run(batch, rate, duration, coalesce))
        print(f"  feed batch_max={batch} coalesce={coalesce * 1000:g} ms: sent {row['sent_rate']}/s, "
              f"received {row['received']} of {int(rate * duration)}, lag p99 {row['lag_p99_ms']:.2f} ms, "
              f"consumer CPU {row['consumer_cpu_us_per_tick']} us/tick", flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="fewer, shorter steps")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    ap.add_argument("--child", choices=["server", "generator", "consumer"], help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--duration", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    ap.add_argument("--spin", type=float, default=0.0, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child == "server":
        serve(a.port)
        return 0
    if a.child == "generator":
        print(json.dumps(generator_step(a.url, a.rate, a.duration, a.loop, a.spin)))
        return 0
    if a.child == "consumer":
        print(json.dumps(consume(a.url, 2.0)))
        return 0

    duration = 2.0 if a.quick else 3.0
    trials = 1 if a.quick else 3
    rates = [500.0, 1000.0, 2000.0, 3000.0] if a.quick else [500.0, 1000.0, 2000.0, 3000.0, 4000.0, 6000.0, 8000.0]
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "harness.load.capacity", "--child", "server",
                               "--port", str(port)])
    url = f"http://127.0.0.1:{port}/"
    report: dict[str, Any] = {"machine": {"cores": os.cpu_count(), "loadavg_before": os.getloadavg()},
                              "server": "aiohttp + uvloop, 1 process pinned to CPU 1", "tools_cpu": TOOL_CPU}
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        results = []
        for loop in ("asyncio", "uvloop"):
            results.append(measure_generator(url, rates, duration, loop, trials))
        results.append(measure_locust(url, int(duration) + 2))
        print(f"  locust: {results[-1]}", flush=True)
        results.append(measure_wrk(url, int(duration) + 1))
        print(f"  wrk: {results[-1]}", flush=True)
        report["tools"] = results
    finally:
        server.terminate()
        server.wait(10)
    report["feed"] = measure_feed(10_000.0, duration)
    report["machine"]["loadavg_after"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    if a.out:
        a.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
