"""Live progress for long runs (rich): a dashboard, or a bar per scenario with a one-line live summary.

``watch(source, title)`` turns the live view into the dashboard (``harness.run.dashboard``): a task on
the event loop builds a frozen snapshot from ``source()`` a few times a second (decoding each closed
interval once), and rich ``Live`` draws the latest one from its own refresh thread. Without a source
(``demo``, ``profile``) it shows the progress bars with the caller's live line, as before.

With ``enabled=False`` (``--no-progress``), or when stderr is not a terminal, nothing is redrawn:
log lines are printed plainly and, every ``PLAIN_EVERY_S``, one line with the dashboard's key
figures and no ANSI codes, which is what CI logs want. ``log`` lines always appear above the live
view (they go through the ``Live``'s console).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bot.redact import redact_text
from harness.run._dashmodel import DashboardSnapshot, Figures, StepProgress, VerdictLine
from harness.run._dashrender import plain_line, render, verdict_summary
from harness.run.dashboard import judge_finished, snapshot

REFRESH_S = 0.5  # a new snapshot twice a second: a frame costs ~2 ms of CPU to draw
PLAIN_EVERY_S = 10.0
MAX_BARS = 5  # without a dashboard: the bars of the latest tasks (a stress search adds one per step)


class Ui:
    def __init__(self, enabled: bool = True, *, console: Console | None = None,
                 plain_every_s: float = PLAIN_EVERY_S) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = enabled and (self.console.is_terminal if console is not None else sys.stderr.isatty())
        self.plain_every_s = plain_every_s
        self._progress: Progress | None = None
        self._live: Live | None = None
        self._last_plain = 0.0
        self._step: StepProgress | None = None
        self._step_task: TaskID | None = None
        self._source: Callable[[], Figures] | None = None
        self._title = ""
        self._snapshot: DashboardSnapshot | None = None
        self._verdicts: tuple[VerdictLine, ...] = ()
        self._judged: tuple[str, ...] = ()
        self._refresher: asyncio.Task[None] | None = None
        self._judging: asyncio.Task[None] | None = None
        self._to_judge: tuple[dict[str, Any], Path | None] | None = None
        self._view_failed = False

    def __repr__(self) -> str:
        mode = "live" if self.enabled else "plain"
        return f"<Ui {mode} dashboard={self._source is not None} verdicts={len(self._verdicts)}>"

    def __enter__(self) -> Ui:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[live]}"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, auto_refresh=False)
            self._live = Live(console=self.console, get_renderable=self._frame, refresh_per_second=2)
            self._live.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        for task in (self._refresher, self._judging):
            if task is not None:
                task.cancel()
        if self._live is not None:
            self._refresh_snapshot()  # the last frame stays on the terminal: make it the latest figures
            self._live.stop()
            self._live = None
        self._progress = None

    def _frame(self) -> RenderableType:
        """What the ``Live`` draws (its refresh thread): the latest snapshot, never built here."""
        snap = self._snapshot
        if snap is not None:
            return render(snap)
        return self._progress if self._progress is not None else ""

    def log(self, message: str) -> None:
        message = redact_text(message)  # lines quote errors, and an error may quote a node URL with its key
        self.console.log(message) if self.enabled else print(f"[harness] {message}", file=sys.stderr, flush=True)

    def task(self, description: str, total: float) -> TaskID | None:
        self._step = StepProgress(description, 0.0, total)
        if self._progress is None:
            self.log(f"{description} ...")
            self._step_task = None
            return None
        for old in self._progress.task_ids[:-(MAX_BARS - 1)]:
            self._progress.update(old, visible=False)
        self._step_task = self._progress.add_task(description, total=total, live="")
        return self._step_task

    def update(self, task: TaskID | None, completed: float, live: str = "") -> None:
        if self._step is not None and task == self._step_task:
            self._step = StepProgress(self._step.label, completed, self._step.total_s)
        if self._progress is not None and task is not None:
            self._progress.update(task, completed=completed, live=live)
        elif self._source is None and live and time.monotonic() - self._last_plain >= self.plain_every_s:
            self._last_plain = time.monotonic()
            print(f"[harness]   {completed:.0f}s  {live}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------------------ the dashboard
    def watch(self, source: Callable[[], Figures], title: str) -> None:
        """Show the dashboard of ``source`` from now on (call it on the event loop that the source reads)."""
        self._source, self._title = source, title
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop(), name="dashboard")

    def _refresh_snapshot(self) -> None:
        if self._source is None:
            return
        try:
            figures = self._source()
        except Exception as exc:  # the view must never cost the run: say so once, keep the last frame
            if not self._view_failed:
                self._view_failed = True
                self.log(f"live view: {type(exc).__name__}: {exc} (the run goes on)")
            return
        self._snapshot = snapshot(self._title, figures, step=self._step, verdicts=self._verdicts,
                                  judged=self._judged)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S if self.enabled else self.plain_every_s)
            self._refresh_snapshot()
            if not self.enabled and self._snapshot is not None:
                print(f"[harness] live: {plain_line(self._snapshot)}", file=sys.stderr, flush=True)

    def judge_finished(self, doc: dict[str, Any], slo: Path | None) -> None:
        """Judge the finished scenarios of ``doc`` (results.json so far) for "the verdicts so far", in a worker
        thread; a newer document replaces one still waiting. Only with a dashboard."""
        if self._source is None:
            return
        self._to_judge = (doc, slo)
        if self._judging is None or self._judging.done():
            self._judging = asyncio.get_running_loop().create_task(self._judge_loop(), name="dashboard-judge")

    async def _judge_loop(self) -> None:
        while self._to_judge is not None:
            doc, slo = self._to_judge
            self._to_judge = None
            try:
                self._verdicts, self._judged = await asyncio.to_thread(judge_finished, doc, slo)
            except Exception as exc:  # the final judging is the run's; this one only informs
                self.log(f"live verdicts: could not judge ({type(exc).__name__}: {exc})")
                continue
            self._refresh_snapshot()
            if self._snapshot is not None:
                self.log(verdict_summary(self._snapshot))
