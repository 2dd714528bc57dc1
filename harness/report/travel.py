"""The run page's "figures that travel": the bot's CPU per trade, the stress breaking point and the
market-data capacity, each set beside this machine's calibration so two machines of different
speed can be compared.

CPU per trade (µs) moves with the machine's speed; in CPU-reference iterations it largely does
not. The breaking point (trades/s) moves with the node too; as a share of the node ceiling
measured in the same run it is the figure the performance goals are stated in. The market-data
capacity involves no node: it is quoted beside the CPU reference, with the bot's CPU at its top step.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.probes.calibration import Calibration
from harness.report.format import sig
from harness.results import Run
from harness.results.capacity import MarketCapacity
from harness.results.model import CpuPerTrade

__all__ = ["TravelRow", "capacity_row", "cpu_text", "travel_rows"]


@dataclass(frozen=True)
class TravelRow:
    figure: str
    scenario: str
    value: str
    ci: str
    context: str


def _ci(fig: CpuPerTrade) -> str:
    if fig.ci_us is None:
        return "no CI"
    return f"[{sig(fig.ci_us[0])}, {sig(fig.ci_us[1])}] µs"


def cpu_text(fig: CpuPerTrade, cal: Calibration | None) -> str:
    """The context of a CPU-per-trade figure: the rate it was measured at, and the machine-free unit."""
    parts = [f"at {sig(fig.trades_per_s)} trades/s, {sig(fig.cpu_percent)}% of one core, {fig.trades:,} trades"]
    if cal is not None:
        parts.append(f"= {sig(fig.reference_iterations(cal.cpu_ref_per_s))} CPU-reference iterations per trade")
    return "; ".join(parts)


def capacity_row(scenario: str, cap: MarketCapacity, cal: Calibration | None) -> TravelRow:
    """The highest market-data rate handled with none dropped, with how far the search got."""
    if cap.generator_bound_at is not None:
        best = cap.best_handled
        value = f"≥ {sig(best)} msg/s" if best is not None else "n/a"
        bracket = f"generator-bound at {sig(cap.generator_bound_at)}/s"
    elif cap.last_good is not None:
        value = f"{sig(cap.last_good)} msg/s"
        bracket = (f"broke at {sig(cap.breaking_point)}/s ({cap.broken_by})" if cap.breaking_point is not None
                   else "nothing broke")
    else:
        value = "n/a"
        bracket = (f"broke at {sig(cap.breaking_point)}/s ({cap.broken_by})" if cap.breaking_point is not None
                   else "no step decided")
    parts = []
    top = cap.top_step
    if top is not None and top.bot_cpu_percent is not None:
        parts.append(f"bot CPU {top.bot_cpu_percent:.0f}% of one core at {sig(top.rate)}/s offered")
    parts.append("machine not calibrated" if cal is None else f"CPU reference {sig(cal.cpu_ref_per_s / 1e6)}M it/s")
    return TravelRow("Market data handled, none dropped", scenario, value, bracket, "; ".join(parts))


def travel_rows(run: Run) -> list[TravelRow]:
    cal = run.calibration
    rows: list[TravelRow] = []
    for scn in run.scenarios:
        fig = scn.cpu_per_trade
        if fig is not None:
            rows.append(TravelRow("Bot CPU per trade", scn.id, f"{sig(fig.value_us)} µs", _ci(fig), cpu_text(fig, cal)))
        for rate, step in scn.step_cpu_per_trade:
            rows.append(TravelRow(f"Bot CPU per trade, step {sig(rate)}/s", scn.id, f"{sig(step.value_us)} µs",
                                  _ci(step), cpu_text(step, cal)))
        held, broke = scn.last_good, scn.breaking_point
        if held is not None:
            bracket = f"broke at {sig(broke)}/s" if broke is not None else "nothing broke"
            ctx = ("machine not calibrated" if cal is None else
                   f"= {sig(held / cal.node_accept_per_s * 100, 2)}% of this node's ceiling "
                   f"({sig(cal.node_accept_per_s)} tx/s)")
            rows.append(TravelRow("Highest stress rate held", scn.id, f"{sig(held)} trades/s", bracket, ctx))
        cap = scn.capacity
        if cap is not None:
            rows.append(capacity_row(scn.id, cap, cal))
    return rows
