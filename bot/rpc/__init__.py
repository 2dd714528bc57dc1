"""The bot's network layer: JSON-RPC over HTTP keep-alive and WebSocket, with failover.

- ``HttpTransport``: one endpoint, one keep-alive connection pool, auto-batching, typed errors, byte counts.
- ``EndpointPool``: several endpoints ranked by health, retries with backoff, safe resends, and a
  per-endpoint adaptive limit (``ratelimit``: AIMD on 429s, sends before reads).
- ``WsSubscriber``: newHeads/logs subscriptions that reconnect, resubscribe and backfill.
- ``RpcClient``: the protocol the first two implement; ``RpcError`` and its family.
"""

from __future__ import annotations

from bot.rpc.config import (
    BatchPolicy,
    HealthPolicy,
    LimitPolicy,
    PoolLimits,
    RetryPolicy,
    RpcSettingError,
    Timeouts,
    WsOptions,
)
from bot.rpc.errors import (
    InvalidResponse,
    NodeError,
    RateLimited,
    RedirectRefused,
    RpcError,
    RpcTimeout,
    Throttled,
    TransportError,
)
from bot.rpc.failover import EndpointPool, EndpointStatistics, PoolStatistics
from bot.rpc.protocol import RpcClient
from bot.rpc.ratelimit import Lane
from bot.rpc.transport import HttpTransport, TransportStatistics
from bot.rpc.ws import Event, WsStatistics, WsSubscriber

__all__ = [
    "BatchPolicy",
    "EndpointPool",
    "EndpointStatistics",
    "Event",
    "HealthPolicy",
    "HttpTransport",
    "InvalidResponse",
    "Lane",
    "LimitPolicy",
    "NodeError",
    "PoolLimits",
    "PoolStatistics",
    "RateLimited",
    "RedirectRefused",
    "RetryPolicy",
    "RpcClient",
    "RpcError",
    "RpcSettingError",
    "RpcTimeout",
    "Throttled",
    "Timeouts",
    "TransportError",
    "TransportStatistics",
    "WsOptions",
    "WsStatistics",
    "WsSubscriber",
]
