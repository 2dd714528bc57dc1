"""Quiescence before a scenario: nothing of an earlier scenario still running (decision pure, wait bounded).

A scenario's figures must be its own. Before it starts, the runner waits until the bot has no
trade in flight and no message queued, the node's pool is empty (``txpool_status``), and the
bot's CPU is back near idle -- or until ``timeout_s`` passes, in which case the scenario runs
anyway and its document says it started unsettled. The wait itself is recorded (``settle_s``),
so a scenario that needed 20 s to settle is visible, not hidden.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.run.stack import Stack

POLL_S = 0.25
QUIET_CHECKS = 2  # consecutive quiet observations: one quiet instant between two bursts is not quiet
# Idle CPU differs by machine (a slower box idles higher while it follows 20 blocks/s): quiet is
# "near the lowest CPU this bot has shown", with a floor that an idle bot meets on any machine here.
CPU_FLOOR_PERCENT = 20.0
CPU_SLACK_PERCENT = 5.0


@dataclass(frozen=True)
class Observation:
    in_flight: int | None  # the bot's gauges (None: no fresh reading yet)
    queue_depth: int | None
    txpool_pending: int | None  # None: the node has no txpool_status (a user's endpoint)
    txpool_queued: int | None
    bot_cpu_percent: float | None
    idle_cpu_percent: float | None  # the lowest CPU sample since the bot started


def cpu_limit(idle: float | None) -> float:
    return max(CPU_FLOOR_PERCENT, (idle or 0.0) * 1.5 + CPU_SLACK_PERCENT)


def why_busy(o: Observation) -> list[str]:
    """What still runs; an empty list means quiet (pure)."""
    busy = []
    if o.in_flight is None or o.queue_depth is None:
        busy.append("no fresh telemetry")
    else:
        if o.in_flight:
            busy.append(f"{o.in_flight} trades in flight")
        if o.queue_depth:
            busy.append(f"{o.queue_depth} messages queued")
    if o.txpool_pending or o.txpool_queued:
        busy.append(f"node pool {o.txpool_pending or 0} pending / {o.txpool_queued or 0} queued")
    if o.bot_cpu_percent is None:
        busy.append("no CPU sample yet")
    elif o.bot_cpu_percent > cpu_limit(o.idle_cpu_percent):
        busy.append(f"bot CPU {o.bot_cpu_percent:.0f}% (> {cpu_limit(o.idle_cpu_percent):.0f}%)")
    return busy


@dataclass(frozen=True)
class Settled:
    settle_s: float
    timed_out: bool
    last: Observation
    busy: tuple[str, ...]  # what was still running at a time-out

    def summary(self) -> dict[str, Any]:
        o = asdict(self.last)
        return {"settle_s": round(self.settle_s, 2),
                "quiescence": {"in_flight": o["in_flight"] or 0, "queue_depth": o["queue_depth"] or 0,
                               "txpool_pending": o["txpool_pending"] or 0, "txpool_queued": o["txpool_queued"] or 0,
                               "bot_cpu_percent": round(o["bot_cpu_percent"] or 0.0, 1),
                               "idle_cpu_percent": round(o["idle_cpu_percent"] or 0.0, 1),
                               "timed_out": self.timed_out, "busy": list(self.busy)}}


def _hex(v: Any) -> int:
    return int(v, 16) if isinstance(v, str) else int(v)


async def txpool(node_url: str) -> tuple[int | None, int | None]:
    from harness.node.jsonrpc import NodeRpc

    try:
        async with NodeRpc(node_url, timeout=5.0) as rpc:
            status: Mapping[str, Any] = await rpc.call("txpool_status")
        return _hex(status.get("pending", 0)), _hex(status.get("queued", 0))
    except Exception:  # a node without the txpool namespace: that condition cannot be checked
        return None, None


async def observe(st: Stack, since_mono: float) -> Observation:
    fresh = st.puller.pulled_at > since_mono
    g = st.puller.gauges if fresh else {}
    pending, queued = await txpool(st.node_url)
    samples = st.sampler.series.samples
    origin = st.sampler.series.origin
    recent = [s.cpu_percent for s in samples if origin + s.t > since_mono]
    idle = min((s.cpu_percent for s in samples), default=None)
    return Observation(
        in_flight=int(g["in_flight"]) if "in_flight" in g else None,
        queue_depth=int(g.get("queue_depth", 0)) if "in_flight" in g else None,
        txpool_pending=pending, txpool_queued=queued,
        bot_cpu_percent=recent[-1] if recent else None, idle_cpu_percent=idle)


async def settle(st: Stack, *, timeout_s: float = 60.0) -> Settled:
    """Wait (bounded) until the stack is quiet; returns how long it took and what was seen."""
    start = time.monotonic()
    deadline = start + timeout_s
    quiet_in_a_row = 0
    last = Observation(None, None, None, None, None, None)
    busy: list[str] = ["not observed"]
    while True:
        last = await observe(st, start)
        busy = why_busy(last)
        quiet_in_a_row = quiet_in_a_row + 1 if not busy else 0
        if quiet_in_a_row >= QUIET_CHECKS:
            return Settled(time.monotonic() - start, False, last, ())
        if time.monotonic() >= deadline:
            return Settled(time.monotonic() - start, True, last, tuple(busy))
        await asyncio.sleep(POLL_S)
