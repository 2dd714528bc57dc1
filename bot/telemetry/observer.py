"""``TelemetryObserver``: routes the engine's events into ``Telemetry`` counters.

Counter keys (per interval in ``/stats``, cumulative in Prometheus):
``messages_handled``, ``ticks_handled`` (only if ``tick_kind`` is given: messages of that kind; leave
it None when the feed client counts ticks itself, or they are counted twice), ``errors{kind=...}``,
``drops{reason=<priority>.<reason>}`` (e.g. ``market_data.dropped_oldest``), ``actor_restarts``,
``ticks_conflated{kind=<message kind>}`` (a queued message superseded by a newer one of its pair and
kind, e.g. a trade signal: counted under the superseded tick's own ``tag``, so a scenario counts its own).
Keys are cached so the per-message path builds no strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from bot.engine.mailbox import Message, Priority
from bot.telemetry.recorder import Telemetry, counter_key

if TYPE_CHECKING:
    from bot.engine.actors import Engine


class TelemetryObserver:
    def __init__(self, telemetry: Telemetry, *, tick_kind: str | None = None) -> None:
        self._t = telemetry
        self._tick_kind = tick_kind
        self._drop_keys: dict[tuple[Priority, str], str] = {}
        self._conflated_keys: dict[str, str] = {}

    def handled(self, pair_id: str, message: Message, duration_ns: int) -> None:
        self._t.count("messages_handled")
        if self._tick_kind is not None and message.kind == self._tick_kind:
            self._t.count("ticks_handled")

    def error(self, pair_id: str, kind: str, exc: BaseException | None) -> None:
        self._t.error(kind)

    def dropped(self, pair_id: str, priority: Priority, reason: str, n: int) -> None:
        k = (priority, reason)
        key = self._drop_keys.get(k)
        if key is None:
            key = self._drop_keys[k] = counter_key("drops", reason=f"{priority.label}.{reason}")
        self._t.count(key, n)

    def conflated(self, pair_id: str, superseded: Message) -> None:
        key = self._conflated_keys.get(superseded.kind)
        if key is None:
            key = self._conflated_keys[superseded.kind] = counter_key("ticks_conflated", kind=superseded.kind)
        payload = superseded.payload
        tag = payload.get("tag") if isinstance(payload, Mapping) else None
        self._t.count(key, tag=tag if isinstance(tag, str) else None)

    def restarted(self, pair_id: str) -> None:
        self._t.count("actor_restarts")


def register_engine_gauges(telemetry: Telemetry, engine: Engine) -> None:
    """Gauges read from the engine at snapshot time: ``queue_depth`` (messages queued across pairs),
    ``handlers_running`` and ``handlers_waiting`` (dispatch gate), ``pairs_failed`` (crash-looped)."""

    def queued() -> float:
        return float(sum(len(engine.actor(p).mailbox) for p in engine.pairs))

    def failed() -> float:
        return float(sum(1 for p in engine.pairs if engine.actor(p).state.value == "failed"))

    telemetry.gauge_provider("queue_depth", queued)
    telemetry.gauge_provider("handlers_running", lambda: float(engine.gate.statistics().busy))
    telemetry.gauge_provider("handlers_waiting", lambda: float(engine.gate.statistics().waiting))
    telemetry.gauge_provider("pairs_failed", failed)
