"""Wrong shapes are valid JSON, keep the envelope and the ids, and really differ; the log's request description."""

from __future__ import annotations

import random
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.rpc.codec import tx_hash
from harness.node.faultlog import describe
from harness.node.faultshapes import BY_METHOD, reshape, wrong_shape
from tests.unit.fault_upstream import answer

methods = st.sampled_from([*BY_METHOD, "echo", None])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**62), 2**62) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300)
@given(methods, json_values, st.integers(0, 2**32))
def test_a_reshaped_result_differs_and_serialises(method: str | None, result: Any, seed: int) -> None:
    out, what = reshape(method, result, random.Random(seed))
    assert out != result or type(out) is not type(result)
    assert orjson.loads(orjson.dumps(out)) == out or isinstance(out, float)
    assert what.startswith(f"{method or 'call'}: ")


@settings(max_examples=100)
@given(st.lists(methods.filter(lambda m: m is not None), min_size=1, max_size=4), st.integers(0, 2**32))
def test_a_batch_keeps_every_id_and_spoils_one_call(names: list[str], seed: int) -> None:
    calls = [{"jsonrpc": "2.0", "id": i, "result": answer(m, ["0x" + bytes(8).hex()])} for i, m in enumerate(names)]
    shaped = wrong_shape(dict(enumerate(names)), orjson.dumps(calls), random.Random(seed))
    assert shaped is not None
    replies = orjson.loads(shaped[0])
    assert [r["id"] for r in replies] == list(range(len(names)))
    assert all(set(r) == {"jsonrpc", "id", "result"} for r in replies)
    assert sum(r != c for r, c in zip(replies, calls, strict=True)) == 1


def test_errors_and_garbage_are_left_alone() -> None:
    error = orjson.dumps({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "nonce too low"}})
    assert wrong_shape({1: "eth_sendRawTransaction"}, error, random.Random(1)) is None
    assert wrong_shape({}, b"not json", random.Random(1)) is None


def test_receipt_shapes_are_the_realistic_ones() -> None:
    seen = {reshape("eth_getTransactionReceipt", answer("eth_getTransactionReceipt", []), random.Random(s))[1]
            for s in range(60)}
    assert "eth_getTransactionReceipt: receipt without status" in seen
    assert "eth_getTransactionReceipt: receipt with blockNumber renamed block_number" in seen
    # a big quantity as a JSON number still serialises (orjson writes no integer past 64 bits)
    big, _ = reshape("eth_getBalance", "0x" + "ff" * 20, random.Random(0))
    orjson.dumps(big)


def test_describe_names_the_call_and_the_send_hash() -> None:
    raw = bytes(range(50))
    send = describe(orjson.dumps({"jsonrpc": "2.0", "id": "a", "method": "eth_sendRawTransaction",
                                  "params": ["0x" + raw.hex()]}))
    assert (send.method, send.request_id, send.tx_hash) == ("eth_sendRawTransaction", "a", tx_hash(raw))
    batch = describe(orjson.dumps([{"id": 1, "method": "eth_call"}, {"id": 2, "method": "eth_call"},
                                   {"id": 3, "method": "eth_getBalance"}]))
    assert (batch.method, batch.request_id, batch.tx_hash) == ("batch[3]:eth_call,eth_getBalance", [1, 2, 3], None)
    assert describe(b"\x00garbage").method is None
    bad_hex = describe(orjson.dumps({"id": 1, "method": "eth_sendRawTransaction", "params": ["0xzz"]}))
    assert bad_hex.tx_hash is None
