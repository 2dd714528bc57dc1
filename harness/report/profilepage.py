"""A py-spy profile's page (``index.html`` in its folder): files, top functions by self and total time,
conditions. Rendered from the ``profile.json`` document (``harness.run.profiling``) alone, so it can be
re-rendered from the folder."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.redact import redact_tree
from harness.report.html import environment, flatten, generated_at


def write_profile_page(path: Path, doc: Mapping[str, Any], *, run_page: Path | None = None) -> Path:
    conditions = redact_tree(dict(doc.get("conditions", {})))
    html = environment().get_template("profile.html.j2").render(
        doc=doc, conditions={"sampling": {}, **conditions}, rows=flatten(conditions), generated=generated_at(),
        run_link=None if run_page is None else os.path.relpath(run_page, path.parent),
    )
    path.write_text(html, encoding="utf-8")
    return path
