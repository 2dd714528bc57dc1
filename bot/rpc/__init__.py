"""The bot's network layer: JSON-RPC over HTTP keep-alive and WebSocket, with failover.

- ``HttpTransport``: one endpoint, one keep-alive connection pool, auto-batching, typed errors, byte counts.
- ``EndpointPool``: several endpoints ranked by health, retries with backoff, safe resends.
- ``WsSubscriber``: newHeads/logs subscriptions that reconnect, resubscribe and backfill.
- ``RpcClient``: the protocol the first two implement; ``RpcError`` and its family.
"""

from __future__ import annotations

from bot.rpc.config import BatchPolicy, HealthPolicy, PoolLimits, RetryPolicy, RpcSettingError, Timeouts, WsOptions
from bot.rpc.errors import InvalidResponse, NodeError, RateLimited, RpcError, RpcTimeout, TransportError
from bot.rpc.failover import EndpointPool, EndpointStatistics, PoolStatistics
from bot.rpc.protocol import RpcClient
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
    "NodeError",
    "PoolLimits",
    "PoolStatistics",
    "RateLimited",
    "RetryPolicy",
    "RpcClient",
    "RpcError",
    "RpcSettingError",
    "RpcTimeout",
    "Timeouts",
    "TransportError",
    "TransportStatistics",
    "WsOptions",
    "WsStatistics",
    "WsSubscriber",
]
