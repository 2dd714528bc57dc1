"""Base vs head: ``compare(base, head) -> Comparison`` and ``reports/compare-<base>-<head>/index.html``.

For every SLO verdict row present in either run, the comparison gives base value, head value, the
change as a ratio head/base with its confidence interval, and a verdict: regression, improvement,
no significant change, or not comparable (missing on one side, or no CI to judge by).

Method (stated on the page as well):

- Latency rows are recomputed from the interval histograms with ``harness.stats.change``: the ratio's
  CI comes from independent circular block bootstraps of both runs' interval series; the p-value is
  a two-sided Mann-Whitney U test on per-interval means (samples within an interval are not
  independent, intervals nearly are).
- Other rows (throughput, resources, quality) only have a value and a CI in results.json; they are
  compared by a normal approximation from those CIs (on the log scale when both values are positive).
- p-values of all rows are adjusted together with Holm's method. A change is called only when the
  adjusted p-value is below alpha, the ratio's CI excludes 1 and the ratio is beyond the noise
  threshold; direction (worse or better) follows the row's threshold (``<`` means lower is better).
- When the two runs' machine calibrations differ beyond their noise (``calibration_shift``), no change
  is called a regression or improvement: such rows read ``machine_differs`` (the statistical call is
  kept in ``Change.statistical``), since the machine, not the code, may have moved them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scipy import stats as sps

from bot.redact import redact_tree
from harness.probes.calibration import SHIFT_FLOOR, calibration_shift
from harness.probes.machine import steal_shift
from harness.report import format as F
from harness.report import histograms as H
from harness.report import plots
from harness.report.html import environment, flatten, generated_at, slug
from harness.report.views import op_keys
from harness.results import (
    Run,
    Scenario,
    Verdict,
    load_results,
    parse_results,
    sorted_verdicts,
)
from harness.stats.change import adjust, classify, mann_whitney_p, ratio_ci_series, window_means
from harness.stats.histograms import series_from_encoded
from harness.stats.intervals import Estimate
from harness.stats.noise import between_runs, change_threshold

__all__ = [
    "LATENCY_METHOD", "SIGNIFICANT", "SUMMARY_METHOD", "VERDICT_LABELS", "Change", "Comparison", "SpectrumBlock",
    "calibration_shift", "compare", "comparison_text", "condition_diffs", "render_comparison", "summary_estimate",
    "write_comparison_page",
]

LATENCY_METHOD = "interval histograms"
SUMMARY_METHOD = "recorded CIs"
VERDICT_LABELS = {
    "regression": "regression",
    "improvement": "improvement",
    "no_change": "no change",
    "not_comparable": "not comparable",
    "machine_differs": "machine differs",
}
SIGNIFICANT = ("regression", "improvement")


@dataclass(frozen=True)
class Change:
    """One SLO row/stat compared. ``ratio`` is head/base; whether > 1 is worse depends on the row."""

    table: str
    row: str
    stat: str
    scenario: str
    unit: str
    base: float | None
    head: float | None
    ratio: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    p_adjusted: float | None
    verdict: str  # regression | improvement | no_change | not_comparable | machine_differs
    method: str
    note: str
    statistical: str = ""  # the call the statistics alone made (differs from verdict only under machine_differs)

    @property
    def label(self) -> str:
        return f"{self.row}.{self.stat}" + (f" [{self.scenario}]" if self.scenario else "")


@dataclass(frozen=True)
class Comparison:
    base_id: str
    head_id: str
    changes: tuple[Change, ...]
    alpha: float
    noise: float
    confidence: float
    correction: str
    n_boot: int
    machine_shift: str | None = None  # calibration_shift's sentence: the machines differ beyond their noise
    calibrated: tuple[bool, bool] = (True, True)  # (base, head) each recorded a machine calibration

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(VERDICT_LABELS, 0)
        for c in self.changes:
            out[c.verdict] += 1
        return out

    def regressions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.verdict == "regression")


@dataclass(frozen=True)
class _Pending:
    """A row before the multiple-comparison adjustment."""

    key: tuple[str, str, str, str]
    unit: str
    lower_is_better: bool
    estimate: Estimate | None
    base: float | None
    head: float | None
    p: float
    method: str
    note: str


def _series(scn: Scenario, op: str) -> Any:
    texts = [iv.histograms.get(op) for iv in scn.intervals]
    if not any(texts):
        return None
    return series_from_encoded(texts, where=f"scenario {scn.id!r} {op}")


def _latency_pending(
    b: Verdict | None, h: Verdict | None, base: Run, head: Run, *, n_boot: int, confidence: float, seed: int
) -> _Pending | None:
    """A latency row recomputed from histograms; None when either run lacks them (caller falls back)."""
    v = h or b
    if v is None or v.scenario is None:
        return None
    sb, sh = base.scenario(v.scenario), head.scenario(v.scenario)
    if sb is None or sh is None:
        return None
    xb, xh = _series(sb, v.row), _series(sh, v.row)
    if xb is None or xh is None or xb.total == 0 or xh.total == 0:
        return None
    try:
        est = ratio_ci_series(xb, xh, statistic=v.stat, confidence=confidence, n_boot=n_boot, seed=seed)
    except ValueError:
        return None  # a statistic the bootstrap does not know (e.g. "max"): compare the summaries instead
    p = mann_whitney_p(window_means(xb), window_means(xh))
    ms = 1.0 / H.US_PER_MS
    base_v = xb.mean_us() * ms if v.stat == "mean" else None
    head_v = xh.mean_us() * ms if v.stat == "mean" else None
    if v.stat != "mean":
        q = float(v.stat[1:])
        base_v, head_v = xb.percentile_us(q) * ms, xh.percentile_us(q) * ms
    return _Pending(v.key, v.unit, v.lower_is_better, est, base_v, head_v, p, LATENCY_METHOD,
                    f"{xb.n_intervals}/{xh.n_intervals} intervals")


def _z(confidence: float) -> float:
    return float(sps.norm.ppf(0.5 + confidence / 2.0))


def summary_estimate(b: Verdict, h: Verdict, confidence: float) -> tuple[Estimate | None, float]:
    """Ratio head/base and p-value from two verdict rows' values and CIs (normal approximation)."""
    if b.value is None or h.value is None or b.ci is None or h.ci is None:
        return None, math.nan
    se_b = (b.ci[1] - b.ci[0]) / (2 * _z(b.confidence))
    se_h = (h.ci[1] - h.ci[0]) / (2 * _z(h.confidence))
    if se_b == 0 and se_h == 0:
        # Two exact figures (an observed maximum, a count): no sampling spread to test a difference
        # against, so any difference would read as "significant". Not comparable, said as such.
        return None, math.nan
    z = _z(confidence)
    # log scale only for quantities whose whole CI is positive, and never for a slope: a growth near
    # zero (a memory trend) is compared by its difference, a ratio of two near-zeros means nothing.
    if b.ci[0] > 0 and h.ci[0] > 0 and "slope" not in b.stat:
        d = math.log(h.value / b.value)
        se = math.hypot(se_b / b.value, se_h / h.value)  # delta method: se(log x) ~ se(x)/x
        p = (0.0 if d else 1.0) if se == 0 else float(2 * sps.norm.sf(abs(d) / se))
        est = Estimate(h.value / b.value, math.exp(d - z * se), math.exp(d + z * se), confidence,
                       "normal-log", 0, SUMMARY_METHOD)
        return est, p
    # A zero or sign-changing quantity (no errors at all, a memory slope) has no log: test the difference.
    se = math.hypot(se_b, se_h)
    diff = h.value - b.value
    p = (0.0 if diff else 1.0) if se == 0 else float(2 * sps.norm.sf(abs(diff) / se))
    ratio = h.value / b.value if b.value else (1.0 if h.value == b.value else math.inf)
    return Estimate(ratio, math.nan, math.nan, confidence, "normal-diff", 0, SUMMARY_METHOD), p


