"""Headless chromium for the reports: dump a page's DOM, take a screenshot, regenerate the docs images.

Used by the browser test (does the page really load from disk, with the verdict table in the DOM?)
and by ``python -m harness.report.browser docs/screenshots`` which renders the run and comparison
pages from the synthetic fixture and screenshots them. Every chromium gets a fresh profile directory
(so no state leaks between runs) and a hard timeout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.errors import HarnessError

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
TIMEOUT_S = 90.0


def chromium() -> str | None:
    """Path of the chromium binary, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    exe = chromium()
    if exe is None:
        raise HarnessError("chromium is not installed: apt-get install chromium (./dev setup does it as root)")
    with tempfile.TemporaryDirectory(prefix="tradebench-chromium-") as profile:
        try:
            return subprocess.run(
                [exe, *FLAGS, f"--user-data-dir={profile}", *args],
                capture_output=True,
                timeout=timeout,
                check=True,
            )
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"chromium did not finish within {timeout:g} s: {' '.join(args)}") from exc
        except subprocess.CalledProcessError as exc:
            tail = exc.stderr.decode("utf-8", "replace")[-500:]
            raise HarnessError(f"chromium failed (exit {exc.returncode}): {tail}") from exc


def dump_dom(page: Path, timeout: float = TIMEOUT_S) -> str:
    """The DOM of ``page`` (a local file) after chromium loaded it."""
    return _run(["--dump-dom", page.resolve().as_uri()], timeout).stdout.decode("utf-8", "replace")


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 2400, timeout: float = TIMEOUT_S) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--screenshot={out.resolve()}", f"--window-size={width},{height}", page.resolve().as_uri()], timeout)
    if not out.exists():
        raise HarnessError(f"chromium reported success but wrote no screenshot at {out}")
    return out


def docs_screenshots(out_dir: Path) -> list[Path]:
    """Render the fixture's run and comparison pages and screenshot them into ``out_dir``."""
    from harness.report import write_comparison, write_run_report
    from harness.report.fixtures import synthetic_results

    with tempfile.TemporaryDirectory(prefix="tradebench-shots-") as tmp:
        reports = Path(tmp)
        dirs = []
        for doc in (synthetic_results(1), synthetic_results(3, slowdown={"tx_submission": 1.3})):
            run_dir = reports / doc["run_id"]
            run_dir.mkdir()
            (run_dir / "results.json").write_text(json.dumps(doc), encoding="utf-8")
            write_run_report(doc, run_dir)
            dirs.append(run_dir)
        cmp_index = write_comparison(dirs[0], dirs[1])
        return [
            screenshot(dirs[1] / "index.html", out_dir / "run.png"),
            screenshot(cmp_index, out_dir / "compare.png"),
        ]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path("docs/screenshots")
    for p in docs_screenshots(out):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
