"""One performance run, end to end: chain, deployment, calibration, bot, scenarios, verdicts, report.

The shape follows ../shared/architecture.md: the harness is one asyncio process that starts
anvil, the market-data feed and the bot (its own process, so its resources are measured alone),
then drives each scenario through the feed while it samples the bot's process tree, probes its
health and pulls its telemetry intervals every second.

Before the first scenario the run calibrates the machine (the node's own accept ceiling and a
CPU reference), so every figure can be read against the box it came from. Before every scenario
it waits, bounded, for quiescence (``harness.run.settle``): no earlier trade in flight, the
node's pool empty, the bot's CPU near idle. On our own anvil every scenario starts within 200
blocks of the chain as deployed (``harness.run.chainstate``: a revert to the snapshot, and a
fresh bot, because anvil slows as its chain grows);
with ``fresh_bot`` every scenario also gets a new bot process. Results are flushed after every
scenario (and checkpointed every few seconds inside one, to checkpoint.jsonl), so Ctrl-C or a crash
leaves a readable partial run that ``harness report`` can re-judge; the verdicts and the report are
produced from whatever was measured. The chaos scenarios run after all others, each with its own bot
behind two fault proxies (``harness.run.chaos``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.results.writer import ResultsWriter, new_run_id
from harness.run import progress as progress_ui
from harness.run.chainstate import block_number, node_summary
from harness.run.conditions import conditions
from harness.run.fresh import prepare
from harness.run.ledgercheck import reconcile_session
from harness.run.options import RunOptions, free_port, mining_for
from harness.run.scenarios import Profile
from harness.run.stack import Stack, stack

__all__ = ["RunOptions", "execute", "free_port", "mining_for", "stack"]


def memray_artifacts(writer: ResultsWriter, capture: Path) -> None:
    """After the bot exited (an aggregated capture is written only then): the capture's size per hour,
    flame graphs of what was still allocated at exit and at the peak, a summary of the former, and
    memray's measured overhead, all linked from the report (``x_memray``)."""
    from harness.probes.profilers import MEMRAY_OVERHEAD, memray_capture, render_memray_flamegraph, summarize_memray

    if not capture.exists():
        return
    writer.add_artifact("memray", capture)
    try:
        info = memray_capture(capture)
        summary = summarize_memray(capture)
        pages = {"leaks": render_memray_flamegraph(capture, capture.with_name("memray-leaks.html")),
                 "peak": render_memray_flamegraph(capture, capture.with_name("memray-peak.html"), leaks=False)}
    except Exception as exc:  # a broken capture must not cost the run its verdicts
        writer.add_error("soak", f"memray: {exc}")
        return
    for page in pages.values():
        writer.add_artifact("memray", page)
    writer.set_extension("x_memray", {**summary.as_dict(), "capture": info.as_dict(),
                                      "flamegraphs": {k: v.name for k, v in pages.items()},
                                      "overhead": MEMRAY_OVERHEAD.as_dict()})


def install_signal_handlers(task: asyncio.Task[Any]) -> None:
    """SIGTERM/SIGINT cancel the run task, so ``finally`` blocks write partial results and stop children."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)


async def _calibrate(st: Stack, writer: ResultsWriter, ui: progress_ui.Ui) -> None:
    from harness.probes.calibration import calibrate, dev_account

    if st.calibration_key_index is None:
        ui.log("calibration: skipped (not our own anvil: no transfers are sent to a user's node)")
        return
    try:
        cal = await calibrate(st.node_url, dev_account(st.calibration_key_index))
    except Exception as exc:  # a failed calibration costs the ratios, not the run
        writer.add_error("calibration", str(exc))
        ui.log(f"calibration failed: {exc}")
        return
    writer.set_condition("calibration", cal.as_dict())
    ui.log(f"calibration: node accepts {cal.node_accept_per_s:,.0f} raw tx/s, signs {cal.sign_per_s:,.0f} tx/s, "
           f"CPU reference {cal.cpu_ref_per_s:,.0f}/s ({cal.seconds:.1f} s)")


def _soak_rate(profile: Profile, writer: ResultsWriter, opts: RunOptions, ui: progress_ui.Ui) -> Profile:
    """The soak's rate: --rate, else one the bot sustains on this machine (harness.run.soakrate); recorded."""
    from harness.run.heapgrowth import tracing_frames
    from harness.run.soakrate import choose_rate, with_rate

    if opts.soak_rate is not None:
        rate, how = opts.soak_rate, "--rate"
    else:
        rate, how = choose_rate(writer.run.conditions.get("calibration"), memray=opts.memray,
                                heap_trace=tracing_frames(writer.run.conditions.get("bot")) > 0)
    writer.set_condition("soak_rate", {"rate": rate, "how": how})
    ui.log(f"soak rate: {rate:g} trades/s ({how})")
    return with_rate(profile, rate, opts.memray)