def _verdict(p: _Pending, p_adj: float, alpha: float, noise: float) -> str:
    est = p.estimate
    if est is None or math.isnan(p_adj):
        return "not_comparable"
    if not est.has_ci:
        # No ratio CI (a zero value): decide on the adjusted p-value and the direction of the difference.
        if p_adj >= alpha or p.base is None or p.head is None or p.base == p.head:
            return "no_change"
        worse = (p.head > p.base) == p.lower_is_better
        return "regression" if worse else "improvement"
    slower = classify(est, p_adj, alpha=alpha, noise=noise)  # in terms of "ratio > 1 is worse"
    if slower == "no change":
        return "no_change"
    if p.lower_is_better:
        return slower
    return "improvement" if slower == "regression" else "regression"


def compare(
    base_results: Run | Mapping[str, Any],
    head_results: Run | Mapping[str, Any],
    *,
    alpha: float = 0.05,
    noise: float | None = None,
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> Comparison:
    """Compare every SLO row/stat of two runs (results documents or parsed runs).

    ``noise`` is the smallest relative change that may be called; it is never below the measured
    run-to-run spread of single runs (``harness.stats.noise``), which within-run statistics cannot see.
    """
    explicit = noise
    noise = between_runs(noise)
    base = base_results if isinstance(base_results, Run) else parse_results(base_results, "base results.json")
    head = head_results if isinstance(head_results, Run) else parse_results(head_results, "head results.json")
    b_rows = {v.key: v for v in base.verdicts}
    h_rows = {v.key: v for v in head.verdicts}
    order = [v.key for v in sorted_verdicts([*head.verdicts, *(v for v in base.verdicts if v.key not in h_rows)])]
    # The regression row is itself a comparison, against whichever baseline each run had: comparing
    # its values between two runs compares two different baselines.
    order = [k for k in order if k[1] != "regression"]
    pending: list[_Pending] = []
    for key in order:
        b, h = b_rows.get(key), h_rows.get(key)
        ref = h or b
        if ref is None:  # cannot happen: every key comes from one of the two runs
            continue
        got = None
        if key[0] == "latency" and b is not None and h is not None:
            got = _latency_pending(b, h, base, head, n_boot=n_boot, confidence=confidence, seed=seed)
        if got is None:
            if b is None or h is None:
                side = "base" if b is None else "head"
                got = _Pending(key, ref.unit, ref.lower_is_better, None, None if b is None else b.value,
                               None if h is None else h.value, math.nan,
                               "", f"no verdict for this row in the {side} run")
            else:
                est, p_value = summary_estimate(b, h, confidence)
                note = "" if est is not None else "a value or CI is missing, or both are exact (no spread to test)"
                got = _Pending(key, ref.unit, ref.lower_is_better, est, b.value, h.value, p_value, SUMMARY_METHOD,
                               note)
        pending.append(got)
    adjusted = _holm_nan_safe([p.p for p in pending])
    cal_b, cal_h = base.conditions.get("calibration"), head.conditions.get("calibration")
    shift = calibration_shift(cal_b, cal_h) or steal_shift(base.raw, head.raw)
    changes = []
    for pend, p_adj in zip(pending, adjusted, strict=True):
        est = pend.estimate
        # Latency changes must also clear the absolute run-to-run floor (harness.stats.noise).
        row_noise = change_threshold(noise, pend.base, pend.key[2], latency=pend.key[0] == "latency",
                                     measured=explicit is not None)
        called = _verdict(pend, p_adj, alpha, row_noise)
        changes.append(Change(
            table=pend.key[0], row=pend.key[1], stat=pend.key[2], scenario=pend.key[3], unit=pend.unit,
            base=pend.base, head=pend.head,
            ratio=None if est is None else est.value,
            ci=None if est is None or not est.has_ci else (est.lo, est.hi),
            p_value=None if math.isnan(pend.p) else pend.p,
            p_adjusted=None if math.isnan(p_adj) else p_adj,
            verdict="machine_differs" if shift is not None and called in SIGNIFICANT else called,
            method=pend.method,
            note=pend.note,
            statistical=called,
        ))
    return Comparison(base.run_id, head.run_id, tuple(changes), alpha, noise, confidence, "holm", n_boot,
                      machine_shift=shift, calibrated=(isinstance(cal_b, Mapping), isinstance(cal_h, Mapping)))


def _holm_nan_safe(ps: list[float]) -> list[float]:
    """Holm over the finite p-values only (rows that cannot be tested do not enlarge the family)."""
    idx = [i for i, p in enumerate(ps) if not math.isnan(p)]
    adj = adjust([ps[i] for i in idx], "holm")
    out = [math.nan] * len(ps)
    for i, a in zip(idx, adj, strict=True):
        out[i] = a
    return out


@dataclass(frozen=True)
class SpectrumBlock:
    scenario: str
    op: str
    image: str


def _spectra(base: Run, head: Run, plot_dir: Path, comparison: Comparison) -> list[SpectrumBlock]:
    """Overlaid spectra per shared scenario and operation; those with a regression first."""
    out = []
    for sb in base.scenarios:
        sh = head.scenario(sb.id)
        if sh is None:
            continue
        for op in [o for o in sh.operations() if o in sb.operations()]:
            pairs = []
            for scn, colour in ((sb, plots.GREY), (sh, plots.BLUE)):
                keys = op_keys(scn, op)
                corr, serv = (
                    None if key is None else
                    H.merge(H.decode(iv.histograms[key]) for iv in scn.intervals if key in iv.histograms)
                    for key in (keys.corrected, keys.service)
                )
                # The page's legend names the runs; in the plot "base"/"head" keeps the legend small.
                pairs.append(plots.SpectrumPair("base" if scn is sb else "head", colour, corr, serv))
            name = f"spectrum-{slug(sb.id)}-{slug(op)}.png"
            plots.compare_spectrum_figure(f"{op} · {sb.id}", pairs, plot_dir / name)
            out.append(SpectrumBlock(sb.id, op, f"plots/{name}"))
    flagged = {(c.scenario, c.row) for c in comparison.changes if c.statistical in SIGNIFICANT}
    return sorted(out, key=lambda b: (b.scenario, b.op) not in flagged)


def condition_diffs(base: Run, head: Run) -> list[tuple[str, str, str]]:
    """Conditions that differ between the runs: a change may come from them rather than the code.

    The calibration is left out: it is measured, so it always differs a little, and whether it differs
    beyond its noise is ``calibration_shift``'s question."""
    fb = dict(flatten(redact_tree({k: v for k, v in base.conditions.items() if k != "calibration"})))
    fh = dict(flatten(redact_tree({k: v for k, v in head.conditions.items() if k != "calibration"})))
    return [(k, fb.get(k, "–"), fh.get(k, "–")) for k in sorted(set(fb) | set(fh)) if fb.get(k) != fh.get(k)]


def render_comparison(base_dir: Path, head_dir: Path, out_dir: Path | None = None, *,
                      noise: float | None = None) -> Path:
    """Load two run folders, compare them and write the comparison page; returns its index.html."""
    base, head = load_results(base_dir), load_results(head_dir)
    out_dir = out_dir or base_dir.parent / f"compare-{slug(base.run_id)}-{slug(head.run_id)}"
    out_dir.mkdir(parents=True, exist_ok=True)
    links = {
        role: Path(os.path.relpath(d.resolve() / "index.html", out_dir.resolve())).as_posix()
        for role, d in (("base", base_dir), ("head", head_dir))
        if (d / "index.html").exists()
    }
    return write_comparison_page(base, head, out_dir, compare(base, head, noise=noise), links=links)


def comparison_text(comparison: Comparison) -> str:
    """The comparison for a terminal: a machine difference first, the counts, then every row that changed."""
    c = comparison
    counts = c.counts()
    lines = [f"compare {c.base_id} -> {c.head_id}"]
    if c.machine_shift is not None:
        lines += [f"MACHINE DIFFERS: {c.machine_shift}.",
                  "  No change below is called a regression or improvement: the machines differ beyond their noise,",
                  "  so a change may come from the machine rather than the code. Compare runs from one machine."]
    elif not all(c.calibrated):
        who = " and ".join(r for r, ok in zip(("base", "head"), c.calibrated, strict=True) if not ok)
        lines.append(f"note: the {who} run was not calibrated: whether the machines differ is unknown.")
    lines.append(", ".join(f"{counts[k]} {VERDICT_LABELS[k]}" for k in
                           ("machine_differs", "regression", "improvement", "no_change", "not_comparable")
                           if counts[k] or k != "machine_differs"))
    for ch in c.changes:
        if ch.statistical not in SIGNIFICANT and ch.verdict not in SIGNIFICANT:
            continue
        label = VERDICT_LABELS[ch.verdict]
        if ch.verdict == "machine_differs":
            label += f" (statistically: {VERDICT_LABELS[ch.statistical]})"
        ci = "" if ch.ci is None else f", CI [{F.fmt_ratio(ch.ci[0])}, {F.fmt_ratio(ch.ci[1])}]"
        lines.append(f"  {label:<45} {ch.label}: {F.fmt_value(ch.base, ch.unit)} -> "
                     f"{F.fmt_value(ch.head, ch.unit)} ({F.fmt_ratio(ch.ratio)}{ci})")
    return "\n".join(lines) + "\n"


def write_comparison_page(
    base: Run, head: Run, out_dir: Path, comparison: Comparison | None = None, links: Mapping[str, str] | None = None
) -> Path:
    """Render a comparison of two parsed runs into ``out_dir``; ``links`` are relative paths to their pages."""
    comparison = comparison or compare(base, head)
    plot_dir = out_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    for old in plot_dir.glob("*.png"):
        old.unlink()
    html = environment().get_template("compare.html.j2").render(
        cmp=comparison,
        base=base,
        head=head,
        counts=comparison.counts(),
        labels=VERDICT_LABELS,
        spectra=_spectra(base, head, plot_dir, comparison),
        diffs=condition_diffs(base, head),
        links=links or {},
        shift_floor=SHIFT_FLOOR,
        latency_method=LATENCY_METHOD,
        summary_method=SUMMARY_METHOD,
        generated=generated_at(),
    )
    out = out_dir / "index.html"
    out.write_text(html, encoding="utf-8")
    # The same verdicts for a terminal or a CI log (``harness report --compare`` can print it).
    (out_dir / "summary.txt").write_text(comparison_text(comparison), encoding="utf-8")
    return out
