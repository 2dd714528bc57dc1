"""Valid JSON of the wrong shape: a node reply rewritten the way real nodes and providers get it wrong.

Pure. ``wrong_shape`` takes the methods of the request by id and the node's reply, and returns the
reply with one call's ``result`` reshaped (a batch: one call in it, picked by the RNG) plus a short
description of what was done, or ``None`` when no call in the reply has a result to reshape (an
error reply passes as it is). Ids and the JSON-RPC envelope are kept: the client must notice the
shape, not a broken envelope.

The shapes, per method, are the ones seen in the wild: quantities as JSON numbers or without
``0x``; receipts and blocks with a field missing, renamed to snake_case or of another type; a
transaction hash of the wrong length; ``eth_call`` data with an odd number of hex digits; a list
where an object belongs and the reverse.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import orjson

Shape = tuple[str, Callable[[Any], Any]]


def _hex_to_int(v: Any) -> Any:
    if not (isinstance(v, str) and v.startswith("0x") and len(v) > 2):
        return 12345
    try:
        n = int(v, 16)
    except ValueError:
        return 12345
    return n if n < 2**63 else float(n)  # still a JSON number; orjson writes no integer past 64 bits


def _strip_0x(v: Any) -> Any:
    return v[2:] if isinstance(v, str) and v.startswith("0x") else "zz"


def _without(key: str) -> Callable[[Any], Any]:
    def f(obj: Any) -> Any:
        return {k: v for k, v in obj.items() if k != key} if isinstance(obj, dict) else {}
    return f


def _renamed(key: str, new: str) -> Callable[[Any], Any]:
    def f(obj: Any) -> Any:
        return {(new if k == key else k): v for k, v in obj.items()} if isinstance(obj, dict) else {new: None}
    return f


def _field(key: str, value: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def f(obj: Any) -> Any:
        return {**obj, key: value(obj.get(key))} if isinstance(obj, dict) else {key: value(None)}
    return f


QUANTITY: tuple[Shape, ...] = (
    ("a JSON number instead of a hex string", _hex_to_int),
    ("hex without 0x", _strip_0x),
    ("null", lambda v: None),
    ("a list instead of a quantity", lambda v: [v]),
)
RECEIPT: tuple[Shape, ...] = (
    ("receipt without status", _without("status")),
    ("receipt with blockNumber renamed block_number", _renamed("blockNumber", "block_number")),
    ("receipt status as a JSON number", _field("status", _hex_to_int)),
    ("receipt logs null", _field("logs", lambda v: None)),
    ("receipt as a list", lambda v: [v]),
)
BLOCK_RECEIPTS: tuple[Shape, ...] = (
    ("block receipts: each without status", lambda v: [_without("status")(r) for r in v] if isinstance(v, list) and v
     else [{}]),
    ("block receipts as an object", lambda v: {"receipts": v}),
    ("block receipts null", lambda v: None),
)
BLOCK: tuple[Shape, ...] = (
    ("block without baseFeePerGas", _without("baseFeePerGas")),
    ("block number as a JSON number", _field("number", _hex_to_int)),
    ("block timestamp without 0x", _field("timestamp", _strip_0x)),
    ("block transactions null", _field("transactions", lambda v: None)),
)
TRANSACTION: tuple[Shape, ...] = (
    ("transaction without nonce", _without("nonce")),
    ("transaction blockNumber as a JSON number", _field("blockNumber", _hex_to_int)),
    ("transaction hash renamed tx_hash", _renamed("hash", "tx_hash")),
)
SEND: tuple[Shape, ...] = (
    ("transaction hash one byte short", lambda v: v[:-2] if isinstance(v, str) and len(v) > 4 else "0x12"),
    ("transaction hash as an object", lambda v: {"hash": v}),
    ("transaction hash null", lambda v: None),
)
CALL: tuple[Shape, ...] = (
    ("call data with an odd number of hex digits", lambda v: v[:-1] if isinstance(v, str) and len(v) > 3 else "0x1"),
    ("call data as an object", lambda v: {"data": v}),
    ("call data as a JSON number", _hex_to_int),
)
LOGS: tuple[Shape, ...] = (
    ("logs as an object", lambda v: {"logs": v}),
    ("a log without topics", lambda v: [_without("topics")(x) for x in v] if isinstance(v, list) and v else [{}]),
)
FEE_HISTORY: tuple[Shape, ...] = (
    ("feeHistory baseFeePerGas as a string", _field("baseFeePerGas", lambda v: "0x1")),
    ("feeHistory without reward", _without("reward")),
    ("feeHistory oldestBlock as a JSON number", _field("oldestBlock", _hex_to_int)),
)
TXPOOL: tuple[Shape, ...] = (
    ("txpool_status without pending", _without("pending")),
    ("txpool_status queued as a list", _field("queued", lambda v: [v])),
)
ANY: tuple[Shape, ...] = (
    ("result wrapped in a list", lambda v: [v]),
    ("result wrapped in an object", lambda v: {"value": v}),
)
BY_METHOD: Mapping[str, tuple[Shape, ...]] = {
    "eth_blockNumber": QUANTITY, "eth_chainId": QUANTITY, "eth_gasPrice": QUANTITY, "eth_getBalance": QUANTITY,
    "eth_getTransactionCount": QUANTITY, "eth_estimateGas": QUANTITY, "eth_maxPriorityFeePerGas": QUANTITY,
    "eth_blobBaseFee": QUANTITY, "net_version": QUANTITY,
    "eth_getTransactionReceipt": RECEIPT, "eth_getBlockReceipts": BLOCK_RECEIPTS,
    "eth_getBlockByNumber": BLOCK, "eth_getBlockByHash": BLOCK,
    "eth_getTransactionByHash": TRANSACTION, "eth_sendRawTransaction": SEND, "eth_call": CALL,
    "eth_getLogs": LOGS, "eth_feeHistory": FEE_HISTORY, "txpool_status": TXPOOL,
}  # fmt: skip


def shapes_for(method: str | None) -> tuple[Shape, ...]:
    return BY_METHOD.get(method or "", ANY)


def reshape(method: str | None, result: Any, rng: random.Random) -> tuple[Any, str]:
    """One call's result in a wrong shape (never equal to the original), and what was done."""
    options = shapes_for(method)
    start = rng.randrange(len(options))
    for i in range(len(options)):  # the first shape that changes the value: {} without a key it never had does not
        what, f = options[(start + i) % len(options)]
        out = f(result)
        if out != result or type(out) is not type(result):
            return out, f"{method or 'call'}: {what}"
    return {"value": result}, f"{method or 'call'}: result wrapped in an object"


def wrong_shape(methods: Mapping[Any, str], reply: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    """``reply`` with one call's result reshaped; ``methods`` maps the request's ids to their methods."""
    try:
        doc: Any = orjson.loads(reply)
    except orjson.JSONDecodeError:
        return None
    calls = doc if isinstance(doc, list) else [doc]
    candidates = [i for i, c in enumerate(calls) if isinstance(c, dict) and "result" in c]
    if not candidates:
        return None
    i = candidates[rng.randrange(len(candidates))]
    call = calls[i]
    method = methods.get(id_key(call.get("id")))
    new_result, what = reshape(method, call["result"], rng)
    calls[i] = {**call, "result": new_result}
    return orjson.dumps(calls if isinstance(doc, list) else calls[0]), what


def id_key(request_id: Any) -> Any:
    # Ids may be numbers or strings; a dict key must be hashable, and a list id (invalid) is not.
    return request_id if isinstance(request_id, int | str) or request_id is None else repr(request_id)
