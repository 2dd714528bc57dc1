"""Writing the A/A proof: CSV tables, ``aa.json``, a self-contained ``aa.html`` and the terminal table."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.proof._tables import AATables, run_column
from harness.report.html import environment, generated_at

LETTERS = {"pass": ("P", "green"), "fail": ("F", "red"), "inconclusive": ("I", "yellow"), "missing": ("-", "dim"),
           "n/a": ("·", "dim")}


def fmt(v: Any) -> str:
    """Three significant digits, thousands grouped; '-' for no value."""
    if v is None or isinstance(v, bool):
        return "-" if v is None else str(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return "-"
    if math.isinf(f):
        return "∞" if f > 0 else "-∞"
    return f"{f:.3g}" if abs(f) < 1000 else f"{f:,.0f}"


def fmt_share(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.0%}"


def fmt_cv(v: Any) -> str:
    """A coefficient of variation: one decimal of a percent (small CVs are the interesting ones)."""
    if v is None or math.isnan(float(v)):
        return "-"
    return "∞" if math.isinf(float(v)) else f"{float(v):.1%}"


def write_tables(tables: AATables, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tables.agreement.to_csv(out / "agreement.csv", index=False)
    tables.history.to_csv(out / "history.csv", index=False)
    tables.comparisons.to_csv(out / "comparisons.csv", index=False)


def write_json(summary: Mapping[str, Any], path: Path) -> None:
    # allow_nan=False: NaN/inf are not JSON; the summary holds None for them, and this proves it.
    path.write_text(json.dumps(summary, indent=2, allow_nan=False, default=str) + "\n", encoding="utf-8")


def _verdict_cells(rec: Mapping[str, Any], n: int) -> list[str]:
    return [str(rec[run_column(i)]) for i in range(n)]


def print_terminal(tables: AATables, summary: Mapping[str, Any], console: Console | None = None) -> None:
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)
    table = Table(title=f"A/A agreement over {tables.n_runs} runs", show_lines=False, pad_edge=False)
    for col in ("verdict", "scenario", "runs", "agree", "flip", "mean", "cv"):
        table.add_column(col, no_wrap=True, justify="right" if col in ("agree", "mean", "cv") else "left")
    for rec in tables.agreement.to_dict(orient="records"):
        letters = " ".join(f"[{LETTERS.get(v, ('?', 'white'))[1]}]{LETTERS.get(v, ('?', 'white'))[0]}[/]"
                           for v in _verdict_cells(rec, tables.n_runs))
        flip = "[bold red]FLIP[/]" if rec["flips"] else ""
        agree = fmt_share(rec["agreement"])
        if rec["agreement"] < 1.0:
            agree = f"[yellow]{agree}[/]"
        # Keys and scenarios are data, and "[sustained]" would otherwise be read as rich markup.
        table.add_row(escape(str(rec["key"])), escape(str(rec["scenario"]) or "-"), letters, agree, flip,
                      fmt(rec["mean"]), fmt_cv(rec["cv"]))
    console.print(table)
    agreement = summary.get("overall_agreement")
    console.print(f"overall agreement {fmt_share(agreement)} (minimum {summary.get('min_agreement', 0):.0%}), "
                  f"{len(summary.get('flips', []))} pass/fail flip(s), "
                  f"{len(summary.get('significant_changes', []))} significant change(s) over "
                  f"{len(summary.get('pairs', []))} comparison(s) ({summary.get('pairing', '')} pairs), "
                  f"{len(summary.get('regression_row_failures', []))} regression-row fail(s), "
                  f"{len(summary.get('harness_errors', []))} harness error(s)")
    for c in summary.get("significant_changes", []):
        what = escape(f"{c['row']}.{c['stat']} [{c['scenario']}] ratio {fmt(c['ratio'])} "
                      f"CI [{fmt(c['ci_lo'])}, {fmt(c['ci_hi'])}], adjusted p {fmt(c['p_adjusted'])} ({c['method']})")
        console.print(f"  [red]{c['verdict']}[/] run {c['base_run']} -> {c['head_run']}: {what}")
    for e in summary.get("harness_errors", []):
        console.print(f"  [red]harness error[/] run {e['index']}: " + escape(f"{e['error']} (log {e['log']})"))
    verdict = "[green]A/A holds[/]" if summary.get("exit_code") == 0 else "[red]A/A does not hold[/]"
    why = "; ".join(summary.get("reasons", [])) or "same verdicts, no significant change"
    console.print(f"{verdict}: " + escape(why))


_TEMPLATE = """{% extends "base.html.j2" %}
{% block title %}A/A proof · {{ n }} runs · tradebench{% endblock %}
{% block header %}
<h1>A/A proof: {{ n }} runs of the same build</h1>
<span class="meta">{{ command }}</span>
{% endblock %}
{% block body %}
<div class="banner{% if code != 0 %} bad{% endif %}"><b>{{ headline }}</b>{%
  if reasons %}: {{ reasons }}{% endif %}</div>
