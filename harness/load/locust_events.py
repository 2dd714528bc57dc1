"""Locust's events wired to HdrHistogram recording. Runs only inside Locust (gevent) processes.

Imported by ``locustfile.py``; never import it from an asyncio process (it imports locust and gevent).

- Every process: the ``request`` event records into a ``SecondRecorder`` (the master runs no
  users, so it records nothing).
- A worker attaches its recorder's delta to every report it sends (``report_to_master``: the same
  synchronous call in which Locust attaches its own stats delta, so both carry the same requests),
  and marks the first report after its users stopped ``final``.
- The master keeps every report (``worker_report``); a single-process run keeps its own recorder.
- The end: with ``--tb-stop-after S`` the master (or the single process) stops the users S seconds
  after the test started, gracefully (each user finishes the request in flight, within Locust's
  ``--stop-timeout``), waits for every worker's final report, and only then quits. Locust's own
  ``--run-time`` quits at once and gives late worker reports 0.5 s, which a loaded machine misses.
- On ``quitting`` the master (or single process) merges the reports and writes the file named by
  ``TB_LOCUST_HDR_OUT`` (``harness.load.locust_merge``).
- ``TB_LOCUST_RAW_DIR`` (tests only): each process that ran users also writes every raw sample
  (``raw-<pid>.json``) when its users have stopped.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
import orjson
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from harness.load.locust_hdr import (
    ENV_OUT,
    ENV_RAW_DIR,
    ENV_USER_RATE,
    FINAL_REPORT_WAIT_S,
    REPORT_KEY,
    SecondRecorder,
    WorkerReport,
)
from harness.load.locust_merge import merge_reports, write_run

LOCAL_ID = "local"

log = logging.getLogger("harness.locust")


class _Hooks:
    """The state of one Locust process's recording (one per process: Locust has one environment)."""

    def __init__(self, raw_dir: str | None) -> None:
        self.recorder = SecondRecorder(keep_raw=bool(raw_dir))
        self.raw_dir = raw_dir
        self.reports: list[tuple[str, WorkerReport]] = []
        self.users_stopped = False
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.finishing = False

    def __repr__(self) -> str:
        return f"<_Hooks {self.recorder!r} reports={len(self.reports)} stopped={self.users_stopped}>"

    def final_ids(self) -> set[str]:
        return {wid for wid, rep in self.reports if rep.final}


def add_arguments(parser: Any) -> None:
    """Our options on Locust's command line; the master passes them on to its workers with each spawn."""
    parser.add_argument("--tb-user-rate", type=float, default=float(os.environ.get(ENV_USER_RATE, "10")),
                        include_in_web_ui=False, help="tasks per second per user (constant throughput)")
    parser.add_argument("--tb-path", default="/", include_in_web_ui=False,
                        help="the path PathUser requests (with its query string)")
    parser.add_argument("--tb-stop-after", type=float, default=0.0, include_in_web_ui=False,
                        help="stop the users this many seconds after the test started, then quit once every "
                             "worker's final HdrHistogram report arrived (0: Locust's --run-time alone)")


def install(environment: Any) -> None:
    """Called from Locust's ``init`` event, once the runner exists."""
    hooks = _Hooks(os.environ.get(ENV_RAW_DIR) or None)
    runner = environment.runner
    events = environment.events

    def on_request(name: str, response_time: float, exception: BaseException | None = None,
                   request_type: str = "", **_: Any) -> None:
        hooks.recorder.record(f"{request_type} {name}".strip(), float(response_time or 0.0), exception is not None,
                              time.time())

    def on_test_start(**_: Any) -> None:
        hooks.recorder.clear()
        hooks.users_stopped = False
        hooks.started_at, hooks.stopped_at = time.time(), None
        stop_after = float(getattr(environment.parsed_options, "tb_stop_after", 0.0) or 0.0)
        if stop_after > 0 and not isinstance(runner, WorkerRunner):
            gevent.spawn_later(stop_after, _finish, environment, hooks)

    def on_test_stop(**_: Any) -> None:
        hooks.users_stopped = True
        if hooks.stopped_at is None:
            hooks.stopped_at = time.time()
        if hooks.raw_dir and not isinstance(runner, MasterRunner):
            _write_raw(Path(hooks.raw_dir), hooks.recorder)

    def on_report_to_master(data: dict[str, Any], **_: Any) -> None:
        data[REPORT_KEY] = hooks.recorder.drain(final=hooks.users_stopped).to_wire()

    def on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
        if REPORT_KEY in data:
            hooks.reports.append((client_id, WorkerReport.from_wire(data[REPORT_KEY])))

    def on_quitting(**_: Any) -> None:
        if isinstance(runner, LocalRunner):
            hooks.reports.append((LOCAL_ID, hooks.recorder.drain(final=True)))
        out = os.environ.get(ENV_OUT)
        if out and not isinstance(runner, WorkerRunner):
            write_run(Path(out), merge_reports(hooks.reports, started_at=hooks.started_at,
                                               stopped_at=hooks.stopped_at))

    events.request.add_listener(on_request)
    events.test_start.add_listener(on_test_start)
    events.test_stop.add_listener(on_test_stop)
    events.quitting.add_listener(on_quitting)
    if isinstance(runner, WorkerRunner):
        events.report_to_master.add_listener(on_report_to_master)
    if isinstance(runner, MasterRunner):
        events.worker_report.add_listener(on_worker_report)


def _finish(environment: Any, hooks: _Hooks) -> None:
    """Stop the users gracefully, wait for every worker's last samples, then quit (see the module doc)."""
    if hooks.finishing:
        return
    hooks.finishing = True
    runner = environment.runner
    hooks.stopped_at = time.time()
    expected = {c.id for c in runner.clients.all} if isinstance(runner, MasterRunner) else set()
    runner.stop()
    deadline = time.monotonic() + FINAL_REPORT_WAIT_S
    while not expected <= hooks.final_ids() and time.monotonic() < deadline:
        gevent.sleep(0.05)
    missing = expected - hooks.final_ids()
    if missing:
        log.warning("no final HdrHistogram report from worker(s) %s within %g s: their last samples are missing",
                    ", ".join(sorted(missing)), FINAL_REPORT_WAIT_S)
    runner.quit()


def _write_raw(raw_dir: Path, recorder: SecondRecorder) -> None:
    raw_dir.mkdir(parents=True, exist_ok=True)
    path = raw_dir / f"raw-{os.getpid()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps({"pid": os.getpid(), "samples": recorder.raw}))
    os.replace(tmp, path)
