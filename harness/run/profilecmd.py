"""``harness profile``: py-spy on the bot under steady load, into a profile folder with its conditions and page.

The stack is a run's (anvil, deployment, feed, the bot as its own process). By default py-spy attaches to
the bot's pid after a warm-up, for ``--seconds``, while the feed offers trades at ``--rate``: the profile is
exactly the loaded window. With ``--spy-launch`` py-spy starts the bot as its own child instead, which needs
no permission to attach (the fix when ptrace is refused and the machine cannot be changed); the profile
then covers the bot's whole life, start-up and warm-up included, and ends when the bot is stopped after the
load. Either way py-spy records once (``raw``) and the formats asked for are rendered from it
(``harness.run.profiling``). The folder is ``reports/profile-<run id>/``; a refusal still writes it, with
the reason on its page, and ends the command with the message naming the cause and the fix (exit 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass, replace
from typing import Any

import psutil

from harness.errors import HarnessError
from harness.load.schedules import schedule_from_spec
from harness.probes.pyspy import SpyOptions, SpyRecording, SpyResult, launch_prefix, pyspy_version
from harness.results.writer import new_run_id
from harness.run.conditions import conditions
from harness.run.options import RunOptions
from harness.run.profiling import RAW, ProfileRecord, render_profile
from harness.run.progress import Ui
from harness.run.stack import Stack, stack

WARMUP_S = 3.0  # connections and caches warm before sampling starts


@dataclass(frozen=True)
class ProfileRequest:
    seconds: int
    rate: float
    formats: tuple[str, ...]
    spy: SpyOptions
    launch: bool = False
    calibrate: bool = False

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.rate <= 0:
            raise HarnessError("--seconds and --rate must be positive")


def profile_conditions(st: Stack, req: ProfileRequest, calibration: dict[str, Any] | None) -> dict[str, Any]:
    return {
        **conditions(st.node_info, st.bot_settings, st.network_profile),
        "rate": req.rate, "seconds": req.seconds, "warmup_s": WARMUP_S,
        "mode": "launch" if req.launch else "attach", "sampling": req.spy.as_dict(), "py_spy": pyspy_version(),
        "calibration": calibration,
    }


async def _calibration(st: Stack, ui: Ui) -> dict[str, Any] | None:
    from harness.probes.calibration import calibrate, dev_account

    if st.calibration_key_index is None:
        return None
    cal = await calibrate(st.node_url, dev_account(st.calibration_key_index))
    ui.log(f"calibration: CPU reference {cal.cpu_ref_per_s:,.0f}/s, node accepts {cal.node_accept_per_s:,.0f} tx/s")
    return cal.as_dict()


async def _end_launched(st: Stack, recording: SpyRecording, grace_s: float = 20.0) -> SpyResult:
    """Launch mode: stop the bot (py-spy's child) as the session would, so py-spy sees it exit and writes."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(st.bot.pid).children():
            child.send_signal(signal.SIGTERM)
    return await recording.wait(grace_s)


async def _profile(opts: RunOptions, req: ProfileRequest) -> ProfileRecord:
    folder = (opts.out / f"profile-{new_run_id()}").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    recording = SpyRecording(folder / RAW, req.spy)
    if req.launch:
        opts = replace(opts, bot_wrap=tuple(launch_prefix(folder / RAW, req.spy)))
    ui = Ui(enabled=opts.progress)
    with ui:
        async with stack(opts, folder, ui) as st:
            if req.launch:
                assert st.bot.proc is not None
                recording.adopt(st.bot.proc)
            calibration = await _calibration(st, ui) if req.calibrate else None
            await st.feed.wait_for_client(10)
            trades = schedule_from_spec({"kind": "constant", "rate": req.rate, "duration": req.seconds + WARMUP_S + 1})
            feed = asyncio.create_task(st.feed.run(trades=trades))
            await asyncio.sleep(WARMUP_S)
            if not req.launch:
                recording.start(st.bot.pid, duration_s=req.seconds)
            task = ui.task(f"py-spy on pid {st.bot.pid} at {req.rate:g} trades/s", req.seconds)
            start = time.monotonic()
            while time.monotonic() - start < req.seconds and (req.launch or recording.running):
                await asyncio.sleep(0.5)
                ui.update(task, min(req.seconds, time.monotonic() - start))
            await feed
            result = await (_end_launched(st, recording) if req.launch else recording.wait(30))
            cond = profile_conditions(st, req, calibration)
    return render_profile(folder, result, req.formats, cond, f"bot at {req.rate:g} trades/s, {req.seconds} s")


def run_profile(opts: RunOptions, req: ProfileRequest) -> int:
    record = asyncio.run(_profile(opts, req))
    if record.failure is not None:
        raise HarnessError(record.failure)
    t = record.table
    print(f"{t.samples:,} samples; share of the bot's samples, self / total (top 15 by self):")
    for f in t.by_self[:15]:
        print(f"  {f.self_ * 100:5.1f}%  {f.inclusive * 100:5.1f}%  {f.name}")
    for fmt, name in record.files.items():
        print(f"{fmt}: {record.folder / name}")
    print(f"profile: {record.page}")
    return 0


def profile_request(args: Any) -> ProfileRequest:
    from harness.run.profiling import parse_formats

    spy = SpyOptions(rate=args.sample_rate, native=args.native, idle=args.idle, gil=args.gil,
                     subprocesses=args.subprocesses)
    return ProfileRequest(args.seconds, args.rate, parse_formats(args.format), spy, launch=args.spy_launch,
                          calibrate=args.calibrate)

