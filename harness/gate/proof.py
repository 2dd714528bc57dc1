"""The gate's proof on this machine: false-alarm rate on A/A, miss rate on a planted slowdown.

Every run is a real ``harness gate`` (two worktrees of the same commit, interleaved workers, the
callgrind tier on one small case). A/A runs plant nothing; planted runs add exactly ``fraction``
more calls of one hot path on the head side (``harness/gate/plant.py``). A sweep over smaller
fractions finds the smallest slowdown each tier detects in every run.

    python -m harness.gate.proof                   # 20 A/A + 20 planted (+10%) + sweep; ~30 min
    python -m harness.gate.proof --runs 2 --sweep-runs 1 --fractions 0.05   # smoke test
    python -m harness.gate.proof --e2e             # the end-to-end tier's proof (harness.gate.proof_e2e)

Writes ``proof.json`` and ``proof.md`` under ``reports/gate-proof/`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.gate.gate import GateOptions, run_gate

DEFAULT_CASES = ("hdrh.record", "mailbox.put_get", "codec.encode_request")
PLANTED = "mailbox.put_get"


@dataclass(frozen=True)
class ProofRun:
    kind: str  # aa | planted
    fraction: float
    seed: int
    failing: tuple[str, ...]  # every case the gate failed
    wall_flagged: bool  # the planted case (or, for A/A, any case) failed on the wall-clock tier
    callgrind_flagged: bool
    wall_ratio: float | None
    wall_threshold: float | None
    callgrind_ratio: float | None
    callgrind_threshold: float | None
    seconds: float


def one_run(kind: str, fraction: float, seed: int, *, cases: Sequence[str], planted: str, out: Path) -> ProofRun:
    t0 = time.monotonic()
    outcome = run_gate(
        GateOptions(
            base="HEAD", head="HEAD", cases=tuple(cases), callgrind="on", callgrind_cases=(planted,),
            plant_head=f"{planted}:{fraction}" if kind == "planted" else None,
            out_dir=out, seed=seed, quiet=True,
        )
    )  # fmt: skip
    by_case = {d.case: d for d in outcome.decisions}
    target = by_case[planted]
    if kind == "aa":
        wall_flagged = any("wall" in d.tiers for d in outcome.decisions)
        cg_flagged = any("callgrind" in d.tiers for d in outcome.decisions)
    else:
        wall_flagged, cg_flagged = "wall" in target.tiers, "callgrind" in target.tiers
    return ProofRun(
        kind=kind,
        fraction=fraction if kind == "planted" else 0.0,
        seed=seed,
        failing=tuple(d.case for d in outcome.decisions if d.failing),
        wall_flagged=wall_flagged,
        callgrind_flagged=cg_flagged,
        wall_ratio=target.wall.ratio if target.wall else None,
        wall_threshold=target.wall_threshold,
        callgrind_ratio=target.callgrind.ratio if target.callgrind else None,
        callgrind_threshold=target.callgrind.threshold if target.callgrind else None,
        seconds=round(time.monotonic() - t0, 1),
    )


def summarize(runs: Sequence[ProofRun], main_fraction: float) -> str:
    aa = [r for r in runs if r.kind == "aa"]
    lines = [
        "| tier | A/A false alarms | " + f"+{main_fraction:.0%} planted: detected | smallest planted slowdown "
        "detected in every run |",
        "|---|---|---|---|",
    ]
    fractions = sorted({r.fraction for r in runs if r.kind == "planted"})
    for tier, attr in (("wall-clock", "wall_flagged"), ("instruction count", "callgrind_flagged")):
        alarms = sum(getattr(r, attr) for r in aa)
        main = [r for r in runs if r.kind == "planted" and r.fraction == main_fraction]
        hits = sum(getattr(r, attr) for r in main)
        reliable = [
            f for f in fractions if all(getattr(r, attr) for r in runs if r.kind == "planted" and r.fraction == f)
        ]
        smallest = f"+{min(reliable):.1%}" if reliable else "none tried"
        lines.append(f"| {tier} | {alarms}/{len(aa)} | {hits}/{len(main)} | {smallest} |")
    lines += ["", "| planted | runs | wall detected | median wall change | median wall threshold | "
              "instr. detected | instr. change |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for f in [0.0, *fractions]:
        group = [r for r in runs if (r.kind == "aa" if f == 0.0 else r.kind == "planted" and r.fraction == f)]
        if not group:
            continue

        def med(values: list[float]) -> str:
            values = sorted(values)
            return f"{(values[len(values) // 2] - 1) * 100:+.2f}%" if values else "-"

        wall_r = [r.wall_ratio for r in group if r.wall_ratio is not None]
        thr = sorted(r.wall_threshold for r in group if r.wall_threshold is not None)
        cg_r = [r.callgrind_ratio for r in group if r.callgrind_ratio is not None]
        lines.append(
            f"| {'A/A' if f == 0.0 else f'+{f:.0%}'} | {len(group)} | {sum(r.wall_flagged for r in group)} | "
            f"{med(wall_r)} | {thr[len(thr) // 2] * 100:.1f}% | {sum(r.callgrind_flagged for r in group)} | "
            f"{med(cg_r)} |"
        )
    return "\n".join(lines) + "\n"


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwind, so the gate removes its worktrees and workers


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    args_in = list(sys.argv[1:] if argv is None else argv)
    if "--e2e" in args_in:  # the end-to-end tier's proof (harness.gate.proof_e2e)
        from harness.gate.proof_e2e import main as e2e_main

        return e2e_main(args_in)
    parser = argparse.ArgumentParser(prog="python -m harness.gate.proof", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--runs", type=int, default=20, help="A/A runs and planted runs each (default 20)")
    parser.add_argument("--fraction", type=float, default=0.10, help="the planted slowdown (default 0.10)")
    parser.add_argument("--fractions", type=float, nargs="*", default=[0.01, 0.02, 0.05], help="sweep")
    parser.add_argument("--sweep-runs", type=int, default=2, help="runs per sweep fraction (default 2)")
    parser.add_argument("--case", action="append", default=None, help="cases compared (default: 3 small ones)")
    parser.add_argument("--planted", default=PLANTED, help=f"the case slowed down (default {PLANTED})")
    parser.add_argument("--out", type=Path, default=Path("reports/gate-proof"))
    args = parser.parse_args(args_in)
    cases = tuple(args.case or DEFAULT_CASES)
    args.out.mkdir(parents=True, exist_ok=True)
    plan = [("aa", 0.0, i) for i in range(args.runs)] + [("planted", args.fraction, i) for i in range(args.runs)]
    plan += [("planted", f, i) for f in args.fractions for i in range(args.sweep_runs)]
    # Interleave A/A and planted runs so that a quiet or busy hour on the machine hits both.
    plan.sort(key=lambda p: (p[2], p[0], p[1]))
    runs: list[ProofRun] = []
    with tempfile.TemporaryDirectory(prefix="gate-proof-") as tmp:
        for n, (kind, fraction, seed) in enumerate(plan):
            run = one_run(kind, fraction, 1000 + seed, cases=cases, planted=args.planted, out=Path(tmp) / f"run{n}")
            runs.append(run)
            verdicts = f"wall={run.wall_flagged} callgrind={run.callgrind_flagged} failing={list(run.failing)}"
            print(f"[{n + 1}/{len(plan)}] {kind} {fraction:.2f}: {verdicts} ({run.seconds}s)", flush=True)
            (args.out / "proof.json").write_text(json.dumps([asdict(r) for r in runs], indent=1))
    md = summarize(runs, args.fraction)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    header = (
        f"# Gate proof\n\ncases: {', '.join(cases)}; planted in `{args.planted}`; gate defaults "
        f"(12 processes x 16 rounds per revision, alpha 0.01 Holm); {when}\n\n"
    )
    (args.out / "proof.md").write_text(header + md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
