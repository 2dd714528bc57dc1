"""Settings of the network layer: timeouts, connection pool, retries, endpoint health, WebSocket.

Frozen dataclasses, validated on construction: a bad value raises ``RpcSettingError`` (a
``ValueError``) whose message names the field and says what would be accepted, so a typo in
the bot's TOML fails at start-up, not as a hung request under load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Generous: a 100-call batch of block receipts at the busiest this project mines is a few MB.
DEFAULT_MAX_RESPONSE_BYTES = 16 * 2**20
MIN_RESPONSE_BYTES = 1024
# The longest one Retry-After may park an endpoint or delay one call's retry. A node's answer is not
# trusted to stop the bot: "Retry-After: 86400" from a misconfigured proxy would otherwise end trading.
DEFAULT_MAX_RETRY_AFTER = 5.0


class RpcSettingError(ValueError):
    """A network setting is out of range; the message names the field and the fix."""


def _positive(owner: str, field: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise RpcSettingError(f"{owner}.{field}: must be a positive finite number of seconds, got {value!r}")


def _count(owner: str, field: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RpcSettingError(f"{owner}.{field}: must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-phase limits in seconds. ``total`` bounds a whole call (a per-call ``timeout`` replaces it).

    Separate phases because they fail differently: a connect that hangs means the endpoint is
    down (fail over fast); a slow read may be a heavy ``eth_getLogs`` (give it time).
    """

    connect: float = 2.0
    read: float = 10.0
    total: float = 15.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            _positive("Timeouts", name, getattr(self, name))
        if self.connect > self.total or self.read > self.total:
            raise RpcSettingError(
                f"Timeouts: connect ({self.connect}) and read ({self.read}) must not exceed total ({self.total}); "
                "raise total or lower the phase"
            )


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """The keep-alive connection pool of one ``HttpTransport`` (one aiohttp ``TCPConnector``).

    ``max_connections`` is the pool's size: calls beyond it wait for a free connection rather
    than opening more sockets. ``per_host`` 0 means only ``max_connections`` applies.
    ``max_response_bytes`` caps one response body: a larger one is ``InvalidResponse`` and is not
    read further (a broken or hostile endpoint must not make the bot buffer without bound).
    """

    max_connections: int = 64
    per_host: int = 0
    keepalive_timeout: float = 30.0
    dns_cache_ttl: int = 300
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        _count("PoolLimits", "max_connections", self.max_connections, 1)
        _count("PoolLimits", "max_response_bytes", self.max_response_bytes, MIN_RESPONSE_BYTES)
        _count("PoolLimits", "per_host", self.per_host, 0)
        _positive("PoolLimits", "keepalive_timeout", self.keepalive_timeout)
        _count("PoolLimits", "dns_cache_ttl", self.dns_cache_ttl, 0)
        if self.per_host > self.max_connections:
            raise RpcSettingError(
                f"PoolLimits.per_host ({self.per_host}) exceeds max_connections ({self.max_connections}); "
                "lower per_host or raise max_connections"
            )


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """Auto-batching of ``HttpTransport.call``: calls made while one is pending leave as one JSON-RPC batch.

    ``window`` 0 (viem's ``wait: 0``) sends what the current event-loop iteration queued at the start
    of the next one, so no call waits for others; a positive window (ethers' ``batchStallTime``)
    trades that much latency for larger batches. ``max_size`` bounds one request: a full batch leaves
    at once, and an explicit ``batch()`` larger than it is split. ``enabled`` False sends every call
    as its own request. Sends (``eth_sendRawTransaction``) never share a request: see DESIGN.md.
    """

    enabled: bool = True
    window: float = 0.0
    max_size: int = 100

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise RpcSettingError(f"BatchPolicy.enabled: must be true or false, got {self.enabled!r}")
        if (isinstance(self.window, bool) or not isinstance(self.window, int | float)
                or not math.isfinite(self.window) or not 0 <= self.window <= 1):
            raise RpcSettingError(
                f"BatchPolicy.window: must be 0..1 seconds (0: same loop iteration), got {self.window!r}")
        _count("BatchPolicy", "max_size", self.max_size, 1)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by a time budget.

    ``max_attempts`` counts the first try. ``max_retry_after`` is the longest server-requested
    wait (``Retry-After``) we accept; a node asking for longer ends the retries with its error.
    """

    max_attempts: int = 4
    base_delay: float = 0.05
    max_delay: float = 2.0
    budget: float = 30.0
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER

    def __post_init__(self) -> None:
        _count("RetryPolicy", "max_attempts", self.max_attempts, 1)
        for name in ("base_delay", "max_delay", "budget", "max_retry_after"):
            _positive("RetryPolicy", name, getattr(self, name))
        if self.base_delay > self.max_delay:
            raise RpcSettingError(
                f"RetryPolicy.base_delay ({self.base_delay}) exceeds max_delay ({self.max_delay}); "
                "lower base_delay or raise max_delay"
            )


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Endpoint scoring and circuit breaking.

    ``alpha`` is the EWMA weight of the newest sample; the breaker opens after
    ``failure_threshold`` consecutive failures and lets one probe through after ``cooldown``.
    ``max_retry_after`` caps how long one ``Retry-After`` parks the endpoint (ranks it behind
    its peers): a longer one parks it for this long.
    """

    alpha: float = 0.2
    failure_threshold: int = 3
    cooldown: float = 5.0
    initial_latency: float = 0.005
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER

    def __post_init__(self) -> None:
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float) or not 0 < self.alpha <= 1:
            raise RpcSettingError(f"HealthPolicy.alpha: must be in (0, 1], got {self.alpha!r}")
        _count("HealthPolicy", "failure_threshold", self.failure_threshold, 1)
        _positive("HealthPolicy", "cooldown", self.cooldown)
        _positive("HealthPolicy", "initial_latency", self.initial_latency)
        _positive("HealthPolicy", "max_retry_after", self.max_retry_after)


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """Adaptive concurrency of one endpoint (``bot.rpc.ratelimit``): calls allowed in flight at once.

    The window starts at ``max_window``, is multiplied by ``decrease`` on a rate-limit answer
    (at most once per round of calls, never below ``min_window``) and grows back by ``increase``
    per window's worth of answered calls. ``max_window`` is normally the transport's connection
    pool size: beyond it calls queue for a connection anyway.
    """

    max_window: int = 64
    min_window: int = 1
    increase: float = 1.0
    decrease: float = 0.5

    def __post_init__(self) -> None:
        _count("LimitPolicy", "min_window", self.min_window, 1)
        _count("LimitPolicy", "max_window", self.max_window, self.min_window)
        if (isinstance(self.increase, bool) or not isinstance(self.increase, int | float)
                or not math.isfinite(self.increase) or self.increase <= 0):
            raise RpcSettingError(f"LimitPolicy.increase: must be a positive number of calls per round, "
                                  f"got {self.increase!r}")
        if (isinstance(self.decrease, bool) or not isinstance(self.decrease, int | float)
                or not 0 < self.decrease < 1):
            raise RpcSettingError(f"LimitPolicy.decrease: must be in (0, 1) (0.5 halves the window), "
                                  f"got {self.decrease!r}")


