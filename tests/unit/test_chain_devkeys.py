"""The public anvil/hardhat dev keys sign for chain id 31337 only, in every signer mode; any other
key signs for any chain."""

from __future__ import annotations

import pytest
from eth_account import Account as EthAccount
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.chain.accounts import Account, from_env, from_keys, from_mnemonic
from bot.chain.devkeys import DEV_CHAIN_ID, DEV_KEYS_SCANNED, DEV_MNEMONIC, derive_keys, is_dev_key
from bot.chain.errors import DevKeyRefused, TxError
from bot.chain.fees import Fees
from bot.chain.signer import MODES, Mode, Signer
from bot.chain.tx import CODECS, Codec, TxRequest, build
from harness.node.keys import DEV_PRIVATE_KEYS

FEES = Fees(max_fee_per_gas=3 * 10**9, max_priority_fee_per_gas=10**9)
DEV = from_mnemonic(count=2)
OWN = from_keys(["0x" + "42" * 32])[0]
chain_ids = st.integers(1, 2**64 - 1).filter(lambda c: c != DEV_CHAIN_ID)


def test_the_derivation_matches_the_published_keys_and_eth_account() -> None:
    keys = derive_keys(DEV_MNEMONIC, DEV_KEYS_SCANNED)
    assert ["0x" + k.hex() for k in keys[: len(DEV_PRIVATE_KEYS)]] == list(DEV_PRIVATE_KEYS)
    EthAccount.enable_unaudited_hdwallet_features()
    for index in (10, 537, DEV_KEYS_SCANNED - 1):  # beyond the ten anvil prints, up to anvil-dev:1000
        ref = EthAccount.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
        assert keys[index] == bytes(ref.key)
    assert len(set(keys)) == DEV_KEYS_SCANNED


def test_dev_keys_are_recognised_from_every_source() -> None:
    assert all(a.is_dev for a in DEV)
    assert from_env("K", {"K": DEV_PRIVATE_KEYS[3]})[0].is_dev  # a dev key given as a plain key
    assert from_mnemonic(count=1, start=DEV_KEYS_SCANNED - 1)[0].is_dev
    assert not OWN.is_dev and not is_dev_key(b"\x42" * 32)
    other = from_mnemonic("legal winner thank year wave sausage worth useful legal winner thank yellow", count=1)
    assert not other[0].is_dev


@given(chain_id=chain_ids, codec=st.sampled_from(CODECS))
@settings(max_examples=50, deadline=None)
def test_a_dev_key_refuses_any_other_chain(chain_id: int, codec: Codec) -> None:
    tx = build(chain_id, 0, TxRequest(to=OWN.address, value=1), FEES)
    with pytest.raises(DevKeyRefused) as err:
        DEV[0].sign(tx, codec)
    assert isinstance(err.value, TxError) and err.value.kind == "dev_key"
    message = str(err.value)
    assert DEV[0].address in message and str(chain_id) in message and "31337" in message
    assert "accounts.env" in message  # the fix
    assert DEV_PRIVATE_KEYS[0][2:] not in message
    assert OWN.sign(tx, codec).nonce == 0  # anyone else's key signs for any chain


def test_a_dev_key_signs_for_the_dev_chain() -> None:
    signed = DEV[0].sign(build(DEV_CHAIN_ID, 0, TxRequest(to=OWN.address, value=1), FEES))
    assert signed.sender == DEV[0].address


@pytest.mark.parametrize("mode", MODES)
async def test_every_signer_mode_refuses_before_signing(mode: Mode) -> None:
    signer = Signer([*DEV, OWN], mode=mode, workers=1)
    try:
        with pytest.raises(DevKeyRefused, match="chain id 31337, not 1;"):
            await signer.sign(DEV[1].address, build(1, 0, TxRequest(to=OWN.address), FEES))
        assert (await signer.sign(OWN.address, build(1, 0, TxRequest(to=OWN.address), FEES))).sender == OWN.address
        stats = signer.statistics()
        assert (stats.signed, stats.failed) == (1, 1)
    finally:
        await signer.aclose()


def test_the_check_alone() -> None:
    DEV[0].check_chain(DEV_CHAIN_ID)
    OWN.check_chain(1)
    with pytest.raises(DevKeyRefused):
        DEV[0].check_chain(1)
    assert isinstance(Account.from_key(DEV_PRIVATE_KEYS[0]), Account)
