from __future__ import annotations

import asyncio
import time

import pytest

from bot.engine.actors import Engine, EngineSettings, RunningHandler
from bot.engine.mailbox import Message, Priority
from bot.engine.watchdog import StuckDetector, Watchdog, lag_from_drift
from bot.telemetry.recorder import Telemetry


def test_lag_from_drift() -> None:
    assert lag_from_drift(0.1, 0.13) == pytest.approx(0.03)
    assert lag_from_drift(0.1, 0.09) == 0.0


def test_stuck_detector_reports_each_handler_once_and_forgets_finished() -> None:
    det = StuckDetector(stuck_after_ns=1000)
    h1 = RunningHandler("A", "tick", 0)
    h2 = RunningHandler("B", "tick", 500)
    assert det.check([h1, h2], now_ns=999) == []
    assert det.check([h1, h2], now_ns=1200) == [h1]
    assert det.check([h1, h2], now_ns=1600) == [h2]
    assert det.check([h1, h2], now_ns=5000) == []
    assert det.stuck_now == 2 and det.stuck_total == 2
    # A new call of the same pair is a different handler.
    h3 = RunningHandler("A", "tick", 4000)
    assert det.check([h3], now_ns=5100) == [h3]
    assert det.stuck_now == 1


def test_observe_reports_into_telemetry() -> None:
    tele = Telemetry()
    stuck: list[tuple[RunningHandler, float]] = []
    h = RunningHandler("A", "tick", 0)
    wd = Watchdog(lambda: [h], telemetry=tele, stuck_after_s=1.0, on_stuck=lambda hh, s: stuck.append((hh, s)))
    wd.observe(0.004, now_ns=2_000_000_000)
    assert tele.gauges()["loop_lag_ms"] == pytest.approx(4.0)
    assert tele.counter_totals()["stuck_handlers"] == 1
    assert stuck == [(h, 2.0)]
    s = wd.statistics()
    assert s.ticks == 1 and s.lag_max_ms == pytest.approx(4.0) and s.stuck_total == 1
    closed = tele.rotate()
    assert "event_loop_lag" in closed.histograms


async def test_blocked_loop_shows_as_lag() -> None:
    wd = Watchdog(lambda: [], interval_s=0.01)
    task = asyncio.create_task(wd.run(max_ticks=3))
    await asyncio.sleep(0)  # let the watchdog start its first sleep
    time.sleep(0.08)  # noqa: ASYNC251 -- block the loop on purpose, as CPU-bound work would
    await asyncio.wait_for(task, 5.0)
    assert wd.statistics().lag_max_ms >= 50.0
    assert wd.statistics().ticks == 3


async def test_stuck_handler_detected_then_timed_out() -> None:
    async def handler(pair: str, m: Message) -> None:
        await asyncio.sleep(60)

    tele = Telemetry()
    eng = Engine(handler, EngineSettings(handler_timeout_s=0.3))
    eng.add_pair("A")
    await eng.start()
    wd = Watchdog(eng.running_handlers, telemetry=tele, interval_s=0.01, stuck_after_s=0.05)
    wd.start()
    eng.post("A", Message(Priority.ENTRY, "order"))
    async with asyncio.timeout(5):
        while eng.actor("A").errors.get("handler_timeout", 0) == 0:
            await asyncio.sleep(0.01)
    await wd.stop()
    assert tele.counter_totals().get("stuck_handlers") == 1
    assert wd.statistics().stuck_total == 1
    assert eng.running_handlers() == []
    await eng.stop(1.0)