def _node_samples(st: Stack, since_mono: float, until_mono: float) -> list[tuple[float, int, float]]:
    if st.node_sampler is None:
        return []
    origin = st.node_sampler.series.origin
    return [(origin + s.t, s.rss_bytes, s.cpu_percent) for s in st.node_sampler.series.samples
            if since_mono <= origin + s.t <= until_mono]


def _watch(ui: progress_ui.Ui, st: Stack, opts: RunOptions, title: str) -> None:
    """The live dashboard of this stack, its latency figures held against the SLO targets."""
    from harness.run._dashsources import RunSource
    from harness.slo.spec import latency_limits_ms, load_spec

    ui.watch(RunSource(st, latency_limits_ms(load_spec(opts.slo))), title)


async def execute(opts: RunOptions, profile: Profile) -> tuple[Path, dict[str, Any]]:
    """Run ``profile``; returns the run folder and the final results document."""
    from harness.run.finalize import finalize
    from harness.run.scenario_exec import run_scenario
    from harness.run.scenario_profile import scenario_profile
    from harness.slo.spec import load_spec

    load_spec(opts.slo)  # a bad SLO file fails here, naming row and field, before anything starts
    if opts.fresh_bot and opts.memray:
        raise HarnessError("--fresh-bot and memray do not mix: a memray capture follows one bot process")
    if opts.memray and any(s.chaos is not None for s in profile.scenarios):
        raise HarnessError("chaos scenarios and memray do not mix: each chaos scenario starts its own bot process")
    run_id = new_run_id()
    run_dir = (opts.out / run_id).resolve()  # absolute: child processes run elsewhere
    run_dir.mkdir(parents=True, exist_ok=True)
    ui = progress_ui.Ui(enabled=opts.progress)
    writer: ResultsWriter | None = None
    status = "complete"
    this = asyncio.current_task()
    if this is not None:
        install_signal_handlers(this)
    try:
        with ui:
            async with stack(opts, run_dir, ui) as st:
                writer = ResultsWriter(run_dir, run_id, profile.name,
                                       conditions(st.node_info, st.bot_settings, st.network_profile))
                writer.add_artifact("logs", run_dir / "bot.log")
                if opts.memray:  # the judge holds memray's cost against no fail (harness.slo.judge)
                    writer.set_condition("instrumented", {"memray": True})
                _watch(ui, st, opts, f"harness {profile.name} · {run_id}")
                if opts.calibrate:
                    await _calibrate(st, writer, ui)
                if profile.name == "soak":
                    profile = _soak_rate(profile, writer, opts, ui)
                if st.chain is not None:
                    await st.chain.take()  # after the calibration's transfers: every scenario starts here
                chaos = [s for s in profile.scenarios if s.chaos is not None]
                for i, scn in enumerate(s for s in profile.scenarios if s.chaos is None):
                    prepared, decision = await prepare(st, ui, settle_timeout_s=opts.settle_timeout_s,
                                                       fresh_bot=opts.fresh_bot, first=i == 0)
                    t0_mono, block0 = time.monotonic(), await block_number(st.node_url)
                    try:
                        async with scenario_profile(opts, st, scn, writer, ui) as profiled:  # --profile-bot
                            result = await run_scenario(scn, st, ui, writer)
                    except HarnessError as exc:
                        # One scenario's failure (say, Locust would not start) costs its rows, not the
                        # run: they are judged inconclusive with this reason, the rest go on.
                        ui.log(f"scenario {scn.id} failed: {exc}")
                        writer.add_error(scn.id, str(exc))
                        continue
                    prepared["node"] = node_summary(_node_samples(st, t0_mono, time.monotonic()), block0,
                                                    await block_number(st.node_url), decision,
                                                    st.chain.snapshot_block if st.chain is not None else None)
                    result.setdefault("summary", {}).update(prepared)
                    result["summary"].update(profiled)
                    writer.upsert_scenario(result)
                    ui.judge_finished(writer.doc, opts.slo)  # the dashboard's "verdicts so far"
                if chaos:  # last: each runs its own bot behind two proxies (harness.run.chaos)
                    from harness.run.chaos import run_chaos

                    await run_chaos(chaos, st, ui, writer, opts.settle_timeout_s)
                await reconcile_session(st, ui, final=True)  # while the last bot and its chain still stand
    except asyncio.CancelledError:
        status = "interrupted"
    except HarnessError:
        status = "interrupted"  # judged and reported below from what was measured, then re-raised
        raise
    finally:
        if writer is not None:
            if opts.memray:
                memray_artifacts(writer, run_dir / "bot.memray.bin")
            finalize(writer, opts, status)
    if writer is None:
        raise HarnessError("the run stopped before it produced any result")
    return run_dir, writer.doc
