"""The end-to-end tier's proof on this machine: A/A false alarms, and planted slowdowns of the whole bot.

Every run is a real ``harness gate --e2e-only`` with both sides the working tree (``--base . --head .``):
one anvil, one feed, the two bots in ABBA turns. The head's bot carries the plant, through its config:

- ``cpu``: ``debug.burn_us_per_trade = N`` with N a fraction (+10%, +5%) of the CPU per trade the
  A/A runs measured on this machine just before (a first calibration run when no A/A run came yet);
- ``price``: ``debug.delay_price_fetch_ms = 1``, a millisecond added inside every price read.

A/A counts a false alarm when the tier flags any metric; a CPU plant is detected when
``bot_cpu_per_trade`` is flagged, the price plant when ``price_fetch mean`` is.

    python -m harness.gate.proof --e2e                       # 20 A/A, 20 x +10%, 5 x +5%, 5 x +1 ms
    python -m harness.gate.proof --e2e --runs 2 --sweep-runs 1 --quartets 3   # a smoke test

Writes ``e2e-proof.json`` and ``e2e-proof.md`` under ``reports/gate-proof/`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median

from harness.gate.e2emetrics import CPU_METRIC
from harness.gate.e2estats import E2EDecision
from harness.gate.gate import WORKING_TREE, GateOptions, run_gate
from harness.gate.report import describe_conditions

PRICE_METRIC = "price_fetch.mean"


@dataclass(frozen=True)
class E2EProofRun:
    kind: str  # aa | cpu | price
    planted: float  # cpu: the fraction of CPU per trade; price: milliseconds
    burn_us: int
    seed: int
    flagged: tuple[str, ...]  # metrics the tier called a regression
    detected: bool  # aa: any flag (a false alarm); cpu/price: the planted metric flagged
    cpu_ratio: float | None
    cpu_raw_ratio: float | None  # before the machine-speed correction
    cpu_threshold: float | None
    cpu_mde: float | None
    price_ratio: float | None
    price_mde: float | None
    base_cpu_us: float | None  # the base bot's CPU per trade in this run
    pairs: int
    seconds: float
    conditions: dict[str, object]


def _decision(decisions: Sequence[E2EDecision], metric: str) -> E2EDecision | None:
    return next((d for d in decisions if d.metric == metric), None)


def one_run(kind: str, planted: float, burn_us: int, seed: int, *, quartets: int, window_s: float,
            out: Path, budget_s: float | None = None) -> E2EProofRun:
    t0 = time.monotonic()
    bot_head: tuple[str, ...] = ()
    if kind == "cpu":
        bot_head = (f"debug.burn_us_per_trade={burn_us}",)
    elif kind == "price":
        bot_head = (f"debug.delay_price_fetch_ms={planted:g}",)
    outcome = run_gate(GateOptions(base=WORKING_TREE, head=WORKING_TREE, micro=False, e2e=True, quartets=quartets,
                                   window_s=window_s, bot_head=bot_head, seed=seed, out_dir=out, quiet=True,
                                   budget_s=budget_s))
    assert outcome.e2e is not None
    decisions = outcome.e2e.decisions
    flagged = tuple(d.metric for d in decisions if d.failing)
    cpu, price = _decision(decisions, CPU_METRIC), _decision(decisions, PRICE_METRIC)
    target = {"aa": None, "cpu": CPU_METRIC, "price": PRICE_METRIC}[kind]
    base_cpu = [w.cpu_per_trade_us for w in outcome.e2e.windows if w.side == "base" and w.cpu_per_trade_us]
    return E2EProofRun(
        kind=kind, planted=planted, burn_us=burn_us, seed=seed, flagged=flagged,
        detected=bool(flagged) if target is None else target in flagged,
        cpu_ratio=None if cpu is None or cpu.comparison is None else cpu.comparison.ratio,
        cpu_raw_ratio=None if cpu is None or cpu.comparison is None else cpu.comparison.raw_ratio,
        cpu_threshold=None if cpu is None else cpu.threshold, cpu_mde=None if cpu is None else cpu.mde,
        price_ratio=None if price is None or price.comparison is None else price.comparison.ratio,
        price_mde=None if price is None else price.mde,
        base_cpu_us=median(base_cpu) if base_cpu else None,
        pairs=len(outcome.e2e.windows) // 2, seconds=round(time.monotonic() - t0, 1),
        conditions=outcome.conditions,
    )  # fmt: skip


def _label(r: E2EProofRun) -> str:
    return {"aa": "A/A", "cpu": f"CPU per trade +{r.planted:.0%}", "price": f"price_fetch +{r.planted:g} ms"}[r.kind]


def _pct(values: Sequence[float | None]) -> str:
    xs = sorted(v for v in values if v is not None)
    return f"{(xs[len(xs) // 2] - 1) * 100:+.1f}%" if xs else "-"


def _frac(values: Sequence[float | None]) -> str:
    xs = sorted(v for v in values if v is not None)
    return f"{xs[len(xs) // 2] * 100:.1f}%" if xs else "-"


def summarize(runs: Sequence[E2EProofRun]) -> str:
    lines = ["| runs | what | flagged / detected | median CPU/trade change | median CPU threshold | median CPU MDE | "
             "median price_fetch change | median price_fetch MDE | median s per run |",
             "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[str, list[E2EProofRun]] = {}
    for r in runs:
        groups.setdefault(_label(r), []).append(r)
    for label, group in groups.items():
        hits = sum(r.detected for r in group)
        word = "false alarms" if group[0].kind == "aa" else "detected"
        lines.append(
            f"| {len(group)} | {label} | {hits}/{len(group)} {word} | {_pct([r.cpu_ratio for r in group])} | "
            f"{_frac([r.cpu_threshold for r in group])} | {_frac([r.cpu_mde for r in group])} | "
            f"{_pct([r.price_ratio for r in group])} | {_frac([r.price_mde for r in group])} | "
            f"{median(r.seconds for r in group):.0f} |"
        )
    return "\n".join(lines) + "\n"


def _machine(runs: Sequence[E2EProofRun]) -> str:
    """The machine over the proof: the first run's description, and the range of speed and load seen."""
    if not runs:
        return ""
    refs = [float(str(r.conditions.get("cpu_ref_per_s", 0))) for r in runs]
    loads = [float(str(r.conditions.get("loadavg_start", 0))) for r in runs]
    return (describe_conditions(runs[0].conditions) + f" Over the proof: CPU reference {min(refs) / 1e6:.2f}-"
            f"{max(refs) / 1e6:.2f}M it/s, load average {min(loads):.1f}-{max(loads):.1f} at the runs' starts.")


