"""The end-to-end tier's section of the gate's report: rich table, markdown, JSON."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from statistics import median
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.gate.e2e import E2EResult
from harness.gate.e2emetrics import CPU_METRIC, NODE_CPU_METRIC
from harness.gate.e2estats import E2EDecision, describe_metric

_STYLE = {"regression": "bold red", "acknowledged": "yellow", "improvement": "green", "not judged": "dim"}


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def _base(d: E2EDecision) -> str:
    c = d.comparison
    if c is None:
        return "-"
    return f"{c.base_value:,.0f} µs" if d.metric in (CPU_METRIC, NODE_CPU_METRIC) else f"{c.base_value / 1000:.2f} ms"


def _cells(d: E2EDecision) -> list[str]:
    """benchmark, base, change, 95% CI, noise thr, Holm p, MDE, pairs."""
    c = d.comparison
    if c is None:
        return [describe_metric(d.metric), "-", "-", "-", "-", "-", "-", "0"]
    lo, hi = c.ci95
    return [
        describe_metric(d.metric), _base(d), _pct(c.ratio), f"[{_pct(lo)}, {_pct(hi)}]",
        "-" if d.threshold is None else f"{d.threshold * 100:.1f}%",
        "-" if d.p_adjusted is None else f"{d.p_adjusted:.2g}",
        _mde(d.mde), str(c.n_pairs),
    ]  # fmt: skip


def _mde(value: float | None) -> str:
    if value is None:
        return "-"
    # Past +1000% the figure says only "this run could not resolve it"; digits would pretend otherwise.
    return ">1000%" if value > 10 else f"{value * 100:.0f}%"


def conditions(r: E2EResult) -> str:
    s = r.settings
    ages = [w.blocks_at_start for w in r.windows if w.blocks_at_start is not None]
    per_side = {side: median(a.blocks_at_start for a in r.windows if a.side == side and a.blocks_at_start is not None)
                for side in ("base", "head") if any(w.side == side and w.blocks_at_start is not None
                                                    for w in r.windows)}
    age = (f"chain age at a window's start: median {median(ages):.0f} blocks (base {per_side.get('base', 0):.0f}, "
           f"head {per_side.get('head', 0):.0f})" if ages else "")
    return (f"{len(r.windows)} windows ({s['quartets_run']} ABBA quartets) of ~{s['window_s']:g} s at {s['rate']:g} "
            f"trades/s on {s['pairs']} pairs, {r.seconds:.0f} s in all ({r.window_wall_s:.1f} s per window with its "
            f"bot's start); {age}")


def print_section(r: E2EResult, console: Console) -> None:
    table = Table(title="end-to-end tier: the whole bot, both revisions in turn")
    for name in ("operation", "base", "change", "95% CI", "noise thr", "Holm p", "MDE", "pairs", "verdict"):
        table.add_column(name, no_wrap=name == "operation")
    for d in r.decisions:
        table.add_row(*_cells(d), Text(d.status, style=_STYLE.get(d.status, "")))
    console.print(table)
    console.print(f"[dim]{conditions(r)}[/]")
    for d in r.decisions:
        for note in d.notes:
            console.print(f"[dim]{describe_metric(d.metric)}: {note}[/]")
        if d.acknowledged is not None:
            console.print(f"[yellow]{d.benchmark}: acknowledged by {d.acknowledged.source}: {d.acknowledged.reason}[/]")
    for note in r.notes:
        console.print(f"[dim]note: {note}[/]")


def markdown(r: E2EResult) -> list[str]:
    lines = [
        "### End-to-end tier (the whole bot)",
        "",
        "| operation | base | change [95% CI] | noise threshold | Holm p | MDE | pairs | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in r.decisions:
        cells = _cells(d)
        verdict = f"**{d.status}**" if d.failing else d.status
        change = "-" if d.comparison is None else f"{cells[2]} {cells[3]}"
        lines.append(f"| {cells[0]} | {cells[1]} | {change} | {cells[4]} | {cells[5]} | {cells[6]} | {cells[7]} | "
                     f"{verdict} |")
    lines += ["", f"- {conditions(r)}"]
    for d in r.decisions:
        if d.acknowledged is not None:
            lines.append(f"- `{d.benchmark}` acknowledged ({d.acknowledged.source}): {d.acknowledged.reason}")
        lines.extend(f"- {describe_metric(d.metric)}: {note}" for note in d.notes)
    lines.extend(f"- note: {note}" for note in r.notes)
    lines += [
        "",
        "End-to-end: each revision's bot trades alone in its window (fresh process, chain reverted to the same "
        "snapshot, the same ticks per pair of windows); paired log ratios per window pair, weighted-Holm-corrected "
        "(CPU per trade weighs as much as all other metrics together, and is judged at the machine's mean speed: "
        "each window scaled by the node's and the harness's CPU for the same ticks); the "
        "noise floor is the A/A spread of the two same-revision windows in each quartet. MDE: the smallest "
        f"slowdown this run would have caught with probability {r.settings['power']:.0%}.",
        "",
    ]
    return lines


def to_json(r: E2EResult, failing: Sequence[str]) -> dict[str, Any]:
    return {
        "settings": r.settings, "origins": r.origins, "seconds": r.seconds, "window_wall_s": r.window_wall_s,
        "revert_failures": r.revert_failures, "notes": list(r.notes), "failing": list(failing),
        "decisions": [{**dataclasses.asdict(d), "benchmark": d.benchmark} for d in r.decisions],
        # Every window's figures: enough to re-analyse the run offline.
        "windows": [dataclasses.asdict(w) for w in r.windows],
    }  # fmt: skip
