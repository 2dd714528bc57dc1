"""Entry point of ``harness gate`` (``harness.cli`` forwards the verb's arguments here)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from harness.gate.gate import EPILOG, HELP, gate_main
from harness.gate.gateargs import add_gate_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness gate", description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_gate_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return gate_main(build_parser().parse_args(argv))


if __name__ == "__main__":
    # Through the harness's entry point: a bad option prints one line naming it (and exits 2), not a
    # traceback; CI's perf.yml calls this module directly.
    import sys

    from harness.cli import main as harness_main

    raise SystemExit(harness_main(["gate", *sys.argv[1:]]))
