"""``bot.rpc.shapes`` fuzzed: whatever the node sends, a parser returns a well-typed value or raises
``InvalidResponse``, never anything else; and well-formed answers parse to what they say."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.rpc import shapes
from bot.rpc.errors import InvalidResponse

# FUZZ_EXAMPLES raises the budget for a deeper run by hand (e.g. 5000); CI keeps the default.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any JSON value: what a broken node or proxy could put anywhere.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**300), 2**300) | st.floats() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
# Strings that look like quantities and are not, or are at the edges.
hex_edges = st.sampled_from([
    "", "0x", "0X", "x1", "1", "0x-1", "-0x1", "0x_1", "0x1_0", " 0x1", "0x1 ", "0x1\n", "0xg", "0x１",
    "0x" + "f" * 16, "0x" + "f" * 17, "0x" + "f" * 64, "0x" + "f" * 65, "0x" + "0" * 70 + "1", "0X1A", "0x00",
])
hex_ints = st.integers(-(2**300), 2**300).map(hex)
garbage = st.one_of(json_values, hex_edges, hex_ints)


def hexes(nbytes: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=nbytes, max_size=nbytes).map(lambda b: "0x" + b.hex())


def quantities(max_value: int = 2**256 - 1) -> st.SearchStrategy[str]:
    return st.integers(0, max_value).map(hex)


def maybe_broken(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field that is mostly right, sometimes garbage."""
    return st.one_of(valid, valid, garbage)


MISSING = object()


