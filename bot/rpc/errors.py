"""The bot's network exception family: every failure of an RPC call is an ``RpcError``.

``kind`` is the label errors are counted under (``errors_total{kind=...}``):

- ``NodeError`` ("node"): the node answered with a JSON-RPC error object.
- ``TransportError`` ("transport"): connection refused or reset, HTTP 5xx, a dropped socket;
  ``RedirectRefused`` is one (an HTTP 3xx, never followed).
- ``RpcTimeout`` ("timeout"): a phase (connect, read, total) ran out of time.
- ``RateLimited`` ("rate_limited"): HTTP 429 or a rate-limit error; ``retry_after`` if the node said.
  ``Throttled`` is one raised by the bot itself: the endpoint's adaptive limit had no slot for the
  call within its wait, so nothing was sent.
- ``InvalidResponse`` ("invalid_response"): the node answered garbage.

``retryable`` says whether the same request may be sent again (to this or another endpoint).
It is a class default that an instance may override: an HTTP 404 is a ``TransportError`` that
no retry will fix.
"""

from __future__ import annotations

from typing import Any, TypeVar


class RpcError(Exception):
    kind = "rpc"
    retryable = False


class NodeError(RpcError):
    kind = "node"

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"node error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class TransportError(RpcError):
    kind = "transport"
    retryable = True

    def __init__(self, message: str = "transport error", *, status: int | None = None) -> None:
        super().__init__(message)
        # The HTTP status when the failure was an HTTP answer (None: the connection failed).
        self.status = status
        if status is not None and 400 <= status < 500 and status not in (408, 425):
            self.retryable = False


class RpcTimeout(TransportError):
    kind = "timeout"


class RedirectRefused(TransportError):
    """The endpoint answered HTTP 3xx. Redirects are never followed: a loopback endpoint could
    otherwise send the bot's traffic, and its credentials, anywhere. The message names only the
    target's host (its path or query may hold another key). Not retryable: the same endpoint
    will redirect again, and the fix is the endpoint's URL."""

    def __init__(self, endpoint: str, status: int, target_host: str) -> None:
        super().__init__(
            f"{endpoint}: HTTP {status} redirect to {target_host} refused (redirects are not followed); "
            "configure the endpoint's final URL",
            status=status,
        )
        self.target_host = target_host
        self.retryable = False


class RateLimited(RpcError):
    kind = "rate_limited"
    retryable = True

    def __init__(self, message: str = "rate limited", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Throttled(RateLimited):
    """The endpoint's own limiter (``bot.rpc.limiter``) gave the call no slot in time: it was never sent.
    Not the node's answer, so it neither parks the endpoint nor shrinks its window again."""


class InvalidResponse(RpcError):
    kind = "invalid_response"
    retryable = True


E = TypeVar("E", bound=RpcError)


def clone(exc: E) -> E:
    """A copy of ``exc`` for another caller: one request's failure is raised in every call it carried,
    and one exception object raised in several tasks would collect all their tracebacks."""
    new = type(exc).__new__(type(exc), *exc.args)
    new.__dict__.update(exc.__dict__)
    return new
