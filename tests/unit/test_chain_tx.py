"""Transaction building and signing: the direct codec must equal eth_account byte for byte."""

from __future__ import annotations

import pickle

import pytest
from eth_abi.abi import decode
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.chain import abi
from bot.chain.accounts import Account, AccountLoadError, from_env, from_file, from_keys, from_mnemonic
from bot.chain.fees import FeePolicy, Fees, blocks_of_headroom, next_base_fee, price
from bot.chain.tx import (
    TxRequest,
    UnsignedTx,
    build,
    coincurve_backend_active,
    recover_sender,
    rlp_encode,
    tx_hash,
)

ACCOUNTS = from_mnemonic(count=2)
# Not dev keys: the codec is checked for any chain id, and a dev key signs only for 31337.
OWN = from_keys(["0x" + "11" * 32, "0x" + "22" * 32], source="test keys")
ANVIL0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
KEY0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"

u256 = st.integers(0, 2**256 - 1)
unsigned_txs = st.builds(
    UnsignedTx,
    chain_id=st.integers(1, 2**64 - 1),
    nonce=st.integers(0, 2**64 - 2),
    max_priority_fee_per_gas=u256,
    max_fee_per_gas=u256,
    gas=st.integers(21_000, 30_000_000),
    to=st.binary(min_size=20, max_size=20),
    value=u256,
    data=st.binary(max_size=300),
)


@given(tx=unsigned_txs, which=st.integers(0, 1))
@settings(max_examples=200, deadline=None)
def test_direct_codec_is_byte_identical_to_eth_account(tx: UnsignedTx, which: int) -> None:
    acc = OWN[which]
    direct = acc.sign(tx, "direct")
    reference = acc.sign(tx, "eth_account")
    assert direct.raw == reference.raw
    assert direct.hash == reference.hash == tx_hash(direct.raw)
    assert recover_sender(direct.raw).lower() == acc.address.lower()


def test_eth_account_uses_coincurve_backend() -> None:
    assert coincurve_backend_active()


def test_build_uses_request_and_fees() -> None:
    req = TxRequest(to=ANVIL0, data=b"\x01\x02", value=5, gas=100_000)
    tx = build(31337, 9, req, Fees(max_fee_per_gas=30, max_priority_fee_per_gas=2))
    assert (tx.nonce, tx.gas, tx.value, tx.data, tx.max_fee_per_gas) == (9, 100_000, 5, b"\x01\x02", 30)
    assert tx.to == bytes.fromhex(ANVIL0[2:])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"to": "0x1234"}, "tx.to"), ({"to": ANVIL0, "value": -1}, "tx.value"), ({"to": ANVIL0, "gas": 1}, "tx.gas")],
)
def test_bad_request_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        TxRequest(**kwargs)  # type: ignore[arg-type]


def test_recover_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="type 2"):
        recover_sender(b"\x01abc")


def test_account_never_shows_its_key() -> None:
    acc = Account.from_key(KEY0)
    assert acc.address == ANVIL0
    assert repr(acc) == f"Account({ANVIL0})"
    assert str(acc) == ANVIL0
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(acc)
    assert KEY0[2:] not in repr(vars(type(acc)))


def test_bad_keys_give_clear_errors_without_the_key() -> None:
    with pytest.raises(AccountLoadError, match="64 hex digits") as e1:
        Account.from_key("0x1234", source="bot.keys[0]")
    assert "bot.keys[0]" in str(e1.value)
    with pytest.raises(AccountLoadError, match="not valid hex") as e2:
        Account.from_key("zz" * 32)
    assert "zz" not in str(e2.value)
    with pytest.raises(AccountLoadError, match="curve order"):
        Account.from_key("00" * 32)
    with pytest.raises(AccountLoadError, match="listed twice"):
        from_keys([KEY0, KEY0])


def test_loaders(tmp_path: pytest.TempPathFactory) -> None:
    key1 = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil dev account 1
    loaded = from_env("K", {"K": f"{KEY0}, {key1}"})
    assert [a.address for a in loaded] == [ANVIL0, ACCOUNTS[1].address]
    with pytest.raises(AccountLoadError, match="K is not set"):
        from_env("K", {})
    f = tmp_path / "keys"  # type: ignore[operator]
    f.write_text(f"# dev key\n\n{KEY0}\n")
    assert [a.address for a in from_file(f)] == [ANVIL0]
    with pytest.raises(AccountLoadError, match="cannot read"):
        from_file(tmp_path / "missing")  # type: ignore[operator]
    assert [a.address for a in from_mnemonic(count=1)] == [ANVIL0]
    with pytest.raises(AccountLoadError, match="mnemonic"):
        from_mnemonic("not a mnemonic at all")


