"""Reading results.json: the JSON Schema, the rules a schema cannot state, and errors that name the place.

Errors name the place in the document (``$.verdicts[3].verdict``), what is wrong, and when the schema
says how, the fix. Partial and interrupted runs are valid documents: they may have fewer scenarios,
fewer intervals and missing verdicts; ``Run.missing_rows`` tells the report which SLO rows were not
judged, so nothing disappears silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.results.model import Run


class ResultsError(HarnessError):
    """A results.json document is unreadable or invalid; the message lists every problem with its path."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        shown = "\n  ".join(self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n  {shown}{more}")


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of results.json, loaded once from the package data."""
    text = resources.files("harness.results").joinpath("results.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _json_path(parts: Sequence[object]) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


@cache
def _validator() -> Any:
    import jsonschema  # deferred: importing jsonschema costs ~0.1 s and only validation needs it

    return jsonschema.Draft202012Validator(schema())


def _schema_problems(doc: Any) -> list[str]:
    import jsonschema

    validator = _validator()
    problems: list[tuple[str, str]] = []
    for err in validator.iter_errors(doc):
        # A failed oneOf/anyOf reports its branches as context; the deepest one is the useful message.
        best = jsonschema.exceptions.best_match([err])
        fix = best.schema.get("x-fix") if isinstance(best.schema, dict) else None
        if fix is None and isinstance(err.schema, dict):
            fix = err.schema.get("x-fix")
        msg = best.message
        if best.validator == "additionalProperties" and isinstance(best.instance, dict):
            msg += " (unknown keys are rejected as likely typos; prefix extensions with 'x_')"
        path = _json_path(list(best.absolute_path))
        problems.append((path, f"at {path}: {msg}" + (f"; fix: {fix}" if fix else "")))
    problems.sort()
    return [p for _, p in problems]


def _semantic_problems(doc: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for i, v in enumerate(doc.get("verdicts", [])):
        ci = v.get("ci")
        if isinstance(ci, list) and len(ci) == 2 and ci[0] > ci[1]:
            problems.append(f"at $.verdicts[{i}].ci: low {ci[0]} > high {ci[1]}; fix: write [low, high]")
    seen: set[str] = set()
    for s_i, s in enumerate(doc.get("scenarios", [])):
        sid = s.get("id")
        if sid in seen:
            problems.append(f"at $.scenarios[{s_i}].id: duplicate scenario id {sid!r}; fix: ids must be unique")
        seen.add(sid)
        for i_i, iv in enumerate(s.get("intervals", [])):
            if iv.get("end", 0) < iv.get("start", 0):
                problems.append(
                    f"at $.scenarios[{s_i}].intervals[{i_i}]: end {iv['end']} < start {iv['start']}; "
                    "fix: start/end are seconds from the scenario start, end >= start"
                )
        health = s.get("health", {})
        if health.get("ok", 0) > health.get("probes", 0):
            problems.append(f"at $.scenarios[{s_i}].health: ok > probes; fix: ok counts answered probes")
    return problems


def validate_results(doc: Any, source: str = "results.json") -> None:
    """Raise ``ResultsError`` listing every problem of ``doc``; return quietly when it is valid."""
    problems = _schema_problems(doc)
    if not problems and isinstance(doc, Mapping):
        problems = _semantic_problems(doc)
    if problems:
        raise ResultsError(source, problems)


def parse_results(doc: Mapping[str, Any], source: str = "results.json") -> Run:
    """Validate ``doc`` and build the typed run from it."""
    validate_results(doc, source)
    return Run.from_json(doc)


def load_results(path: Path) -> Run:
    """Read, validate and parse a results.json file (or a run folder containing one)."""
    if path.is_dir():
        path = path / "results.json"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultsError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(
            str(path), [f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"]
        ) from exc
    if not isinstance(doc, dict):
        raise ResultsError(str(path), [f"at $: expected a JSON object, got {type(doc).__name__}"])
    return parse_results(doc, str(path))