def shaped(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Objects with the right keys, each value sometimes broken or missing, plus extra keys."""
    def build(values: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        return {**extra, **{k: v for k, v in values.items() if v is not MISSING}}

    per_field = {k: st.one_of(maybe_broken(v), st.just(MISSING)) for k, v in fields.items()}
    return st.builds(build, st.fixed_dictionaries(per_field), st.dictionaries(st.text(max_size=8), json_values,
                                                                              max_size=2))


log_fields = {
    "address": hexes(20), "topics": st.lists(hexes(32), max_size=5), "data": st.binary(max_size=40).map(
        lambda b: "0x" + b.hex()), "blockNumber": quantities(2**64 - 1), "blockHash": hexes(32),
    "transactionHash": hexes(32), "logIndex": quantities(2**64 - 1), "removed": st.booleans(),
}
receipt_fields = {
    "transactionHash": hexes(32), "blockNumber": quantities(2**64 - 1), "status": st.sampled_from(["0x0", "0x1"]),
    "gasUsed": quantities(), "effectiveGasPrice": quantities(), "logs": st.lists(shaped(log_fields), max_size=3),
}
head_fields = {
    "number": quantities(2**64 - 1), "hash": hexes(32), "timestamp": quantities(2**64 - 1),
    "baseFeePerGas": quantities(),
}
tx_fields = {"hash": hexes(32), "blockNumber": st.one_of(st.none(), quantities(2**64 - 1))}
fee_history_fields = {
    "oldestBlock": quantities(2**64 - 1),
    "baseFeePerGas": st.lists(quantities(), min_size=1, max_size=5),
    "gasUsedRatio": st.lists(st.floats(0, 1), max_size=4),
    "reward": st.lists(st.lists(quantities(), min_size=2, max_size=2), max_size=4),
}


def parse_or_invalid(parser: Callable[[Any], Any], value: Any) -> Any:
    """The parser's result, or None when it raised InvalidResponse; anything else fails the test."""
    try:
        return parser(value)
    except InvalidResponse as exc:
        assert str(exc), "an InvalidResponse names the field"
        return None


def _is_hash(value: object) -> bool:
    return isinstance(value, str) and len(value) == 66 and value == value.lower() and value.startswith("0x")


def check_log(lg: shapes.Log) -> None:
    assert len(lg.address) == 42 and lg.address == lg.address.lower()
    assert len(lg.topics) <= 4 and all(_is_hash(t) for t in lg.topics)
    assert _is_hash(lg.block_hash) and _is_hash(lg.tx_hash)
    assert 0 <= lg.block_number < 2**64 and 0 <= lg.log_index < 2**64
    assert isinstance(lg.removed, bool) and len(lg.data) % 2 == 0


@FUZZ
@given(st.one_of(garbage, shaped(receipt_fields)))
def test_receipt_is_typed_or_invalid(value: Any) -> None:
    r = parse_or_invalid(shapes.receipt, value)
    if r is not None:
        assert isinstance(r, shapes.Receipt) and _is_hash(r.tx_hash)
        assert r.status in (0, 1) and 0 <= r.block_number < 2**64
        assert 0 <= r.gas_used < 2**256 and 0 <= r.effective_gas_price < 2**256
        for lg in r.logs:
            check_log(lg)
        assert shapes.receipt_hash(value) == r.tx_hash


@FUZZ
@given(st.one_of(garbage, shaped(head_fields)))
def test_head_and_block_are_typed_or_invalid(value: Any) -> None:
    h = parse_or_invalid(shapes.head, value)
    if h is not None:
        assert 0 <= h.number < 2**64
        assert h.hash is None or _is_hash(h.hash)
        assert h.timestamp is None or 0 <= h.timestamp < 2**64
        assert h.base_fee is None or 0 <= h.base_fee < 2**256
        assert shapes.block_base_fee(value) == (h.base_fee or 0)
    else:
        with pytest.raises(InvalidResponse):
            shapes.block_base_fee(value)


@FUZZ
@given(st.one_of(garbage, shaped(tx_fields)))
def test_transaction_lookup_is_typed_or_invalid(value: Any) -> None:
    try:
        t = shapes.tx_lookup(value)
    except InvalidResponse:
        return
    if value is None:
        assert t is None
    else:
        assert t is not None and _is_hash(t.hash)
        assert t.pending == (t.block_number is None)
        assert t.block_number is None or 0 <= t.block_number < 2**64


@FUZZ
@given(st.one_of(garbage, shaped(log_fields), st.lists(st.one_of(garbage, shaped(log_fields)), max_size=3)))
def test_logs_are_typed_or_invalid(value: Any) -> None:
    one = parse_or_invalid(shapes.log, value)
    if one is not None:
        check_log(one)
    many = parse_or_invalid(shapes.logs, value)
    if many is not None:
        for lg in many:
            check_log(lg)


@FUZZ
@given(st.one_of(garbage, shaped(fee_history_fields)))
def test_fee_history_is_typed_or_invalid(value: Any) -> None:
    fh = parse_or_invalid(shapes.fee_history, value)
    if fh is not None:
        assert len(fh.base_fees) == len(fh.gas_used_ratios) + 1
        assert all(0 <= f < 2**256 for f in fh.base_fees) and all(0 <= r <= 1 for r in fh.gas_used_ratios)
        if fh.rewards is not None:
            assert len(fh.rewards) == len(fh.gas_used_ratios)
            assert len({len(row) for row in fh.rewards}) <= 1


@FUZZ
@given(garbage)
def test_scalars_are_typed_or_invalid(value: Any) -> None:
    q = parse_or_invalid(lambda v: shapes.quantity(v, "q"), value)
    assert q is None or 0 <= q < 2**256
    n = parse_or_invalid(lambda v: shapes.small_quantity(v, "n"), value)
    assert n is None or 0 <= n < 2**64
    d = parse_or_invalid(lambda v: shapes.data(v, "d"), value)
    assert d is None or (d.startswith(("0x", "0X")) and len(d) % 2 == 0)
    b = parse_or_invalid(shapes.block_receipts, value)
    assert b is None or isinstance(b, list)


good_log = st.fixed_dictionaries({**log_fields, "topics": st.lists(hexes(32), max_size=4)})
good_receipt = st.fixed_dictionaries({**receipt_fields, "logs": st.lists(good_log, max_size=3)})


@settings(max_examples=200, deadline=None)
@given(good_receipt)
def test_well_formed_receipts_parse_to_what_they_say(obj: dict[str, Any]) -> None:
    r = shapes.receipt(obj)
    assert (r.tx_hash, r.block_number, r.status) == (obj["transactionHash"], int(obj["blockNumber"], 16),
                                                    int(obj["status"], 16))
    assert (r.gas_used, r.effective_gas_price) == (int(obj["gasUsed"], 16), int(obj["effectiveGasPrice"], 16))
    assert [(lg.log_index, lg.topics, lg.data) for lg in r.logs] == [
        (int(lg["logIndex"], 16), tuple(lg["topics"]), lg["data"]) for lg in obj["logs"]]


@st.composite
def good_fee_history(draw: st.DrawFn) -> dict[str, Any]:
    blocks, percentiles = draw(st.integers(0, 5)), draw(st.integers(0, 3))
    return {
        "oldestBlock": draw(quantities(2**64 - 1)),
        "baseFeePerGas": draw(st.lists(quantities(), min_size=blocks + 1, max_size=blocks + 1)),
        "gasUsedRatio": draw(st.lists(st.floats(0, 1), min_size=blocks, max_size=blocks)),
        "reward": draw(st.lists(st.lists(quantities(), min_size=percentiles, max_size=percentiles),
                                min_size=blocks, max_size=blocks)),
    }


@settings(max_examples=200, deadline=None)
@given(good_fee_history())
def test_well_formed_fee_history_parses_to_what_it_says(obj: dict[str, Any]) -> None:
    fh = shapes.fee_history(obj)
    assert fh.oldest_block == int(obj["oldestBlock"], 16)
    assert fh.base_fees == tuple(int(x, 16) for x in obj["baseFeePerGas"])
    assert fh.gas_used_ratios == tuple(obj["gasUsedRatio"])
    assert fh.rewards == tuple(tuple(int(x, 16) for x in row) for row in obj["reward"])


@pytest.mark.parametrize(("value", "field"), [
    ({"transactionHash": "0x" + "ab" * 32, "blockNumber": "-0x1", "gasUsed": "0x1"}, "receipt.blockNumber"),
    ({"transactionHash": "0x" + "ab" * 32, "blockNumber": "0x1", "gasUsed": "0x1_0"}, "receipt.gasUsed"),
    ({"transactionHash": "0xab", "blockNumber": "0x1", "gasUsed": "0x1"}, "receipt.transactionHash"),
    ({"transactionHash": "0x" + "ab" * 32, "blockNumber": "0x1", "gasUsed": "0x1", "status": "0x2"},
     "receipt.status"),
    ({"transactionHash": "0x" + "ab" * 32, "blockNumber": "0x1", "gasUsed": "0x1", "logs": {}}, "receipt.logs"),
])
def test_a_bad_receipt_names_the_field(value: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidResponse, match=field.replace(".", r"\.")):
        shapes.receipt(value)


def test_examples() -> None:
    h = "0x" + "AB" * 32
    r = shapes.receipt({"transactionHash": h, "blockNumber": "0x5", "gasUsed": "0x10"})
    # Pre-Byzantium / pre-London receipts lack status and effectiveGasPrice: defaults, not errors.
    assert (r.tx_hash, r.block_number, r.status, r.gas_used, r.effective_gas_price) == (h.lower(), 5, 1, 16, 0)
    assert shapes.head({"number": "0x10"}) == shapes.Head(16, None, None, None)
    with pytest.raises(InvalidResponse, match=r"header\.number"):
        shapes.head({"number": "0x" + "1" * 17})  # beyond uint64: no chain is that long
    assert shapes.tx_lookup({"hash": h, "blockNumber": None}) == shapes.TxLookup(h.lower(), None)
    assert shapes.tx_lookup(None) is None
    fh = shapes.fee_history({"oldestBlock": "0x1", "baseFeePerGas": ["0x1", "0x2"], "gasUsedRatio": [0.5]})
    assert fh == shapes.FeeHistory(1, (1, 2), (0.5,), None)
    with pytest.raises(InvalidResponse, match="baseFeePerGas"):
        shapes.fee_history({"oldestBlock": "0x1", "baseFeePerGas": ["0x1"], "gasUsedRatio": [0.5]})
    assert shapes.quantity("0x" + "f" * 64, "q") == 2**256 - 1
    for bad in ("0x" + "f" * 65, "-0x1", "0x_1", " 0x1", "0x", 1, None):
        with pytest.raises(InvalidResponse, match="q: expected"):
            shapes.quantity(bad, "q")
