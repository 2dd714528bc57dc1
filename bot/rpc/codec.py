"""JSON-RPC 2.0 encoding and decoding (pure, orjson).

Everything the node sends back passes through here before the bot sees it, so this is where a
misbehaving node is caught: any body that is not a well-formed answer to the request we sent
becomes ``InvalidResponse`` (never a ``KeyError``/``TypeError`` deep in the bot), and a JSON-RPC
error object becomes ``NodeError``, or ``RateLimited`` when the node says it is throttling us.

Also here, because they are pure functions of the bytes: the local transaction hash
(``tx_hash``) and the classification of node errors that the retry logic depends on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from eth_hash.auto import keccak

from bot.rpc.errors import InvalidResponse, NodeError, RateLimited, RpcError

# Node rate-limit signals: EIP-1474 "limit exceeded" (Infura and others) and providers that
# reuse the HTTP status as the JSON-RPC code (Alchemy).
RATE_LIMIT_CODES = frozenset({-32005, 429})
_RATE_LIMIT_PHRASES = ("rate limit", "too many requests", "exceeded the limit", "request limit")

# A second send of the same signed bytes: the node already has it, the hash stands.
_ALREADY_KNOWN_PHRASES = ("already known", "known transaction", "already imported")

# Answers that no retry (on this or any endpoint) can change: the transaction or call is wrong.
_DEFINITE_PHRASES = (
    "nonce too low",
    "nonce too high",
    "insufficient funds",
    "execution reverted",
    "intrinsic gas too low",
    "gas limit reached",
    "exceeds block gas limit",
    "replacement transaction underpriced",
    "underpriced",
    "invalid sender",
    "invalid signature",
    "max fee per gas less than block base fee",
    "invalid chain id",
    "transaction type not supported",
    "oversized data",
)

# Node errors that say the node, not the request, is in trouble: worth another endpoint.
_TRANSIENT_CODES = frozenset({-32603})
_TRANSIENT_PHRASES = ("header not found", "busy", "try again", "timeout", "temporarily unavailable")


@dataclass(frozen=True, slots=True)
class Notification:
    """A server push (``eth_subscription``): ``subscription`` id and its ``result``."""

    subscription: str
    result: Any


@dataclass(frozen=True, slots=True)
class Response:
    """One decoded answer: exactly one of ``result`` / ``error`` is meaningful."""

    id: int
    result: Any
    error: RpcError | None


def encode_request(method: str, params: Sequence[Any], request_id: int) -> bytes:
    """One request as bytes. Params must be JSON values (hex strings for quantities and data)."""
    return _dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}, method)


def encode_batch(calls: Sequence[tuple[str, Sequence[Any]]], first_id: int) -> tuple[bytes, list[int]]:
    """A batch with consecutive ids from ``first_id``; returns the body and the ids in call order."""
    if not calls:
        raise ValueError("batch: calls is empty; send at least one (method, params) pair")
    ids = list(range(first_id, first_id + len(calls)))
    body = [
        {"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)}
        for rid, (method, params) in zip(ids, calls, strict=True)
    ]
    return _dumps(body, "batch"), ids


def _dumps(obj: Any, what: str) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError as exc:
        raise TypeError(
            f"{what}: params are not JSON-serialisable ({exc}); pass quantities and bytes as 0x-hex strings"
        ) from exc


def _loads(body: bytes | str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidResponse(f"body is not JSON ({exc}): {_preview(body)}") from exc


def _preview(body: bytes | str | object, limit: int = 120) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return text if len(text) <= limit else text[:limit] + "..."


def error_from_object(obj: Any) -> RpcError:
    """The exception for a JSON-RPC error object; garbage becomes ``InvalidResponse``."""
    if not isinstance(obj, dict):
        return InvalidResponse(f"error is not an object: {_preview(obj)}")
    code, message = obj.get("code"), obj.get("message", "")
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(message, str):
        return InvalidResponse(f"error object lacks an integer code and string message: {_preview(obj)}")
    data = obj.get("data")
    lowered = message.lower()
    if code in RATE_LIMIT_CODES or any(p in lowered for p in _RATE_LIMIT_PHRASES):
        return RateLimited(f"node error {code}: {message}", retry_after=_retry_after_from_data(data))
    return NodeError(code, message, data)


def _retry_after_from_data(data: Any) -> float | None:
    """Providers put the wait in ``data``: Infura ``rate.backoff_seconds``, others ``retry_after``."""
    if not isinstance(data, dict):
        return None
    candidates = [data.get("retry_after"), data.get("backoff_seconds")]
    rate = data.get("rate")
    if isinstance(rate, dict):
        candidates.append(rate.get("backoff_seconds"))
    for value in candidates:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
            return float(value)
    return None


def _response_from_object(obj: Any) -> Response:
    if not isinstance(obj, dict):
        raise InvalidResponse(f"response is not an object: {_preview(obj)}")
    if "jsonrpc" in obj and obj["jsonrpc"] != "2.0":
        raise InvalidResponse(f"jsonrpc version is {obj['jsonrpc']!r}, expected '2.0'")
    rid = obj.get("id")
    if not isinstance(rid, int) or isinstance(rid, bool):
        # id null is what a node sends when it could not parse our request at all.
        if rid is None and "error" in obj:
            raise error_from_object(obj["error"])
        raise InvalidResponse(f"response id {rid!r} is not one of ours: {_preview(obj)}")
    has_result, has_error = "result" in obj, "error" in obj
    if has_result == has_error:
        raise InvalidResponse(f"response {rid} must have exactly one of result/error: {_preview(obj)}")
    if has_error:
        return Response(rid, None, error_from_object(obj["error"]))
    return Response(rid, obj["result"], None)


def decode_response(body: bytes | str, expected_id: int) -> Any:
    """The result of a single call, or raise its ``NodeError``/``RateLimited``/``InvalidResponse``."""
    resp = _response_from_object(_loads(body))
    if resp.id != expected_id:
        raise InvalidResponse(f"response id {resp.id} does not match request id {expected_id}")
    if resp.error is not None:
        raise resp.error
    return resp.result


def decode_batch(body: bytes | str, ids: Sequence[int]) -> list[Any | RpcError]:
    """Results in request order, matched by id (nodes may answer a batch in any order).

    A per-call error is returned in its slot, not raised; a call the node did not answer gets an
    ``InvalidResponse`` in its slot, so nothing is silently lost. A body that is not a batch
    answer at all raises.
    """
    data = _loads(body)
    if isinstance(data, dict):
        # A single object for a whole batch: the node rejected the batch itself.
        resp = _response_from_object(data)
        raise resp.error or InvalidResponse(f"batch of {len(ids)} answered with one result")
    if not isinstance(data, list):
        raise InvalidResponse(f"batch answer is not an array: {_preview(data)}")
    wanted = set(ids)
    by_id: dict[int, Response] = {}
    for item in data:
        resp = _response_from_object(item)
        if resp.id not in wanted:
            raise InvalidResponse(f"batch answer has id {resp.id} that was not requested")
        if resp.id in by_id:
            raise InvalidResponse(f"batch answer has id {resp.id} twice")
        by_id[resp.id] = resp
    out: list[Any | RpcError] = []
    for rid in ids:
        resp_or_none = by_id.get(rid)
        if resp_or_none is None:
            out.append(InvalidResponse(f"batch answer lacks id {rid}"))
        elif resp_or_none.error is not None:
            out.append(resp_or_none.error)
        else:
            out.append(resp_or_none.result)
    return out


def decode_message(body: bytes | str) -> Response | Notification:
    """A WebSocket frame: either an answer to one of our requests or a subscription push."""
    data = _loads(body)
    if isinstance(data, dict) and data.get("method") == "eth_subscription":
        params = data.get("params")
        if not isinstance(params, dict) or not isinstance(params.get("subscription"), str):
            raise InvalidResponse(f"subscription message without params.subscription: {_preview(data)}")
        if "result" not in params:
            raise InvalidResponse(f"subscription message without params.result: {_preview(data)}")
        return Notification(params["subscription"], params["result"])
    return _response_from_object(data)


def tx_hash(raw: bytes) -> str:
    """The transaction hash, computed locally: keccak256 of the signed bytes."""
    return "0x" + keccak(raw).hex()


def is_already_known(err: RpcError) -> bool:
    """The node already holds this exact signed transaction: the send succeeded earlier."""
    return isinstance(err, NodeError) and any(p in err.message.lower() for p in _ALREADY_KNOWN_PHRASES)


def is_definite(err: RpcError) -> bool:
    """A rejection of the request itself: retrying elsewhere would give the same answer."""
    if not isinstance(err, NodeError) or is_already_known(err):
        return False
    lowered = err.message.lower()
    if any(p in lowered for p in _DEFINITE_PHRASES):
        return True
    # Standard request errors (-32700..-32602) and EIP-1474 -32000..-32099 except transient ones.
    return not is_transient(err)


def is_transient(err: RpcError) -> bool:
    """A node error that another endpoint (or a later try) may not repeat."""
    if not isinstance(err, NodeError):
        return False
    lowered = err.message.lower()
    if any(p in lowered for p in _DEFINITE_PHRASES):
        return False
    return err.code in _TRANSIENT_CODES or any(p in lowered for p in _TRANSIENT_PHRASES)


def should_retry(err: RpcError) -> bool:
    """Whether the failover layer may send the same request again."""
    if isinstance(err, NodeError):
        return is_transient(err)
    return err.retryable


def to_hex(value: int) -> str:
    """A JSON-RPC quantity."""
    if value < 0:
        raise ValueError(f"quantity must be >= 0, got {value}")
    return hex(value)


def from_hex(value: Any, field: str = "quantity") -> int:
    """Parse a JSON-RPC quantity the node sent; garbage is ``InvalidResponse`` naming the field."""
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise InvalidResponse(f"{field}: expected a 0x-hex quantity, got {_preview(value, 40)}")
    try:
        return int(value, 16)
    except ValueError as exc:
        raise InvalidResponse(f"{field}: expected a 0x-hex quantity, got {_preview(value, 40)}") from exc
