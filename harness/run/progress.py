"""Live progress for long runs (rich): a bar per scenario and a one-line live summary.

With ``enabled=False`` (``--no-progress``, or when stdout is not a terminal) it prints plain
log lines instead, which is what CI logs want.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bot.redact import redact_text


class Ui:
    def __init__(self, enabled: bool = True) -> None:
        self.console = Console(stderr=True)
        self.enabled = enabled and sys.stderr.isatty()
        self._progress: Progress | None = None
        self._last_plain = 0.0

    def __enter__(self) -> Ui:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[live]}"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=False)
            self._progress.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def log(self, message: str) -> None:
        message = redact_text(message)  # lines quote errors, and an error may quote a node URL with its key
        self.console.log(message) if self.enabled else print(f"[harness] {message}", file=sys.stderr, flush=True)

    def task(self, description: str, total: float) -> TaskID | None:
        if self._progress is None:
            self.log(f"{description} ...")
            return None
        return self._progress.add_task(description, total=total, live="")

    def update(self, task: TaskID | None, completed: float, live: str = "") -> None:
        if self._progress is not None and task is not None:
            self._progress.update(task, completed=completed, live=live)
        elif live and time.monotonic() - self._last_plain >= 10:
            self._last_plain = time.monotonic()
            print(f"[harness]   {completed:.0f}s  {live}", file=sys.stderr, flush=True)