<div class="summary">
<div class="tile {{ 'pass' if agreement_ok else 'fail' }}"><b>{{ agreement }}</b>
<span>overall agreement</span></div>
<div class="tile {{ 'fail' if flips else 'pass' }}"><b>{{ flips | length }}</b>
<span>pass/fail flips</span></div>
<div class="tile {{ 'fail' if changes else 'pass' }}"><b>{{ changes | length }}</b>
<span>significant changes</span></div>
<div class="tile {{ 'fail' if regressions else 'missing' }}"><b>{{ regressions | length }}</b>
<span>regression-row fails</span></div>
<div class="tile {{ 'fail' if errors else 'missing' }}"><b>{{ errors | length }}</b>
<span>harness errors</span></div>
</div>
<section id="runs"><h2>Runs</h2>
<table><tr><th>#</th><th>run</th><th>exit</th><th class="num">time</th><th class="num">pass</th>
<th class="num">fail</th><th class="num">inconclusive</th><th>error</th></tr>
{% for r in runs %}
<tr{% if r.error %} class="row-fail"{% endif %}><td>{{ r.index }}</td><td><code>{{ r.run_id or '-' }}</code></td>
<td>{{ r.exit_code if r.exit_code is not none else 'timeout' }}</td><td class="num">{{ r.duration }}</td>
<td class="num">{{ r.counts.pass }}</td><td class="num">{{ r.counts.fail }}</td>
<td class="num">{{ r.counts.inconclusive }}</td><td>{{ r.error or '' }}</td></tr>
{% endfor %}
</table></section>
<section id="agreement"><h2>Agreement per verdict</h2>
<p class="note">One line per SLO row, statistic and threshold level. Agreement: share of runs giving the modal
verdict. A flip (pass in one run, fail in another) is the serious failure; pass/inconclusive is expected noise.
CV: coefficient of variation of the value across runs.</p>
<table><tr><th>verdict row</th><th>scenario</th>{% for i in range(n) %}<th>run {{ i + 1 }}</th>{% endfor %}
<th class="num">agreement</th><th>flip</th><th class="num">mean</th><th class="num">min</th><th class="num">max</th>
<th class="num">CV</th></tr>
{% for r in rows %}
<tr{% if r.flips %} class="row-fail"{% endif %}><td><code>{{ r.key }}</code></td><td>{{ r.scenario }}</td>
{% for v in r.verdicts %}<td><span class="verdict v-{{ 'missing' if v == 'n/a' else v }}">{{ v }}</span></td>
{% endfor %}
<td class="num">{{ r.agreement }}</td><td>{{ 'FLIP' if r.flips else '' }}</td><td class="num">{{ r.mean }}</td>
<td class="num">{{ r.min }}</td><td class="num">{{ r.max }}</td><td class="num">{{ r.cv }}</td></tr>
{% endfor %}
</table></section>
<section id="changes"><h2>Significant changes between runs ({{ pairing }} pairs, {{ n_pairs }} comparisons)</h2>
{% if changes %}
<table><tr><th>base → head</th><th>row</th><th>scenario</th><th>verdict</th><th class="num">ratio</th><th>CI</th>
<th class="num">adjusted p</th><th>method</th></tr>
{% for c in changes %}
<tr class="row-regression"><td>{{ c.base_run }} → {{ c.head_run }}</td><td><code>{{ c.row }}.{{ c.stat }}</code></td>
<td>{{ c.scenario }}</td><td><span class="verdict v-{{ c.verdict }}">{{ c.verdict }}</span></td>
<td class="num">{{ c.ratio }}</td><td>[{{ c.ci_lo }}, {{ c.ci_hi }}]</td><td class="num">{{ c.p_adjusted }}</td>
<td>{{ c.method }}</td></tr>
{% endfor %}
</table>
{% else %}<p>None: <code>harness report --compare</code>'s method found no significant change in any
pair.</p>{% endif %}
</section>
{% if regressions %}
<section id="regression-row"><h2>Fails of the regression row (judged against an earlier run of the same build)</h2>
<table><tr><th>run</th><th>stat</th><th class="num">value</th><th>CI</th></tr>
{% for r in regressions %}<tr class="row-fail"><td>{{ r.run }} <code>{{ r.run_id }}</code></td><td>{{ r.stat }}</td>
<td class="num">{{ r.value }}</td><td>[{{ r.ci_lo }}, {{ r.ci_hi }}]</td></tr>{% endfor %}
</table></section>
{% endif %}
{% endblock %}
"""


def write_html(tables: AATables, summary: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], path: Path) -> None:
    """``aa.html`` on the reports' base template (CSS inlined: one file, works opened from disk)."""
    rows = [{
        "key": r["key"], "scenario": r["scenario"], "verdicts": _verdict_cells(r, tables.n_runs),
        "agreement": fmt_share(r["agreement"]), "flips": bool(r["flips"]), "mean": fmt(r["mean"]),
        "min": fmt(r["min"]), "max": fmt(r["max"]), "cv": fmt_cv(r["cv"]),
    } for r in tables.agreement.to_dict(orient="records")]
    num = ("ratio", "ci_lo", "ci_hi", "p_adjusted", "value")
    changes = [{k: fmt(v) if k in num else v for k, v in c.items()} for c in summary.get("significant_changes", [])]
    regressions = [{k: fmt(v) if k in num else v for k, v in r.items()}
                   for r in summary.get("regression_row_failures", [])]
    agreement = summary.get("overall_agreement")
    code = summary.get("exit_code")
    html = environment().from_string(_TEMPLATE).render(
        n=tables.n_runs, command=summary.get("command", ""), code=code,
        headline="A/A holds" if code == 0 else "A/A does not hold",
        reasons="; ".join(summary.get("reasons", [])),
        agreement=fmt_share(agreement), agreement_ok=agreement is not None and agreement >= summary["min_agreement"],
        flips=summary.get("flips", []), changes=changes, regressions=regressions,
        errors=summary.get("harness_errors", []), runs=runs, rows=rows,
        pairing=summary.get("pairing", ""), n_pairs=len(summary.get("pairs", [])), generated=generated_at(),
    )
    path.write_text(html, encoding="utf-8")
