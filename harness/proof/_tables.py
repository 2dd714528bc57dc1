"""The A/A tables, built from loaded results.json documents (pure: no I/O, no clock).

A verdict is identified across runs by ``row.stat@level`` (the same row has one verdict per
threshold, and a level names which). The scenario is *not* part of the key: a row such as
``concurrent_operations`` or ``uptime`` names the scenarios it drew on, and that list may differ
between runs of the same build; keying on it would turn one row into several half-missing ones. Only
when a run holds two verdicts with the same key (the synthetic fixture judges ``tx_submission.p99``
in both burst and sustained) is the scenario added to tell them apart.

Agreement of a row is the share of runs giving its modal verdict; a run without that row counts
as the outcome ``missing`` (a row that comes and goes is a disagreement, not a smaller sample).
One exception is structural: the ``regression`` row of a run judged without a baseline (run 1 of a
proof into an empty folder) is ``n/a``, left out of that row's runs, because it *cannot* be judged;
counting it would make every proof disagree on the regression row by construction.
A *flip* is a row with both ``pass`` and ``fail`` among the runs: the serious failure, because the
same build then proves and disproves the same promise. pass/inconclusive or fail/inconclusive is
the expected noise of a short run whose interval straddles the threshold.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from harness.report.compare import compare
from harness.results import Run, parse_results

MISSING = "missing"
NOT_APPLICABLE = "n/a"
# Ties for the modal verdict are broken in this order, so the table does not depend on run order.
OUTCOMES: tuple[str, ...] = ("pass", "fail", "inconclusive", MISSING)
SIGNIFICANT = ("regression", "improvement")
Pairing = Literal["auto", "all", "consecutive"]
# All pairs up to this many runs (15 comparisons); beyond it, consecutive pairs keep the cost linear.
ALL_PAIRS_MAX_RUNS = 6
EXIT_OK, EXIT_DISAGREE, EXIT_ERROR = 0, 1, 3

AGREEMENT_HEAD = ("key", "table", "row", "stat", "level", "threshold", "unit", "scenario")
AGREEMENT_TAIL = ("n_runs", "modal", "agreement", "flips", "n_values", "mean", "std", "min", "max", "cv")
HISTORY_COLUMNS = ("run", "run_id", "started_at", "key", "table", "row", "stat", "level", "scenario", "value",
                   "ci_lo", "ci_hi", "verdict")
COMPARISON_COLUMNS = ("base_run", "head_run", "base_id", "head_id", "table", "row", "stat", "scenario", "unit",
                      "base", "head", "ratio", "ci_lo", "ci_hi", "p_value", "p_adjusted", "verdict", "statistical",
                      "significant", "method", "note")
PAIR_VERDICTS = ("regression", "improvement", "no_change", "not_comparable")


def run_column(i: int) -> str:
    """Column of the agreement table holding the verdict of run ``i`` (0-based)."""
    return f"run_{i + 1}"


def base_key(v: Mapping[str, Any]) -> str:
    level = (v.get("threshold") or {}).get("level", "")
    return f"{v.get('row', '?')}.{v.get('stat', '?')}@{level}"


def keyed_verdicts(doc: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The document's verdicts by key, in the order the harness wrote them."""
    verdicts: list[Mapping[str, Any]] = list(doc.get("verdicts") or [])
    counts = Counter(base_key(v) for v in verdicts)
    out: dict[str, Mapping[str, Any]] = {}
    for v in verdicts:
        key = base_key(v)
        if counts[key] > 1:
            key = f"{key} [{v.get('scenario') or '-'}]"
        unique, n = key, 2
        while unique in out:  # same row, stat, level and scenario twice: keep both rather than lose one
            unique, n = f"{key} #{n}", n + 1
        out[unique] = v
    return out


