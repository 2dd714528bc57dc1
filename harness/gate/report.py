"""The gate's outputs: rich tables for the terminal, ``gate.json`` and ``summary.md`` for people and CI.

One section per tier that ran (the end-to-end tier's is ``harness.gate.e2ereport``), each with the
minimum detectable effect of every benchmark. ``summary.md`` is written so that CI can append it to
``$GITHUB_STEP_SUMMARY`` as it is.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.gate import e2ereport
from harness.gate.decision import Decision
from harness.gate.e2e import E2EResult

# 2: an "e2e" section (settings, decisions, every window's figures), "tiers", and each micro
# decision's wall_mde; the micro tier's keys are unchanged.
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class GateContext:
    base_ref: str
    base_sha: str
    head_ref: str
    head_sha: str
    settings: dict[str, Any]
    notes: tuple[str, ...]
    origins: dict[str, dict[str, str | None]]
    timings: dict[str, dict[str, list[list[float]]]] = dataclasses.field(default_factory=dict)
    e2e: E2EResult | None = None
    tiers: tuple[str, ...] = ("micro",)


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.2f}%"


def _cg_cell(d: Decision) -> str:
    if d.callgrind is None:
        return "-"
    return f"{_pct(d.callgrind.ratio)} (thr {d.callgrind.threshold * 100:.2f}%)"


_STYLE = {"regression": "bold red", "acknowledged": "yellow", "improvement": "green", "skipped": "dim"}


def describe_conditions(c: object) -> str:
    """One line on the machine: cores, its CPU reference speed now, and its load."""
    if not isinstance(c, dict) or "cpu_ref_per_s" not in c:
        return ""
    return (f"Machine: {c.get('cores')} cores, CPU reference {c['cpu_ref_per_s'] / 1e6:.2f}M it/s "
            f"(±{c.get('cpu_ref_spread', 0) * 100:.0f}%), load average {c.get('loadavg_start')} at the start, "
            f"{c.get('loadavg_end', '?')} at the end.")


def _mde(d: Decision) -> str:
    return "-" if d.wall_mde is None else f"{d.wall_mde * 100:.1f}%"


def print_report(decisions: Sequence[Decision], ctx: GateContext, console: Console | None = None) -> None:
    """Every tier's table, then the notes."""
    console = console or Console()
    if "micro" in ctx.tiers:
        print_table(decisions, ctx, console)
    else:
        for note in ctx.notes:
            console.print(f"[dim]note: {note}[/]")
    if ctx.e2e is not None:
        e2ereport.print_section(ctx.e2e, console)
    machine = describe_conditions(ctx.settings.get("conditions"))
    if machine:
        console.print(f"[dim]{machine}[/]")


def print_table(decisions: Sequence[Decision], ctx: GateContext, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"perf gate, micro tier: {ctx.base_ref} ({ctx.base_sha[:10]}) -> {ctx.head_ref} "
                        f"({ctx.head_sha[:10]})")
    for name in ("benchmark", "base", "change", "95% CI", "noise thr", "Holm p", "MDE", "instr.", "instr. thr",
                 "verdict"):
        table.add_column(name, no_wrap=name == "benchmark")
    for d in decisions:
        row = [d.case]
        if d.wall is not None:
            lo, hi = d.wall.ci95
            row += [
                f"{d.wall.base_ns / 1000:.2f} µs", _pct(d.wall.ratio), f"[{_pct(lo)}, {_pct(hi)}]",
                f"{(d.wall_threshold or 0) * 100:.1f}%", f"{d.wall_p_adjusted:.2g}", _mde(d),
            ]  # fmt: skip
        else:
            row += ["-"] * 6
        if d.callgrind is not None:
            row += [_pct(d.callgrind.ratio), f"{d.callgrind.threshold * 100:.2f}%"]
        else:
            row += ["-", "-"]
        verdict = Text(d.status + (f" ({', '.join(d.tiers)})" if d.tiers else ""), style=_STYLE.get(d.status, ""))
        table.add_row(*row, verdict)
    console.print(table)
    for d in decisions:
        for note in d.notes:
            console.print(f"[dim]{d.case}: {note}[/]")
        if d.acknowledged is not None:
            console.print(f"[yellow]{d.case}: acknowledged by {d.acknowledged.source}: {d.acknowledged.reason}[/]")
    for note in ctx.notes:
        console.print(f"[dim]note: {note}[/]")


