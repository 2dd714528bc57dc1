"""The ``harness`` command: a CLI of verbs, each with a one-line help and an example.

Exit codes (documented in README and ``harness --help``):
  0  every judged row passed
  1  at least one row failed (or, for ``gate``, a significant regression)
  2  no row failed, but some were inconclusive
  3  the harness itself failed (bad input, a part that would not start)
  4  interrupted (Ctrl-C / SIGTERM); partial results were written
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bot.redact import excepthook, redact_text
from harness.errors import ConfigError, HarnessError
from harness.node.faultnet import NETWORK_HELP

EXIT_PASS, EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 3, 4

EPILOG = """\
exit codes: 0 all pass, 1 any fail, 2 only inconclusive, 3 harness error, 4 interrupted (partial results kept)
docs: README.md, docs/DESIGN.md; SLO tables: harness/slo/slo.toml"""


def _verb(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_: str, example: str,
          ) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_, description=help_, epilog=f"example:\n  {example}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pairs", type=int, default=100, help="trading pairs to deploy and trade (default 100, max 500)")
    p.add_argument("--node-url", help="judge against your own JSON-RPC endpoint instead of starting anvil "
                   "(it must already hold a deployment: see --deployment; loopback unless --allow-remote). "
                   "A key in it is passed to the bot in its environment and written nowhere: files and logs "
                   "show the URL redacted")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback --node-url (your own node or provider; you are responsible for the "
                   "load)")
    p.add_argument("--deployment", type=Path, help="deployment.json for --node-url")
    p.add_argument("--block-time", type=float, default=None,
                   help="anvil interval mining period in seconds (default 0.05; 0 = automine, "
                   "which stalls under bursts: see README)")
    p.add_argument("--slo", type=Path, help="your own SLO file (default: the shipped harness/slo/slo.toml)")
    p.add_argument("--out", type=Path, default=Path("reports"), help="reports folder (default ./reports)")
    p.add_argument("--baseline", type=Path, help="a previous run folder to judge the regression row against "
                   "(default: the newest earlier run of the same profile, if any)")
    p.add_argument("--seed", type=int, default=1, help="seed for prices and schedules (default 1)")
    p.add_argument("--bot", metavar="KEY=VALUE", action="append", default=[],
                   help="override a bot.toml setting for this run (repeatable), e.g. --bot loop=asyncio "
                   "--bot engine.signing=thread; the effective settings are recorded in the results")
    p.add_argument("--network", choices=["loopback", "same-region", "cross-region", "flaky"], default="loopback",
                   help=NETWORK_HELP)
    p.add_argument("--faults", metavar="PLAN", help="put the fault proxy between bot and node, e.g. "
                   "'latency=5ms,jitter=2ms,error=0.001,429=0.001,drop=0.001'; after the node answered: "
                   "'loss=0.01,slow=0.01:200ms,truncate=0.01,oversize=0.001:20MB,shape=0.01'; "
                   "'wsgarbage=0.01', 'outage=5s-8s;20s-22s', 'outage_every=60s:2s' (seconds from the proxy's "
                   "start). Added on top of --network; recorded as the network profile, every injection in "
                   "faults.jsonl")
    p.add_argument("--fault-schedule", metavar="CHANGES", help="change the faults at run time: "
                   "'10s: loss=0.05 | 30s: | 45s: 5xx=1' (seconds from the proxy's start, before the bot starts; "
                   "an empty plan is clean) or a .toml file of [[schedule]] tables (at, plan); each plan is "
                   "added on top of --network")
    p.add_argument("--no-progress", action="store_true",
                   help="a plain line every 10 s instead of the live dashboard (also when stderr is not a terminal)")
    p.add_argument("--bot-allocator", choices=["system", "jemalloc", "mimalloc"], default="system",
                   help="the bot's malloc: glibc's (system, default), or the Debian jemalloc / mimalloc library "
                   "preloaded into the bot's process only (LD_PRELOAD); recorded as conditions.bot.allocator")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Prove or disprove a trading bot's performance promises: open-loop load, "
                    "HdrHistogram statistics with confidence intervals, and pass/fail/inconclusive verdicts "
                    "against the SLO tables.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = _verb(sub, "run", "start anvil, deploy, start the bot, run every scenario and judge every SLO row",
              "harness run                      # quick profile, a few minutes")
    p.add_argument("--profile", choices=["quick", "full", "smoke"], default="quick",
                   help="quick: every scenario short (a few minutes); full: sustained 1 h, longer stress; "
                   "smoke: every scenario very short (CI's A/A check)")
    p.add_argument("--minutes", type=float, help="override the sustained scenario's length in minutes")
    p.add_argument("--only", help="comma-separated scenarios to run (burst,sustained,stress,websocket,api; "
                   "websocket_stress, the market-data capacity search, is in --profile full or run by name)")
    p.add_argument("--chaos", metavar="NAMES",
                   help="run chaos scenarios instead: outage,ratelimit,wsdrop,slownode,ambiguous or all (short "
                   "forms, about two minutes for all; full forms with --profile full). Each gets its own bot "
                   "with two endpoints, each behind its own fault proxy; only the scenarios --only names run "
                   "beside them, before them")
    p.add_argument("--locust-workers", type=int, default=0, metavar="N",
                   help="run the api scenario's Locust as a master with N local worker processes "
                   "(default 0: one process)")
    p.add_argument("--fresh-bot", action="store_true",
                   help="a new bot process for every scenario (default: one bot, quiescence between scenarios)")
    p.add_argument("--keep-chain", action="store_true",
                   help="let scenarios share one growing chain (default: our anvil is reverted to the chain as "
                   "deployed, with a fresh bot, before a scenario once it grew by --chain-reset-blocks, and before "
                   "every trading stress step, because anvil slows as its chain grows)")
    p.add_argument("--chain-reset-blocks", type=int, default=200, metavar="N",
                   help="revert our anvil before a scenario once its chain grew more than N blocks since the "
                   "snapshot (default 200: 10 s of 50 ms blocks)")
    p.add_argument("--no-calibrate", action="store_true",
                   help="skip the few-second machine calibration (node ceiling, CPU reference) before the scenarios")
    p.add_argument("--settle-timeout", type=float, default=60.0, metavar="S",
                   help="longest wait for quiescence before each scenario (default 60 s)")
    p.add_argument("--profile-bot", action="store_true",
                   help="attach py-spy (100 Hz, nonblocking) to the bot during every scenario: a flame graph per "
                   "scenario under <run>/profiles/, linked from the run's page (it shares the cores with the bot)")
    _add_run_options(p)

    p = _verb(sub, "soak", "steady load for hours with memray, RSS and heap tracking, judged for memory leaks",
              "harness soak --hours 24")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--hours", type=float, help="soak length in hours")
    g.add_argument("--minutes", type=float, help="soak length in minutes (for a quick check)")
    p.add_argument("--rate", type=float, default=None,
                   help="trades per second offered (default: a rate the bot sustains, from the run's calibration; "
                   "recorded as conditions.soak_rate)")
    p.add_argument("--no-memray", action="store_true",
                   help="no memray capture (its overhead: ~3.5x CPU per trade); RSS and the heap are still tracked")
    _add_run_options(p)

    p = _verb(sub, "load", "open-loop load against any JSON-RPC endpoint, with corrected percentiles; or Locust "
              "(--locust), distributed, against the bot's control API or any HTTP URL",
              "harness load --url http://127.0.0.1:8545 --method eth_blockNumber --rate 500 --duration 10\n"
              "  harness load --get --url http://127.0.0.1:8080/health --rate 1000   # open-loop HTTP GET\n"
              "  harness load --locust --workers 2        # the bot's control API: the api_calls_per_sec verdict")
    p.add_argument("--url", help="JSON-RPC endpoint URL (loopback unless --allow-remote); required without --locust. "
                   "With --locust: an HTTP URL to GET (default: the bot's control API, started for the run)")
    p.add_argument("--method", default="eth_blockNumber", help="JSON-RPC method (default eth_blockNumber)")
    p.add_argument("--get", action="store_true",
                   help="open-loop HTTP GET of --url instead of a JSON-RPC POST (any 2xx is a success), e.g. the "
                   "bot's /health, to set the generator beside Locust against one endpoint")
    p.add_argument("--params", default="[]", help="JSON array of params (default [])")
    p.add_argument("--rate", type=float, default=None,
                   help="constant arrival rate per second (default 100; with --locust 700)")
    p.add_argument("--ramp-to", type=float, help="ramp linearly from --rate to this rate over the duration")
    p.add_argument("--steps", help="step stress, e.g. '100x5,200x5,400x5' (rate x seconds)")
    p.add_argument("--duration", type=float, default=None, help="seconds (default 10; with --locust 20)")
    p.add_argument("--max-in-flight", type=int, default=256, help="beyond this, iterations are dropped and counted")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback URL (your own node or provider; you are responsible for the load)")
    p.add_argument("--json", type=Path, help="also write the result as JSON here")
    p.add_argument("--no-progress", action="store_true", help="a plain line every 10 s instead of the live dashboard")
    lg = p.add_argument_group("Locust (--locust): closed-loop users, every request in HdrHistograms merged exactly")
    lg.add_argument("--locust", action="store_true",
                    help="load with Locust instead of the open-loop generator: without --url the bot's control API "
                    "(anvil, contracts and the bot are started; the api scenario is judged), with --url that URL")
    lg.add_argument("--workers", type=int, default=0, metavar="N",
                    help="local Locust worker processes under one master (default 0: one process)")
    lg.add_argument("--remote-workers", type=int, default=0, metavar="M",
                    help="also wait for M workers from other machines (harness locust-worker --master HOST:PORT)")
    lg.add_argument("--master-bind", metavar="HOST:PORT",
                    help="the Locust master's address (default 127.0.0.1 and a free port, 5557 with "
                    "--remote-workers); a non-loopback address needs --allow-remote")
    lg.add_argument("--api-mix", action="store_true",
                    help="with --url: the control API's mix (/health, /status, /metrics 6:3:1) on that host instead "
                    "of GET of the URL")
    lg.add_argument("--out", type=Path, default=Path("reports"),
                    help="reports folder for --locust (default ./reports): a run folder, or locust-<time>/ with --url")

    p = _verb(sub, "locust-worker", "a Locust worker for a master on another machine, recording into HdrHistograms",
              "harness locust-worker --master 10.0.0.5:5557   # the master: harness load --locust --remote-workers")
    p.add_argument("--master", required=True, metavar="HOST:PORT", help="the master's address (its --master-bind)")

    p = _verb(sub, "profile", "py-spy flame graph of the bot under sustained load, with its conditions and a page",
              "harness profile --seconds 30 --rate 200 --format flamegraph,speedscope --native")
    p.add_argument("--seconds", type=int, default=30, help="profile length (default 30)")
    p.add_argument("--rate", type=float, default=100.0, help="trades per second offered (default 100)")
    p.add_argument("--format", default="flamegraph,speedscope", metavar="FORMATS",
                   help="comma-separated: flamegraph (SVG), speedscope (JSON), raw (folded stacks), or all "
                   "(default flamegraph,speedscope). py-spy samples once (raw, always kept) and the others are "
                   "rendered from it")
    p.add_argument("--sample-rate", type=int, default=100, metavar="HZ",
                   help="py-spy samples per second (default 100)")
    p.add_argument("--native", action="store_true",
                   help="also sample C frames (py-spy --native); py-spy then stops the bot at every sample")
    p.add_argument("--idle", action="store_true", help="include idle threads' stacks (py-spy --idle)")
    p.add_argument("--gil", action="store_true", help="only samples holding the GIL (py-spy --gil)")
    p.add_argument("--subprocesses", action="store_true",
                   help="also profile the bot's child processes (py-spy --subprocesses: signing processes, shards)")
    p.add_argument("--spy-launch", action="store_true",
                   help="py-spy starts the bot as its own child instead of attaching to it: needs no ptrace attach "
                   "permission; the profile then includes the bot's start-up")
    p.add_argument("--calibrate", action="store_true",
                   help="measure the machine (CPU reference, node ceiling) first and record it with the profile")
    _add_run_options(p)

    p = _verb(sub, "report", "re-render a run's report, the history page, or compare two runs",
              "harness report --compare reports/RUN_A reports/RUN_B")
    p.add_argument("run", nargs="?", type=Path, help="a run folder (or its results.json) to re-render; a run "
                   "whose harness was killed mid-scenario is first re-judged from its checkpoint.jsonl")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("BASE", "HEAD"), help="two run folders")
    p.add_argument("--noise", type=float, default=None, metavar="FRACTION",
                   help="smallest relative change --compare may call, a spread you measured (default: the "
                   "run-to-run model the A/A proof measured on this project's machine, 25%% plus 1 ms on "
                   "latency means and 10 ms on tails; see harness/stats/noise.py)")
    p.add_argument("--history", action="store_true", help="(re)write reports/index.html")
    p.add_argument("--out", type=Path, default=Path("reports"), help="reports folder (default ./reports)")

    p = _verb(sub, "demo", "see the bot trade: anvil, 100 pairs, the bot, signals for a while, then its summary",
              "harness demo --seconds 30 --rate 100   # 30 s of 100 signals/s, then the bot's own summary")
    p.add_argument("--seconds", type=float, default=30.0, help="how long to send trade signals (default 30)")
    p.add_argument("--rate", type=float, default=100.0, help="trade signals per second (default 100)")
    p.add_argument("--pairs", type=int, default=100, help="trading pairs to deploy and trade (default 100, max 500)")
    p.add_argument("--block-time", type=float, default=None, help="anvil block time in s (default 0.05; 0 = automine)")
    p.add_argument("--out", type=Path, default=Path("reports"),
                   help="parent of the demo's folder demo-<id>/: bot.log, bot.toml, deployment.json (default reports)")
    p.add_argument("--no-progress", action="store_true", help="plain log lines instead of a live progress bar")

    p = _verb(sub, "node", "start anvil with the contracts deployed and keep it up (for development)",
              "harness node --pairs 10   # prints the node's URLs and deployment.json; Ctrl-C stops it")
    p.add_argument("--pairs", type=int, default=10, help="trading pairs to deploy (default 10)")
    p.add_argument("--block-time", type=float, default=None,
                   help="anvil interval mining period in s (default and 0: automine, a block per transaction)")
    p.add_argument("--out", type=Path, default=Path("reports/node"),
                   help="where deployment.json and anvil's log go (default ./reports/node)")

    p = _verb(sub, "monitor", "start Prometheus with the shipped alert rules against a running bot; print its UI's URL",
              "harness monitor --bot http://127.0.0.1:8600   # open the printed URL; Ctrl-C stops Prometheus")
    p.add_argument("--bot", required=True, metavar="URL",
                   help="the running bot's control API, http://127.0.0.1:<its [api] port> (loopback unless "
                   "--allow-remote)")
    p.add_argument("--port", type=int, default=None, help="Prometheus's port on 127.0.0.1 (default: a free one)")
    p.add_argument("--scrape-interval", type=float, default=5.0, metavar="S",
                   help="seconds between scrapes and between rule evaluations (default 5)")
    p.add_argument("--extra-rules", type=Path, default=None, metavar="DIR",
                   help="also load every *.yml rule file in DIR (the shipped bot/telemetry/alerts.yml always loads)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback --bot (a bot on another machine that you run)")

    for name, help_, example in (
        ("bench", "micro benchmarks (pytest-benchmark) and asv history", "harness bench"),
        ("gate", "PR performance gate: interleaved A/B of two revisions, exits 1 on a real regression",
         "harness gate --base HEAD~1"),
    ):
        p = _verb(sub, name, help_, example)
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _generator_defaults(args: argparse.Namespace) -> None:
    """``load`` without --locust: --url is required, and the Locust options do not apply."""
    if not args.url:
        raise ConfigError("harness load: --url is required (the JSON-RPC endpoint to load); or pass --locust to "
                          "load the bot's control API with Locust")
    given = [f for f, v in (("--workers", args.workers), ("--remote-workers", args.remote_workers),
                            ("--master-bind", args.master_bind), ("--api-mix", args.api_mix)) if v]
    if given:
        raise ConfigError(f"{', '.join(given)}: Locust options; add --locust")
    args.rate = 100.0 if args.rate is None else args.rate
    args.duration = 10.0 if args.duration is None else args.duration


def _dispatch(args: argparse.Namespace) -> int:
    verb: str = args.verb
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {}
    if verb in {"run", "soak", "profile", "node"}:
        from harness.run import commands

        handlers = {"run": commands.cmd_run, "soak": commands.cmd_soak, "profile": commands.cmd_profile,
                    "node": commands.cmd_node}
    elif verb == "demo":
        from harness.run.democmd import cmd_demo

        handlers = {"demo": cmd_demo}
    elif verb == "load" and args.locust:
        from harness.run.locustcmd import cmd_load_locust

        handlers = {"load": cmd_load_locust}
    elif verb == "load":
        from harness.run.loadcmd import cmd_load

        _generator_defaults(args)
        handlers = {"load": cmd_load}
    elif verb == "locust-worker":
        from harness.run.locustcmd import cmd_locust_worker

        handlers = {"locust-worker": cmd_locust_worker}
    elif verb == "monitor":
        from harness.monitor.command import cmd_monitor

        handlers = {"monitor": cmd_monitor}
    elif verb == "report":
        from harness.run.reportcmd import cmd_report

        handlers = {"report": cmd_report}
    elif verb == "bench":
        from harness.bench import main as bench_main

        return int(bench_main(list(args.rest)))
    elif verb == "gate":
        from harness.gate.cli import main as gate_main

        return int(gate_main(list(args.rest)))
    return handlers[verb](args)


def main(argv: Sequence[str] | None = None) -> int:
    # --node-url may carry a provider key: a crash report goes out redacted like every other line.
    sys.excepthook = excepthook
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        # bench and gate own their arguments (and their --help): hand them over unparsed.
        if argv and argv[0] == "bench":
            from harness.bench import main as bench_main

            return int(bench_main(argv[1:]))
        if argv and argv[0] == "gate":
            from harness.gate.cli import main as gate_main

            return int(gate_main(argv[1:]))
        return _dispatch(build_parser().parse_args(argv))
    except HarnessError as exc:
        print(f"harness: error: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
