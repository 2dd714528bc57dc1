"""A py-spy profile's folder: its stacks in the formats asked for, its conditions (``profile.json``), its page.

Both ``harness profile`` and ``harness run --profile-bot`` write one folder per profile:

- ``bot-profile.folded.txt``: what py-spy recorded (``raw``), always kept: it is the source of the others
  and small, since py-spy folds identical stacks;
- ``bot-flamegraph.svg`` and ``bot-profile.speedscope.json`` when asked for (``--format``), rendered from
  the folded stacks (``harness.probes.flame``), so several formats cost one sampling pass;
- ``profile.json``: ``{"schema": "tradebench-profile/1", "conditions", "files", "py_spy", "functions",
  "failure"}``; conditions hold the offered rate, seconds, py-spy's sampling options, the mode (attach or
  launch), the calibration if the run took one, the bot's settings, machine and node;
- ``index.html``: the top functions by total and by self time, linking the files
  (``harness.report.profilepage``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.redact import redact_tree
from harness.errors import HarnessError
from harness.probes.flame import flamegraph_svg, speedscope
from harness.probes.folded import FunctionTable, function_table, parse_folded
from harness.probes.pyspy import SpyResult

SCHEMA = "tradebench-profile/1"
FORMATS = ("flamegraph", "speedscope", "raw")
FILES = {"flamegraph": "bot-flamegraph.svg", "speedscope": "bot-profile.speedscope.json",
         "raw": "bot-profile.folded.txt"}
RAW = FILES["raw"]


def parse_formats(text: str) -> tuple[str, ...]:
    """``"flamegraph,speedscope"`` -> the formats in canonical order; ``all`` is every one."""
    items = [f.strip() for f in text.split(",") if f.strip()]
    if items == ["all"]:
        return FORMATS
    bad = [f for f in items if f not in FORMATS]
    if bad or not items:
        raise HarnessError(f"--format {text!r}: give one or more of {', '.join(FORMATS)} separated by commas "
                           "(or all), e.g. --format flamegraph,speedscope")
    return tuple(f for f in FORMATS if f in items)


@dataclass(frozen=True)
class ProfileRecord:
    """One written profile folder."""

    folder: Path
    files: dict[str, str]  # format -> file name in ``folder``
    table: FunctionTable
    conditions: dict[str, Any]
    spy: dict[str, Any]
    failure: str | None

    @property
    def page(self) -> Path:
        return self.folder / "index.html"

    def summary(self, base: Path, top: int = 5) -> dict[str, Any]:
        """What a run's scenario carries about its profile (paths relative to the run folder ``base``)."""
        rel = self.folder.relative_to(base)
        doc = self.table.to_json()
        return {
            "folder": str(rel), "page": str(rel / "index.html"),
            "files": {fmt: str(rel / name) for fmt, name in self.files.items()},
            "samples": self.table.samples, "sampling": self.conditions.get("sampling"),
            "mode": self.conditions.get("mode"), "failure": self.failure,
            "by_self": doc["by_self"][:top], "by_total": doc["by_total"][:top],
        }


def render_profile(folder: Path, result: SpyResult, formats: tuple[str, ...], conditions: dict[str, Any],
                   title: str, *, run_page: Path | None = None) -> ProfileRecord:
    """Render the recorded stacks into ``folder`` and write ``profile.json`` and ``index.html`` there."""
    from harness.report.profilepage import write_profile_page

    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    stacks: list[tuple[tuple[str, ...], int]] = []
    if result.raw is not None:
        raw = folder / RAW
        if result.raw.resolve() != raw.resolve():
            raw.write_bytes(result.raw.read_bytes())
        files["raw"] = RAW
        stacks = parse_folded(raw.read_text(encoding="utf-8", errors="replace"))
        if "flamegraph" in formats:
            (folder / FILES["flamegraph"]).write_text(flamegraph_svg(stacks, title), encoding="utf-8")
            files["flamegraph"] = FILES["flamegraph"]
        if "speedscope" in formats:
            (folder / FILES["speedscope"]).write_text(json.dumps(speedscope(stacks, title)), encoding="utf-8")
            files["speedscope"] = FILES["speedscope"]
    spy = {"returncode": result.returncode, "samples": result.samples, "errors": result.errors,
           "wall_s": result.wall_s, "log": result.log.name if result.log.parent == folder else str(result.log)}
    # Redacted here too: a node URL in the conditions may carry a provider's key.
    conditions = redact_tree({**conditions, "formats": list(formats)})
    record = ProfileRecord(folder, files, function_table(stacks), conditions, spy,
                           None if result.failure is None else result.failure.message)
    doc = {"schema": SCHEMA, "title": title, "conditions": record.conditions, "files": files, "py_spy": spy,
           "functions": record.table.to_json(), "failure": record.failure}
    (folder / "profile.json").write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    write_profile_page(folder / "index.html", doc, run_page=run_page)
    return record
