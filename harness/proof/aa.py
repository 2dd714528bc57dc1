"""A/A proof of the whole run: the same build, run N times, should give the same verdicts.

    python -m harness.proof.aa --runs 5                                  # 5 quick runs
    python -m harness.proof.aa --runs 2 --out /tmp/aa -- --only sustained --minutes 0.2 --pairs 10

Each run is a real ``harness run --no-progress --out DIR/runs <args after -->`` in its own process
(one at a time: the machine has 2 cores, and concurrent runs would measure each other), bounded by
``--timeout``; its output goes to ``DIR/logs/run-K.log`` and one progress line per run to the
terminal. Exit codes 0/1/2 of ``harness run`` are outcomes; 3/4, a timeout, or no valid
``results.json`` is a harness error: recorded, reported, and the remaining runs still run.

Then, from the runs' results documents (:func:`build_tables`, pure): ``agreement.csv`` (one line per
verdict: each run's verdict, agreement, pass/fail flips, the value's mean/std/min/max/CV),
``history.csv`` (one line per run and verdict), ``comparisons.csv`` (``harness report --compare``'s
:func:`harness.report.compare.compare` on every pair of runs, consecutive pairs beyond 6 runs), and
``aa.json`` / ``aa.html`` (the summary).

The regression SLO row of run k is judged against the newest earlier complete run in ``DIR/runs``
of the same profile (``harness run``'s default baseline), i.e. run k-1 of this proof: so each of its
fails is a false alarm, listed under ``regression_row_failures``. Run 1 has no baseline when
``DIR/runs`` starts empty (the default ``--out`` is a new folder); pass ``-- --baseline RUN`` to
judge every run against one fixed run instead.

Exit code: 0 when no row flips between pass and fail, no pair shows a significant change and the
overall agreement is at least ``--min-agreement``; 1 otherwise; 3 when any run ended in a harness
error (or fewer than 2 produced results); 4 when interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from harness.proof._output import print_terminal, write_html, write_json, write_tables
from harness.proof._tables import (
    AATables,
    Pairing,
    agreement_table,
    build_tables,
    coefficient_of_variation,
    comparison_table,
    exit_code,
    history_table,
    is_flip,
    keyed_verdicts,
    modal_verdict,
    pairs_for,
    proof_outcome,
    summarize,
)
from harness.results import ResultsError, validate_results

__all__ = [
    "AATables",
    "RunOutcome",
    "agreement_table",
    "build_tables",
    "coefficient_of_variation",
    "comparison_table",
    "exit_code",
    "history_table",
    "is_flip",
    "keyed_verdicts",
    "main",
    "modal_verdict",
    "pairs_for",
    "proof_outcome",
    "run_proof",
    "summarize",
]

EXIT_INTERRUPTED = 4
NORMAL_CODES = (0, 1, 2)  # harness run: all pass / some fail / some inconclusive
DEFAULT_TIMEOUT_S = 1800.0  # a quick profile takes a few minutes; a hung run must not hold the machine
STOP_GRACE_S = 120.0  # after SIGTERM the harness judges and renders what it measured: let it finish
# Options the proof owns: it must know where each run's folder is, and the log wants plain lines.
RESERVED = ("--out", "--help", "-h")


@dataclass
class RunOutcome:
    """One ``harness run``: its exit code (None on timeout), folder, document and any harness error."""

    index: int
    exit_code: int | None
    duration_s: float
    log: Path
    run_dir: Path | None = None
    doc: dict[str, Any] | None = field(default=None, repr=False)
    error: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "inconclusive": 0}
        for v in (self.doc or {}).get("verdicts", []):
            if v.get("verdict") in out:
                out[v["verdict"]] += 1
        return out

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "run_id": (self.doc or {}).get("run_id"), "exit_code": self.exit_code,
                "duration_s": round(self.duration_s, 1), "dir": None if self.run_dir is None else str(self.run_dir),
                "status": (self.doc or {}).get("status"), "counts": self.counts, "error": self.error,
                "log": str(self.log)}


def fmt_duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}m{s:02d}s"


def progress_line(o: RunOutcome, total: int) -> str:
    head = f"run {o.index}/{total}: "
    took = f" in {fmt_duration(o.duration_s)}"
    if o.error is not None:
        return f"{head}HARNESS ERROR{took}: {o.error} (log {o.log})"
    c = o.counts
    return f"{head}{c['pass']} pass / {c['fail']} fail / {c['inconclusive']} inconclusive{took}"


def _run_dirs(runs_dir: Path) -> set[Path]:
    return {p for p in runs_dir.iterdir() if p.is_dir()} if runs_dir.is_dir() else set()


def _load(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "results.json"
    doc = orjson.loads(path.read_bytes())
    if not isinstance(doc, dict):
        raise ResultsError(str(path), ["at $: expected a JSON object"])
    validate_results(doc, str(path))
    return doc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the harness (it cancels the run, writes partial results and stops its children), then
    SIGKILL its process group: it was started in a session of its own, so that group is only it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers (anvil, bot) if the harness did not stop them
    except ProcessLookupError:
        pass
    proc.wait()


def run_once(index: int, command: Sequence[str], runs_dir: Path, log: Path, timeout_s: float) -> RunOutcome:
    """Run one ``harness run`` to completion or timeout; KeyboardInterrupt stops it and propagates."""
    before = _run_dirs(runs_dir)
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with log.open("wb") as fh:
        fh.write(f"$ {shlex.join(command)}\n".encode())
        fh.flush()
        # A session of its own: a terminal Ctrl-C reaches only the proof, which stops the run cleanly.
        proc = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "COLUMNS": "200"})
        code: int | None
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop(proc)
            code = None
        except KeyboardInterrupt:
            _stop(proc)
            raise
    out = RunOutcome(index, code, time.monotonic() - t0, log)
    new = sorted(p for p in _run_dirs(runs_dir) - before if (p / "results.json").exists())
    out.run_dir = new[-1] if new else None
    if code is None:
        out.error = f"timed out after {fmt_duration(timeout_s)} (stopped)"
    elif code not in NORMAL_CODES:
        out.error = f"harness run exited {code}" + (": " + _last_line(log) if _last_line(log) else "")
    elif out.run_dir is None:
        out.error = f"harness run exited {code} but wrote no results.json: " + _last_line(log)
    if out.error is None and out.run_dir is not None:
        try:
            doc = _load(out.run_dir)
        except (OSError, orjson.JSONDecodeError, ResultsError) as exc:
            out.error = f"unreadable results.json: {str(exc).splitlines()[0]}"
        else:
            if doc.get("status") != "complete":
                out.error = f"results.json status is {doc.get('status')!r}, not complete"
            else:
                out.doc = doc
    return out


def _last_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


@dataclass(frozen=True)
class ProofOptions:
    runs: int
    out: Path
    harness_args: tuple[str, ...] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S
    min_agreement: float = 0.95
    pairing: Pairing = "auto"
    # What starts `harness`: the proof's own interpreter (so the same venv and build) by default;
    # tests put a stand-in here.
    launcher: tuple[str, ...] = (sys.executable, "-m", "harness.cli")


def harness_command(opts: ProofOptions) -> list[str]:
    return [*opts.launcher, "run", "--no-progress", "--out", str(opts.out / "runs"), *opts.harness_args]


def run_proof(opts: ProofOptions, *, say: Callable[[str], None] = print) -> tuple[int, dict[str, Any]]:
    """Run the N runs, build and write the tables; returns (exit code, the aa.json summary)."""
    command = harness_command(opts)
    runs_dir = opts.out / "runs"
    earlier = len([p for p in _run_dirs(runs_dir) if (p / "results.json").exists()])
    say(f"A/A proof: {opts.runs} runs of: {shlex.join(command)}")
    if earlier:
        say(f"note: {runs_dir} already holds {earlier} run(s); run 1's regression row is judged against the newest")
    outcomes: list[RunOutcome] = []
    interrupted = False
    t0 = time.monotonic()
    for i in range(1, opts.runs + 1):
        try:
            o = run_once(i, command, runs_dir, opts.out / "logs" / f"run-{i}.log", opts.timeout_s)
        except KeyboardInterrupt:
            say(f"run {i}/{opts.runs}: interrupted; analysing the {len(outcomes)} finished run(s)")
            interrupted = True
            break
        outcomes.append(o)
        say(progress_line(o, opts.runs))
    docs = [o.doc for o in outcomes if o.doc is not None]
    errors = [o for o in outcomes if o.error is not None]
    tables = build_tables(docs, pairing=opts.pairing)
    summary: dict[str, Any] = {
        "kind": "tradebench A/A proof", "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join(command), "runs_requested": opts.runs, "out": str(opts.out),
        "elapsed_s": round(time.monotonic() - t0, 1), "interrupted": interrupted,
        "runs": [o.as_json() for o in outcomes],
        "harness_errors": [{"index": o.index, "exit_code": o.exit_code, "error": o.error, "log": str(o.log)}
                           for o in errors],
        **summarize(tables, min_agreement=opts.min_agreement, harness_errors=len(errors)),
    }
    if interrupted:
        summary["exit_code"] = EXIT_INTERRUPTED
        summary["reasons"] = ["interrupted", *summary["reasons"]]
    write_tables(tables, opts.out)
    write_json(summary, opts.out / "aa.json")
    runs_view = [{**o.as_json(), "duration": fmt_duration(o.duration_s)} for o in outcomes]
    write_html(tables, summary, runs_view, opts.out / "aa.html")
    print_terminal(tables, summary)
    say(f"written: {opts.out / 'aa.json'}, aa.html, agreement.csv, history.csv, comparisons.csv")
    return int(summary["exit_code"]), summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m harness.proof.aa",
        description="A/A proof: run `harness run` N times on the same build and check the verdicts agree. "
                    "Arguments after `--` go to every `harness run`.",
        epilog="exit codes: 0 A/A holds, 1 a pass/fail flip, a significant change or agreement under the "
               "minimum, 3 a harness error in some run, 4 interrupted\n"
               "example:\n  python -m harness.proof.aa --runs 3 --out /tmp/aa -- --only sustained --minutes 0.2",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="how many runs (default 5, at least 2)")
    p.add_argument("--out", type=Path, help="folder for the runs and the proof (default reports/aa-<time>)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                   help=f"seconds per run before it is stopped and counted as a harness error "
                        f"(default {DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--min-agreement", type=float, default=0.95,
                   help="lowest acceptable mean share of runs agreeing per verdict row (default 0.95)")
    p.add_argument("--pairing", choices=["auto", "all", "consecutive"], default="auto",
                   help="which pairs of runs to compare (auto: all pairs up to 6 runs, else consecutive)")
    return p


def parse_args(argv: Sequence[str]) -> ProofOptions:
    argv = list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    ours, theirs = argv[:split], argv[split + 1:]
    parser = build_parser()
    args = parser.parse_args(ours)
    if args.runs < 2:
        parser.error("--runs: an A/A proof needs at least 2 runs")
    if not 0.0 <= args.min_agreement <= 1.0:
        parser.error("--min-agreement: give a share between 0 and 1")
    if args.timeout <= 0:
        parser.error("--timeout: give a positive number of seconds")
    clash = [a for a in theirs if a.split("=", 1)[0] in RESERVED]
    if clash:
        parser.error(f"harness run arguments {clash}: the proof sets --out itself (use --out before `--`)")
    out = args.out or Path("reports") / f"aa-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    return ProofOptions(runs=args.runs, out=out, harness_args=tuple(theirs), timeout_s=args.timeout,
                        min_agreement=args.min_agreement, pairing=args.pairing)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        code, _ = run_proof(opts, say=lambda line: print(line, flush=True))
    except KeyboardInterrupt:  # a second Ctrl-C while the tables are being written
        print("aa: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())