def to_json(decisions: Sequence[Decision], ctx: GateContext, exit_code: int) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "base": {"ref": ctx.base_ref, "sha": ctx.base_sha},
        "head": {"ref": ctx.head_ref, "sha": ctx.head_sha},
        "settings": ctx.settings,
        "notes": list(ctx.notes),
        "origins": ctx.origins,
        "exit_code": exit_code,
        "tiers": list(ctx.tiers),
        "decisions": [dataclasses.asdict(d) for d in decisions],
        # case -> side -> process -> ns/op per round: enough to re-analyse the run offline.
        "timings": ctx.timings,
        "e2e": None if ctx.e2e is None else e2ereport.to_json(
            ctx.e2e, [d.benchmark for d in ctx.e2e.decisions if d.failing]),
    }


def to_markdown(decisions: Sequence[Decision], ctx: GateContext, exit_code: int) -> str:
    failing = [d.case for d in decisions if d.failing]
    if ctx.e2e is not None:
        failing += [d.benchmark for d in ctx.e2e.decisions if d.failing]
    head = "FAIL: " + ", ".join(failing) if failing else "pass: no unacknowledged regression"
    lines = [
        f"## Performance gate: {head}",
        "",
        f"`{ctx.base_ref}` ({ctx.base_sha[:10]}) → `{ctx.head_ref}` ({ctx.head_sha[:10]}); exit code {exit_code}.",
        "",
    ]
    if "micro" in ctx.tiers:
        lines += _micro_markdown(decisions, ctx)
    lines.extend(f"- note: {note}" for note in ctx.notes)
    if ctx.e2e is not None:
        lines += ["", *e2ereport.markdown(ctx.e2e)]
    machine = describe_conditions(ctx.settings.get("conditions"))
    if machine:
        lines += [machine, ""]
    budget = ctx.settings.get("budget")
    if isinstance(budget, dict):
        lines.append(f"Budget {budget['total_s']:.0f} s (planned: micro wall clock {budget['micro_wall_s']:.0f} s, "
                     f"instructions {budget['micro_callgrind_s']:.0f} s, end-to-end {budget['e2e_s']:.0f} s); "
                     f"the gate took {ctx.settings.get('seconds', 0):.0f} s.")
        lines.append("")
    return "\n".join(lines)


def _micro_markdown(decisions: Sequence[Decision], ctx: GateContext) -> list[str]:
    lines = [
        "### Micro tier (hot paths)" if len(ctx.tiers) > 1 else "",
        "",
        "| benchmark | base | wall-clock change [95% CI] | noise threshold | Holm p | MDE | instructions | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    if not lines[0]:
        lines = lines[2:]
    for d in decisions:
        if d.wall is not None:
            lo, hi = d.wall.ci95
            wall = f"{_pct(d.wall.ratio)} [{_pct(lo)}, {_pct(hi)}]"
            base = f"{d.wall.base_ns / 1000:.2f} µs"
            thr = f"{(d.wall_threshold or 0) * 100:.1f}%"
            p = f"{d.wall_p_adjusted:.3g}"
        else:
            wall = base = thr = p = "-"
        verdict = f"**{d.status}**" if d.failing else d.status
        if d.tiers:
            verdict += f" ({', '.join(d.tiers)})"
        lines.append(f"| `{d.case}` | {base} | {wall} | {thr} | {p} | {_mde(d)} | {_cg_cell(d)} | {verdict} |")
    lines.append("")
    for d in decisions:
        if d.acknowledged is not None:
            lines.append(f"- `{d.case}` acknowledged ({d.acknowledged.source}): {d.acknowledged.reason}")
        lines.extend(f"- `{d.case}`: {note}" for note in d.notes)
    lines += [
        "",
        "Wall-clock: interleaved slots in several processes per revision; the threshold is derived from the "
        "A/A spread between processes of identical code measured in this job, Holm-corrected over the "
        "benchmarks. MDE: the smallest wall-clock slowdown this run would have caught (95% of the time). "
        "Instructions: callgrind, PYTHONHASHSEED=0; threshold from a repeated base run (any change above it "
        "is caught: the count repeats).",
        "",
    ]
    return lines


def write_report(out_dir: Path, decisions: Sequence[Decision], ctx: GateContext, exit_code: int) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gate.json").write_text(json.dumps(to_json(decisions, ctx, exit_code), indent=2) + "\n")
    (out_dir / "summary.md").write_text(to_markdown(decisions, ctx, exit_code))
    return out_dir
