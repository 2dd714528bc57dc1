"""JSON-RPC codec: round-trips, id matching, error mapping, and garbage never escaping as anything
but InvalidResponse."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.rpc import codec
from bot.rpc.errors import InvalidResponse, NodeError, RateLimited, RpcError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
methods = st.text(min_size=1, max_size=30)
ids = st.integers(0, 2**53)


@given(methods, st.lists(json_values, max_size=5), ids)
def test_request_round_trip(method: str, params: list[Any], rid: int) -> None:
    decoded = orjson.loads(codec.encode_request(method, params, rid))
    assert decoded == {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


@given(json_values, ids)
def test_result_round_trip(result: Any, rid: int) -> None:
    body = orjson.dumps({"jsonrpc": "2.0", "id": rid, "result": result})
    assert codec.decode_response(body, rid) == result


@given(st.lists(st.tuples(methods, st.lists(json_values, max_size=3)), min_size=1, max_size=8), ids)
def test_batch_ids_are_consecutive_and_answers_match_in_any_order(
    calls: list[tuple[str, list[Any]]], first: int
) -> None:
    body, batch_ids = codec.encode_batch(calls, first)
    requests = orjson.loads(body)
    assert batch_ids == list(range(first, first + len(calls)))
    assert [r["id"] for r in requests] == batch_ids
    # The node answers in reverse order, echoing each method name as the result.
    answers = [{"jsonrpc": "2.0", "id": r["id"], "result": r["method"]} for r in reversed(requests)]
    assert codec.decode_batch(orjson.dumps(answers), batch_ids) == [m for m, _ in calls]


def test_batch_keeps_per_call_errors_in_their_slots_and_flags_missing_answers() -> None:
    body = orjson.dumps(
        [
            {"jsonrpc": "2.0", "id": 3, "error": {"code": -32000, "message": "execution reverted"}},
            {"jsonrpc": "2.0", "id": 1, "result": "0x1"},
        ]
    )
    out = codec.decode_batch(body, [1, 2, 3])
    assert out[0] == "0x1"
    assert isinstance(out[1], InvalidResponse) and "lacks id 2" in str(out[1])
    assert isinstance(out[2], NodeError) and out[2].code == -32000


@pytest.mark.parametrize(
    "answer",
    [
        [{"jsonrpc": "2.0", "id": 9, "result": 1}],
        [{"jsonrpc": "2.0", "id": 1, "result": 1}, {"jsonrpc": "2.0", "id": 1, "result": 2}],
        {"jsonrpc": "2.0", "id": 1, "result": [1, 2]},
        "nope",
    ],
)
def test_batch_with_foreign_duplicate_or_wrong_shape_is_invalid(answer: Any) -> None:
    with pytest.raises(InvalidResponse):
        codec.decode_batch(orjson.dumps(answer), [1, 2])


def test_whole_batch_rejection_raises_node_error() -> None:
    body = orjson.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch too large"}})
    with pytest.raises(NodeError, match="batch too large"):
        codec.decode_batch(body, [1, 2])


def test_error_object_becomes_node_error_with_fields() -> None:
    body = orjson.dumps({"jsonrpc": "2.0", "id": 5, "error": {"code": -32000, "message": "nonce too low", "data": "x"}})
    with pytest.raises(NodeError) as info:
        codec.decode_response(body, 5)
    assert (info.value.code, info.value.message, info.value.data) == (-32000, "nonce too low", "x")


@pytest.mark.parametrize(
    ("error", "retry_after"),
    [
        ({"code": -32005, "message": "limit exceeded"}, None),
        ({"code": 429, "message": "Your app has exceeded its compute units"}, None),
        ({"code": -32000, "message": "Rate limit reached", "data": {"retry_after": 2}}, 2.0),
        ({"code": -32005, "message": "x", "data": {"rate": {"backoff_seconds": 30}}}, 30.0),
    ],
)
def test_node_rate_limit_errors_become_rate_limited(error: dict[str, Any], retry_after: float | None) -> None:
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "error": error})
    with pytest.raises(RateLimited) as info:
        codec.decode_response(body, 1)
    assert info.value.retry_after == retry_after


def test_mismatched_id_is_invalid() -> None:
    with pytest.raises(InvalidResponse, match="does not match"):
        codec.decode_response(b'{"jsonrpc":"2.0","id":2,"result":"0x1"}', 1)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>502 Bad Gateway</html>",
        b'{"jsonrpc":"2.0","id":1}',
        b'{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"m"}}',
        b'{"jsonrpc":"1.0","id":1,"result":1}',
        b'{"jsonrpc":"2.0","id":"1","result":1}',
        b'{"jsonrpc":"2.0","id":true,"result":1}',
        b'{"jsonrpc":"2.0","id":1,"error":"boom"}',
        b'{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}}',
        b"[1,2]",
    ],
)
def test_known_garbage_is_invalid_response(body: bytes) -> None:
    with pytest.raises(InvalidResponse):
        codec.decode_response(body, 1)


@given(st.binary(max_size=200))
def test_fuzzed_bytes_raise_only_rpc_errors(body: bytes) -> None:
    for decode in (lambda: codec.decode_response(body, 1), lambda: codec.decode_batch(body, [1, 2])):
        try:
            decode()
        except RpcError as exc:
            assert isinstance(exc, InvalidResponse | NodeError | RateLimited)


@given(json_values)
def test_fuzzed_json_raises_only_rpc_errors(value: Any) -> None:
    body = orjson.dumps(value)
    for decode in (
        lambda: codec.decode_response(body, 1),
        lambda: codec.decode_batch(body, [1, 2]),
        lambda: codec.decode_message(body),
    ):
        try:
            decode()
        except RpcError as exc:
            assert isinstance(exc, InvalidResponse | NodeError | RateLimited)


@given(st.fixed_dictionaries({"id": json_values, "result": json_values, "error": json_values, "jsonrpc": json_values}))
def test_fuzzed_response_shapes_raise_only_rpc_errors(obj: dict[str, Any]) -> None:
    try:
        codec.decode_response(orjson.dumps(obj), 1)
    except RpcError as exc:
        assert isinstance(exc, InvalidResponse | NodeError | RateLimited)


def test_decode_message_tells_notifications_from_answers() -> None:
    note = codec.decode_message(
        b'{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"0xab","result":{"number":"0x1"}}}'
    )
    assert note == codec.Notification("0xab", {"number": "0x1"})
    answer = codec.decode_message(b'{"jsonrpc":"2.0","id":4,"result":"0xab"}')
    assert answer == codec.Response(4, "0xab", None)
    with pytest.raises(InvalidResponse):
        codec.decode_message(b'{"jsonrpc":"2.0","method":"eth_subscription","params":{"result":1}}')


def test_unserialisable_params_name_the_fix() -> None:
    with pytest.raises(TypeError, match="0x-hex"):
        codec.encode_request("eth_call", [b"\x01"], 1)


def test_tx_hash_is_keccak_of_raw_bytes() -> None:
    assert codec.tx_hash(b"") == "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


@pytest.mark.parametrize(
    ("message", "known", "definite", "retry"),
    [
        ("already known", True, False, False),
        ("known transaction: 0xabc", True, False, False),
        ("Transaction already imported", True, False, False),
        ("nonce too low", False, True, False),
        ("insufficient funds for gas * price + value", False, True, False),
        ("execution reverted: slippage", False, True, False),
        ("replacement transaction underpriced", False, True, False),
        ("header not found", False, False, True),
    ],
)
def test_send_error_classification(message: str, known: bool, definite: bool, retry: bool) -> None:
    err = NodeError(-32000, message)
    assert codec.is_already_known(err) is known
    assert codec.is_definite(err) is definite
    assert codec.should_retry(err) is retry


def test_internal_error_is_transient_but_a_revert_with_that_code_is_not() -> None:
    assert codec.should_retry(NodeError(-32603, "internal error"))
    assert not codec.should_retry(NodeError(-32603, "execution reverted"))


@given(st.integers(0, 2**256))
def test_quantity_round_trip(value: int) -> None:
    assert codec.from_hex(codec.to_hex(value)) == value


@given(json_values)
def test_from_hex_garbage_is_invalid_response_naming_field(value: Any) -> None:
    try:
        codec.from_hex(value, "block.number")
    except InvalidResponse as exc:
        assert "block.number" in str(exc)
