"""Drawing a ``DashboardSnapshot``: a rich panel for ``Live``, or one plain line for logs (pure).

Text goes in as ``rich.text.Text``, never as markup: a label such as ``stress 200/s [ramp]`` must
show as written.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from harness.run._dashmodel import DashboardSnapshot, Figures, LagFigures, OpFigures, StepProgress

MAX_VERDICT_ROWS = 8  # fails and inconclusives first; the rest are counted
_STYLE = {"pass": "green", "fail": "bold red", "inconclusive": "yellow"}


def ms(v: float) -> str:
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def _rate(v: float) -> str:
    return f"{v:,.1f}/s" if v < 1000 else f"{v:,.0f}/s"


def _seconds(s: float) -> str:
    s = max(0.0, s)
    if s < 120:
        return f"{s:.0f} s"
    h, rem = divmod(int(s), 3600)
    return f"{h}h{rem // 60:02d}m" if h else f"{rem // 60}m{rem % 60:02d}s"


def step_text(step: StepProgress | None) -> str:
    if step is None:
        return "waiting for the first scenario"
    done = " (done)" if step.left_s <= 0 else f", {_seconds(step.left_s)} left"
    return f"{step.label}: {_seconds(step.done_s)} of {_seconds(step.total_s)}{done}"


def backlog_text(f: Figures, sep: str = "  ·  ") -> str:
    parts = []
    if f.in_flight is not None:
        peak = f", peak {f.in_flight_peak:.0f}" if f.in_flight_peak is not None else ""
        queued = f", queued {f.queued:.0f}" if f.queued is not None else ""
        parts.append(f"in flight {f.in_flight:.0f}{peak}{queued}")
    counts = [f"{name} {n:,}" for name, n in (("errors", f.errors), ("dropped", f.dropped)) if n is not None]
    if counts:
        parts.append(" ".join(counts) + (f" ({f.counts_span})" if f.counts_span else ""))
    if f.rss_mb is not None or f.cpu_percent is not None:
        rss = f"RSS {f.rss_mb:,.0f} MB" if f.rss_mb is not None else "RSS -"
        cpu = f"CPU {f.cpu_percent:.0f}%" if f.cpu_percent is not None else "CPU -"
        parts.append(f"{f.resource} {rss} {cpu}")
    return sep.join(parts)


def lag_text(lag: LagFigures | None, source: str) -> str:
    if lag is None:
        return f"{source} lag: nothing sent in the window"
    text = f"{lag.source} lag p99 {ms(lag.p99_ms)} ms, max {ms(lag.max_ms)} ms"
    return text + ("  BEHIND its schedule: the load was offered late" if lag.behind else "")


def bar(fraction: float, width: int = 40) -> Text:
    full = round(max(0.0, min(1.0, fraction)) * width)
    return Text.assemble(("━" * full, "cyan"), ("━" * (width - full), "grey30"))


def _op_row(o: OpFigures, name_w: int) -> Text:
    # Fixed-width text, not a rich Table: a table's layout cost ~10 ms a frame, this ~1 ms.
    over = set(o.over)
    row = Text(f"{o.op:<{name_w}} {o.count:>8,}")
    for stat, v in (("p50", o.p50_ms), ("p95", o.p95_ms), ("p99", o.p99_ms)):
        row.append(f" {ms(v) if o.count else '-':>8}", style="bold red" if stat in over else "")
    target = ", ".join(f"{stat} < {limit:g}" for stat, limit in o.limits if stat in ("p95", "p99", "mean"))
    row.append(f"   {target}" + ("  over" if over else ""), style="red" if over else "dim")
    return row


def _verdicts(s: DashboardSnapshot) -> list[Text]:
    t = s.tally
    out = [Text.assemble(("verdicts so far", "bold"), f" ({', '.join(s.judged)}): ",
                         (f"{t.passed} pass", "green"), " · ", (f"{t.failed} fail", "red" if t.failed else ""),
                         " · ", (f"{t.inconclusive} inconclusive", "yellow" if t.inconclusive else ""))]
    shown = s.verdicts[:MAX_VERDICT_ROWS]
    if shown:
        w = [max(len(x) for x in col) for col in zip(*((v.row, v.stat, v.scenario, v.shown_value, v.target)
                                                        for v in shown), strict=True)]
        for v in shown:
            line = Text(f"  {v.row:<{w[0]}}  {v.stat:<{w[1]}}  {v.scenario:<{w[2]}}  {v.shown_value:>{w[3]}}  "
                        f"{v.target:<{w[4]}}  ")
            line.append(v.verdict, style=_STYLE.get(v.verdict, ""))
            out.append(line)
    rest = s.verdicts[MAX_VERDICT_ROWS:]
    if rest:
        kinds = {k: sum(1 for v in rest if v.verdict == k) for k in ("fail", "inconclusive", "pass")}
        out.append(Text(f"  + {len(rest)} more: " + ", ".join(f"{n} {k}" for k, n in kinds.items() if n),
                        style="dim"))
    return out


def render(s: DashboardSnapshot) -> RenderableType:
    """The dashboard as a rich renderable (a panel of plain-styled lines)."""
    f = s.figures
    head = Text(step_text(s.step), style="bold")
    if s.step is not None:
        head.append("  ")
        head.append_text(bar(s.step.fraction))
    parts: list[RenderableType] = [head]
    parts.append(Text.assemble((f"rates (last {f.window_s:g} s)  ", "dim"),
                               "   ".join(f"{label} {_rate(v)}" for label, v in f.rates)))
    parts.append(Text(backlog_text(f)))
    lag_source = "generator" if f.resource == "generator" else "feed"
    parts.append(Text(lag_text(f.lag, lag_source), style="bold red" if f.lag is not None and f.lag.behind else ""))
    name_w = max([len(o.op) for o in f.ops] + [22])
    parts.append(Text(f"{'latency ms (' + f.ops_span + ')':<{name_w}} {'n':>8} {'p50':>8} {'p95':>8} {'p99':>8}"
                      "   SLO target (ms)", style="dim"))
    parts += [_op_row(o, name_w) for o in f.ops]
    if s.judged:
        parts += _verdicts(s)
    if s.note:
        parts.append(Text(s.note, style="dim"))
    return Panel(Group(*parts), title=Text(s.title, style="bold"), title_align="left", expand=True)


def _op_plain(o: OpFigures) -> str:
    if not o.count:
        return f"{o.op} -"
    over = o.over
    flag = "".join(f" {stat}>{dict(o.limits)[stat]:g}!" for stat in over)
    return f"{o.op} {ms(o.p50_ms)}/{ms(o.p95_ms)}/{ms(o.p99_ms)}{flag}"


def plain_line(s: DashboardSnapshot) -> str:
    """One line with the same key figures, no ANSI codes (what CI logs want)."""
    f = s.figures
    step = s.step
    lag = f.lag
    parts = ["no step yet" if step is None else
             f"{step.label} {step.done_s:.0f}/{step.total_s:.0f} s ({_seconds(step.left_s)} left)",
             " ".join(f"{label} {_rate(v)}" for label, v in f.rates),
             f"ms p50/p95/p99 ({f.ops_span}): " + ", ".join(_op_plain(o) for o in f.ops),
             backlog_text(f, "; "),
             f"{'generator' if f.resource == 'generator' else 'feed'} lag -" if lag is None else
             f"{lag.source} lag p99 {ms(lag.p99_ms)} max {ms(lag.max_ms)} ms" + (" BEHIND" if lag.behind else "")]
    if s.judged:
        t = s.tally
        parts.append(f"verdicts so far: {t.passed} pass {t.failed} fail {t.inconclusive} inconclusive")
    return " | ".join(p for p in parts if p)


def verdict_summary(s: DashboardSnapshot, fails: int = 3) -> str:
    """A log line once a finished scenario is judged: the tally and the first fails with value and target."""
    t = s.tally
    failed = [v for v in s.verdicts if v.verdict == "fail"][:fails]
    text = (f"verdicts so far ({', '.join(s.judged)}): {t.passed} pass, {t.failed} fail, "
            f"{t.inconclusive} inconclusive")
    if failed:
        text += "; fail: " + "; ".join(f"{v.row} {v.stat} {v.shown_value} ({v.target})" for v in failed)
    return text
