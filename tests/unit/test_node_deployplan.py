"""The pure deployment plan: prices and liquidity, chunking, approvals, and deployment.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError, HarnessError
from harness.node.abi import contract
from harness.node.deployplan import (
    MAX_UINT256,
    UNIT,
    Deployment,
    Pair,
    approval_txs,
    chunks,
    normalize_accounts,
    pair_specs,
)

UINT112_MAX = 2**112 - 1


@settings(max_examples=50)
@given(st.integers(1, 500), st.integers(0, 2**32))
def test_pair_specs_are_seeded_distinct_and_fit_the_pool(n: int, seed: int) -> None:
    specs = pair_specs(n, seed=seed)
    assert specs == pair_specs(n, seed=seed)
    assert [s.symbol for s in specs] == [f"T{i:03d}" for i in range(n)]
    for s in specs:
        assert 0.01 <= s.price <= 10_000
        assert 0 < s.base_liquidity <= UINT112_MAX and 0 < s.quote_liquidity <= UINT112_MAX
        # the pool's starting price is the spec's price (within integer rounding)
        assert s.quote_liquidity / s.base_liquidity == pytest.approx(s.price, rel=1e-9)
        assert 0 < s.fund_base < s.base_liquidity


def test_pair_specs_reject_bad_sizes() -> None:
    with pytest.raises(ConfigError, match="n_pairs"):
        pair_specs(0)
    with pytest.raises(ConfigError, match="quote_depth"):
        pair_specs(1, quote_depth=float("nan"))
    with pytest.raises(ConfigError, match="fund_fraction"):
        pair_specs(1, fund_fraction=0)


@given(st.integers(1, 200), st.integers(1, 20))
def test_chunks_cover_every_pair_once_in_order(n: int, size: int) -> None:
    specs = pair_specs(n)
    parts = list(chunks(specs, size))
    assert [s for part in parts for s in part] == specs
    assert all(1 <= len(part) <= size for part in parts)


def test_accounts_are_checksummed_deduplicated_and_validated() -> None:
    lower = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
    assert normalize_accounts([lower, lower.upper().replace("0X", "0x")]) == [
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    ]
    with pytest.raises(ConfigError, match=r"bot_accounts\[1\]"):
        normalize_accounts([lower, "0x1234"])


def test_approval_txs_approve_both_tokens_of_every_pool_with_consecutive_nonces() -> None:
    pairs = [Pair(f"T{i:03d}/USD", f"0x{i + 1:040x}", "", "", f"0x{i + 100:040x}", "0x" + "ee" * 20) for i in range(3)]
    txs = approval_txs("0x" + "aa" * 20, 7, pairs, max_fee=10**9)
    assert [int(t["nonce"], 16) for t in txs] == list(range(7, 13))
    token = contract("Token")
    for t, (pair, tok) in zip(txs, [(p, tok) for p in pairs for tok in (p.base, p.quote)], strict=True):
        assert t["to"] == tok
        assert t["data"] == token.encode_call("approve", pair.pool, MAX_UINT256)


def test_deployment_json_round_trips(tmp_path: Path) -> None:
    pair = Pair("T000/USD", "0x" + "01" * 20, "0x" + "02" * 20, "0x" + "03" * 20, "0x" + "03" * 20, "0x" + "02" * 20)
    d = Deployment(31337, pair.quote, (pair,), ("0x" + "aa" * 20,), 12)
    path = tmp_path / "deployment.json"
    d.write(path)
    assert set(json.loads(path.read_text())) == {"chain_id", "quote_token", "pairs", "accounts", "block"}
    assert Deployment.load(path) == d


def test_malformed_deployment_json_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    path.write_text('{"chain_id": 1}')
    with pytest.raises(ConfigError, match="re-run the deployment"):
        Deployment.load(path)
    with pytest.raises(HarnessError, match="cannot read"):
        Deployment.load(tmp_path / "missing.json")


def test_unit_is_18_decimals() -> None:
    assert UNIT == 10**18
