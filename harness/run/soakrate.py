"""The rate a soak offers: one the bot sustains under its instrumentation, unless ``--rate`` says otherwise.

A soak of a saturated bot measures its backlog, not a leak (harness.stats.saturation): on a machine
2-3x slower than this one, 100 trades/s under memray held the bot at 96% CPU with 1,024 trades in
flight. So the default rate comes from the run's own calibration, taken just before the scenario:

    rate = HEADROOM x cpu_ref_per_s / REF_ITERATIONS_PER_TRADE

``REF_ITERATIONS_PER_TRADE`` is the bot's CPU per trade expressed in iterations of the calibration's CPU
reference loop (a figure that travels between machines: ``harness.run.figures``), measured here on real
soaks at 20 trades/s, 10 pairs, idle work included: 20.2 ms x 5.53M it/s = 112k under memray,
6.4 ms x 2.94M it/s = 19k without. A bot that traces its heap (``debug.heap_trace_frames``, the soak's
default) costs ``HEAP_TRACE_COST.cpu_per_trade_factor`` (1.9) times that (harness.run.heapgrowth).
``HEADROOM`` keeps the bot at about half a core, leaving room for GC,
bursts of blocks and the share of two cores the harness and anvil take. The result is rounded down to
a multiple of 5 and kept within [MIN_RATE, MAX_RATE]; without a calibration (a user's node) it is
``DEFAULT_RATE``. The choice and its inputs are recorded as ``conditions.soak_rate``; the saturation
rule still judges whether the bot kept up at that rate.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from harness.run.scenarios import Profile, Scenario, Step

HEADROOM = 0.5  # of one core
REF_ITERATIONS_PER_TRADE = {True: 112_000.0, False: 19_000.0}  # memray on / off
MIN_RATE, MAX_RATE = 5.0, 100.0
DEFAULT_RATE = 10.0  # no calibration to scale by: a rate this machine's memray soak held at a fifth of a core


def choose_rate(calibration: Mapping[str, Any] | None, *, memray: bool, heap_trace: bool = False,
                ) -> tuple[float, str]:
    """(trades per second, how it was chosen)."""
    from harness.run.heapgrowth import HEAP_TRACE_COST

    cpu_ref = calibration.get("cpu_ref_per_s") if isinstance(calibration, Mapping) else None
    if not isinstance(cpu_ref, int | float) or not cpu_ref > 0:
        return DEFAULT_RATE, (f"fixed default {DEFAULT_RATE:g}/s: no calibration to scale by "
                              f"(--rate to choose another)")
    per_trade = REF_ITERATIONS_PER_TRADE[memray] * (HEAP_TRACE_COST.cpu_per_trade_factor if heap_trace else 1.0)
    raw = HEADROOM * float(cpu_ref) / per_trade
    rate = min(MAX_RATE, max(MIN_RATE, math.floor(raw / 5.0) * 5.0))
    return rate, (f"from the calibration: {HEADROOM:g} of a core x CPU reference {cpu_ref:,.0f} it/s / "
                  f"{per_trade:,.0f} it per trade ({'with' if memray else 'without'} memray"
                  f"{', heap traced' if heap_trace else ''}, measured) = "
                  f"{raw:.1f}/s, rounded down to a multiple of 5 within [{MIN_RATE:g}, {MAX_RATE:g}]")


def soak_scenario(rate: float, minutes: float, memray: bool) -> Scenario:
    what = f"{rate:g} trades/s for {minutes / 60:g} h" + (" with memory tracking" if memray else "")
    return Scenario("soak", "trades", (Step(rate, minutes * 60.0),), drain_s=8.0, description=what)


def with_rate(profile: Profile, rate: float, memray: bool) -> Profile:
    """``profile`` with its soak scenario at ``rate`` (same length)."""
    scenarios = tuple(soak_scenario(rate, s.duration_s / 60.0, memray) if s.id == "soak" else s
                      for s in profile.scenarios)
    return dataclasses.replace(profile, scenarios=scenarios)