@given(base=st.integers(0, 10**15), tip=st.integers(0, 10**11), mult=st.integers(1, 4))
def test_fee_cap_covers_base_and_tip(base: int, tip: int, mult: int) -> None:
    fees = price(base, FeePolicy(tip_wei=tip, base_multiplier=mult))
    assert fees.max_fee_per_gas == mult * base + tip
    assert fees.max_priority_fee_per_gas == tip <= fees.max_fee_per_gas


def test_default_headroom_survives_five_full_blocks() -> None:
    base = 100 * 10**9  # large against the 1 gwei tip, so the multiplier alone decides
    assert blocks_of_headroom(base, price(base)) == 5  # 1.125**5 = 1.80 < 2 < 1.125**6
    assert blocks_of_headroom(base, Fees(max_fee_per_gas=base, max_priority_fee_per_gas=0)) == 0


def test_cap_and_floor() -> None:
    assert price(100, FeePolicy(tip_wei=1, cap_max_fee_wei=50)).max_fee_per_gas == 50
    assert price(0, FeePolicy(tip_wei=1, min_max_fee_wei=7)).max_fee_per_gas == 7
    with pytest.raises(ValueError, match="base_multiplier"):
        FeePolicy(base_multiplier=0)


@given(base=st.integers(1, 10**15), used=st.integers(0, 30_000_000))
def test_base_fee_moves_at_most_an_eighth(base: int, used: int) -> None:
    nxt = next_base_fee(base, used, 30_000_000)
    assert abs(nxt - base) <= base // 8 + 1
    if nxt > base:
        assert used > 15_000_000
    if nxt < base:
        assert used < 15_000_000
    if used > 15_000_000:
        assert nxt > base  # an increase is at least 1 wei
    assert next_base_fee(8 * 10**9, 30_000_000, 30_000_000) == 9 * 10**9


@given(amount=st.integers(0, 2**256 - 1), flag=st.booleans(), m=st.integers(0, 2**256 - 1))
def test_swap_calldata_round_trips(amount: int, flag: bool, m: int) -> None:
    data = abi.encode_swap(amount, flag, m, ANVIL0)
    assert data[:4] == abi.SWAP
    assert decode(["uint256", "bool", "uint256", "address"], data[4:]) == (amount, flag, m, ANVIL0.lower())


def test_known_selectors() -> None:
    # Published ERC-20 / Uniswap V2 selectors.
    assert abi.APPROVE.hex() == "095ea7b3"
    assert abi.BALANCE_OF.hex() == "70a08231"
    assert abi.GET_RESERVES.hex() == "0902f1ac"
    assert abi.TOKEN0.hex() == "0dfe1681"
    assert abi.encode_balance_of(ANVIL0).hex().endswith(ANVIL0[2:].lower())
    assert abi.encode_approve(ANVIL0)[-32:] == b"\xff" * 32


@given(r0=st.integers(0, abi.MAX_UINT112), r1=st.integers(0, abi.MAX_UINT112), ts=st.integers(0, 2**32 - 1))
def test_reserves_decode(r0: int, r1: int, ts: int) -> None:
    word = r0.to_bytes(32, "big") + r1.to_bytes(32, "big") + ts.to_bytes(32, "big")
    assert abi.decode_reserves("0x" + word.hex()) == (r0, r1, ts)


def test_decoders_reject_wrong_shapes() -> None:
    with pytest.raises(abi.AbiDecodeError, match="is the address a contract"):
        abi.decode_reserves("0x")
    with pytest.raises(abi.AbiDecodeError, match="out of range"):
        abi.decode_reserves("0x" + "ff" * 96)
    with pytest.raises(abi.AbiDecodeError, match="upper 12 bytes"):
        abi.decode_address("0x" + "ff" * 32)
    assert abi.decode_address("0x" + "00" * 12 + "ab" * 20) == "0x" + "ab" * 20
    with pytest.raises(ValueError, match="not hex"):
        abi.address_bytes("0xzz")


rlp_items = st.recursive(
    st.one_of(st.integers(0, 2**300), st.binary(max_size=80)), lambda inner: st.lists(inner, max_size=6), max_leaves=20
)


@given(item=rlp_items)
def test_rlp_encoder_matches_the_reference_library(item: object) -> None:
    import rlp  # type: ignore[import-untyped]

    assert rlp_encode(item) == rlp.encode(item)


def test_rlp_rejects_what_a_transaction_never_holds() -> None:
    with pytest.raises(ValueError, match="negative"):
        rlp_encode(-1)
    with pytest.raises(TypeError, match="str"):
        rlp_encode("text")


def test_load_dispatches_to_exactly_one_source() -> None:
    from bot.chain.accounts import load

    assert [a.address for a in load()] == [ANVIL0]
    assert [a.address for a in load(keys=[KEY0])] == [ANVIL0]
    assert len(load(count=3)) == 3
    with pytest.raises(AccountLoadError, match="not keys and env"):
        load(keys=[KEY0], env="X")
