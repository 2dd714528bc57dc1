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
    raise SystemExit(main())