def make_plan(runs: int, sweep_runs: int, fraction: float, sweep: Sequence[float], price_ms: float
              ) -> list[tuple[str, float, int]]:
    """(kind, planted, seed) for every run, interleaved so that a busy hour hits every kind alike."""
    plan = [("aa", 0.0, i) for i in range(runs)] + [("cpu", fraction, i) for i in range(runs)]
    plan += [("cpu", f, i) for f in sweep for i in range(sweep_runs)]
    plan += [("price", price_ms, i) for i in range(sweep_runs)]
    plan.sort(key=lambda p: (p[2], p[0] != "aa", p[0], p[1]))
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.gate.proof --e2e", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--e2e", action="store_true", help="(selects this proof)")
    parser.add_argument("--runs", type=int, default=20, help="A/A runs and +10%% runs each (default 20)")
    parser.add_argument("--sweep-runs", type=int, default=5, help="runs of each smaller plant (default 5)")
    parser.add_argument("--fraction", type=float, default=0.10, help="the main CPU plant (default 0.10)")
    parser.add_argument("--fractions", type=float, nargs="*", default=[0.05], help="smaller CPU plants")
    parser.add_argument("--price-ms", type=float, default=1.0, help="the price_fetch plant (default 1 ms)")
    parser.add_argument("--quartets", type=int, default=8, help="quartets per gate run (default 8)")
    parser.add_argument("--window", type=float, default=6.0, help="measured seconds per window (default 6)")
    parser.add_argument("--out", type=Path, default=Path("reports/gate-proof"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    plan = make_plan(args.runs, args.sweep_runs, args.fraction, args.fractions, args.price_ms)
    runs: list[E2EProofRun] = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gate-proof-e2e-") as tmp:
        for n, (kind, planted, seed) in enumerate(plan):
            base_cpu = [r.base_cpu_us for r in runs if r.base_cpu_us is not None]
            if kind == "cpu" and not base_cpu:  # nothing measured yet: one A/A run calibrates the plant
                runs.append(one_run("aa", 0.0, 0, 10_000, quartets=args.quartets, window_s=args.window,
                                    out=Path(tmp) / "calibration"))
                base_cpu = [r.base_cpu_us for r in runs if r.base_cpu_us is not None]
            burn = round(planted * median(base_cpu)) if kind == "cpu" and base_cpu else 0
            run = one_run(kind, planted, burn, 1000 + seed, quartets=args.quartets, window_s=args.window,
                          out=Path(tmp) / f"run{n}")
            runs.append(run)
            print(f"[{n + 1}/{len(plan)}] {_label(run)} (burn {burn} µs): flagged {list(run.flagged)} "
                  f"CPU {(run.cpu_ratio or 1) - 1:+.1%} ({run.seconds:.0f} s)", flush=True)
            (args.out / "e2e-proof.json").write_text(json.dumps([asdict(r) for r in runs], indent=1))
    md = summarize(runs)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    header = (f"# End-to-end gate proof\n\n{len(runs)} gate runs, {args.quartets} quartets of ~{args.window:g} s "
              f"windows each, both sides the working tree; {when}; {time.monotonic() - t0:.0f} s in all.\n\n"
              f"{_machine(runs)}\n\n")
    (args.out / "e2e-proof.md").write_text(header + md)
    print(md)
    return 0