@dataclass(frozen=True, slots=True)
class WsOptions:
    """A ``WsSubscriber``'s limits.

    ``queue_size`` bounds the delivery queue (see ``ws.py`` for the drop policy);
    ``max_backfill_blocks`` bounds how far back a reconnect fetches what it missed;
    ``max_reconnects`` bounds the failed attempts in a row before ``start()`` gives up on a first
    connection; once connected the subscriber never gives up, and after ``degraded_after``
    failed attempts in a row it reports itself degraded (consumers fall back, e.g. to polling).
    The waits between attempts follow full-jitter backoff between the two ``reconnect_*`` delays.
    """

    queue_size: int = 10_000
    heartbeat: float = 15.0
    connect_timeout: float = 5.0
    request_timeout: float = 10.0
    max_backfill_blocks: int = 1_000
    max_reconnects: int = 50
    degraded_after: int = 3
    dedupe_window: int = 16_384
    reconnect_base_delay: float = 0.05
    reconnect_max_delay: float = 2.0

    def __post_init__(self) -> None:
        _count("WsOptions", "queue_size", self.queue_size, 1)
        for name in ("heartbeat", "connect_timeout", "request_timeout", "reconnect_base_delay", "reconnect_max_delay"):
            _positive("WsOptions", name, getattr(self, name))
        _count("WsOptions", "max_backfill_blocks", self.max_backfill_blocks, 1)
        _count("WsOptions", "max_reconnects", self.max_reconnects, 1)
        _count("WsOptions", "degraded_after", self.degraded_after, 1)
        _count("WsOptions", "dedupe_window", self.dedupe_window, 16)
