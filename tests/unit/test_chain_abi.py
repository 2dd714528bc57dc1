"""bot.chain.abi builds its words itself (no eth_abi in the bot's process): the bytes and the refusals
must be eth_abi's, and the bot's run must not import eth_abi, eth_utils, rlp or eth_account again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import decode, encode
from eth_abi.exceptions import EncodingError
from eth_account import Account as EthAccount
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.chain import abi
from bot.chain.accounts import ANVIL_MNEMONIC, AccountLoadError, from_keys, from_mnemonic

ROOT = Path(__file__).resolve().parents[2]
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

u256 = st.integers(0, 2**256 - 1)
raw_addresses = st.binary(min_size=20, max_size=20)
# Every spelling eth_abi takes: lower, upper, checksummed, mixed; 0x, 0X or no prefix; or the raw bytes.
addresses = st.one_of(
    raw_addresses,
    st.tuples(raw_addresses, st.sampled_from(["0x", "0X", ""]), st.sampled_from(["lower", "upper", "checksum"])).map(
        lambda t: t[1] + {"lower": t[0].hex(), "upper": t[0].hex().upper(),
                          "checksum": to_checksum_address(t[0])[2:]}[t[2]]),
)
# What a caller might pass by mistake: each is refused by both, or taken by both.
anything = st.one_of(st.integers(-(2**257), 2**257), st.booleans(), st.none(), st.floats(allow_nan=False),
                     st.text(alphabet="0123456789abcdefABCDEFxX g", max_size=44), st.binary(max_size=24), addresses)


@given(amount=u256, flag=st.booleans(), m=u256, to=addresses)
def test_swap_bytes_are_eth_abis(amount: int, flag: bool, m: int, to: Any) -> None:
    assert abi.encode_swap(amount, flag, m, to) == abi.SWAP + encode(
        ["uint256", "bool", "uint256", "address"], [amount, flag, m, to])


@given(who=addresses, amount=u256)
def test_token_call_bytes_are_eth_abis(who: Any, amount: int) -> None:
    assert abi.encode_approve(who, amount) == abi.APPROVE + encode(["address", "uint256"], [who, amount])
    assert abi.encode_approve(who) == abi.APPROVE + encode(["address", "uint256"], [who, abi.MAX_UINT256])
    assert abi.encode_transfer(who, amount) == abi.TRANSFER + encode(["address", "uint256"], [who, amount])
    assert abi.encode_balance_of(who) == abi.BALANCE_OF + encode(["address"], [who])


def _refused_by_eth_abi(types: list[str], values: list[Any]) -> bool:
    try:
        encode(types, values)
    except EncodingError:
        return True
    return False


@given(a=st.one_of(u256, anything), b=st.one_of(st.booleans(), anything), c=st.one_of(u256, anything),
       d=st.one_of(addresses, anything))
@settings(max_examples=300)
def test_what_eth_abi_refuses_is_refused(a: Any, b: Any, c: Any, d: Any) -> None:
    refused = _refused_by_eth_abi(["uint256", "bool", "uint256", "address"], [a, b, c, d])
    if refused:
        with pytest.raises(abi.AbiEncodeError):
            abi.encode_swap(a, b, c, d)
    else:
        assert abi.encode_swap(a, b, c, d) == abi.SWAP + encode(["uint256", "bool", "uint256", "address"], [a, b, c, d])


def test_selectors_are_eth_utils() -> None:
    for sig in (abi.SWAP_SIG, abi.APPROVE_SIG, abi.TRANSFER_SIG, abi.BALANCE_OF_SIG, abi.GET_RESERVES_SIG,
                abi.TOKEN0_SIG, abi.TOKEN1_SIG):
        assert abi.selector(sig) == function_signature_to_4byte_selector(sig), sig


@given(raw=raw_addresses)
def test_checksum_address_is_eip55(raw: bytes) -> None:
    assert abi.checksum_address(raw) == to_checksum_address(raw)


@given(words=st.binary(min_size=96, max_size=130))
def test_reserves_decode_as_eth_abi_does(words: bytes) -> None:
    r0, r1, ts = decode(["uint256", "uint256", "uint256"], words[:96])
    if r0 > abi.MAX_UINT112 or r1 > abi.MAX_UINT112 or ts >= 2**32:
        with pytest.raises(abi.AbiDecodeError, match="out of range"):
            abi.decode_reserves(words)
    else:
        assert abi.decode_reserves(words) == (r0, r1, ts)


@given(secret=st.integers(1, _N - 1))
@settings(max_examples=50, deadline=None)
def test_account_address_is_eth_accounts(secret: int) -> None:
    key = secret.to_bytes(32, "big")
    (acc,) = from_keys(["0x" + key.hex()], source="test key")
    assert acc.address == EthAccount.from_key(key).address
    assert acc._worker_key() == key


@pytest.mark.parametrize("secret", [0, _N, _N + 1, 2**256 - 1])
def test_a_key_outside_the_curve_is_refused_without_showing_it(secret: int) -> None:
    text = "0x" + secret.to_bytes(32, "big").hex()
    with pytest.raises(AccountLoadError, match="not a valid secp256k1 private key") as err:
        from_keys([text], source="test key")
    assert text[2:] not in str(err.value)


def test_dev_mnemonic_accounts_are_eth_accounts() -> None:
    EthAccount.enable_unaudited_hdwallet_features()
    ours = from_mnemonic(count=3, start=2)
    theirs = [EthAccount.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").address for i in (2, 3, 4)]
    assert [a.address for a in ours] == theirs
    assert all(a.is_dev for a in ours)


def test_the_bots_run_imports_no_eth_abi_eth_utils_rlp_or_eth_account() -> None:
    # What the bot imports to run, then loads keys as the harness and the default config do.
    code = (
        "import sys, bot.cli, bot.app, uvloop\n"
        "from bot.chain.accounts import from_keys, from_mnemonic\n"
        "from_mnemonic(count=2); from_keys(['0x' + '11' * 32])\n"
        "heavy = ('eth_abi', 'eth_utils', 'rlp', 'eth_account', 'pydantic', 'py_ecc', 'eth_keys')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
