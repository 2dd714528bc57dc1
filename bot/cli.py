"""The ``bot`` command: ``bot run --config bot.toml [--seconds N] [--shards N]``.

Exit codes: 0 clean stop, 2 bad config (the message names the field and the fix), 3 fatal runtime
failure (the node unreachable or answering garbage at start, the API port taken, a background task
over its restart budget), 1 anything else (a bug: the traceback is on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bot", description="The reference asyncio trading bot (system under test).",
                                epilog="docs: docs/bot.md (every bot.toml field, the control API, exit codes)\n"
                                       "exit codes: 0 clean stop, 2 bad config or usage, 3 fatal (node unreachable "
                                       "at start, API port taken, a background task past its restart budget), "
                                       "1 any other failure",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    r = sub.add_parser("run", help="trade against the configured endpoint(s) until stopped",
                       description="Trade against the configured endpoint(s) until SIGTERM/Ctrl-C or --seconds.",
                       epilog="example:\n  bot run --config bot.toml --seconds 60",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--config", type=Path, required=True, help="bot.toml (see docs/bot.md for every field)")
    r.add_argument("--seconds", type=float, help="stop after this many seconds (default: run until SIGTERM/Ctrl-C); "
                   "the summary is printed whenever it stops cleanly")
    r.add_argument("--shards", type=int, metavar="N",
                   help="run N bot processes behind one control API, each trading its share of the pairs with "
                        "accounts of its own (overrides engine.processes; 1-16)")
    r.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="log lines to stderr at this level and above (default INFO)")
    c = sub.add_parser("check-config", help="validate a bot.toml and print the effective settings",
                       description="Validate a bot.toml and print it back with every default filled in.\n"
                                   "A bad value names its dotted field and the fix, and exits 2.",
                       epilog="example:\n  bot check-config --config bot.toml",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--config", type=Path, required=True, help="bot.toml (see docs/bot.md for every field)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from bot.config import ConfigError
    from bot.config import load as load_config
    from bot.redact import excepthook, redact_logging, redact_text

    # Endpoint URLs may carry provider keys: whatever this process writes goes through bot.redact.
    sys.excepthook = excepthook
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
        if getattr(args, "shards", None) is not None:
            from bot.shard.plan import with_processes

            config = with_processes(config, args.shards)
    except ConfigError as exc:
        print(f"bot: config error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    if args.verb == "check-config":
        print(redact_text(config.to_toml()), end="")
        return 0
    shard = "" if config.shard is None else f"shard {config.shard.index}/{config.shard.count} "
    logging.basicConfig(level=args.log_level, format=f"%(asctime)s %(levelname)s {shard}%(name)s: %(message)s")
    redact_logging()
    runner = asyncio.run
    if config.loop == "uvloop":
        import uvloop

        runner = uvloop.run
    if config.engine.processes > 1:
        from bot.shard.parent import run_sharded

        main_task = run_sharded(config, seconds=args.seconds, log_level=args.log_level)
    else:
        from bot.app import run_bot

        main_task = run_bot(config, seconds=args.seconds)
    try:
        return int(runner(main_task))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
