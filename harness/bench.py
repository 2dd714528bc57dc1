"""`harness bench`: the hot-path micro benchmarks (pytest-benchmark) and their asv history.

- ``harness bench`` runs ``tests/bench`` with pytest-benchmark: calibrated iterations per round,
  warm-up, outlier classification, and a saved baseline in ``.benchmarks/`` (``--save NAME`` or an
  automatic one); ``--compare`` shows the change against the latest save, and ``--fail-above PCT``
  turns it into a check (``--benchmark-compare-fail=median:PCT%``). On a noisy shared machine a
  fixed percentage trips on unchanged code: ``harness gate`` is the noise-aware check.
- ``harness bench --asv`` also records the same cases in asv for the current commit (existing
  environment: the current venv), then ``asv publish`` writes HTML under ``reports/asv/``;
  ``--asv-range A..B`` builds each commit of a range in its own virtualenv instead.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError, HarnessError

REPO = Path(__file__).resolve().parents[1]
HELP = "hot-path micro benchmarks (pytest-benchmark, saved baselines) and asv history"
EPILOG = """examples:
  harness bench                                  # run, save a baseline in .benchmarks/
  harness bench --compare --fail-above 25        # compare with the last baseline, fail above +25% median
  harness bench -k codec                         # only the codec cases
  harness bench --asv                            # also record this commit in asv and publish reports/asv/
  harness bench --asv-range HEAD~5..HEAD         # asv over a commit range (virtualenv per commit)"""


@dataclass(frozen=True)
class BenchOptions:
    select: str | None = None  # pytest -k expression
    save: str | None = None  # baseline name; None = autosave
    compare: bool = False
    fail_above: float | None = None  # percent of the median
    min_rounds: int = 20
    max_time: float = 1.0
    asv: bool = False
    asv_range: str | None = None
    asv_quick: bool = False
    pytest: bool = True


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


def pytest_command(opts: BenchOptions, python: str = sys.executable) -> list[str]:
    if opts.fail_above is not None and opts.fail_above <= 0:
        raise ConfigError("--fail-above must be a positive percentage, e.g. 25")
    cmd = [
        python, "-m", "pytest", str(REPO / "tests" / "bench"),
        "-o", "addopts=-ra",  # the project's addopts ignore tests/bench; this run wants exactly that suite
        "-p", "no:cacheprovider",
        "--benchmark-warmup=on",
        f"--benchmark-min-rounds={opts.min_rounds}",
        f"--benchmark-max-time={opts.max_time}",
        "--benchmark-calibration-precision=10",
        f"--benchmark-storage=file://{REPO / '.benchmarks'}",
        "--benchmark-columns=min,median,iqr,outliers,ops,rounds,iterations",
        "--benchmark-sort=name",
    ]  # fmt: skip
    cmd.append(f"--benchmark-save={opts.save}" if opts.save else "--benchmark-autosave")
    if opts.compare or opts.fail_above is not None:
        cmd.append("--benchmark-compare")
    if opts.fail_above is not None:
        cmd.append(f"--benchmark-compare-fail=median:{opts.fail_above:g}%")
    if opts.select:
        cmd += ["-k", opts.select]
    return cmd


def asv_commands(opts: BenchOptions, python: str = sys.executable) -> list[list[str]]:
    asv = [python, "-m", "asv"]
    cmds = [[*asv, "machine", "--yes"]]
    bench = ["--bench", opts.select] if opts.select else []
    quick = ["--quick"] if opts.asv_quick else []
    if opts.asv_range:
        if ".." not in opts.asv_range:
            raise ConfigError(f"--asv-range {opts.asv_range!r} must be a git range such as HEAD~5..HEAD")
        cmds.append([*asv, "run", "--environment", "virtualenv", *quick, *bench, opts.asv_range])
    else:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if not head:
            raise HarnessError(f"{REPO} is not a git checkout: asv needs a commit to file results under")
        cmds.append(
            [*asv, "run", "--environment", f"existing:{python}", "--set-commit-hash", head, *quick, *bench]
        )
    cmds.append([*asv, "publish"])
    return cmds


def run_bench(opts: BenchOptions, python: str = sys.executable) -> int:
    """Run what ``opts`` asks; the exit code is pytest's (1 on a compare-fail), or asv's failure."""
    code = 0
    if opts.pytest:
        code = subprocess.run(pytest_command(opts, python), cwd=REPO, env=_env(), check=False).returncode
    if opts.asv or opts.asv_range:
        for cmd in asv_commands(opts, python):
            # `asv machine` records this machine's description once; later calls are harmless.
            rc = subprocess.run(cmd, cwd=REPO, env=_env(), check=False).returncode
            if rc != 0:
                raise HarnessError(f"{' '.join(cmd[2:])} failed with exit code {rc}")
        print(f"asv HTML: {REPO / 'reports' / 'asv' / 'index.html'}")
    return code


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", dest="select", default=None, help="only cases matching this pytest -k / asv regex")
    p.add_argument("--save", default=None, help="save the baseline under this name (default: autosave)")
    p.add_argument("--compare", action="store_true", help="compare with the latest saved baseline")
    p.add_argument("--fail-above", type=float, default=None, metavar="PCT",
                   help="with --compare: exit 1 if a median is more than PCT%% slower")
    p.add_argument("--min-rounds", type=int, default=20, help="rounds per benchmark at least (default 20)")
    p.add_argument("--max-time", type=float, default=1.0, help="seconds per benchmark at most (default 1)")
    p.add_argument("--asv", action="store_true", help="also record this commit in asv and publish HTML")
    p.add_argument("--asv-range", default=None, metavar="A..B", help="asv over a commit range (virtualenv)")
    p.add_argument("--asv-quick", action="store_true", help="asv: one sample per benchmark (smoke test)")
    p.add_argument("--no-pytest", action="store_true", help="skip the pytest-benchmark suite")  # fmt: skip


def add_bench_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bench", help=HELP, description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_bench_arguments(p)
    p.set_defaults(func=bench_main)
    return p


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    return BenchOptions(
        select=args.select,
        save=args.save,
        compare=args.compare,
        fail_above=args.fail_above,
        min_rounds=args.min_rounds,
        max_time=args.max_time,
        asv=args.asv,
        asv_range=args.asv_range,
        asv_quick=args.asv_quick,
        pytest=not args.no_pytest,
    )


def bench_main(args: argparse.Namespace) -> int:
    return run_bench(options_from_args(args))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="harness bench", description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_bench_arguments(parser)
    return bench_main(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