def _finite(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def sample_std(values: Sequence[float]) -> float:
    """Standard deviation with ddof 1; NaN under 2 values, exactly 0 when all values are equal (numpy's
    mean of equal floats can be an ulp off, and identical runs must show no spread at all)."""
    if len(values) < 2:
        return math.nan
    x = np.asarray(values, dtype=np.float64)
    return 0.0 if bool(np.all(x == x[0])) else float(x.std(ddof=1))


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Sample std (ddof 1) over |mean|: NaN under 2 values, 0 when all are equal, inf when the mean is 0."""
    std = sample_std(values)
    if math.isnan(std) or std == 0.0:
        return std
    mean = float(np.mean(values))
    return math.inf if mean == 0.0 else std / abs(mean)


def modal_verdict(verdicts: Sequence[str]) -> tuple[str, float]:
    """The most common outcome and the share of runs giving it (ties broken in ``OUTCOMES`` order)."""
    if not verdicts:
        return MISSING, math.nan
    counts = Counter(verdicts)
    order = [*OUTCOMES, *sorted(set(counts) - set(OUTCOMES))]
    modal = max(order, key=lambda o: (counts[o], -order.index(o)))
    return modal, counts[modal] / len(verdicts)


def is_flip(verdicts: Sequence[str]) -> bool:
    return "pass" in verdicts and "fail" in verdicts


def has_baseline(doc: Mapping[str, Any]) -> bool:
    """Whether ``harness run`` judged the regression row against a baseline (it records the baseline's id)."""
    return bool((doc.get("conditions") or {}).get("baseline_run"))


def applicable(doc: Mapping[str, Any], v: Mapping[str, Any]) -> bool:
    """False for a verdict that cannot be judged in this run by construction: a regression row with no
    baseline and no value (a synthetic document without ``baseline_run`` but with a value still counts)."""
    return not (v.get("row") == "regression" and not has_baseline(doc) and v.get("value") is None)


def _all_keys(keyed: Sequence[Mapping[str, Mapping[str, Any]]]) -> list[str]:
    seen: dict[str, None] = {}
    for kv in keyed:
        seen.update(dict.fromkeys(kv))
    return list(seen)


def agreement_table(docs: Sequence[Mapping[str, Any]]) -> Any:
    """One line per verdict key: each run's verdict, agreement, flips and the value's spread."""
    keyed = [{k: v for k, v in keyed_verdicts(d).items() if applicable(d, v)} for d in docs]
    columns = [*AGREEMENT_HEAD, *(run_column(i) for i in range(len(docs))), *AGREEMENT_TAIL]
    records: list[dict[str, Any]] = []
    for key in _all_keys(keyed):
        present = [kv.get(key) for kv in keyed]
        ref = next(v for v in present if v is not None)
        outcomes = [MISSING if v is None else str(v.get("verdict", MISSING)) for v in present]
        if ref.get("row") == "regression":  # runs without a baseline have no say on this row
            outcomes = [NOT_APPLICABLE if v is None and not has_baseline(d) else o
                        for v, d, o in zip(present, docs, outcomes, strict=True)]
        modal, share = modal_verdict([o for o in outcomes if o != NOT_APPLICABLE])
        values = [f for v in present if v is not None and (f := _finite(v.get("value"))) is not None]
        thr = ref.get("threshold") or {}
        scenarios = sorted({str(v.get("scenario")) for v in present if v is not None and v.get("scenario")})
        rec: dict[str, Any] = {
            "key": key, "table": ref.get("table", ""), "row": ref.get("row", ""), "stat": ref.get("stat", ""),
            "level": thr.get("level", ""), "threshold": f"{thr.get('op', '')} {thr.get('value', '')}".strip(),
            "unit": ref.get("unit", ""), "scenario": "|".join(scenarios),
        }
        rec.update({run_column(i): o for i, o in enumerate(outcomes)})
        rec.update({
            "n_runs": sum(o not in (MISSING, NOT_APPLICABLE) for o in outcomes), "modal": modal, "agreement": share,
            "flips": is_flip(outcomes), "n_values": len(values),
            "mean": float(np.mean(values)) if values else math.nan,
            "std": sample_std(values),
            "min": min(values) if values else math.nan, "max": max(values) if values else math.nan,
            "cv": coefficient_of_variation(values),
        })
        records.append(rec)
    return pd.DataFrame.from_records(records, columns=columns)


def history_table(docs: Sequence[Mapping[str, Any]]) -> Any:
    """One line per (run, verdict)."""
    records: list[dict[str, Any]] = []
    for i, doc in enumerate(docs):
        for key, v in keyed_verdicts(doc).items():
            ci = v.get("ci") or [None, None]
            thr = v.get("threshold") or {}
            records.append({
                "run": i + 1, "run_id": doc.get("run_id", ""), "started_at": doc.get("started_at", ""), "key": key,
                "table": v.get("table", ""), "row": v.get("row", ""), "stat": v.get("stat", ""),
                "level": thr.get("level", ""), "scenario": v.get("scenario") or "",
                "value": _finite(v.get("value")), "ci_lo": _finite(ci[0]), "ci_hi": _finite(ci[1]),
                "verdict": v.get("verdict", MISSING),
            })
    return pd.DataFrame.from_records(records, columns=list(HISTORY_COLUMNS))


def resolve_pairing(n: int, pairing: Pairing = "auto") -> Literal["all", "consecutive"]:
    if pairing == "all" or (pairing == "auto" and n <= ALL_PAIRS_MAX_RUNS):
        return "all"
    return "consecutive"


def pairs_for(n: int, pairing: Pairing = "auto") -> list[tuple[int, int]]:
    """Index pairs (base, head) to compare: every pair, or consecutive runs (``auto``: all up to 6 runs)."""
    if resolve_pairing(n, pairing) == "all":
        return list(itertools.combinations(range(n), 2))
    return [(i, i + 1) for i in range(n - 1)]


def comparison_table(
    docs: Sequence[Mapping[str, Any] | Run],
    *,
    pairing: Pairing = "auto",
    alpha: float = 0.05,
    noise: float | None = None,
    n_boot: int = 1000,
) -> Any:
    """Every change of ``harness.report.compare.compare`` for each pair of runs. ``significant`` follows
    compare's own call (regression/improvement: in an A/A either direction is a false alarm of
    ``harness report --compare``); ``statistical`` is the call of the statistics alone, which compare
    may withhold (``machine_differs``) when the machine's calibration moved between the runs."""
    runs = [d if isinstance(d, Run) else parse_results(d, f"run {i + 1} results.json") for i, d in enumerate(docs)]
    records: list[dict[str, Any]] = []
    for b, h in pairs_for(len(runs), pairing):
        cmp = compare(runs[b], runs[h], alpha=alpha, noise=noise, n_boot=n_boot)
        for c in cmp.changes:
            records.append({
                "base_run": b + 1, "head_run": h + 1, "base_id": cmp.base_id, "head_id": cmp.head_id,
                "table": c.table, "row": c.row, "stat": c.stat, "scenario": c.scenario, "unit": c.unit,
                "base": c.base, "head": c.head, "ratio": c.ratio,
                "ci_lo": None if c.ci is None else c.ci[0], "ci_hi": None if c.ci is None else c.ci[1],
                "p_value": c.p_value, "p_adjusted": c.p_adjusted, "verdict": c.verdict,
                "statistical": getattr(c, "statistical", "") or c.verdict,
                "significant": c.verdict in SIGNIFICANT, "method": c.method, "note": c.note,
            })
    return pd.DataFrame.from_records(records, columns=list(COMPARISON_COLUMNS))


@dataclass(frozen=True)
class AATables:
    run_ids: tuple[str, ...]
    agreement: Any  # pandas.DataFrame (pandas has no stubs here: kept as Any, read through helpers)
    history: Any
    comparisons: Any
    pairing: str  # "all" or "consecutive": what "auto" resolved to

    @property
    def n_runs(self) -> int:
        return len(self.run_ids)

    def overall_agreement(self) -> float:
        """Mean share of runs agreeing with each row's modal verdict (NaN with no rows)."""
        if len(self.agreement) == 0:
            return math.nan
        return float(self.agreement["agreement"].mean())

    def flips(self) -> list[dict[str, Any]]:
        flipped = self.agreement[self.agreement["flips"]]
        cols = [run_column(i) for i in range(self.n_runs)]
        return [{"key": r["key"], "row": r["row"], "stat": r["stat"], "level": r["level"], "scenario": r["scenario"],
                 "verdicts": [r[c] for c in cols]}  # in run order, aligned with run_ids (which may repeat)
                for r in _records(flipped)]

    def significant_changes(self) -> list[dict[str, Any]]:
        if len(self.comparisons) == 0:
            return []
        return _records(self.comparisons[self.comparisons["significant"]])

    def pair_counts(self) -> list[dict[str, Any]]:
        if len(self.comparisons) == 0:
            return []
        out = []
        for (b, h, bid, hid), grp in self.comparisons.groupby(["base_run", "head_run", "base_id", "head_id"],
                                                                sort=True):
            counts = Counter(str(x) for x in grp["verdict"])
            # The usual four always (0 when absent), then any other kind compare reports (machine_differs).
            kinds = [*PAIR_VERDICTS, *sorted(set(counts) - set(PAIR_VERDICTS))]
            out.append({"base_run": int(b), "head_run": int(h), "base_id": str(bid), "head_id": str(hid),
                        **{k: counts.get(k, 0) for k in kinds}})
        return out

    def regression_row_failures(self) -> list[dict[str, Any]]:
        """Fails of the ``regression`` SLO row: run k is judged against an earlier run of the same build,
        so every one is a false alarm of the regression row."""
        h = self.history
        return _records(h[(h["row"] == "regression") & (h["verdict"] == "fail")])


def _records(df: Any) -> list[dict[str, Any]]:
    """DataFrame rows as plain JSON-ready dicts (numpy scalars unwrapped, NaN as None)."""
    out: list[dict[str, Any]] = []
    for rec in df.to_dict(orient="records"):
        out.append({str(k): _plain(v) for k, v in rec.items()})
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def build_tables(
    docs: Sequence[Mapping[str, Any]],
    *,
    pairing: Pairing = "auto",
    alpha: float = 0.05,
    noise: float | None = None,
    n_boot: int = 1000,
) -> AATables:
    """All three tables for the runs' documents, in run order."""
    return AATables(
        run_ids=tuple(str(d.get("run_id", f"run-{i + 1}")) for i, d in enumerate(docs)),
        agreement=agreement_table(docs),
        history=history_table(docs),
        comparisons=comparison_table(docs, pairing=pairing, alpha=alpha, noise=noise, n_boot=n_boot),
        pairing=resolve_pairing(len(docs), pairing),
    )


def proof_outcome(tables: AATables, *, min_agreement: float = 0.95, harness_errors: int = 0) -> tuple[int, list[str]]:
    """Exit code and its reasons: 3 if a run failed to produce results (or fewer than 2 did), else 1 on a
    pass/fail flip, a significant change between runs, or overall agreement under ``min_agreement``."""
    reasons: list[str] = []
    if harness_errors:
        reasons.append(f"{harness_errors} run(s) ended in a harness error")
    if tables.n_runs < 2:
        reasons.append(f"only {tables.n_runs} run(s) with results: an A/A proof needs at least 2")
    if reasons:
        return EXIT_ERROR, reasons
    flips = tables.flips()
    if flips:
        reasons.append(f"{len(flips)} pass/fail flip(s): " + ", ".join(f["key"] for f in flips))
    changes = tables.significant_changes()
    if changes:
        reasons.append(f"{len(changes)} significant change(s) between runs")
    agreement = tables.overall_agreement()
    if not agreement >= min_agreement:  # NaN (no verdict rows at all) fails too
        reasons.append(f"overall agreement {agreement:.3f} < {min_agreement:g}")
    return (EXIT_DISAGREE if reasons else EXIT_OK), reasons


def exit_code(tables: AATables, *, min_agreement: float = 0.95, harness_errors: int = 0) -> int:
    return proof_outcome(tables, min_agreement=min_agreement, harness_errors=harness_errors)[0]


def summarize(tables: AATables, *, min_agreement: float = 0.95, harness_errors: int = 0) -> dict[str, Any]:
    """The JSON-ready core of ``aa.json`` (the CLI adds the runs, the command and timings)."""
    code, reasons = proof_outcome(tables, min_agreement=min_agreement, harness_errors=harness_errors)
    agreement = tables.overall_agreement()
    agree = tables.agreement
    return {
        "runs_used": tables.n_runs,
        "run_ids": list(tables.run_ids),
        "rows": len(agree),
        "overall_agreement": agreement if math.isfinite(agreement) else None,
        "min_agreement": min_agreement,
        "rows_disagreeing": [] if len(agree) == 0 else [str(k) for k in agree.loc[agree["agreement"] < 1.0, "key"]],
        "flips": tables.flips(),
        "pairing": tables.pairing,
        "pairs": tables.pair_counts(),
        "significant_changes": tables.significant_changes(),
        "regression_row_failures": tables.regression_row_failures(),
        "exit_code": code,
        "reasons": reasons,
    }
