"""CPU per trade recomputed from recorded runs, so runs made before the figure existed compare too.

    python -m harness.perf.cpu reports/<run-a> reports/<run-b> ...

For each run: its calibration, the bot's CPU per completed trade in every trading scenario (and in
each stress step's judged window), the latency of the operations a trade is made of, and the
stress bracket as a share of the node ceiling. Every figure is computed by the same code as the
run page's (``harness.run.figures``), from the intervals and resource samples the run recorded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hdrh.histogram import HdrHistogram

from harness.results import Run, Scenario, load_results
from harness.run.figures import cpu_per_trade

OPS = ("price_fetch", "balance_check", "tx_submission", "trade_execution")


def _latency(scn: Scenario, op: str) -> str:
    hs = [HdrHistogram.decode(iv.histograms[op]) for iv in scn.intervals if op in iv.histograms]
    if not hs:
        return f"{op} -"
    h = hs[0]
    for x in hs[1:]:
        h.add(x)
    return f"{op} p50 {h.get_value_at_percentile(50) / 1000:.2f} p95 {h.get_value_at_percentile(95) / 1000:.2f} ms"


def describe(run: Run) -> list[str]:
    cal = run.calibration
    lines = [f"{run.run_id}  " + ("uncalibrated" if cal is None else
             f"cpu ref {cal.cpu_ref_per_s / 1e6:.2f}M it/s ±{cal.cpu_ref_spread * 100:.0f}%, "
             f"node ceiling {cal.node_accept_per_s:,.0f} tx/s, signing {cal.sign_per_s:,.0f}/s")]
    for scn in run.scenarios:
        ivs = [iv.to_json() for iv in scn.intervals]
        res = [r.to_json() for r in scn.resources]
        if not scn.summary.get("steps"):  # a stress scenario is measured per step below
            fig = cpu_per_trade(ivs, res, 0.0, scn.duration_s)
            if fig is not None:
                lines.append(f"  {scn.id:<10} {fig['value_us']:>7,.0f} µs/trade {fig['ci_us']} at "
                             f"{fig['trades_per_s']:.0f}/s, {fig['cpu_percent']:.0f}% of a core")
        for st in scn.summary.get("steps") or []:
            fig = cpu_per_trade(ivs, res, float(st["start"]), float(st["end"]), warmup_s=0.0)
            if fig is not None:
                lines.append(f"  {scn.id} {st['rate']:>6g}/s {fig['value_us']:>7,.0f} µs/trade {fig['ci_us']} "
                             f"({'broke ' + str(st['broken']) if st.get('broken') else 'held'})")
        if scn.last_good is not None and cal is not None:
            lines.append(f"  {scn.id}: held {scn.last_good:g}/s, broke {scn.breaking_point}/s; held = "
                         f"{scn.last_good / cal.node_accept_per_s * 100:.1f}% of the node ceiling")
        if ivs and any("trade_execution" in iv.histograms for iv in scn.intervals):
            lines.append("    " + "; ".join(_latency(scn, op) for op in OPS))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.perf.cpu", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders or results.json files")
    args = ap.parse_args(argv)
    for p in args.runs:
        path = p / "results.json" if p.is_dir() else p
        print("\n".join(describe(load_results(path))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
