"""Locust in one process, with one worker and with two, beside the open-loop generator, against one
endpoint of a running bot (a script, not a test)::

    python -m harness.load.apicap [--seconds 15] [--rounds 2] [--path /health] [--out apicap.json]

Starts anvil, the contracts and the bot (idle: no trades), then, in each round and in a shuffled
order:

- Locust (closed loop, ``harness.load.locust_runner``) asked for far more than it can reach, so its
  figure is the rate it reached: in one process, as a master with one local worker, and with two;
- the open-loop generator (``harness.load.httpget``) stepped up a rate ladder. A step *holds* when
  every request was sent on schedule and answered 2xx and the corrected p99 stayed under
  ``--p99-ms``; the generator's figure is the highest step that held.

Every tool shares the machine's cores with the bot it loads, so the figures are of this machine: the
output records the CPU reference (``harness.probes.calibration``) and the load average beside them,
and the order within each round is shuffled so that drift does not favour one tool.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

LADDER = (250.0, 500.0, 1000.0, 1500.0, 2000.0, 3000.0, 4000.0)
LOCUST_ASK = 8000.0  # requests/s asked of Locust: beyond any rate it reaches here, so it runs flat out
FORMS = ("locust-1-process", "locust-1-worker", "locust-2-workers", "generator")


async def _locust(host: str, path: str, seconds: float, workers: int, out: Path) -> dict[str, Any]:
    from harness.load.locust_runner import plan, run_locust

    res = await run_locust(plan(host, LOCUST_ASK, seconds, workers=workers, path=path), out)
    s = res.summary_json()
    return {"rate": round(res.achieved_rate, 1), "locust_rate": s["locust"]["rate"], "users": s["users"],
            "failures": s["ours"]["failures"], "p50_ms": s["ours"].get("p50_ms"), "p99_ms": s["ours"].get("p99_ms")}


async def _generator(url: str, seconds: float, p99_ms: float) -> dict[str, Any]:
    from harness.load.httpget import run_http_get_load
    from harness.load.schedules import ConstantRate

    steps, held = [], 0.0
    for rate in LADDER:
        res = await run_http_get_load(url, ConstantRate(rate, seconds), max_in_flight=2000, connections=256)
        s = res.summary
        h = res.merged("http_get")
        p99 = h.get_value_at_percentile(99) / 1000 if h.get_total_count() else float("inf")
        ok = s.errors == 0 and s.dropped == 0 and s.ok >= 0.99 * rate * seconds and p99 <= p99_ms
        steps.append({"rate": rate, "completed_rate": round(s.completed_rate, 1), "ok": s.ok, "errors": s.errors,
                      "dropped": s.dropped, "p50_ms": h.get_value_at_percentile(50) / 1000 if s.ok else None,
                      "p99_ms": p99 if s.ok else None, "lag_p99_ms": s.generator_lag_p99_ms, "held": ok})
        if not ok:
            break
        held = rate
    return {"rate": held, "steps": steps}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from harness.probes.calibration import cpu_reference
    from harness.results.writer import new_run_id
    from harness.run.options import RunOptions
    from harness.run.progress import Ui
    from harness.run.stack import stack

    run_dir = Path(tempfile.mkdtemp(prefix=f"apicap-{new_run_id()}-"))
    opts = RunOptions(pairs=args.pairs, out=run_dir, progress=False)
    rng = random.Random(args.seed)
    rounds: list[dict[str, Any]] = []
    async with stack(opts, run_dir, Ui(enabled=False)) as st:
        url = st.api_url + args.path
        for r in range(args.rounds):
            ref, ref_spread = cpu_reference()
            order = list(FORMS)
            rng.shuffle(order)
            results: dict[str, Any] = {}
            for form in order:
                t0 = time.time()
                if form == "generator":
                    results[form] = await _generator(url, args.seconds, args.p99_ms)
                else:
                    workers = {"locust-1-process": 0, "locust-1-worker": 1, "locust-2-workers": 2}[form]
                    results[form] = await _locust(st.api_url, args.path, args.seconds, workers,
                                                  run_dir / f"r{r}-{form}")
                results[form]["load_average_1m"] = round(os.getloadavg()[0], 2)
                print(f"round {r + 1} {form}: {results[form]['rate']:,.0f} req/s "
                      f"({time.time() - t0:.0f} s, load {results[form]['load_average_1m']})", file=sys.stderr)
            rounds.append({"round": r + 1, "order": order, "cpu_reference_its": round(ref),
                           "cpu_reference_spread": round(ref_spread, 3), "results": results})
    return {"endpoint": f"the bot's control API, GET {args.path}", "seconds": args.seconds,
            "p99_ms_held": args.p99_ms, "locust_ask": LOCUST_ASK, "cpus": os.cpu_count(), "rounds": rounds}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.load.apicap", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="example:\n  python -m harness.load.apicap --rounds 2 --out apicap.json")
    ap.add_argument("--seconds", type=float, default=15.0, help="each Locust run and each generator step (default 15)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of all four forms, shuffled (default 2)")
    ap.add_argument("--path", default="/health", help="the control API path every tool GETs (default /health)")
    ap.add_argument("--p99-ms", type=float, default=50.0, help="a generator step holds under this p99 (default 50)")
    ap.add_argument("--pairs", type=int, default=100, help="pairs the bot is configured with (default 100)")
    ap.add_argument("--seed", type=int, default=1, help="the shuffle's seed (default 1)")
    ap.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    if not args.path.startswith("/") or args.rounds < 1 or args.seconds < 2:
        ap.error("--path starts with '/', --rounds >= 1, --seconds >= 2")
    doc = asyncio.run(main_async(args))
    text = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    if args.out:
        args.out.write_bytes(text)
    sys.stdout.write(text.decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
